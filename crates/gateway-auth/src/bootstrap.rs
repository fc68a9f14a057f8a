//! First-run set-up: organization `default`, namespace `default` and an admin user.
//!
//! Idempotent: what exists is left as it is (an existing admin keeps their password), so
//! running it twice is harmless. The caller chooses the password: in development the
//! well-known `qwerty123`, in production one from the environment or a prompt.

use std::sync::Arc;

use gateway_types::model::{NewNamespace, NewOrganization, NewUser, Plan, RecordSource, Role};
use gateway_types::store::{NamespaceStore, OrganizationStore, StoreError, UserStore};
use secrecy::SecretString;
use serde::Serialize;

use crate::error::AuthError;
use crate::password;
use crate::service::normalize_email;

/// Slug of the organization and namespace created by [`setup_admin`].
pub const DEFAULT_SLUG: &str = "default";
/// The development admin's email.
pub const DEV_ADMIN_EMAIL: &str = "admin@admin.com";
/// The development admin's password (refused in production by the caller).
pub const DEV_ADMIN_PASSWORD: &str = "qwerty123";

/// What [`setup_admin`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetupReport {
    /// The organization was created (else it existed).
    pub organization_created: bool,
    /// The namespace was created (else it existed).
    pub namespace_created: bool,
    /// The admin was created (else a user with that email existed and was left unchanged).
    pub admin_created: bool,
    /// The admin's email.
    pub admin_email: String,
}

/// Creates whatever of organization `default`, namespace `default` and the admin is missing.
///
/// # Errors
/// A weak password (only checked when the admin is created), or a store failure.
pub async fn setup_admin(
    orgs: &Arc<dyn OrganizationStore>,
    namespaces: &Arc<dyn NamespaceStore>,
    users: &Arc<dyn UserStore>,
    email: &str,
    password: SecretString,
    bcrypt_cost: u32,
) -> Result<SetupReport, AuthError> {
    let email = normalize_email(email);
    let (org, organization_created) = match orgs.get_by_slug(DEFAULT_SLUG).await? {
        Some(o) => (o, false),
        None => {
            let new = NewOrganization {
                name: "Default".into(),
                slug: DEFAULT_SLUG.into(),
                plan: Plan::Enterprise,
            };
            match orgs.create(new).await {
                Ok(o) => (o, true),
                // Another process won the race: use theirs.
                Err(StoreError::Conflict { .. }) => (
                    orgs.get_by_slug(DEFAULT_SLUG)
                        .await?
                        .ok_or(StoreError::NotFound)?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let namespace_created = match namespaces.get_by_slug(org.id, DEFAULT_SLUG).await? {
        Some(_) => false,
        None => {
            let new = NewNamespace {
                name: "Default".into(),
                slug: DEFAULT_SLUG.into(),
                description: Some("Created by setup-admin".into()),
                source: RecordSource::Api,
            };
            match namespaces.create(org.id, new).await {
                Ok(_) => true,
                Err(StoreError::Conflict { .. }) => false,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let admin_created = match users.find_by_email(&email).await? {
        Some(_) => false,
        None => {
            password::check_policy(secrecy::ExposeSecret::expose_secret(&password))?;
            let password_hash = password::hash_async(password, bcrypt_cost).await?;
            let new = NewUser {
                email: email.clone(),
                name: "Administrator".into(),
                password_hash,
                role: Role::Admin,
            };
            match users.create(org.id, new).await {
                Ok(_) => true,
                Err(StoreError::Conflict { .. }) => false,
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(SetupReport {
        organization_created,
        namespace_created,
        admin_created,
        admin_email: email,
    })
}
