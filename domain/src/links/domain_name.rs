//! Branded domains: the host names tenants serve their links on, held in one spelling
//! (lowercase, IDN as punycode, no port, no trailing dot), the spelling a request's
//! `Host` is brought to before it is looked up.

use ::url::Host;
use thiserror::Error;

/// Longest host name DNS can carry, and longest label.
pub const MAX_LEN: usize = 253;
const MAX_LABEL: usize = 63;

/// A host name a tenant may serve links on. [`DomainName::parse`] is the only way in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a domain name was refused; the messages are meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainNameError {
    #[error("the domain name is empty")]
    Empty,
    #[error("give the host name alone, without a scheme or path, e.g. `go.acme.com`")]
    Url,
    #[error("give the host name without a port, e.g. `go.acme.com`")]
    Port,
    #[error("wildcards are not supported: add each host name on its own")]
    Wildcard,
    #[error("an IP address is not a domain name")]
    IpAddress,
    #[error("a domain needs at least two labels, e.g. `go.acme.com`")]
    SingleLabel,
    #[error("the domain name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error(
        "`{0}` is not a valid label: 1–{MAX_LABEL} letters, digits or `-`, not starting or ending with `-`"
    )]
    Label(String),
    #[error("the domain name is not a valid host name")]
    Invalid,
}

impl DomainName {
    /// Reads `input` as a host name: Unicode becomes punycode, upper case lower, one
    /// trailing dot is dropped. Ports, schemes, paths, wildcards and IP addresses are
    /// refused rather than stripped: the caller is naming a domain, not sending a
    /// request.
    pub fn parse(input: &str) -> Result<DomainName, DomainNameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainNameError::Empty);
        }
        if trimmed.contains("://") || trimmed.contains('/') {
            return Err(DomainNameError::Url);
        }
        if trimmed.contains('*') {
            return Err(DomainNameError::Wildcard);
        }
        if trimmed.starts_with('[') {
            return Err(DomainNameError::IpAddress);
        }
        if trimmed.contains(':') {
            return Err(DomainNameError::Port);
        }
        let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
        let host = match Host::parse(bare) {
            Ok(Host::Domain(host)) => host,
            Ok(Host::Ipv4(_) | Host::Ipv6(_)) => return Err(DomainNameError::IpAddress),
            Err(_) => return Err(DomainNameError::Invalid),
        };
        if host.len() > MAX_LEN {
            return Err(DomainNameError::TooLong);
        }
        let labels: Vec<&str> = host.split('.').collect();
        if let Some(bad) = labels.iter().find(|label| !valid_label(label)) {
            return Err(DomainNameError::Label((*bad).to_string()));
        }
        if labels.len() < 2 {
            return Err(DomainNameError::SingleLabel);
        }
        Ok(DomainName(host))
    }

    /// A name as storage holds it, written only through [`DomainName::parse`].
    pub fn from_stored(name: String) -> DomainName {
        DomainName(name)
    }
}

crate::text_type!(DomainName);

/// What a request's `Host` names, brought to the spelling domains are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestHost<'a> {
    /// A host name: lowercase, without port or trailing dot.
    Name(&'a str),
    /// An IP address: the request came to an address, not to a domain.
    Address,
    /// Not a host (non-ASCII, stray characters, too long): no domain has it.
    Invalid,
}

/// Reads a `Host` value (`Go.Acme.COM.:443`) as [`DomainName`] holds names, on the
/// redirect path: a name already in lowercase is borrowed as it is; one with upper
/// case is lowered into `buf`, never into a fresh allocation. Browsers send IDN hosts
/// as punycode, so a non-ASCII value is refused rather than converted.
pub fn request_host<'a>(value: &'a str, buf: &'a mut [u8; MAX_LEN]) -> RequestHost<'a> {
    if value.starts_with('[') {
        return RequestHost::Address;
    }
    let host = match value.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return RequestHost::Invalid,
        None => value,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty()
        || host.len() > MAX_LEN
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return RequestHost::Invalid;
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return RequestHost::Address;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return RequestHost::Name(host);
    }
    let lowered = &mut buf[..host.len()];
    lowered.copy_from_slice(host.as_bytes());
    lowered.make_ascii_lowercase();
    // Lowering ASCII letters keeps the bytes ASCII, so this cannot fail.
    match std::str::from_utf8(lowered) {
        Ok(name) => RequestHost::Name(name),
        Err(_) => RequestHost::Invalid,
    }
}

