//! The audit trail end to end below HTTP: the auditor writes through the real store, the
//! chain verifies, and tampering with rows in the database is named precisely.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gateway_logging::audit::{
    Actor, AuditEvent, Auditor, AuditorOptions, PolicyDenial, RequestContext, Sha256AuditHasher, actions,
    verify_chain,
};
use gateway_store::test_support::TestDb;
use gateway_types::ids::OrgId;
use gateway_types::model::{AuditLog, NewAuditLog, NewOrganization, Plan};
use gateway_types::store::{AuditChainHead, AuditFilter, AuditHasher, AuditStore, StoreError, StoreResult};
use serde_json::json;
use tokio::sync::Semaphore;

/// For each case `async fn case(db: &TestDb)`, a `sqlite` test and a `postgres` test (which
/// passes without running when `DATABASE_URL` is unset).
macro_rules! both_backends {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = gateway_store::test_support::TestDb::sqlite().await;
                super::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = gateway_store::test_support::TestDb::postgres().await {
                    super::$case(&db).await;
                }
            }
        }
    )+};
}

both_backends!(
    recorded_events_form_a_verified_chain,
    an_edited_row_is_named,
    a_deleted_row_is_named,
    a_row_rewritten_with_a_recomputed_hash_breaks_the_next_link,
    deleted_or_rewritten_newest_rows_are_caught_by_the_head,
    transient_outages_are_retried_then_reported,
    a_full_queue_drops_without_blocking,
    policy_denials_are_recorded,
    nul_characters_are_stored
);

