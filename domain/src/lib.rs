//! The shortener's pure domain: the rules every service shares, with no I/O, no
//! runtime and no HTTP, database or Redis client, so they can be tested, fuzzed and
//! reasoned about on their own. `common` builds the platform on it and re-exports it.
//!
//! - [`ids`]: Snowflake ids (layout, generator, worker ids) and the public code codec.
//! - [`links`]: destination URLs, aliases, host entries and the blocklist matcher.
//! - [`link`]: a link as stored and its state at an instant.
//! - [`site`]: what a branded domain does besides serving its links.
//! - [`access`]: roles, scopes and the one decision of who may do what.
//! - [`audit`]: who changed what: actors, actions and the diff of a change.
//! - [`forward`]: the visitor's query string added to a link's target.
//! - [`route`]: redirect rules and split tests: which target a follow gets.
//! - [`cache`]: the cache entry lookups answer from, and its encoding in Redis.
//! - [`clicks`]: clicks on the wire: the batch lookup sends, the normalised
//!   dimensions, what a user agent is filed as.

/// The text behind a checked string type (a code, an alias, a tenant, a host): read
/// as `&str`, given up as `String`, printed and serialised as the bare text. Each
/// type keeps its own constructor, the one place its rule is checked.
macro_rules! text_type {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}
pub(crate) use text_type;

pub mod access;
pub mod agent;
pub mod audit;
pub mod cache;
pub mod clicks;
pub mod forward;
pub mod ids;
pub mod link;
pub mod links;
pub mod route;
pub mod site;
pub mod webhooks;
