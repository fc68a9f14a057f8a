//! Identifier newtypes.
//!
//! Every aggregate has its own id type so an `OrgId` can never be passed where a `ServerId` is
//! expected. Ids are UUIDs; new ones are version 7 (time-ordered), which keeps B-tree inserts
//! local on both storage backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (for example one read from storage).
            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The underlying UUID, by value.
            #[must_use]
            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// An organization (tenant). Every tenant-owned row carries one.
    OrgId
);
id_type!(
    /// A namespace: a group of servers inside an organization.
    NamespaceId
);
id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// An API key (user or app-to-app).
    ApiKeyId
);
id_type!(
    /// A refresh token.
    RefreshTokenId
);
id_type!(
    /// A family of rotated refresh tokens, one per login.
    TokenFamilyId
);
id_type!(
    /// A registered MCP server.
    ServerId
);
id_type!(
    /// A virtual server (REST/GraphQL/gRPC/SOAP wrapped as MCP).
    VirtualServerId
);
id_type!(
    /// A client MCP session.
    SessionId
);
id_type!(
    /// An audit-trail record.
    AuditLogId
);
id_type!(
    /// A request-log index record.
    LogId
);
id_type!(
    /// A log aggregate (rollup) row.
    AggregateId
);
id_type!(
    /// A rate-limit rule.
    RateLimitId
);
id_type!(
    /// A health-check result.
    HealthCheckId
);
id_type!(
    /// An access policy rule.
    PolicyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = ServerId::new();
        let parsed: ServerId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: ServerId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = OrgId::new();
        let b = OrgId::new();
        assert!(a < b, "UUIDv7 ids must sort by creation time");
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
