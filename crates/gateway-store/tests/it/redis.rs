//! The Redis deny-list against the real Redis at `REDIS_URL` (CI sets it; set but unreachable
//! fails). Every test uses its own key prefix; nothing is flushed.

use std::time::Duration;

use chrono::Utc;
use gateway_store::shared_state::RedisDenyList;
use gateway_types::config::RedisConfig;
use gateway_types::store::{StoreError, TokenDenyList};
use secrecy::SecretString;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("REDIS_URL is not set: the Redis deny-list tests need a Redis server (CI sets it)");
            None
        }
    }
}

fn config(url: &str) -> RedisConfig {
    RedisConfig {
        url: Some(SecretString::from(url.to_owned())),
        pool_size: 4,
        timeout_ms: 300,
        ..RedisConfig::default()
    }
}

fn prefix() -> String {
    format!("mcpgw-test-{}:", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn a_denial_on_one_replica_is_seen_by_another() {
    let Some(url) = redis_url() else { return };
    let p = prefix();
    let a = RedisDenyList::connect_with_prefix(&config(&url), &p)
        .await
        .expect("REDIS_URL is set but unreachable");
    let b = RedisDenyList::connect_with_prefix(&config(&url), &p)
        .await
        .unwrap();
    let other = RedisDenyList::connect_with_prefix(&config(&url), &prefix())
        .await
        .unwrap();

    assert!(!b.is_denied("jti-1").await.unwrap());
    a.deny("jti-1", Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert!(b.is_denied("jti-1").await.unwrap(), "seen by the other replica");
    assert!(
        !other.is_denied("jti-1").await.unwrap(),
        "prefixes isolate deployments"
    );
    assert!(!b.is_denied("jti-2").await.unwrap());
    // An already expired token needs no entry.
    a.deny("jti-old", Utc::now() - chrono::Duration::seconds(5))
        .await
        .unwrap();
    assert!(!b.is_denied("jti-old").await.unwrap());
}

#[tokio::test]
async fn entries_expire_with_the_token() {
    let Some(url) = redis_url() else { return };
    let p = prefix();
    let d = RedisDenyList::connect_with_prefix(&config(&url), &p)
        .await
        .unwrap();
    d.deny("short", Utc::now() + chrono::Duration::seconds(90))
        .await
        .unwrap();
    let client = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let mut conn = client.get().await.unwrap();
    let ttl: i64 = deadpool_redis::redis::cmd("TTL")
        .arg(format!("{p}deny:short"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((80..=90).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_at_start() {
    let err = RedisDenyList::connect(&config("redis://127.0.0.1:9"))
        .await
        .unwrap_err();
    assert!(matches!(err, gateway_store::ConnectError::Redis(_)), "{err:?}");
}

/// A TCP forwarder to Redis that the test can cut.
async fn forwarder(target: String) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            conns.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_redis_outage_degrades_to_local_checks() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let (port, cut) = forwarder(target).await;
    let p = prefix();
    let via_proxy = RedisDenyList::connect_with_prefix(&config(&format!("redis://127.0.0.1:{port}")), &p)
        .await
        .unwrap();
    let direct = RedisDenyList::connect_with_prefix(&config(&url), &p)
        .await
        .unwrap();
    via_proxy
        .deny("mine", Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    direct
        .deny("theirs", Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert!(via_proxy.is_denied("theirs").await.unwrap());

    cut.abort(); // every proxied connection dies with its task
    let _ = cut.await;
    let started = std::time::Instant::now();
    assert!(
        via_proxy.is_denied("mine").await.unwrap(),
        "what this replica denied stays denied"
    );
    assert!(
        !via_proxy.is_denied("unknown").await.unwrap(),
        "no answer from Redis: served, not refused"
    );
    let err = via_proxy
        .deny("later", Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(via_proxy.is_denied("later").await.unwrap(), "kept locally");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the command timeout"
    );
}
