//! lookup-service: follows short links. This is the hot path (~99% of traffic).
//!
//! - [`resolve`]: turns a path segment into a link, looking up only strings that can
//!   be a code or an alias.
//! - [`tiers`]: L1 moka → L2 Redis Cluster (behind a breaker) → replica → primary.
//! - [`visits`]: the `max_visits` check, under a deadline.
//! - [`redirect`]: the `GET|HEAD /{code}` handler and its response semantics.
//! - [`password`]: the form, check and grant of password-protected links;
//!   [`pages`]: the HTML pages the redirect may answer instead (that form, a preview).
//! - [`geo`]: the visitor's country, from the edge's header or a GeoIP database.
//! - [`error`]: every answer other than a redirect, as one enum.
//! - [`buffer`]: the in-memory click aggregate the redirect adds to.
//! - [`clicks`]: the recorder and its flushes to the durable queue.
//! - [`app`]: the server, and the redirect service the all-in-one mounts.

pub mod app;
pub mod buffer;
pub mod clicks;
pub mod error;
pub mod geo;
pub mod metrics;
pub mod pages;
pub mod password;
pub mod redirect;
pub mod resolve;
pub mod tiers;
pub mod visits;

pub use app::{LookupService, REDIRECT_ROUTE, redirect_service, run, start};
pub use resolve::LookupState;