async fn org(db: &TestDb) -> OrgId {
    let slug = format!("org-{}", uuid::Uuid::new_v4().simple());
    db.stores()
        .organizations
        .create(NewOrganization {
            name: slug.clone(),
            slug,
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id
}

fn fast() -> AuditorOptions {
    AuditorOptions {
        queue_capacity: 1000,
        max_retries: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

fn auditor(store: Arc<dyn AuditStore>) -> Auditor {
    Auditor::spawn(store, &tokio::runtime::Handle::current(), fast())
}

fn event(i: usize) -> AuditEvent {
    AuditEvent::new(actions::POLICY_UPDATE, Actor::new("user", format!("u{}", i % 3)))
        .target("policy", format!("p{i}"))
        // Key order, floats and integral floats: what PostgreSQL's jsonb rewrites.
        .before(json!({"name": format!("rule-{i}"), "enabled": true, "weight": 1e17, "ratio": 0.1}))
        .after(json!({"name": format!("rule-{i}"), "enabled": false, "z": {"b": [1, 2.5], "a": null}}))
        .context(&RequestContext {
            ip: "2001:db8::7".parse().ok(),
            request_id: Some(format!("req-{i}")),
        })
}

/// Records `n` events for `org`, waits for them, and returns the chain.
async fn chain_of(db: &TestDb, auditor: &Auditor, org: OrgId, n: usize) -> Vec<AuditLog> {
    for i in 0..n {
        assert!(auditor.record(org, event(i)));
    }
    auditor.flush().await.unwrap();
    db.stores().audit.chain(org, 0, 10_000).await.unwrap()
}

async fn verify(db: &TestDb, org: OrgId) -> gateway_logging::audit::VerifyReport {
    verify_chain(db.stores().audit.as_ref(), org, &Sha256AuditHasher)
        .await
        .unwrap()
}

async fn recorded_events_form_a_verified_chain(db: &TestDb) {
    let (a, b) = (org(db).await, org(db).await);
    let auditor = auditor(db.stores().audit.clone());
    assert_eq!(verify(db, a).await.rows_checked, 0, "an empty chain is intact");
    assert!(verify(db, a).await.ok);

    // Two handles, two organizations, interleaved; more rows than one verification page.
    let other = auditor.clone();
    for i in 0..620 {
        assert!(auditor.record(a, event(i)));
        if i % 4 == 0 {
            assert!(other.record(b, event(i)));
        }
    }
    other.flush().await.unwrap();
    let chain = db.stores().audit.chain(a, 0, 10_000).await.unwrap();
    assert_eq!(chain.len(), 620);
    let genesis = Sha256AuditHasher.genesis(a);
    assert_eq!(chain[0].prev_hash, genesis);
    for (i, r) in chain.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.target_id, Some(format!("p{i}")), "recorded in order");
        assert_eq!(r.ip.as_deref(), Some("2001:db8::7"));
    }
    let first = &chain[0];
    assert_eq!(first.action, "policy.update");
    assert_eq!(first.before_state.as_ref().unwrap()["ratio"], json!(0.1));

    let report = verify(db, a).await;
    assert_eq!(
        (report.ok, report.rows_checked, report.first_broken),
        (true, 620, None)
    );
    let report = verify(db, b).await;
    assert_eq!((report.ok, report.rows_checked), (true, 155));
    assert_eq!(auditor.dropped(), 0);

    // The listing filters the same rows.
    let mine = db
        .stores()
        .audit
        .list(
            a,
            AuditFilter {
                actor_id: Some("u1".into()),
                ..AuditFilter::default()
            },
            1000,
        )
        .await
        .unwrap();
    assert!(mine.iter().all(|r| r.actor_id.as_deref() == Some("u1")));
    assert_eq!(mine.len(), 620 / 3 + 1);
}

async fn an_edited_row_is_named(db: &TestDb) {
    let o = org(db).await;
    let auditor = auditor(db.stores().audit.clone());
    let chain = chain_of(db, &auditor, o, 8).await;
    let victim = &chain[4];
    let changed = db.execute(&format!(
        "UPDATE audit_logs SET actor_id = 'someone-else' WHERE id = '{}'",
        victim.id
    ));
    assert_eq!(changed, 1);
    let report = verify(db, o).await;
    assert!(!report.ok);
    assert_eq!(report.rows_checked, 5);
    let broken = report.first_broken.unwrap();
    assert_eq!((broken.seq, broken.id), (5, Some(victim.id)));
    assert!(
        broken.reason.contains("does not match its hash"),
        "{}",
        broken.reason
    );

    // Editing the JSON summary is caught the same way.
    let o2 = org(db).await;
    let chain = chain_of(db, &auditor, o2, 3).await;
    let summary = match db.backend() {
        gateway_types::config::DatabaseBackend::Sqlite => "'{\"enabled\":true}'",
        gateway_types::config::DatabaseBackend::Postgres => "'{\"enabled\":true}'::jsonb",
    };
    db.execute(&format!(
        "UPDATE audit_logs SET after_state = {summary} WHERE id = '{}'",
        chain[1].id
    ));
    let broken = verify(db, o2).await.first_broken.unwrap();
    assert_eq!((broken.seq, broken.id), (2, Some(chain[1].id)));
}

async fn a_deleted_row_is_named(db: &TestDb) {
    let o = org(db).await;
    let auditor = auditor(db.stores().audit.clone());
    let chain = chain_of(db, &auditor, o, 6).await;
    db.execute(&format!("DELETE FROM audit_logs WHERE id = '{}'", chain[2].id));
    let report = verify(db, o).await;
    let broken = report.first_broken.unwrap();
    assert_eq!(
        (broken.seq, broken.id),
        (4, Some(chain[3].id)),
        "the row after the gap"
    );
    assert!(broken.reason.contains("expected seq 3"), "{}", broken.reason);
    assert_eq!(report.rows_checked, 3);
}

async fn a_row_rewritten_with_a_recomputed_hash_breaks_the_next_link(db: &TestDb) {
    let o = org(db).await;
    let auditor = auditor(db.stores().audit.clone());
    let chain = chain_of(db, &auditor, o, 5).await;
    // A careful forger: changes row 2 and stores a correct hash for the new content.
    let mut forged = chain[1].clone();
    forged.action = "policy.read".into();
    forged.hash = String::new();
    let hash = Sha256AuditHasher.hash(&forged);
    db.execute(&format!(
        "UPDATE audit_logs SET action = 'policy.read', hash = '{hash}' WHERE id = '{}'",
        chain[1].id
    ));
    let broken = verify(db, o).await.first_broken.unwrap();
    assert_eq!((broken.seq, broken.id), (3, Some(chain[2].id)));
    assert!(broken.reason.contains("hash of row 2"), "{}", broken.reason);
}

async fn deleted_or_rewritten_newest_rows_are_caught_by_the_head(db: &TestDb) {
    let o = org(db).await;
    let auditor = auditor(db.stores().audit.clone());
    let chain = chain_of(db, &auditor, o, 4).await;
    assert_eq!(
        db.stores().audit.head(o).await.unwrap(),
        Some(AuditChainHead {
            last_seq: 4,
            last_hash: chain[3].hash.clone()
        })
    );
    // The newest row rewritten with a recomputed hash: nothing links to it but the head.
    let mut forged = chain[3].clone();
    forged.target_id = Some("elsewhere".into());
    forged.hash = String::new();
    let hash = Sha256AuditHasher.hash(&forged);
    db.execute(&format!(
        "UPDATE audit_logs SET target_id = 'elsewhere', hash = '{hash}' WHERE id = '{}'",
        chain[3].id
    ));
    let broken = verify(db, o).await.first_broken.unwrap();
    assert_eq!((broken.seq, broken.id), (4, Some(chain[3].id)));
    assert!(broken.reason.contains("chain head"), "{}", broken.reason);

    // The newest rows deleted.
    db.execute(&format!("DELETE FROM audit_logs WHERE id = '{}'", chain[3].id));
    db.execute(&format!("DELETE FROM audit_logs WHERE id = '{}'", chain[2].id));
    let report = verify(db, o).await;
    assert_eq!(report.rows_checked, 2);
    let broken = report.first_broken.unwrap();
    assert_eq!((broken.seq, broken.id), (3, None));
    assert!(broken.reason.contains("head records seq 4"), "{}", broken.reason);
}

/// Fails the first `failures` appends with `Unavailable`, then passes through.
struct Flaky {
    inner: Arc<dyn AuditStore>,
    failures: AtomicU32,
    attempts: AtomicU32,
}

#[async_trait]
impl AuditStore for Flaky {
    async fn append(&self, org: OrgId, new: NewAuditLog, hasher: &dyn AuditHasher) -> StoreResult<AuditLog> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(Box::new(std::io::Error::other(
                "connection refused",
            ))));
        }
        self.inner.append(org, new, hasher).await
    }
    async fn list(&self, org: OrgId, filter: AuditFilter, limit: u32) -> StoreResult<Vec<AuditLog>> {
        self.inner.list(org, filter, limit).await
    }
    async fn chain(&self, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditLog>> {
        self.inner.chain(org, after_seq, limit).await
    }
    async fn head(&self, org: OrgId) -> StoreResult<Option<AuditChainHead>> {
        self.inner.head(org).await
    }
}

