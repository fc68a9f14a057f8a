//! The in-memory [`TokenDenyList`] for single-node deployments.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gateway_types::store::{StoreResult, TokenDenyList};

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
        let now = Utc::now();
        let mut entries = self.lock();
        if entries.len() % 1024 == 1023 {
            entries.retain(|_, exp| *exp > now);
        }
        if expires_at > now {
            entries.insert(jti.to_owned(), expires_at);
        }
        Ok(())
    }

    async fn is_denied(&self, jti: &str) -> StoreResult<bool> {
        Ok(self.lock().get(jti).is_some_and(|exp| *exp > Utc::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[tokio::test]
    async fn denies_until_expiry() {
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
