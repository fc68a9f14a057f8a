//! Redis dying mid-test: a private `redis-server` on a free port, started, killed, frozen and
//! restarted by these tests (never the shared one). Decisions fall back to memory (fail-open)
//! or are refused (fail-closed), the breaker opens after the configured failures, and the
//! limiter returns to Redis once it answers again.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_ratelimit::clock::{Clock, ManualClock};
use gateway_ratelimit::limiter::{Limiter, RedisSettings, Source, Verdict};
use gateway_ratelimit::redis::RedisBackend;
use gateway_types::config::RateLimitFailureMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::harness::{T0, hit, redis_config};

const DEADLINE: Duration = Duration::from_secs(20);

/// A `redis-server` of this test alone.
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart().await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).expect("running")
    }

    /// (Re)starts the server on the same port and waits until it answers `PING`.
    async fn restart(&mut self) {
        let dir: PathBuf = self.dir.path().into();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers().await {
            assert!(started.elapsed() < DEADLINE, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn answers(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok()
            && matches!(
                tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await,
                Ok(Ok(_))
            )
            && &buf == b"+PONG\r\n"
    }

    /// Kills the process (by its pid) and waits for it to be gone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process: a Redis that accepts nothing
    /// and answers nothing, like a hung server.
    async fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
}

fn limiter(r: &PrivateRedis, mode: RateLimitFailureMode, failures: u32, clock: Arc<ManualClock>) -> Limiter {
    let timeout = Duration::from_millis(300);
    let backend = RedisBackend::new(&redis_config(&r.url()), "mcpgw-outage:", timeout).unwrap();
    let clock: Arc<dyn Clock> = clock;
    Limiter::redis(
        backend,
        RedisSettings {
            timeout,
            breaker_failures: failures,
            breaker_reprobe: Duration::from_millis(50),
            failure_mode: mode,
        },
        1_000,
        clock,
        None,
    )
}

async fn check(l: &Limiter) -> Verdict {
    l.check(&[hit("k", 10, 60)]).await
}

/// Decides until Redis answers again (the breaker's probe has to find it first).
async fn until_redis(l: &Limiter) -> Verdict {
    let started = Instant::now();
    loop {
        let v = check(l).await;
        if v.source == Source::Redis {
            return v;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the limiter never returned to Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_falls_back_to_memory_and_returns_to_redis() {
    let mut r = PrivateRedis::start().await;
    let clock = Arc::new(ManualClock::at(T0 + 1_000));
    let l = limiter(&r, RateLimitFailureMode::Open, 2, Arc::clone(&clock));
    for want in [9, 8, 7] {
        let v = check(&l).await;
        assert_eq!((v.source, v.decisions[0].remaining), (Source::Redis, want));
    }

    r.kill().await;
    // The first failure already falls back; the second opens the breaker.
    let v = check(&l).await;
    assert_eq!(v.source, Source::Fallback);
    assert!(v.allowed);
    assert_eq!(v.decisions[0].remaining, 9, "this replica's own counters");
    assert!(l.redis_in_use(), "one failure does not open the breaker");
    assert_eq!(check(&l).await.source, Source::Fallback);
    assert!(!l.redis_in_use(), "two failures in a row open it");
    // Open: decided in memory without asking Redis, still limiting.
    let mut allowed = 2;
    for _ in 0..10 {
        let v = check(&l).await;
        assert_eq!(v.source, Source::Fallback);
        allowed += usize::from(v.allowed);
    }
    assert_eq!(allowed, 10, "the limit still holds on the fallback");

    r.restart().await;
    let v = until_redis(&l).await;
    assert!(l.redis_in_use());
    assert_eq!(
        v.decisions[0].remaining, 9,
        "back on Redis (a fresh server: its counts start over)"
    );
    assert_eq!(check(&l).await.source, Source::Redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_hangs_and_recovers() {
    let r = PrivateRedis::start().await;
    let clock = Arc::new(ManualClock::at(T0 + 1_000));
    let l = limiter(&r, RateLimitFailureMode::Closed, 1, clock);
    assert_eq!(check(&l).await.source, Source::Redis);

    r.signal("STOP").await;
    // The decision waits at most the timeout, then refuses.
    let v = check(&l).await;
    assert_eq!(v.source, Source::Unavailable);
    assert!(!v.allowed && v.decisions.is_empty());
    assert!(!l.redis_in_use(), "one failure opens this breaker");
    // Open: refused at once, without waiting for Redis.
    let v = check(&l).await;
    assert_eq!(v.source, Source::Unavailable);

    r.signal("CONT").await;
    let v = until_redis(&l).await;
    assert!(v.allowed);
    // The frozen server kept its count (and may also have run the request that timed out,
    // once thawed: a timed-out decision can still be counted).
    assert!(v.decisions[0].remaining <= 8, "{:?}", v.decisions[0]);
    drop(r);
}
