//! From a path segment to a stored link.
//!
//! A segment is looked up only if it can exist: a canonical generated code (decoded
//! without storage) or a well-formed alias. Everything else is "not found" at once,
//! so scanners and typos cost no database query.

use std::sync::Arc;

use common::db::links::{self, LinkRecord};
use common::db::{Database, StoreError};
use common::deps::Deps;
use common::ids::{CODE_LEN, CodeCodec};
use common::links::Alias;

/// What the lookup handlers share.
pub struct LookupState {
    pub deps: Deps,
    pub codec: Arc<CodeCodec>,
    pub db: Database,
}

impl std::fmt::Debug for LookupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupState").field("db", &self.db).finish()
    }
}

/// The shapes a path segment can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Generated,
    Alias,
    /// Neither: cannot exist, answer 404 without a query.
    Impossible,
}

impl LookupState {
    pub fn build(deps: &Deps, codec: Arc<CodeCodec>) -> LookupState {
        LookupState {
            deps: deps.clone(),
            codec,
            db: deps.db.clone(),
        }
    }

    pub fn classify(&self, segment: &str) -> Segment {
        if segment.len() == CODE_LEN && self.codec.decode(segment).is_some() {
            Segment::Generated
        } else if Alias::parse(segment).is_ok() {
            Segment::Alias
        } else {
            Segment::Impossible
        }
    }

    /// The link stored under `code`: a replica first, then the primary when the
    /// replica does not have it (yet) or fails, so a link is followable as soon as
    /// its create returned.
    pub async fn load(&self, code: &str) -> Result<Option<LinkRecord>, StoreError> {
        if !self.db.replicas().is_empty() {
            match links::get(self.db.replica(), code).await {
                Ok(Some(link)) => return Ok(Some(link)),
                Ok(None) => {}
                Err(e) => {
                    self.deps
                        .metrics
                        .db_errors
                        .with_label_values(&["replica"])
                        .inc();
                    tracing::warn!(error = %e, "replica read failed; reading the primary");
                }
            }
        }
        links::get(self.db.primary(), code).await.inspect_err(|_| {
            self.deps
                .metrics
                .db_errors
                .with_label_values(&["primary"])
                .inc();
        })
    }
}
