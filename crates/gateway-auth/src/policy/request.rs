//! What is being asked: the caller's facts, the action, the target and the request context.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gateway_types::ids::{ApiKeyId, UserId};
use gateway_types::model::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rule::{Action, ItemKind};
use crate::principal::{Principal, Subject};

/// External identity-provider claims: claim name → its values (a single-valued claim has one).
pub type Claims = BTreeMap<String, Vec<String>>;

/// The facts about the caller that subject matchers test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectFacts {
    /// Role (an app's is `api_user`).
    pub role: Role,
    /// The user, when a user calls (with a login token or one of their API keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The user API key used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<ApiKeyId>,
    /// The app-to-app key used (directly or through an A2A token), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<ApiKeyId>,
    /// Claims of an external identity-provider token, if the caller presented one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: Claims,
}

impl SubjectFacts {
    /// The facts of an authenticated principal, its external identity-provider claims included
    /// (`Principal::claims`; empty for the gateway's own credentials). An external caller is
    /// matched by `role` and `claim` matchers (its `iss` and `sub` are claims too).
    #[must_use]
    pub fn from_principal(principal: &Principal) -> Self {
        let (api_key_id, app_id) = match &principal.subject {
            Subject::User { .. } | Subject::External { .. } => (None, None),
            Subject::ApiKey { key_id, .. } => (Some(*key_id), None),
            Subject::App { key_id } => (None, Some(*key_id)),
        };
        Self {
            role: principal.role,
            user_id: principal.user_id(),
            api_key_id,
            app_id,
            claims: principal.claims.clone(),
        }
    }

    /// Facts with only a role (dry runs such as "may viewers call this tool?").
    #[must_use]
    pub fn role(role: Role) -> Self {
        Self {
            role,
            user_id: None,
            api_key_id: None,
            app_id: None,
            claims: Claims::new(),
        }
    }
}

/// An MCP item: a tool, resource (or resource template) or prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Kind.
    pub kind: ItemKind,
    /// Tool name, resource URI (or URI template), or prompt name, as the client sees it.
    pub name: String,
}

/// What the request is about. `None` fields are matched as the empty text (see
/// [`super::ResourceMatcher`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Namespace slug of the server (`None`: the server is in no namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Server name (`None`: a request about the namespace as a whole).
    #[serde(default)]
    pub server: Option<String>,
    /// The item (`None`: a request about the server or namespace itself, such as `admin`).
    #[serde(default)]
    pub item: Option<Item>,
}

impl Target {
    /// An item of a server.
    #[must_use]
    pub fn item(namespace: Option<&str>, server: &str, kind: ItemKind, name: &str) -> Self {
        Self {
            namespace: namespace.map(str::to_owned),
            server: Some(server.to_owned()),
            item: Some(Item {
                kind,
                name: name.to_owned(),
            }),
        }
    }
}

/// One question to the policy engine: may `subject` do `action` on `target`?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Who.
    pub subject: SubjectFacts,
    /// What.
    pub action: Action,
    /// On what.
    pub target: Target,
    /// The arguments of a `call` (tool arguments) or `get` (prompt arguments).
    ///
    /// `None` means **not known**: the decision then says whether *some* arguments could be
    /// allowed (listing, dry runs). A real call always passes `Some`: the request's arguments,
    /// or an empty object when the client sent none. Ignored for `list`, `read` and `admin`.
    #[serde(default)]
    pub arguments: Option<Value>,
    /// The client's IP address, when known. Unknown: inside no range of a rule's
    /// `client_ips` condition.
    #[serde(default)]
    pub client_ip: Option<IpAddr>,
}

impl PolicyRequest {
    /// A request without arguments and without client IP.
    #[must_use]
    pub fn new(subject: SubjectFacts, action: Action, target: Target) -> Self {
        Self {
            subject,
            action,
            target,
            arguments: None,
            client_ip: None,
        }
    }

    /// Sets the arguments (see [`PolicyRequest::arguments`]).
    #[must_use]
    pub fn with_arguments(mut self, arguments: Value) -> Self {
        self.arguments = Some(arguments);
        self
    }

    /// Sets the client IP.
    #[must_use]
    pub fn with_client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }
}

#[cfg(test)]
mod tests {
    use gateway_types::ids::{NamespaceId, OrgId};

    use super::*;

    fn principal(subject: Subject, role: Role, claims: Claims) -> Principal {
        Principal {
            org_id: OrgId::new(),
            subject,
            role,
            namespace: Some(NamespaceId::new()),
            scope: None,
            token: None,
            claims,
        }
    }

    #[test]
    fn facts_from_each_kind_of_principal() {
        let user = UserId::new();
        let key = ApiKeyId::new();
        let login = Subject::User {
            user_id: user,
            session: None,
        };
        let f = SubjectFacts::from_principal(&principal(login, Role::User, Claims::new()));
        assert_eq!(
            (f.role, f.user_id, f.api_key_id, f.app_id),
            (Role::User, Some(user), None, None)
        );

        let api_key = Subject::ApiKey {
            key_id: key,
            user_id: user,
        };
        let f = SubjectFacts::from_principal(&principal(api_key, Role::Viewer, Claims::new()));
        assert_eq!(
            (f.role, f.user_id, f.api_key_id, f.app_id),
            (Role::Viewer, Some(user), Some(key), None)
        );

        let f = SubjectFacts::from_principal(&principal(
            Subject::App { key_id: key },
            Role::ApiUser,
            Claims::new(),
        ));
        assert_eq!(
            (f.role, f.user_id, f.api_key_id, f.app_id),
            (Role::ApiUser, None, None, Some(key))
        );

        let claims = Claims::from([("groups".to_owned(), vec!["eng".to_owned()])]);
        let external = Subject::External {
            issuer: "https://idp.example".to_owned(),
            subject: "alice".to_owned(),
        };
        let f = SubjectFacts::from_principal(&principal(external, Role::User, claims.clone()));
        assert_eq!(
            (f.role, f.user_id, f.api_key_id, f.app_id),
            (Role::User, None, None, None)
        );
        assert_eq!(f.claims, claims);
    }
}
