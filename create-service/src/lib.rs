//! create-service: the API through which clients create and manage short links.
//!
//! Layout:
//! - [`app`]: [`app::CreateService`] (state, routes and background work, which the
//!   all-in-one mounts beside lookup and stats) and [`app::start`], the server on a
//!   port (0 in tests).
//! - [`relay`]: publishes the outbox of link changes to Redis and every lookup.
//! - [`state`]: what handlers share: pools, the Snowflake generator and its lease, the
//!   code codec, authentication and rate limits.
//! - [`model`]: request and response bodies and their validation into domain types.
//! - [`error`]: the service's one error enum and its mapping to problem+json.
//! - [`metrics`]: the service's counters, labelled by closed enums.
//! - [`http`]: one file per endpoint, each with its OpenAPI annotation.
//! - [`group_commit`]: concurrent single creates written together, one commit each batch.
//! - [`qr`]: QR codes of short links, drawn as PNG or SVG.
//! - [`web`]: the web page at `/` and its files, compiled into the binary.

pub mod app;
pub mod error;
pub mod group_commit;
pub mod http;
pub mod metrics;
pub mod model;
pub mod qr;
pub mod relay;
pub mod state;
pub mod web;

pub use app::{CreateService, routes, run, start};
pub use state::CreateState;
