//! The platform the three services share, built on the pure [`domain`] crate (whose
//! modules it re-exports: [`ids`], [`links`], [`link`], [`cache`], [`clicks`]).
//!
//! Every service (create, lookup, stats) and the all-in-one binary are built from this
//! crate's pieces, so behaviour that users can observe (error bodies, metrics names,
//! configuration keys, how a service starts and stops) is defined exactly once:
//!
//! - [`config`]: layered, typed settings (`defaults → file → SHORTENER__SECTION__KEY`).
//! - [`issuer`]: Snowflake ids for async code, waiting on the timer; [`lease`]: the
//!   worker-id lease.
//! - [`blocklist`]: the runtime host blocklist, kept current on every instance, and
//!   the admin operations that change it.
//! - [`db`]: connection pools (primary + replicas) over PostgreSQL or embedded SQLite,
//!   migrations, and the stores that hold every SQL statement.
//! - [`auth`], [`ratelimit`]: API keys and GCRA rate limiting; [`passwords`]: the
//!   argon2id hashes of password-protected links.
//! - [`problem`]: RFC 9457 problem+json errors; [`openapi`]: what both API documents share.
//! - [`telemetry`], [`metrics`], [`health`], [`http`]: what every service exposes;
//!   [`server`]: the one builder every service is served by.
//! - [`background`]: the tasks a process owns and stops in order; [`backoff`]: the
//!   retry schedule of every reconnect loop.
//! - [`webhooks`]: which endpoint URLs are taken, and the messages every writer queues.

pub use domain::{self, cache, clicks, ids, link, links, site};

pub mod audit;
pub mod auth;
pub mod background;
pub mod backoff;
pub mod blocklist;
pub mod breaker;
pub mod config;
pub mod db;
pub mod deps;
pub mod domains;
pub mod events;
pub mod health;
pub mod held;
pub mod http;
pub mod issuer;
pub mod lease;
pub mod metrics;
pub mod openapi;
pub mod passwords;
pub mod problem;
pub mod ratelimit;
pub mod redis;
pub mod server;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod webhooks;
