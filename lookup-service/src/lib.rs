//! lookup-service: follows short links. This is the hot path (~99% of traffic).
//!
//! - [`resolve`]: turns a path segment into a stored link, touching storage only for
//!   strings that can be a code or an alias.
//! - [`redirect`]: the `GET|HEAD /{code}` handler and its response semantics.
//! - [`app`]: the server, and the routes the all-in-one mounts.

pub mod app;
pub mod redirect;
pub mod resolve;

pub use app::{Application, routes};
pub use resolve::LookupState;
