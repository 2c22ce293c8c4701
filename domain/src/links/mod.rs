//! Validation of user-supplied link parts: destination URLs, custom aliases, and the
//! hosts that links may not point at.

pub mod alias;
pub mod hosts;
pub mod url;

pub use self::alias::{Alias, AliasError, RESERVED_WORDS};
pub use self::hosts::{Blocklist, HostEntry, HostEntryError, HostSet};
pub use self::url::{LongUrl, UrlError, UrlPolicy};
