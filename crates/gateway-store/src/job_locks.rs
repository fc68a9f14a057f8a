//! [`JobLocks`] within one process: what the SQLite backend offers (a SQLite database serves
//! one node, so one worker), and the building block of the PostgreSQL locks' tests.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use gateway_types::store::{JobLock, JobLocks, StoreResult};

/// Named locks held in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryJobLocks {
    held: Arc<Mutex<HashSet<String>>>,
}

impl MemoryJobLocks {
    /// No lock held.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// A held in-memory lock; freed on release or drop.
#[derive(Debug)]
struct MemoryJobLock {
    held: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Drop for MemoryJobLock {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[async_trait]
impl JobLock for MemoryJobLock {
    async fn release(self: Box<Self>) {
        drop(self);
    }
}

#[async_trait]
impl JobLocks for MemoryJobLocks {
    async fn try_lock(&self, key: &str) -> StoreResult<Option<Box<dyn JobLock>>> {
        let inserted = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned());
        Ok(inserted.then(|| {
            Box::new(MemoryJobLock {
                held: Arc::clone(&self.held),
                key: key.to_owned(),
            }) as Box<dyn JobLock>
        }))
    }
}

/// A stable 64-bit key for a lock name (FNV-1a), for PostgreSQL's advisory locks.
pub(crate) fn lock_key(name: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for b in b"mcpgw:job:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(PRIME);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_is_held_until_released_or_dropped() {
        let locks = MemoryJobLocks::new();
        let a = locks.try_lock("health:1").await.unwrap().unwrap();
        assert!(locks.try_lock("health:1").await.unwrap().is_none());
        let b = locks.try_lock("health:2").await.unwrap();
        assert!(b.is_some(), "another name is another lock");
        a.release().await;
        let again = locks.try_lock("health:1").await.unwrap();
        assert!(again.is_some());
        drop(again);
        assert!(locks.try_lock("health:1").await.unwrap().is_some());
    }

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("health:a"), lock_key("health:a"));
        assert_ne!(lock_key("health:a"), lock_key("health:b"));
    }
}
