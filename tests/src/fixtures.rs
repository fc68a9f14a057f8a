//! Test data every module needs: organizations and signed-in users, made directly in the
//! store (so not audited) and signed in through the real `/auth/login`.

use gateway_types::ids::OrgId;
use gateway_types::model::{NewOrganization, NewUser, Plan, Role};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::TestApp;

/// The password of every fixture user.
pub const PASSWORD: &str = "correct-horse-1";

impl TestApp {
    /// A new organization on the team plan, its slug also its name.
    ///
    /// # Panics
    /// The store refused it (a taken slug).
    pub async fn create_org(&self, slug: &str) -> OrgId {
        self.stores
            .organizations
            .create(NewOrganization {
                name: slug.into(),
                slug: slug.into(),
                plan: Plan::Team,
            })
            .await
            .expect("create organization")
            .id
    }

    /// A new user of `org` with [`PASSWORD`] (bcrypt cost 4), signed in: its access token.
    ///
    /// # Panics
    /// The store refused the user, or the login failed.
    pub async fn user_token(&self, org: OrgId, email: &str, role: Role) -> String {
        let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).expect("bcrypt");
        self.stores
            .users
            .create(
                org,
                NewUser {
                    email: email.into(),
                    name: "Test".into(),
                    password_hash: hash,
                    role,
                },
            )
            .await
            .expect("create user");
        let res = self
            .client
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("POST /auth/login");
        assert_eq!(res.status(), 200, "login of {email}");
        let body: Value = res.json().await.expect("login answer");
        body["access_token"].as_str().expect("access_token").to_owned()
    }
}
