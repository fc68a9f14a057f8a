//! # gateway-auth
//!
//! Authentication and authorization primitives of the MCP Gateway, free of any HTTP framework
//! and database driver (it depends only on `gateway-types`; storage comes in through the
//! traits of `gateway_types::store`):
//!
//! - [`password`]: bcrypt hashing with a configured cost, the password policy, and timing-safe
//!   verification for unknown accounts;
//! - [`secret`]: API keys and refresh tokens — high-entropy, prefixed, stored only as SHA-256;
//! - [`jwt`]: signed access tokens with pinned algorithms and key rotation;
//! - [`oidc`]: bearer tokens of external OpenID Connect providers, verified against their JWKS;
//! - [`rbac`]: the role → permission matrix, and [`principal::Principal`], the authenticated caller;
//! - [`policy`]: organization-level allow/deny policies over subject × resource × action, evaluated
//!   from an in-memory snapshot; one function decides both listing and use;
//! - [`sealing`]: secrets at rest (upstream credentials, server environments) sealed with
//!   AES-256-GCM under a configured master key, with key ids for rotation;
//! - [`throttle`]: login throttling per account and per client IP;
//! - [`service::AuthService`]: login, refresh-token rotation with reuse detection, logout with
//!   access-token deny-listing, password change, API keys and A2A tokens, and bearer
//!   authentication that keeps the database off the request path.
//!
//! ```
//! use gateway_auth::jwt::{JwtKeys, TokenIssuer, TokenSubject, TokenType};
//! use gateway_auth::rbac::{Permission, role_allows};
//! use gateway_types::model::Role;
//! use secrecy::SecretString;
//!
//! let issuer = TokenIssuer::new(
//!     JwtKeys::hs256(&SecretString::from("a-long-random-secret-of-32-bytes-or-more")),
//!     "mcp-gateway", "mcp-gateway", 900,
//! );
//! let (token, _) = issuer.issue(TokenSubject {
//!     subject: "user-1".into(), org: "org-1".into(), role: "viewer".into(),
//!     typ: TokenType::Access, scope: vec![], ns: None, session: None,
//! }).unwrap();
//! let claims = issuer.verify(&token).unwrap();
//! assert_eq!(claims.sub, "user-1");
//! assert!(!role_allows(Role::Viewer, Permission::ServersWrite));
//!
//! let key = gateway_auth::secret::generate_api_key().unwrap();
//! assert_eq!(key.hash.len(), 64); // store this, show `key.secret` once
//! ```

pub mod bootstrap;
pub mod error;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod policy;
pub mod principal;
pub mod rbac;
pub mod sealing;
pub mod secret;
pub mod service;
pub mod throttle;

pub use error::AuthError;
