//! Who may do what: the roles of a tenant's members, the scopes of service keys, and
//! the one decision of whether a key may take an action ([`permits`]). Every handler
//! asks this function, so the matrix in the README and the code cannot drift apart:
//! the table test below is the matrix.

use std::fmt;

/// A member's role in a tenant, from most to least trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Editor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// `None` for a name that is no role (the API answers 422 naming the roles).
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// [`Role::parse`], or the message that says `text` is none and names the roles.
    pub fn parse_or_explain(text: &str) -> Result<Role, String> {
        Role::parse(text)
            .ok_or_else(|| format!("`{text}` is no role; roles are {}", listed(&Role::ALL)))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a service key (one that belongs to no member) may do, granted one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    LinksRead,
    LinksWrite,
    StatsRead,
    DomainsManage,
    KeysManage,
    AuditRead,
    WebhooksManage,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::LinksRead,
        Scope::LinksWrite,
        Scope::StatsRead,
        Scope::DomainsManage,
        Scope::KeysManage,
        Scope::AuditRead,
        Scope::WebhooksManage,
    ];

    /// The scope's name as keys carry it and as a 403 names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LinksRead => "links:read",
            Scope::LinksWrite => "links:write",
            Scope::StatsRead => "stats:read",
            Scope::DomainsManage => "domains:manage",
            Scope::KeysManage => "keys:manage",
            Scope::AuditRead => "audit:read",
            Scope::WebhooksManage => "webhooks:manage",
        }
    }

    /// `None` for a name that is no scope (the API answers 422 naming the scopes).
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// [`Scope::parse`], or the message that says `text` is none and names the scopes.
    pub fn parse_or_explain(text: &str) -> Result<Scope, String> {
        Scope::parse(text)
            .ok_or_else(|| format!("`{text}` is no scope; scopes are {}", listed(&Scope::ALL)))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `all`, each in backticks, comma-separated.
fn listed<T: fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything a caller can ask of the API that not everyone may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ReadLinks,
    CreateLink,
    EditLink,
    DeleteLink,
    ReadStats,
    ReadDomains,
    ManageDomains,
    ManageKeys,
    ReadMembers,
    ManageMembers,
    ReadAudit,
    ManageWebhooks,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::ReadLinks,
        Action::CreateLink,
        Action::EditLink,
        Action::DeleteLink,
        Action::ReadStats,
        Action::ReadDomains,
        Action::ManageDomains,
        Action::ManageKeys,
        Action::ReadMembers,
        Action::ManageMembers,
        Action::ReadAudit,
        Action::ManageWebhooks,
    ];

    /// The permission a 403 names: the scope a service key would need, or `members`
    /// for what only a member's role can grant.
    pub fn permission(self) -> &'static str {
        match self.scope() {
            Some(scope) => scope.as_str(),
            None => "members:manage",
        }
    }

    /// The scope that grants the action to a service key; `None` for what no service
    /// key may do (managing members: people are managed by people).
    pub fn scope(self) -> Option<Scope> {
        match self {
            Action::ReadLinks | Action::ReadDomains => Some(Scope::LinksRead),
            Action::CreateLink | Action::EditLink | Action::DeleteLink => Some(Scope::LinksWrite),
            Action::ReadStats => Some(Scope::StatsRead),
            Action::ManageDomains => Some(Scope::DomainsManage),
            // Keys are made for members, so who manages keys sees them.
            Action::ManageKeys | Action::ReadMembers => Some(Scope::KeysManage),
            Action::ReadAudit => Some(Scope::AuditRead),
            // Seeing an endpoint shows where a tenant's events go: managed and read
            // alike.
            Action::ManageWebhooks => Some(Scope::WebhooksManage),
            Action::ManageMembers => None,
        }
    }

    /// The least trusted role that may take the action.
    fn least_role(self) -> Role {
        match self {
            Action::ReadLinks | Action::ReadStats | Action::ReadDomains => Role::Viewer,
            Action::CreateLink | Action::EditLink | Action::DeleteLink => Role::Editor,
            Action::ManageDomains
            | Action::ManageKeys
            | Action::ReadMembers
            | Action::ReadAudit
            | Action::ManageWebhooks => Role::Admin,
            Action::ManageMembers => Role::Owner,
        }
    }
}

