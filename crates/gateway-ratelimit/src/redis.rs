//! The Redis backend: the same counters, shared by every replica, decided by one atomic Lua
//! script per decision (one round trip).
//!
//! Each key is a hash `<prefix>rl:<key>` with fields `w` (the window `c` counts), `p` and `c`,
//! expiring two windows after its last admitted request. The script reads every key of the
//! decision, rolls it to the current window, admits only if all admit, and then counts the
//! request on all of them. Window positions come from the caller (the gateway's clock), so the
//! script only multiplies and compares integers: its arithmetic is exact in Lua's doubles for
//! every quota the configuration accepts (`limit ≤ 10⁶`, window ≤ a day), and identical to the
//! in-memory backend's. The answers are computed from the returned counts by the same Rust
//! function as the in-memory ones.
//!
//! The keys of one decision must live on one node: a single Redis (with replicas) is supported,
//! Redis Cluster is not.

use deadpool_redis::redis;
use gateway_types::config::RedisConfig;
use secrecy::ExposeSecret;

use crate::Hit;
use crate::algorithm::{Counts, Decision};

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// `redis.url` is not set or not a Redis URL.
    #[error("invalid Redis configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No connection could be had from the pool.
    #[error("no Redis connection")]
    Pool(#[source] deadpool_redis::PoolError),
    /// The command failed.
    #[error("Redis command failed")]
    Command(#[source] redis::RedisError),
    /// The script answered something unexpected.
    #[error("unexpected answer from the rate-limit script")]
    Answer,
}

const SCRIPT: &str = r"
local n = #KEYS
local counts = {}
local ok = 1
for i = 1, n do
  local b = (i - 1) * 4
  local limit = tonumber(ARGV[b + 1])
  local win = tonumber(ARGV[b + 2])
  local idx = tonumber(ARGV[b + 3])
  local elapsed = tonumber(ARGV[b + 4])
  local v = redis.call('HMGET', KEYS[i], 'w', 'p', 'c')
  local w = tonumber(v[1])
  local p, c = 0, 0
  if w == idx then
    p = tonumber(v[2]) or 0
    c = tonumber(v[3]) or 0
  elseif w == idx - 1 then
    p = tonumber(v[3]) or 0
  end
  if p * (win - elapsed) + (c + 1) * win > limit * win then
    ok = 0
  end
  counts[i] = {p, c}
end
if ok == 1 then
  for i = 1, n do
    local b = (i - 1) * 4
    redis.call('HSET', KEYS[i], 'w', ARGV[b + 3], 'p', counts[i][1], 'c', counts[i][2] + 1)
    redis.call('PEXPIRE', KEYS[i], 2 * tonumber(ARGV[b + 2]) + 1000)
  end
end
local out = {ok}
for i = 1, n do
  out[2 * i] = counts[i][1]
  out[2 * i + 1] = counts[i][2]
end
return out
";

/// Sliding-window counters on Redis.
pub struct RedisBackend {
    pool: deadpool_redis::Pool,
    prefix: String,
    script: redis::Script,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend on `cfg.url` whose keys start with `prefix` (e.g. `mcpgw:`). No connection is
    /// made yet: the pool connects on first use, so the gateway starts while Redis is down.
    /// `timeout` bounds waiting for and opening a pooled connection.
    ///
    /// # Errors
    /// No URL, or one the client cannot use.
    pub fn new(cfg: &RedisConfig, prefix: &str, timeout: std::time::Duration) -> Result<Self, RedisError> {
        let url = cfg
            .url
            .as_ref()
            .ok_or_else(|| RedisError::Config("redis.url is not set".into()))?;
        let mut pool_cfg = deadpool_redis::Config::from_url(url.expose_secret());
        let mut pool = deadpool_redis::PoolConfig::new(cfg.pool_size.max(1));
        pool.timeouts.wait = Some(timeout);
        pool.timeouts.create = Some(timeout);
        pool.timeouts.recycle = Some(timeout);
        pool_cfg.pool = Some(pool);
        let pool = pool_cfg
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| RedisError::Config(Box::new(e)))?;
        Ok(Self {
            pool,
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
        })
    }

    /// The Redis key of a limiter key.
    #[must_use]
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }

    /// Decides `hits` at `now_ms` in one script call: admitted only if every key admits, and
    /// then counted on every key. Keys must be distinct.
    ///
    /// # Errors
    /// Redis is unreachable or answered with an error.
    pub async fn check(&self, hits: &[Hit], now_ms: u64) -> Result<(bool, Vec<Decision>), RedisError> {
        let mut invocation = self.script.prepare_invoke();
        let mut positions = Vec::with_capacity(hits.len());
        for hit in hits {
            let (index, elapsed) = hit.quota.position(now_ms);
            positions.push(elapsed);
            invocation
                .key(self.redis_key(&hit.key))
                .arg(hit.quota.limit)
                .arg(hit.quota.window_ms)
                .arg(index)
                .arg(elapsed);
        }
        let mut conn = self.pool.get().await.map_err(RedisError::Pool)?;
        let answer: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(RedisError::Command)?;
        if answer.len() != 1 + 2 * hits.len() {
            return Err(RedisError::Answer);
        }
        let allowed = answer[0] == 1;
        let count = |v: i64| u64::try_from(v).map_err(|_| RedisError::Answer);
        let mut decisions = Vec::with_capacity(hits.len());
        for (i, (hit, elapsed)) in hits.iter().zip(positions).enumerate() {
            let counts = Counts {
                prev: count(answer[1 + 2 * i])?,
                curr: count(answer[2 + 2 * i])?,
            };
            decisions.push(Decision::new(hit.quota, counts, elapsed, allowed));
        }
        Ok((allowed, decisions))
    }

    /// One round trip (`PING`).
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.pool.get().await.map_err(RedisError::Pool)?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(RedisError::Command)
            .map(|_| ())
    }
}
