//! The audit trail's vocabulary: who acted ([`Actor`]), what they did
//! ([`AuditAction`]) to which target, and what changed ([`diff`]), as one row
//! ([`Entry`]) written in the same transaction as the change it records.

use std::fmt;

use serde_json::{Map, Value};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key, by its id, and the member it belongs to, if any.
    Key { key: i64, member: Option<i64> },
    /// A caller without a key (anonymous creation), by a keyed hash of its address:
    /// calls from one address can be told apart from others without storing it.
    Anonymous(String),
    /// Someone at the command line (`shortener hosts block`, `links import`), by the
    /// operating-system user.
    Operator(String),
}

impl Actor {
    pub const KINDS: [&'static str; 3] = ["key", "anonymous", "operator"];

    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Key { .. } => "key",
            Actor::Anonymous(_) => "anonymous",
            Actor::Operator(_) => "operator",
        }
    }

    /// The actor's id within its kind.
    pub fn id(&self) -> String {
        match self {
            Actor::Key { key, .. } => key.to_string(),
            Actor::Anonymous(hash) | Actor::Operator(hash) => hash.clone(),
        }
    }

    /// The member whose key acted.
    pub fn member(&self) -> Option<i64> {
        match self {
            Actor::Key { member, .. } => *member,
            _ => None,
        }
    }

    /// Reads the stored kind, id and member back; `None` when they are no actor.
    pub fn from_stored(kind: &str, id: &str, member: Option<i64>) -> Option<Actor> {
        match kind {
            "key" => id.parse().ok().map(|key| Actor::Key { key, member }),
            "anonymous" => Some(Actor::Anonymous(id.to_string())),
            "operator" => Some(Actor::Operator(id.to_string())),
            _ => None,
        }
    }
}

impl fmt::Display for Actor {
    /// `kind:id`, the form the audit API's `actor` filter takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal,)+) => {
        /// Every kind of change the audit log records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)+
        }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)+
                }
            }
        }
    };
}

actions! {
    LinkCreated => "link.created",
    LinkUpdated => "link.updated",
    LinkDeleted => "link.deleted",
    LinkImported => "link.imported",
    DomainAdded => "domain.added",
    DomainUpdated => "domain.updated",
    DomainRemoved => "domain.removed",
    KeyCreated => "key.created",
    KeyRevoked => "key.revoked",
    KeyRotated => "key.rotated",
    MemberAdded => "member.added",
    MemberUpdated => "member.updated",
    MemberRemoved => "member.removed",
    HostBlocked => "host.blocked",
    HostUnblocked => "host.unblocked",
    WebhookAdded => "webhook.added",
    WebhookUpdated => "webhook.updated",
    WebhookRemoved => "webhook.removed",
    WebhookReplayed => "webhook.replayed",
}

impl AuditAction {
    /// `None` for a name that is no action (the API answers 400 naming them).
    pub fn parse(text: &str) -> Option<AuditAction> {
        AuditAction::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == text)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a target is called in the log: `link:<key>` (its code, or `domain/code`),
/// `domain:<name>`, `key:<id>`, `member:<id>`, `host:<host>`, `webhook:<id>`.
pub fn target(kind: &str, name: impl fmt::Display) -> String {
    format!("{kind}:{name}")
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The tenant whose resource changed; empty for deployment-wide changes (the
    /// blocklist).
    pub tenant_id: String,
    pub actor: Actor,
    pub action: AuditAction,
    pub target: String,
    /// The changed fields, `{"field": {"from": before, "to": after}}` (see [`diff`]).
    pub changes: Value,
    /// The request's id (`X-Request-Id`, or the one the service gave it); empty for
    /// changes made outside a request.
    pub request_id: String,
    /// When, in Unix ms.
    pub at: i64,
}

/// The fields that differ between two states of a resource, as
/// `{"field": {"from": before, "to": after}}`. `None` is the state before a
/// creation or after a removal; a field absent from one side reads as `null`, and
/// fields `null` on both sides are left out. Keys come out sorted, so equal changes
/// always serialise alike.
pub fn diff(before: Option<Value>, after: Option<Value>) -> Value {
    let fields = |state: Option<Value>| match state {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (mut before, mut after) = (fields(before), fields(after));
    let mut names: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    names.sort_unstable();
    names.dedup();
    let mut changes = Map::new();
    for name in names {
        let from = before.remove(&name).unwrap_or(Value::Null);
        let to = after.remove(&name).unwrap_or(Value::Null);
        if from != to {
            let mut change = Map::new();
            change.insert("from".into(), from);
            change.insert("to".into(), to);
            changes.insert(name, Value::Object(change));
        }
    }
    Value::Object(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_only_what_changed() {
        let before = json!({"url": "https://a.example/", "tags": ["x"], "max_visits": null});
        let after = json!({"url": "https://b.example/", "tags": ["x"], "max_visits": 5});
        assert_eq!(
            diff(Some(before.clone()), Some(after)),
            json!({
                "max_visits": {"from": null, "to": 5},
                "url": {"from": "https://a.example/", "to": "https://b.example/"},
            })
        );
        assert_eq!(diff(Some(before.clone()), Some(before)), json!({}));
    }

    #[test]
    fn creations_and_removals_diff_against_nothing() {
        let state = json!({"name": "go.acme.com", "root_url": null, "scheme": "https"});
        assert_eq!(
            diff(None, Some(state.clone())),
            json!({
                "name": {"from": null, "to": "go.acme.com"},
                "scheme": {"from": null, "to": "https"},
            })
        );
        assert_eq!(
            diff(Some(state), None),
            json!({
                "name": {"from": "go.acme.com", "to": null},
                "scheme": {"from": "https", "to": null},
            })
        );
    }

    #[test]
    fn names_read_back() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(*action));
        }
        assert_eq!(AuditAction::parse("link.create"), None);
        for actor in [
            Actor::Key {
                key: 42,
                member: None,
            },
            Actor::Key {
                key: 42,
                member: Some(7),
            },
            Actor::Anonymous("0f3a".into()),
            Actor::Operator("alice".into()),
        ] {
            let stored = Actor::from_stored(actor.kind(), &actor.id(), actor.member());
            assert_eq!(stored, Some(actor));
        }
        assert_eq!(Actor::from_stored("key", "x", None), None);
        assert_eq!(Actor::from_stored("root", "x", None), None);
        let key = Actor::Key {
            key: 7,
            member: Some(3),
        };
        assert_eq!(key.to_string(), "key:7");
    }
}
