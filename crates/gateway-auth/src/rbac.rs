//! Role-based access control: the permission matrix.
//!
//! | permission            | admin | user | viewer | api_user |
//! |-----------------------|:-----:|:----:|:------:|:--------:|
//! | `servers:read`        |  ✓    |  ✓   |   ✓    |    ✓     |
//! | `servers:write`       |  ✓    |  ✓   |        |          |
//! | `namespaces:read`     |  ✓    |  ✓   |   ✓    |    ✓     |
//! | `namespaces:write`    |  ✓    |      |        |          |
//! | `mcp:use`             |  ✓    |  ✓   |        |    ✓     |
//! | `keys:own`            |  ✓    |  ✓   |   ✓    |          |
//! | `keys:manage`         |  ✓    |      |        |          |
//! | `users:read`          |  ✓    |      |        |          |
//! | `users:write`         |  ✓    |      |        |          |
//! | `policies:read`       |  ✓    |  ✓   |   ✓    |          |
//! | `policies:write`      |  ✓    |      |        |          |
//! | `rate_limits:read`    |  ✓    |  ✓   |   ✓    |          |
//! | `rate_limits:write`   |  ✓    |      |        |          |
//! | `logs:read`           |  ✓    |  ✓   |   ✓    |          |
//! | `audit:read`          |  ✓    |      |        |          |
//! | `virtual_servers:write` | ✓   |  ✓   |        |          |
//! | `admin:broadcast`     |  ✓    |      |        |          |
//! | `catalog:manage`      |  ✓    |      |        |          |
//!
//! `keys:own` manages one's own user API keys; `keys:manage` every key of the organization,
//! including app-to-app keys.
//!
//! API keys carry a subset of their owner's permissions: a key never grants more than its
//! owner's role allows.

use gateway_types::model::Role;
use serde::{Deserialize, Serialize};

macro_rules! permissions {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// One capability a route or MCP operation requires.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Permission {
            $(#[doc = $text] #[serde(rename = $text)] $variant),+
        }

        impl Permission {
            /// Every permission.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable text form (`servers:read`).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses the text form.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

permissions! {
    ServersRead = "servers:read",
    ServersWrite = "servers:write",
    NamespacesRead = "namespaces:read",
    NamespacesWrite = "namespaces:write",
    McpUse = "mcp:use",
    KeysOwn = "keys:own",
    KeysManage = "keys:manage",
    UsersRead = "users:read",
    UsersWrite = "users:write",
    PoliciesRead = "policies:read",
    PoliciesWrite = "policies:write",
    RateLimitsRead = "rate_limits:read",
    RateLimitsWrite = "rate_limits:write",
    LogsRead = "logs:read",
    AuditRead = "audit:read",
    VirtualServersWrite = "virtual_servers:write",
    AdminBroadcast = "admin:broadcast",
    CatalogManage = "catalog:manage",
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permissions of a role.
#[must_use]
pub fn role_permissions(role: Role) -> &'static [Permission] {
    use Permission::*;
    match role {
        Role::Admin => Permission::ALL,
        Role::User => &[
            ServersRead,
            ServersWrite,
            NamespacesRead,
            McpUse,
            KeysOwn,
            PoliciesRead,
            RateLimitsRead,
            LogsRead,
            VirtualServersWrite,
        ],
        Role::Viewer => &[
            ServersRead,
            NamespacesRead,
            KeysOwn,
            PoliciesRead,
            RateLimitsRead,
            LogsRead,
        ],
        Role::ApiUser => &[ServersRead, NamespacesRead, McpUse],
    }
}

/// Whether `role` grants `permission`.
#[must_use]
pub fn role_allows(role: Role, permission: Permission) -> bool {
    role_permissions(role).contains(&permission)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_has_everything_and_viewer_writes_nothing() {
        for p in Permission::ALL {
            assert!(role_allows(Role::Admin, *p));
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
        }
        for p in role_permissions(Role::Viewer) {
            assert!(!p.as_str().ends_with(":write"), "viewer has {p}");
        }
        assert!(!role_allows(Role::Viewer, Permission::McpUse));
        assert!(!role_allows(Role::User, Permission::UsersWrite));
        assert!(role_allows(Role::ApiUser, Permission::McpUse));
    }

    #[test]
    fn matrix_in_docs_matches_code() {
        let doc = include_str!("rbac.rs");
        for p in Permission::ALL {
            let row = doc
                .lines()
                .find(|l| l.starts_with("//! |") && l.contains(&format!("`{}`", p.as_str())))
                .unwrap_or_else(|| panic!("{p} missing from the matrix"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            for (i, role) in [Role::Admin, Role::User, Role::Viewer, Role::ApiUser]
                .into_iter()
                .enumerate()
            {
                assert_eq!(cells[i + 2] == "✓", role_allows(role, *p), "{p} for {role}");
            }
        }
    }
}
