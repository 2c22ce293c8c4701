//! Validation of user-supplied link parts: destination URLs and custom aliases.

pub mod alias;
pub mod url;

pub use self::alias::{Alias, AliasError, RESERVED_WORDS};
pub use self::url::{LongUrl, UrlError, UrlPolicy};
