//! The in-memory backend: the sliding-window counters of this process, in a sharded map with a
//! bound on the number of keys.
//!
//! A decision locks the shards of its keys (in shard order, so concurrent decisions never
//! deadlock), reads every key, and counts the request on all of them only when all admit it:
//! the same all-or-nothing rule as the Redis script. Keys whose windows are over are
//! [`swept`](MemoryBackend::sweep) periodically; when a shard is full anyway, its expired keys
//! go first, then the least recently used eighth.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::algorithm::{Counts, Decision, Slot, admits};
use crate::{Hit, metrics};

const SHARDS: usize = 64;

#[derive(Debug)]
struct Entry {
    slot: Slot,
    window_ms: u64,
    touched_ms: u64,
}

impl Entry {
    fn expired(&self, now_ms: u64) -> bool {
        self.slot.expired(now_ms / self.window_ms.max(1))
    }
}

type Shard = HashMap<String, Entry>;

/// Sliding-window counters in this process's memory.
#[derive(Debug)]
pub struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: std::hash::RandomState,
}

impl MemoryBackend {
    /// A backend holding at most about `max_keys` keys.
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides `hits` at `now_ms`: admitted only if every key admits, and then counted on
    /// every key. Keys must be distinct.
    #[must_use]
    pub fn check(&self, hits: &[Hit], now_ms: u64) -> (bool, Vec<Decision>) {
        let shard_of: Vec<usize> = hits.iter().map(|h| self.shard_of(&h.key)).collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> =
            order.iter().map(|&i| (i, self.lock(i))).collect();
        let mut seen = Vec::with_capacity(hits.len());
        for (hit, &s) in hits.iter().zip(&shard_of) {
            let shard = guard(&mut guards, s);
            let (index, elapsed) = hit.quota.position(now_ms);
            let counts = shard
                .get(hit.key.as_str())
                .map_or(Counts::default(), |e| e.slot.rolled(index));
            seen.push((index, elapsed, counts));
        }
        let allowed = hits
            .iter()
            .zip(&seen)
            .all(|(hit, &(_, elapsed, counts))| admits(hit.quota, counts, elapsed));
        if allowed {
            for ((hit, &s), &(index, _, counts)) in hits.iter().zip(&shard_of).zip(&seen) {
                let per_shard = self.per_shard;
                let shard = guard(&mut guards, s);
                let slot = Slot {
                    window: index,
                    prev: counts.prev,
                    curr: counts.curr + 1,
                };
                if let Some(entry) = shard.get_mut(hit.key.as_str()) {
                    entry.slot = slot;
                    entry.window_ms = hit.quota.window_ms;
                    entry.touched_ms = now_ms;
                } else {
                    if shard.len() >= per_shard {
                        make_room(shard, per_shard, now_ms);
                    }
                    shard.insert(
                        hit.key.clone(),
                        Entry {
                            slot,
                            window_ms: hit.quota.window_ms,
                            touched_ms: now_ms,
                        },
                    );
                }
            }
        }
        let decisions = hits
            .iter()
            .zip(&seen)
            .map(|(hit, &(_, elapsed, counts))| Decision::new(hit.quota, counts, elapsed, allowed))
            .collect();
        (allowed, decisions)
    }

    /// Drops every key whose windows are over at `now_ms`; returns how many were dropped.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let mut dropped = 0;
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            let before = shard.len();
            shard.retain(|_, e| !e.expired(now_ms));
            dropped += before - shard.len();
        }
        dropped
    }

    /// Keys currently held.
    #[must_use]
    pub fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.lock(i).len()).sum()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn guard<'a, 'g>(guards: &'a mut [(usize, MutexGuard<'g, Shard>)], shard: usize) -> &'a mut Shard {
    let at = guards.partition_point(|(i, _)| *i < shard);
    &mut guards[at].1
}

/// Frees room in a full shard: expired keys first, then the least recently used eighth.
fn make_room(shard: &mut Shard, per_shard: usize, now_ms: u64) {
    let before = shard.len();
    shard.retain(|_, e| !e.expired(now_ms));
    if shard.len() >= per_shard {
        let mut touched: Vec<u64> = shard.values().map(|e| e.touched_ms).collect();
        let evict = (per_shard / 8).max(1).min(touched.len());
        let (_, &mut cutoff, _) = touched.select_nth_unstable(evict - 1);
        let mut left = evict;
        shard.retain(|_, e| {
            if left > 0 && e.touched_ms <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
        metrics::memory_evicted(before - shard.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Quota;

    fn hit(key: &str, limit: u32) -> Hit {
        Hit {
            key: key.into(),
            quota: Quota {
                limit,
                window_ms: 1000,
            },
        }
    }

    #[test]
    fn all_or_nothing_across_keys() {
        let m = MemoryBackend::new(1000);
        let (ok, _) = m.check(&[hit("a", 1)], 0);
        assert!(ok);
        let (ok, ds) = m.check(&[hit("b", 5), hit("a", 1)], 1);
        assert!(!ok);
        assert!(ds[0].allowed && !ds[1].allowed);
        let (ok, ds) = m.check(&[hit("b", 5)], 2);
        assert!(ok);
        assert_eq!(ds[0].remaining, 4, "b was not counted by the refused request");
    }

    #[test]
    fn the_number_of_keys_is_bounded_and_idle_keys_go() {
        let m = MemoryBackend::new(SHARDS * 4);
        for i in 0..10_000 {
            let _ = m.check(&[hit(&format!("k{i}"), 10)], 500);
        }
        assert!(m.len() <= SHARDS * 4, "{} keys", m.len());
        assert!(
            m.len() >= SHARDS * 2,
            "most of the capacity stays in use: {}",
            m.len()
        );
        assert_eq!(m.sweep(1999), 0, "the previous window still counts");
        let held = m.len();
        assert_eq!(m.sweep(2000), held);
        assert!(m.is_empty(), "two windows later every key is idle");
    }
}
