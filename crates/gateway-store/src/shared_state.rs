//! Shared state beside the SQL store: the access-token deny-list, in memory for a single node
//! ([`MemoryDenyList`]) or on Redis for several replicas ([`RedisDenyList`]).
//!
//! The Redis deny-list keeps a local copy of what this replica denied and asks Redis for the
//! rest, with `redis.timeout_ms` per command. When Redis does not answer, a check falls back
//! to the local copy (a logout made on another replica is then not seen until Redis returns:
//! the gateway keeps serving rather than refusing every token), and a new denial is kept
//! locally and reported as unavailable, so the client learns its logout did not reach every
//! replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use gateway_types::config::RedisConfig;
use gateway_types::store::{StoreError, StoreResult, TokenDenyList};
use secrecy::ExposeSecret;

use crate::error::ConnectError;

/// Deny-listed `jti`s with their expiry; expired entries are pruned as new ones arrive.
#[derive(Debug, Default)]
pub struct MemoryDenyList {
    entries: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl MemoryDenyList {
    /// An empty deny-list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, jti: &str, expires_at: DateTime<Utc>) {
        let now = Utc::now();
        let mut entries = self.lock();
        if entries.len() % 1024 == 1023 {
            entries.retain(|_, exp| *exp > now);
        }
        if expires_at > now {
            entries.insert(jti.to_owned(), expires_at);
        }
    }

    fn contains(&self, jti: &str) -> bool {
        self.lock().get(jti).is_some_and(|exp| *exp > Utc::now())
    }

    /// Entries currently held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is deny-listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TokenDenyList for MemoryDenyList {
    async fn deny(&self, jti: &str, expires_at: DateTime<Utc>) -> StoreResult<()> {
        self.insert(jti, expires_at);
        Ok(())
    }

    async fn is_denied(&self, jti: &str) -> StoreResult<bool> {
        Ok(self.contains(jti))
    }
}

/// Key prefix of everything the gateway writes to Redis, unless `redis.key_prefix` says
/// otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "mcpgw:";

/// The deny-list on Redis, shared by every replica (keys `<prefix>deny:<jti>`, expiring with
/// the token).
pub struct RedisDenyList {
    pool: deadpool_redis::Pool,
    prefix: String,
    timeout: Duration,
    local: MemoryDenyList,
}

impl std::fmt::Debug for RedisDenyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDenyList")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisDenyList {
    /// Connects to `cfg.url` and checks that Redis answers; keys start with
    /// `cfg.key_prefix`.
    ///
    /// # Errors
    /// No URL, a bad URL, or Redis not answering `PING` within `cfg.timeout_ms`.
    pub async fn connect(cfg: &RedisConfig) -> Result<Self, ConnectError> {
        Self::connect_with_prefix(cfg, &cfg.key_prefix).await
    }

    /// Like [`RedisDenyList::connect`], with another key prefix (tests isolate themselves so).
    ///
    /// # Errors
    /// As [`RedisDenyList::connect`].
    pub async fn connect_with_prefix(cfg: &RedisConfig, prefix: &str) -> Result<Self, ConnectError> {
        let url = cfg
            .url
            .as_ref()
            .ok_or_else(|| ConnectError::Redis("redis.url is not set".into()))?;
        let mut pool_cfg = deadpool_redis::Config::from_url(url.expose_secret());
        pool_cfg.pool = Some(deadpool_redis::PoolConfig::new(cfg.pool_size));
        let pool = pool_cfg
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| ConnectError::Redis(Box::new(e)))?;
        let this = Self {
            pool,
            prefix: prefix.to_owned(),
            timeout: Duration::from_millis(cfg.timeout_ms),
            local: MemoryDenyList::new(),
        };
        this.ping().await.map_err(|e| ConnectError::Redis(Box::new(e)))?;
        Ok(this)
    }

    /// One round trip to Redis.
    ///
    /// # Errors
    /// Redis does not answer in time.
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(redis::cmd("PING")).await.map(|_: String| ())
    }

    fn key(&self, jti: &str) -> String {
        format!("{}deny:{jti}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue + Send>(&self, cmd: redis::Cmd) -> StoreResult<T> {
        let work = async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
        }
    }
}

#[async_trait]
impl TokenDenyList for RedisDenyList {
    async fn deny(&self, jti: &str, expires_at: DateTime<Utc>) -> StoreResult<()> {
        self.local.insert(jti, expires_at);
        let ttl = (expires_at - Utc::now()).num_seconds();
        if ttl <= 0 {
            return Ok(());
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(jti)).arg(1).arg("EX").arg(ttl);
        self.run::<()>(cmd).await
    }

    async fn is_denied(&self, jti: &str) -> StoreResult<bool> {
        if self.local.contains(jti) {
            return Ok(true);
        }
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(jti));
        match self.run::<i64>(cmd).await {
            Ok(n) => Ok(n > 0),
            Err(err) => {
                tracing::warn!(
                    error = %gateway_types::error::error_chain(&err),
                    "redis unavailable: deny-list checked locally only"
                );
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[tokio::test]
    async fn memory_denies_until_expiry() {
        let d = MemoryDenyList::new();
        d.deny("a", Utc::now() + Duration::minutes(5)).await.unwrap();
        d.deny("old", Utc::now() - Duration::minutes(5)).await.unwrap();
        assert!(d.is_denied("a").await.unwrap());
        assert!(!d.is_denied("b").await.unwrap());
        assert!(
            !d.is_denied("old").await.unwrap(),
            "already expired: nothing to deny"
        );
    }
}