async fn transient_outages_are_retried_then_reported(db: &TestDb) {
    let o = org(db).await;
    let flaky = Arc::new(Flaky {
        inner: db.stores().audit.clone(),
        failures: AtomicU32::new(2),
        attempts: AtomicU32::new(0),
    });
    let auditor = auditor(flaky.clone());

    // Two failures, then success: written once, nothing lost.
    assert!(auditor.record(o, event(0)));
    auditor.flush().await.unwrap();
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(auditor.dropped(), 0);

    // More failures than retries: reported lost, and the writer carries on.
    flaky.failures.store(10, Ordering::SeqCst);
    flaky.attempts.store(0, Ordering::SeqCst);
    assert!(auditor.record(o, event(1)));
    auditor.flush().await.unwrap();
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 4, "1 attempt + 3 retries");
    assert_eq!(auditor.dropped(), 1);
    flaky.failures.store(0, Ordering::SeqCst);
    assert!(auditor.record(o, event(2)));
    auditor.flush().await.unwrap();

    // Errors that retrying cannot fix are not retried: an organization that does not exist.
    flaky.attempts.store(0, Ordering::SeqCst);
    assert!(auditor.record(OrgId::new(), event(3)));
    auditor.flush().await.unwrap();
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(auditor.dropped(), 2);

    let chain = db.stores().audit.chain(o, 0, 100).await.unwrap();
    let targets: Vec<_> = chain.iter().map(|r| r.target_id.clone().unwrap()).collect();
    assert_eq!(targets, ["p0", "p2"]);
    assert!(verify(db, o).await.ok);
}

/// Holds every append until a permit is released, and says when one is waiting.
struct Gated {
    inner: Arc<dyn AuditStore>,
    gate: Semaphore,
    entered: Semaphore,
}

