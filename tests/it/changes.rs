//! Change propagation: a write made through another replica (here: straight into the shared
//! store, as another replica's handler would) reaches this replica's in-memory caches within
//! seconds through the change-log poller, well before any cache lifetime or periodic reload
//! would. Runs on SQLite, and on PostgreSQL when `DATABASE_URL` is set.

use std::time::{Duration, Instant};

use gateway_e2e::TestApp;
use gateway_store::test_support::TestDb;
use gateway_types::ids::{ApiKeyId, PolicyId};
use gateway_types::model::{NewPolicy, RecordSource, Role};
use serde_json::{Value, json};

/// Far below the API-key cache lifetime (30 s) and the policy reload interval set below.
const PROPAGATION: Duration = Duration::from_secs(8);

async fn backends() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    dbs
}

/// Polls `probe` until it is true or [`PROPAGATION`] passes; whether it became true.
async fn within_seconds<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PROPAGATION;
    while Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn writes_through_another_replica_reach_the_caches_within_seconds() {
    for db in backends().await {
        let app = TestApp::builder()
            .database_url(db.url())
            .env("GATEWAY__AUTH__BCRYPT_COST", "4")
            // The periodic policy reload must not be what makes the test pass.
            .env("GATEWAY__POLICIES__RELOAD_INTERVAL_SECONDS", "3600")
            .spawn()
            .await;
        let org = app.create_org("acme").await;
        let admin = app.user_token(org, "admin@acme.test", Role::Admin).await;

        // An API key, used once so this replica caches it.
        let res = app
            .client
            .post(app.url("/auth/api-keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "ci"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        let secret = created["key"].as_str().unwrap().to_owned();
        let key_id: ApiKeyId = created["id"].as_str().unwrap().parse().unwrap();
        let profile = || async {
            app.client
                .get(app.url("/auth/profile"))
                .bearer_auth(&secret)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(profile().await, 200);

        // Revoked by another replica: refused here within seconds, not after the cache's 30 s.
        app.stores
            .api_keys
            .revoke(org, key_id, chrono::Utc::now())
            .await
            .unwrap();
        assert!(
            within_seconds(|| async { profile().await == 401 }).await,
            "{:?}: a key revoked elsewhere still works",
            db.backend()
        );

        // A deny rule written by another replica applies here within seconds.
        let evaluate = || async {
            let res = app
                .client
                .post(app.url("/api/admin/policies/evaluate"))
                .bearer_auth(&admin)
                .json(&json!({"subject": {"role": "user"}, "action": "call",
                              "target": {"server": "everything", "item": {"kind": "tool", "name": "get-env"}}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["allowed"] == false
        };
        assert!(!evaluate().await, "no rule yet: allowed");
        let id = PolicyId::new();
        app.stores
            .policies
            .create(
                org,
                NewPolicy {
                    id,
                    name: "no-env".into(),
                    rule: json!({"id": id.to_string(), "name": "no-env", "effect": "deny",
                                 "subjects": [{"role": "user"}],
                                 "resources": [{"server": "everything", "kind": "tool", "name": "get-env"}],
                                 "actions": ["call"]}),
                    enabled: true,
                    source: RecordSource::Api,
                },
            )
            .await
            .unwrap();
        assert!(
            within_seconds(evaluate).await,
            "{:?}: a rule written elsewhere does not apply",
            db.backend()
        );
        app.stop().await.unwrap();
    }
}
