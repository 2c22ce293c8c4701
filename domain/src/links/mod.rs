//! Validation of user-supplied link parts: destination URLs, custom aliases, the
//! hosts that links may not point at, and the domains links are served on.

pub mod alias;
pub mod domain_name;
pub mod hosts;
pub mod url;

pub use self::alias::{Alias, AliasError, RESERVED_WORDS};
pub use self::domain_name::{DomainName, DomainNameError, RequestHost, request_host};
pub use self::hosts::{Blocklist, HostEntry, HostEntryError, HostSet};
pub use self::url::{LongUrl, UrlError, UrlPolicy};
