//! A link as stored, and what a follower of it gets at a given instant.

/// A link as stored. Built only from validated input (create-service) or from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    pub code: String,
    pub id: i64,
    pub tenant_id: String,
    pub url: String,
    pub redirect_status: u16,
    pub tags: Vec<String>,
    pub max_visits: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// What a follower of the link gets, derived from the record at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Active,
    Disabled,
    Expired,
    Deleted,
}

impl LinkRecord {
    pub fn state_at(&self, now_ms: i64) -> LinkState {
        if self.deleted_at.is_some() {
            LinkState::Deleted
        } else if self.disabled_at.is_some() {
            LinkState::Disabled
        } else if self.expires_at.is_some_and(|at| at <= now_ms) {
            LinkState::Expired
        } else {
            LinkState::Active
        }
    }
}
