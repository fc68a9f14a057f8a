//! Who is calling: the result of authentication, consulted by every authorization decision.

use std::collections::BTreeMap;

use gateway_types::ids::{ApiKeyId, NamespaceId, OrgId, UserId};
use gateway_types::model::Role;
use serde::Serialize;

use crate::rbac::{Permission, role_allows};

/// How the caller authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// A user with an access token from login or refresh.
    User {
        /// The user.
        user_id: UserId,
        /// The login (refresh-token family) the token belongs to.
        session: Option<String>,
    },
    /// A user's API key.
    ApiKey {
        /// The key.
        key_id: ApiKeyId,
        /// Its owner.
        user_id: UserId,
    },
    /// An app-to-app key, directly or through an A2A token.
    App {
        /// The a2a key.
        key_id: ApiKeyId,
    },
    /// A bearer token from a configured external identity provider (OIDC).
    External {
        /// The token's `iss`.
        issuer: String,
        /// The token's `sub`.
        subject: String,
    },
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The caller's organization: every query is scoped by it.
    pub org_id: OrgId,
    /// Who.
    pub subject: Subject,
    /// Role (an app's is `api_user`).
    pub role: Role,
    /// Namespace the credential is confined to.
    pub namespace: Option<NamespaceId>,
    /// Permissions the credential is limited to (`None` = all of the role's).
    pub scope: Option<Vec<Permission>>,
    /// `jti` and expiry of the access token, when a token was presented (for logout).
    #[serde(skip)]
    pub token: Option<(String, i64)>,
    /// String-valued claims of an external identity provider's token (arrays flattened), for
    /// policy rules on claims. Empty for the gateway's own credentials.
    #[serde(skip)]
    pub claims: BTreeMap<String, Vec<String>>,
}

impl Principal {
    /// Whether the principal holds `permission`: its role grants it and its credential's scope
    /// (if any) includes it. A key never grants more than its owner's role.
    #[must_use]
    pub fn allows(&self, permission: Permission) -> bool {
        role_allows(self.role, permission) && self.scope.as_ref().is_none_or(|s| s.contains(&permission))
    }

    /// The user behind the principal, if any.
    #[must_use]
    pub fn user_id(&self) -> Option<UserId> {
        match &self.subject {
            Subject::User { user_id, .. } | Subject::ApiKey { user_id, .. } => Some(*user_id),
            Subject::App { .. } | Subject::External { .. } => None,
        }
    }

    /// A stable text id for logs and audit (`user:<id>`, `api_key:<id>`, `app:<id>`).
    #[must_use]
    pub fn actor(&self) -> (&'static str, String) {
        match &self.subject {
            Subject::User { user_id, .. } => ("user", user_id.to_string()),
            Subject::ApiKey { key_id, .. } => ("api_key", key_id.to_string()),
            Subject::App { key_id } => ("app", key_id.to_string()),
            Subject::External { issuer, subject } => ("external", format!("{issuer}#{subject}")),
        }
    }
}