#[async_trait]
impl AuditStore for Gated {
    async fn append(&self, org: OrgId, new: NewAuditLog, hasher: &dyn AuditHasher) -> StoreResult<AuditLog> {
        self.entered.add_permits(1);
        self.gate.acquire().await.unwrap().forget();
        self.inner.append(org, new, hasher).await
    }
    async fn list(&self, org: OrgId, filter: AuditFilter, limit: u32) -> StoreResult<Vec<AuditLog>> {
        self.inner.list(org, filter, limit).await
    }
    async fn chain(&self, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditLog>> {
        self.inner.chain(org, after_seq, limit).await
    }
    async fn head(&self, org: OrgId) -> StoreResult<Option<AuditChainHead>> {
        self.inner.head(org).await
    }
}

async fn a_full_queue_drops_without_blocking(db: &TestDb) {
    let o = org(db).await;
    let gated = Arc::new(Gated {
        inner: db.stores().audit.clone(),
        gate: Semaphore::new(0),
        entered: Semaphore::new(0),
    });
    let auditor = Auditor::spawn(
        gated.clone(),
        &tokio::runtime::Handle::current(),
        AuditorOptions {
            queue_capacity: 2,
            ..fast()
        },
    );
    assert!(auditor.record(o, event(0)));
    // The writer holds event 0 inside the (stuck) store; the queue has room for two more.
    gated.entered.acquire().await.unwrap().forget();
    let started = Instant::now();
    let accepted: Vec<bool> = (1..10).map(|i| auditor.record(o, event(i))).collect();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "recording never waits"
    );
    assert_eq!(
        accepted,
        [true, true, false, false, false, false, false, false, false]
    );
    assert_eq!(auditor.dropped(), 7);

    gated.gate.add_permits(100);
    auditor.flush().await.unwrap();
    let chain = db.stores().audit.chain(o, 0, 100).await.unwrap();
    let targets: Vec<_> = chain.iter().map(|r| r.target_id.clone().unwrap()).collect();
    assert_eq!(targets, ["p0", "p1", "p2"]);
    assert!(verify(db, o).await.ok);
}

async fn policy_denials_are_recorded(db: &TestDb) {
    let o = org(db).await;
    let auditor = auditor(db.stores().audit.clone());
    assert!(auditor.policy_denied(
        o,
        PolicyDenial {
            actor: Actor::new("api_key", "k1"),
            action: "call".into(),
            namespace: Some("prod".into()),
            server: Some("everything".into()),
            item_kind: Some("tool".into()),
            item_name: Some("get-env".into()),
            rule_id: Some("r1".into()),
            rule_name: Some("no-env-dump".into()),
            reason: "denied by policy 'no-env-dump'".into(),
            context: RequestContext {
                ip: "10.1.2.3".parse().ok(),
                request_id: Some("req-9".into()),
            },
        }
    ));
    auditor.flush().await.unwrap();
    let rows = db
        .stores()
        .audit
        .list(o, AuditFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (
            r.action.as_str(),
            r.actor_type.as_str(),
            r.actor_id.as_deref(),
            r.target_type.as_deref(),
            r.target_id.as_deref(),
            r.ip.as_deref(),
            r.request_id.as_deref()
        ),
        (
            "policy.denied",
            "api_key",
            Some("k1"),
            Some("tool"),
            Some("get-env"),
            Some("10.1.2.3"),
            Some("req-9")
        )
    );
    assert_eq!(r.after_state.as_ref().unwrap()["rule"]["name"], "no-env-dump");
    assert!(verify(db, o).await.ok);
}

async fn nul_characters_are_stored(db: &TestDb) {
    let o = org(db).await;
    let auditor = auditor(db.stores().audit.clone());
    auditor.record(
        o,
        AuditEvent::new(actions::AUTH_LOGIN_FAILED, Actor::anonymous())
            .target("user", "u\0")
            .after(json!({"email": "a\0@b.example"})),
    );
    auditor.flush().await.unwrap();
    assert_eq!(
        auditor.dropped(),
        0,
        "PostgreSQL refuses NUL; the auditor replaces it"
    );
    let rows = db.stores().audit.chain(o, 0, 10).await.unwrap();
    assert_eq!(rows[0].target_id.as_deref(), Some("u\u{FFFD}"));
    assert!(verify(db, o).await.ok);
}
