//! Usage per rule and organization: counted with two atomics per decision, summarized into
//! `rate_limit_usage` rows (one per rule and minute) by a periodic flush, off the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use gateway_types::ids::{OrgId, RateLimitId};
use gateway_types::model::RateLimitUsage;

/// Allowed and rejected requests of one rule in one organization since the last flush.
#[derive(Debug, Default)]
pub struct UsageCounter {
    allowed: AtomicU64,
    rejected: AtomicU64,
}

impl UsageCounter {
    /// Counts one decision.
    pub fn count(&self, allowed: bool) {
        let c = if allowed { &self.allowed } else { &self.rejected };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a usage row is about: the organization, the stored rule (if any) and the rule key
/// (`<scope>:<rule name>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UsageKey {
    pub(crate) org: OrgId,
    pub(crate) rule: Option<RateLimitId>,
    pub(crate) rule_key: String,
}

/// Every usage counter, kept across rule snapshots so a reload loses no counts.
#[derive(Debug, Default)]
pub(crate) struct UsageBook {
    counters: Mutex<HashMap<UsageKey, Arc<UsageCounter>>>,
}

impl UsageBook {
    /// The counter of `key`, created when missing (called when snapshots are built, never per
    /// request).
    pub(crate) fn counter(&self, key: UsageKey) -> Arc<UsageCounter> {
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(key).or_default())
    }

    /// Takes every non-zero count as a row of the minute of `now`; counters no snapshot uses
    /// any more are dropped once empty.
    pub(crate) fn drain(&self, now: DateTime<Utc>) -> Vec<RateLimitUsage> {
        let window_start = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rows = Vec::new();
        map.retain(|key, counter| {
            let allowed = counter.allowed.swap(0, Ordering::Relaxed);
            let rejected = counter.rejected.swap(0, Ordering::Relaxed);
            if allowed > 0 || rejected > 0 {
                rows.push(RateLimitUsage {
                    org_id: key.org,
                    rate_limit_id: key.rule,
                    rule_key: key.rule_key.clone(),
                    window_start,
                    allowed_count: i64::try_from(allowed).unwrap_or(i64::MAX),
                    rejected_count: i64::try_from(rejected).unwrap_or(i64::MAX),
                });
            }
            Arc::strong_count(counter) > 1
        });
        rows
    }

    /// Puts counts back after a failed write, so the next flush retries them.
    pub(crate) fn restore(&self, rows: &[RateLimitUsage]) {
        for row in rows {
            let counter = self.counter(UsageKey {
                org: row.org_id,
                rule: row.rate_limit_id,
                rule_key: row.rule_key.clone(),
            });
            counter
                .allowed
                .fetch_add(u64::try_from(row.allowed_count).unwrap_or(0), Ordering::Relaxed);
            counter
                .rejected
                .fetch_add(u64::try_from(row.rejected_count).unwrap_or(0), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_takes_counts_once_and_forgets_unused_counters() {
        let book = UsageBook::default();
        let key = UsageKey {
            org: OrgId::new(),
            rule: None,
            rule_key: "tool:search".into(),
        };
        let c = book.counter(key.clone());
        c.count(true);
        c.count(true);
        c.count(false);
        let now = "2026-11-25T10:11:12.5Z".parse::<DateTime<Utc>>().unwrap();
        let rows = book.drain(now);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].allowed_count, rows[0].rejected_count), (2, 1));
        assert_eq!(rows[0].window_start.to_rfc3339(), "2026-11-25T10:11:00+00:00");
        assert!(book.drain(now).is_empty(), "taken once");
        book.restore(&rows);
        assert_eq!(book.drain(now).len(), 1, "restored after a failed write");
        drop(c);
        assert!(book.drain(now).is_empty());
        assert!(
            book.counters.lock().unwrap().is_empty(),
            "unused and empty: dropped"
        );
    }
}