/// What a key carries: a member's role, or a service key's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Role(Role),
    Scopes(Vec<Scope>),
}

impl Grant {
    /// A service key's grant: `scopes` in one order, each once.
    pub fn scopes(mut scopes: Vec<Scope>) -> Grant {
        scopes.sort_unstable();
        scopes.dedup();
        Grant::Scopes(scopes)
    }

    /// The stored form, as the `role` and `scopes` columns of a key hold it: one of
    /// them set, scopes space-separated.
    pub fn to_stored(&self) -> (Option<&'static str>, Option<String>) {
        match self {
            Grant::Role(role) => (Some(role.as_str()), None),
            Grant::Scopes(scopes) => (
                None,
                Some(
                    scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ),
        }
    }

    /// Reads the stored form back; `None` when it is no grant (both or neither set,
    /// or a name that is no role or scope).
    pub fn from_stored(role: Option<&str>, scopes: Option<&str>) -> Option<Grant> {
        match (role, scopes) {
            (Some(role), None) => Role::parse(role).map(Grant::Role),
            (None, Some(scopes)) => scopes
                .split_whitespace()
                .map(Scope::parse)
                .collect::<Option<Vec<_>>>()
                .map(Grant::scopes),
            _ => None,
        }
    }
}

/// Whether a key with `grant` may take `action` in its own tenant (another tenant's
/// resources are never reached: lookups are by tenant before any permission).
pub fn permits(grant: &Grant, action: Action) -> bool {
    match grant {
        // Roles are ordered from most to least trusted.
        Grant::Role(role) => *role <= action.least_role(),
        // `domains:manage` lets a key see the domains it manages.
        Grant::Scopes(scopes) => action.scope().is_some_and(|needed| {
            scopes.contains(&needed)
                || (action == Action::ReadDomains && scopes.contains(&Scope::DomainsManage))
        }),
    }
}

/// Whether a key with `holder` may hand out (or manage) a key with `granted`: only
/// when everything `granted` permits, `holder` permits too, so no key can mint or
/// rotate its way to more than it has.
pub fn covers(holder: &Grant, granted: &Grant) -> bool {
    Action::ALL
        .into_iter()
        .all(|action| !permits(granted, action) || permits(holder, action))
}

/// The first permission `granted` has that `holder` lacks, for the 403 that refuses
/// handing it out; `None` when `holder` covers `granted`.
pub fn first_missing(holder: &Grant, granted: &Grant) -> Option<Action> {
    Action::ALL
        .into_iter()
        .find(|&action| permits(granted, action) && !permits(holder, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix of the README, row by row: (action, owner, admin, editor, viewer).
    const ROLES: [(Action, [bool; 4]); 12] = [
        (Action::ReadLinks, [true, true, true, true]),
        (Action::CreateLink, [true, true, true, false]),
        (Action::EditLink, [true, true, true, false]),
        (Action::DeleteLink, [true, true, true, false]),
        (Action::ReadStats, [true, true, true, true]),
        (Action::ReadDomains, [true, true, true, true]),
        (Action::ManageDomains, [true, true, false, false]),
        (Action::ManageKeys, [true, true, false, false]),
        (Action::ReadMembers, [true, true, false, false]),
        (Action::ManageMembers, [true, false, false, false]),
        (Action::ReadAudit, [true, true, false, false]),
        (Action::ManageWebhooks, [true, true, false, false]),
    ];

    #[test]
    fn every_role_against_every_action() {
        assert_eq!(ROLES.len(), Action::ALL.len(), "every action has a row");
        for (action, allowed) in ROLES {
            for (role, allowed) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(
                    permits(&Grant::Role(role), action),
                    allowed,
                    "{role} {action:?}"
                );
            }
        }
    }

    #[test]
    fn every_scope_against_every_action() {
        // (scope, the actions it grants alone)
        let grants: [(Scope, &[Action]); 7] = [
            (Scope::LinksRead, &[Action::ReadLinks, Action::ReadDomains]),
            (
                Scope::LinksWrite,
                &[Action::CreateLink, Action::EditLink, Action::DeleteLink],
            ),
            (Scope::StatsRead, &[Action::ReadStats]),
            (
                Scope::DomainsManage,
                &[Action::ManageDomains, Action::ReadDomains],
            ),
            (
                Scope::KeysManage,
                &[Action::ManageKeys, Action::ReadMembers],
            ),
            (Scope::AuditRead, &[Action::ReadAudit]),
            (Scope::WebhooksManage, &[Action::ManageWebhooks]),
        ];
        assert_eq!(grants.len(), Scope::ALL.len(), "every scope has a row");
        for (scope, granted) in grants {
            for action in Action::ALL {
                assert_eq!(
                    permits(&Grant::Scopes(vec![scope]), action),
                    granted.contains(&action),
                    "{scope} {action:?}"
                );
            }
        }
        // No scope, and no set of scopes, manages members.
        assert!(!permits(
            &Grant::Scopes(Scope::ALL.to_vec()),
            Action::ManageMembers
        ));
        assert!(!permits(&Grant::Scopes(Vec::new()), Action::ReadLinks));
    }

    #[test]
    fn a_key_covers_only_what_it_may_do_itself() {
        use Grant::{Role as R, Scopes as S};
        // Every role covers itself and every less trusted role, and no more.
        for holder in Role::ALL {
            for granted in Role::ALL {
                assert_eq!(
                    covers(&R(holder), &R(granted)),
                    holder <= granted,
                    "{holder} {granted}"
                );
            }
        }
        // A role covers the scopes of what it may do.
        assert!(covers(&R(Role::Admin), &S(Scope::ALL.to_vec())));
        assert!(covers(
            &R(Role::Editor),
            &S(vec![Scope::LinksRead, Scope::LinksWrite, Scope::StatsRead])
        ));
        assert!(!covers(&R(Role::Editor), &S(vec![Scope::KeysManage])));
        assert!(!covers(&R(Role::Viewer), &S(vec![Scope::LinksWrite])));
        // Scopes cover their subsets, and a role only when they grant all it may do:
        // never the owner's, who manages members, which no scope grants.
        let writer = S(vec![Scope::LinksWrite, Scope::KeysManage]);
        assert!(covers(&writer, &S(vec![Scope::LinksWrite])));
        assert!(!covers(&writer, &S(vec![Scope::LinksRead])));
        assert!(!covers(&writer, &R(Role::Viewer)));
        assert!(covers(&S(Scope::ALL.to_vec()), &R(Role::Admin)));
        assert!(!covers(&S(Scope::ALL.to_vec()), &R(Role::Owner)));
        assert_eq!(
            first_missing(&writer, &S(vec![Scope::LinksRead, Scope::LinksWrite])),
            Some(Action::ReadLinks)
        );
        assert_eq!(first_missing(&R(Role::Owner), &R(Role::Admin)), None);
    }

    #[test]
    fn grants_read_back_from_their_stored_form() {
        let grants = [
            Grant::Role(Role::Editor),
            Grant::scopes(vec![Scope::StatsRead, Scope::LinksRead, Scope::StatsRead]),
            Grant::scopes(Vec::new()),
        ];
        for grant in grants {
            let (role, scopes) = grant.to_stored();
            assert_eq!(Grant::from_stored(role, scopes.as_deref()), Some(grant));
        }
        assert_eq!(
            Grant::scopes(vec![Scope::StatsRead, Scope::LinksRead])
                .to_stored()
                .1
                .as_deref(),
            Some("links:read stats:read")
        );
        assert_eq!(Grant::from_stored(Some("owner"), Some("links:read")), None);
        assert_eq!(Grant::from_stored(None, None), None);
        assert_eq!(Grant::from_stored(Some("root"), None), None);
        assert_eq!(Grant::from_stored(None, Some("links:read links:*")), None);
    }

    #[test]
    fn names_read_back_and_unknown_names_are_none() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        for unknown in ["", "Owner", "root", "links:*", "links:read "] {
            assert_eq!(Role::parse(unknown), None, "{unknown:?}");
            assert_eq!(Scope::parse(unknown), None, "{unknown:?}");
        }
        assert_eq!(Action::EditLink.permission(), "links:write");
        assert_eq!(
            Role::parse_or_explain("root"),
            Err("`root` is no role; roles are `owner`, `admin`, `editor`, `viewer`".into())
        );
        assert_eq!(Scope::parse_or_explain("stats:read"), Ok(Scope::StatsRead));
        assert_eq!(Action::ManageMembers.permission(), "members:manage");
    }
}
