//! The shortener's pure domain: the rules every service shares, with no I/O, no
//! runtime and no HTTP, database or Redis client, so they can be tested, fuzzed and
//! reasoned about on their own. `common` builds the platform on it and re-exports it.
//!
//! - [`ids`]: Snowflake ids (layout, generator, worker ids) and the public code codec.
//! - [`links`]: destination URLs, aliases, host entries and the blocklist matcher.
//! - [`link`]: a link as stored and its state at an instant.
//! - [`cache`]: the cache entry lookups answer from, and its encoding in Redis.
//! - [`clicks`]: clicks on the wire: the batch lookup sends, the normalised
//!   dimensions, what a user agent is filed as.

pub mod cache;
pub mod clicks;
pub mod ids;
pub mod link;
pub mod links;
