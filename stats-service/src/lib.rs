//! stats-service: applies click batches to the counters and answers the stats API.
//!
//! - [`consumer`]: takes batches from the durable queue (the `click_batches` outbox) and
//!   applies each exactly once.
//! - [`deltas`]: what a round of batches adds to each counter row.
//! - [`agents`]: how a user agent is filed (browser, OS, device, bot).
//! - [`api`]: `GET /api/v1/links/{code}/stats`, owner only, JSON or CSV.
//! - [`error`]: the stats API's error enum and its problem+json.
//! - [`app`]: the server, and the routes the all-in-one mounts.
//! - [`openapi`]: the OpenAPI document of the stats API.
//! - [`webhooks`]: delivers queued webhook messages, signed, with retries.

pub mod agents;
pub mod api;
pub mod app;
pub mod consumer;
pub mod deltas;
pub mod error;
pub mod openapi;
pub mod webhooks;

pub use app::{StatsService, routes, run, start};
