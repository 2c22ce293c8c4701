//! The modules of `common` that parse user input (`ids`: codes and Snowflake ids;
//! `links`: destination URLs, aliases, blocked hosts), compiled from common's own
//! source files, so the fuzz targets exercise the product code without building
//! the rest of `common` (database, Redis and HTTP clients) under the fuzzer's
//! instrumentation. A new dependency of these modules on another part of `common`
//! shows up here as a build error: give it a `#[path]` module below, or move it.
#![forbid(unsafe_code)]
// Items these modules keep for the rest of `common` have no user in this crate.
#![allow(dead_code)]

#[path = "../../common/src/ids/mod.rs"]
pub mod ids;

#[path = "../../common/src/links/mod.rs"]
pub mod links;
