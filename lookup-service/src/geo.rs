//! The visitor's country, for redirect rules and click stats: the edge's country
//! header when it sends one (`stats.country_header`), else the GeoIP database named by
//! `geoip.database` (MaxMind format: GeoLite2 or GeoIP2 Country or City), looked up by
//! the client address. The database is read whole at start; no address leaves the
//! process.

use std::net::IpAddr;
use std::path::Path;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use anyhow::Context;
use serde::Deserialize;

/// Where countries come from.
pub struct Countries {
    header: Option<HeaderName>,
    database: Option<maxminddb::Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Countries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Countries")
            .field("header", &self.header)
            .field("database", &self.database.is_some())
            .finish()
    }
}

/// The part of a GeoIP2 Country or City record the redirect reads.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Place<'a>>,
    /// Where the address block is registered: the answer for addresses whose users'
    /// country is not known (anycast, some mobile networks).
    #[serde(borrow)]
    registered_country: Option<Place<'a>>,
}

#[derive(Deserialize)]
struct Place<'a> {
    iso_code: Option<&'a str>,
}

impl Countries {
    /// Reads the database at `database`, if one is named; a file that is missing or
    /// not a MaxMind database stops the start, naming it.
    pub fn open(header: Option<HeaderName>, database: Option<&Path>) -> anyhow::Result<Countries> {
        let database = match database {
            Some(path) => Some(
                maxminddb::Reader::open_readfile(path)
                    .with_context(|| format!("geoip.database: cannot read {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Countries { header, database })
    }

    /// Whether any source of countries is configured.
    pub fn any(&self) -> bool {
        self.header.is_some() || self.database.is_some()
    }

    /// The country of the client of `req` at `address`: two letters, as the header
    /// or the database spells them (the click buffer and the rules compare them
    /// without regard to case).
    pub fn of<'a>(&'a self, req: &'a HttpRequest, address: Option<IpAddr>) -> Option<&'a str> {
        let sent = self
            .header
            .as_ref()
            .and_then(|name| req.headers().get(name))
            .and_then(|value| value.to_str().ok())
            .and_then(|value| common::clicks::country_raw(Some(value)));
        sent.or_else(|| self.look_up(address?))
    }

    fn look_up(&self, address: IpAddr) -> Option<&str> {
        let record: Record<'_> = self
            .database
            .as_ref()?
            .lookup(address)
            .ok()?
            .decode()
            .ok()??;
        let code = record
            .country
            .and_then(|c| c.iso_code)
            .or_else(|| record.registered_country.and_then(|c| c.iso_code))?;
        common::clicks::country_raw(Some(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_cannot_be_read_stops_the_start_naming_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("missing.mmdb");
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"not a database").unwrap_or_else(|e| panic!("{e}"));
        for path in [missing, junk] {
            let error = Countries::open(None, Some(&path)).map(|_| ()).unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains("geoip.database"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        let none = Countries::open(None, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!none.any());
    }
}