fn valid_label(label: &str) -> bool {
    (1..=MAX_LABEL).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_one_spelling() {
        for (input, want) in [
            ("go.acme.com", "go.acme.com"),
            ("  GO.Acme.COM  ", "go.acme.com"),
            ("go.acme.com.", "go.acme.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a-b.c1.example", "a-b.c1.example"),
            ("links.例え.jp", "links.xn--r8jz45g.jp"),
        ] {
            assert_eq!(
                DomainName::parse(input)
                    .map(DomainName::into_string)
                    .as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn request_hosts_take_the_held_spelling() {
        let mut buf = [0u8; MAX_LEN];
        for (value, want) in [
            ("go.acme.com", RequestHost::Name("go.acme.com")),
            ("GO.Acme.COM", RequestHost::Name("go.acme.com")),
            ("go.acme.com.", RequestHost::Name("go.acme.com")),
            ("go.acme.com:8443", RequestHost::Name("go.acme.com")),
            ("Go.Acme.Com.:443", RequestHost::Name("go.acme.com")),
            ("localhost:8080", RequestHost::Name("localhost")),
            ("127.0.0.1:8082", RequestHost::Address),
            ("10.0.0.1", RequestHost::Address),
            ("[::1]:8082", RequestHost::Address),
            ("", RequestHost::Invalid),
            (":80", RequestHost::Invalid),
            ("go.acme.com:https", RequestHost::Invalid),
            ("bücher.example", RequestHost::Invalid),
            ("go acme.com", RequestHost::Invalid),
            ("go.acme.com/x", RequestHost::Invalid),
        ] {
            assert_eq!(request_host(value, &mut buf), want, "{value:?}");
        }
    }

    proptest::proptest! {
        /// Whatever case, port and trailing dot a request adds, a held name reads
        /// back as itself.
        #[test]
        fn a_held_name_survives_what_requests_add(
            // A last label of digits alone would read as an IPv4 address.
            name in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2}\\.[a-z][a-z0-9]{0,9}",
            upper in proptest::collection::vec(proptest::bool::ANY, 50),
            port in proptest::option::of(0u16..),
            dot in proptest::bool::ANY,
        ) {
            let held = DomainName::parse(&name).expect("generated names are valid");
            let mut value: String = name
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                value.push('.');
            }
            if let Some(port) = port {
                value.push_str(&format!(":{port}"));
            }
            let mut buf = [0u8; MAX_LEN];
            let read = request_host(&value, &mut buf);
            proptest::prop_assert_eq!(read, RequestHost::Name(held.as_str()));
        }
    }

    #[test]
    fn refuses_what_is_not_a_domain_of_its_own() {
        use DomainNameError::*;
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{}.example", vec!["a".repeat(60); 5].join("."));
        for (input, want) in [
            ("", Empty),
            ("   ", Empty),
            ("https://go.acme.com", Url),
            ("go.acme.com/x", Url),
            ("go.acme.com:8080", Port),
            ("*.acme.com", Wildcard),
            ("127.0.0.1", IpAddress),
            ("[::1]", IpAddress),
            ("localhost", SingleLabel),
            ("-go.acme.com", Label("-go".into())),
            ("go-.acme.com", Label("go-".into())),
            ("go_links.acme.com", Label("go_links".into())),
            ("go..acme.com", Label(String::new())),
            (long_label.as_str(), Label("a".repeat(64))),
            (long_name.as_str(), TooLong),
            ("go acme.com", Invalid),
        ] {
            assert_eq!(DomainName::parse(input), Err(want), "{input:?}");
        }
    }
}
