//! stats-service: click counting and the stats API.
//!
//! This crate currently serves the operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`) on port 8083; click ingestion and the stats API build on it.

pub mod app;

pub use app::{Application, routes};
