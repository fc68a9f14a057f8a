//! The same cases on both backends, and both backends side by side.

use std::sync::Arc;

use gateway_ratelimit::clock::{Clock, ManualClock};
use gateway_ratelimit::limiter::{Limiter, Source};
use gateway_ratelimit::redis::RedisBackend;
use gateway_types::config::RateLimitFailureMode;

use crate::harness::{Harness, T0, both, hit, prefix, redis_config, redis_url, settings};

both!(
    no_double_burst_at_the_window_edge,
    capacity_returns_gradually_and_fully,
    parallel_requests_admit_exactly_the_limit,
    keys_are_isolated_and_levels_all_or_nothing,
    remaining_and_retry_after,
    a_changed_limit_applies_at_once,
    replicas_share_counts_only_on_redis,
);

/// Requests admitted of `n` tries at the current time.
async fn admitted(h: &Harness, l: &Limiter, key: &str, limit: u32, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if h.check(l, &[hit(key, limit, 60)]).await.allowed {
            ok += 1;
        }
    }
    ok
}

async fn no_double_burst_at_the_window_edge(h: &Harness) {
    let l = h.limiter();
    // A fixed window would admit 5 at 59.999 s and 5 more at 60 s.
    h.set(T0 + 59_999);
    assert_eq!(admitted(h, &l, "edge", 5, 8).await, 5);
    h.set(T0 + 60_000);
    assert_eq!(
        admitted(h, &l, "edge", 5, 8).await,
        0,
        "no second burst at the edge"
    );
    let refused = h.check(&l, &[hit("edge", 5, 60)]).await;
    // 5 · (60 − e) ≤ 4 · 60 once e ≥ 12 s.
    assert_eq!(refused.decisions[0].retry_after_ms, 12_000);
    h.set(T0 + 60_000 + 11_999);
    assert_eq!(admitted(h, &l, "edge", 5, 1).await, 0);
    h.set(T0 + 72_000);
    assert_eq!(
        admitted(h, &l, "edge", 5, 3).await,
        1,
        "one request per W / limit"
    );
}

async fn capacity_returns_gradually_and_fully(h: &Harness) {
    let l = h.limiter();
    h.set(T0 + 30_000);
    assert_eq!(admitted(h, &l, "k", 6, 10).await, 6);
    // Half-way through the next window the previous one weighs 3.
    h.set(T0 + 90_000);
    assert_eq!(admitted(h, &l, "k", 6, 10).await, 3);
    // Two windows later nothing is left.
    h.set(T0 + 180_000);
    assert_eq!(admitted(h, &l, "k", 6, 10).await, 6);
}

async fn parallel_requests_admit_exactly_the_limit(h: &Harness) {
    let l = Arc::new(h.limiter());
    h.set(T0 + 1_000);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let l = Arc::clone(&l);
        tasks.push(tokio::spawn(async move { l.check(&[hit("busy", 25, 60)]).await }));
    }
    let mut allowed = 0;
    for t in tasks {
        let v = t.await.unwrap();
        assert_eq!(v.source, h.source());
        allowed += usize::from(v.allowed);
    }
    assert_eq!(allowed, 25);
    let v = h.check(&l, &[hit("busy", 25, 60)]).await;
    assert_eq!((v.allowed, v.decisions[0].remaining), (false, 0));
}

async fn keys_are_isolated_and_levels_all_or_nothing(h: &Harness) {
    let l = h.limiter();
    h.set(T0 + 5_000);
    assert_eq!(admitted(h, &l, "user:a", 3, 5).await, 3);
    assert_eq!(
        admitted(h, &l, "user:b", 3, 5).await,
        3,
        "a's burst does not limit b"
    );

    // Two levels of one request: the organization (limit 2) refuses, so the principal's
    // counter (limit 10) is not charged either.
    let levels = |user: &str| [hit(user, 10, 60), hit("org:x", 2, 60)];
    assert!(h.check(&l, &levels("user:c")).await.allowed);
    assert!(h.check(&l, &levels("user:c")).await.allowed);
    let refused = h.check(&l, &levels("user:d")).await;
    assert!(!refused.allowed);
    assert!(refused.decisions[0].allowed && !refused.decisions[1].allowed);
    let alone = h.check(&l, &[hit("user:d", 10, 60)]).await;
    assert_eq!(
        alone.decisions[0].remaining, 9,
        "the refused request was counted nowhere"
    );
}

async fn remaining_and_retry_after(h: &Harness) {
    let l = h.limiter();
    h.set(T0 + 15_000);
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let v = h.check(&l, &[hit("r", 4, 60)]).await;
        remaining.push((v.allowed, v.decisions[0].remaining));
    }
    assert_eq!(
        remaining,
        [(true, 3), (true, 2), (true, 1), (true, 0), (false, 0)]
    );
    let v = h.check(&l, &[hit("r", 4, 60)]).await;
    let d = v.decisions[0];
    assert_eq!(d.reset_ms, 45_000);
    // Next window, where 4 · (60 − e) ≤ 3 · 60 once e ≥ 15 s: 45 s + 15 s.
    assert_eq!(d.retry_after_ms, 60_000);
    h.set(T0 + 15_000 + 59_999);
    assert!(!h.check(&l, &[hit("r", 4, 60)]).await.allowed);
    h.set(T0 + 15_000 + 60_000);
    assert!(h.check(&l, &[hit("r", 4, 60)]).await.allowed);
}

async fn a_changed_limit_applies_at_once(h: &Harness) {
    let l = h.limiter();
    h.set(T0 + 2_000);
    assert_eq!(admitted(h, &l, "live", 3, 5).await, 3);
    // The rule's limit is raised: the same counter, a larger quota.
    assert_eq!(admitted(h, &l, "live", 5, 5).await, 2);
    // And lowered: already over it.
    assert_eq!(admitted(h, &l, "live", 1, 5).await, 0);
}

async fn replicas_share_counts_only_on_redis(h: &Harness) {
    let (a, b) = (h.limiter(), h.limiter());
    h.set(T0 + 3_000);
    assert_eq!(admitted(h, &a, "shared", 4, 3).await, 3);
    let on_b = admitted(h, &b, "shared", 4, 3).await;
    match h.source() {
        Source::Redis => assert_eq!(on_b, 1, "one combined limit"),
        _ => assert_eq!(on_b, 3, "each process counts on its own"),
    }
}

/// The two backends answer a long, varied sequence identically, decision by decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_give_the_same_answers() {
    let Some(url) = redis_url() else { return };
    let clock = Arc::new(ManualClock::at(T0));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let memory = Limiter::memory(10_000, Arc::clone(&dyn_clock));
    let backend =
        RedisBackend::new(&redis_config(&url), &prefix(), std::time::Duration::from_secs(2)).unwrap();
    let redis = Limiter::redis(
        backend,
        settings(RateLimitFailureMode::Open),
        10_000,
        dyn_clock,
        None,
    );

    // A deterministic pseudo-random walk over keys, quotas and times.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut now = T0;
    for step in 0..600 {
        now += next() % 4_000;
        clock.set(now);
        let n = 1 + usize::try_from(next() % 3).unwrap();
        // Distinct keys per decision; windows of 5 s and more, so Redis never expires a key
        // the in-memory backend still counts (expiry is two windows of real time).
        let hits: Vec<_> = (0..n)
            .map(|i| {
                let (limit, window) =
                    [(3, 5), (5, 10), (20, 60), (2, 5)][usize::try_from(next() % 4).unwrap()];
                let key = format!("k{}-{i}-{limit}-{window}", next() % 4);
                (key.clone(), hit(&key, limit, window))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        let (m, r) = (memory.check(&hits).await, redis.check(&hits).await);
        assert_eq!(r.source, Source::Redis);
        assert_eq!(
            (m.allowed, &m.decisions),
            (r.allowed, &r.decisions),
            "step {step} at {now}: {hits:?}"
        );
    }
}

/// Redis keys carry the deployment's prefix and expire two windows after their last use.
#[tokio::test]
async fn redis_keys_are_namespaced_and_expire() {
    let Some(url) = redis_url() else { return };
    let p = prefix();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(T0 + 5_000));
    let backend = RedisBackend::new(&redis_config(&url), &p, std::time::Duration::from_secs(2)).unwrap();
    let key = backend.redis_key("exp");
    assert!(key.starts_with(&format!("{p}rl:")), "{key}");
    let l = Limiter::redis(backend, settings(RateLimitFailureMode::Open), 100, clock, None);
    assert_eq!(l.check(&[hit("exp", 3, 60)]).await.source, Source::Redis);

    let pool = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    let ttl: i64 = deadpool_redis::redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (60_000..=121_000).contains(&ttl),
        "expires after two windows: {ttl} ms"
    );
    let fields: Vec<String> = deadpool_redis::redis::cmd("HMGET")
        .arg(&key)
        .arg("w")
        .arg("p")
        .arg("c")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        fields,
        [((T0 + 5_000) / 60_000).to_string(), "0".into(), "1".into()]
    );
}
