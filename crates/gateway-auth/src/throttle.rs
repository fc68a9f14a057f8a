//! Login throttling: failures per account and per client IP within a window lead to a lockout.
//!
//! Counters are kept for every email tried, known or not, so a lockout answer reveals nothing
//! about which accounts exist. Memory is bounded: expired entries are pruned, and past
//! [`MAX_TRACKED`] keys the oldest half is dropped (throttling fails open rather than
//! exhausting memory under a spray of addresses).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::AuthError;

/// Most keys (emails plus IPs) tracked at once.
pub const MAX_TRACKED: usize = 100_000;

/// Limits of the throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures of one account within `window` before it locks.
    pub max_per_account: u32,
    /// Failures from one IP within `window` before it is throttled.
    pub max_per_ip: u32,
    /// Counting window.
    pub window: Duration,
    /// Lockout length.
    pub lockout: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Ip(IpAddr),
}

/// Tracks failed logins.
#[derive(Debug)]
pub struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    /// A throttle with these limits.
    #[must_use]
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses an attempt while the account or the IP is locked out.
    ///
    /// # Errors
    /// [`AuthError::Throttled`] with the seconds left.
    pub fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<(), AuthError> {
        self.check_at(account, ip, Instant::now())
    }

    fn check_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), AuthError> {
        let entries = self.lock();
        let keys = [Some(Key::Account(account.to_owned())), ip.map(Key::Ip)];
        let wait = keys
            .iter()
            .flatten()
            .filter_map(|k| entries.get(k).and_then(|e| e.locked_until))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(left) => Err(AuthError::Throttled {
                retry_after_seconds: left.as_secs().max(1),
            }),
            None => Ok(()),
        }
    }

    /// Counts a failure against the account and the IP, locking either once over its limit.
    pub fn record_failure(&self, account: &str, ip: Option<IpAddr>) {
        self.record_failure_at(account, ip, Instant::now());
    }

    fn record_failure_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) {
        let s = self.settings;
        let mut entries = self.lock();
        if entries.len() >= MAX_TRACKED {
            prune(&mut entries, now, s);
        }
        let mut bump = |key: Key, max: u32| {
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                window_start: now,
                locked_until: None,
            });
            if now.duration_since(e.window_start) > s.window {
                e.failures = 0;
                e.window_start = now;
            }
            e.failures = e.failures.saturating_add(1);
            if e.failures >= max {
                e.locked_until = Some(now + s.lockout);
                e.failures = 0;
                e.window_start = now;
            }
        };
        bump(Key::Account(account.to_owned()), s.max_per_account);
        if let Some(ip) = ip {
            bump(Key::Ip(ip), s.max_per_ip);
        }
    }

    /// Clears the account's counter after a successful login (the IP's stays).
    pub fn record_success(&self, account: &str) {
        self.lock().remove(&Key::Account(account.to_owned()));
    }

    /// Number of tracked keys.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

fn prune(entries: &mut HashMap<Key, Entry>, now: Instant, s: ThrottleSettings) {
    entries.retain(|_, e| {
        e.locked_until.is_some_and(|u| u > now) || now.duration_since(e.window_start) <= s.window
    });
    if entries.len() >= MAX_TRACKED {
        let mut starts: Vec<Instant> = entries.values().map(|e| e.window_start).collect();
        starts.sort_unstable();
        if let Some(cut) = starts.get(starts.len() / 2).copied() {
            entries.retain(|_, e| e.window_start > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleSettings {
            max_per_account: 3,
            max_per_ip: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        })
    }

    #[test]
    fn locks_an_account_after_its_limit_and_unlocks_later() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..2 {
            t.record_failure_at("a@x", None, now);
            assert!(t.check_at("a@x", None, now).is_ok());
        }
        t.record_failure_at("a@x", None, now);
        let err = t.check_at("a@x", None, now).unwrap_err();
        assert!(matches!(
            err,
            AuthError::Throttled {
                retry_after_seconds: 300
            }
        ));
        assert!(t.check_at("b@x", None, now).is_ok(), "other accounts unaffected");
        assert!(t.check_at("a@x", None, now + Duration::from_secs(301)).is_ok());
    }

    #[test]
    fn throttles_an_ip_spraying_many_accounts() {
        let t = throttle();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        for i in 0..5 {
            t.record_failure_at(&format!("user{i}@x"), Some(ip), now);
        }
        assert!(t.check_at("fresh@x", Some(ip), now).is_err());
        assert!(
            t.check_at("fresh@x", Some("192.0.2.8".parse().unwrap()), now)
                .is_ok()
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle();
        let now = Instant::now();
        t.record_failure_at("a@x", None, now);
        t.record_failure_at("a@x", None, now);
        let later = now + Duration::from_secs(61);
        t.record_failure_at("a@x", None, later);
        assert!(t.check_at("a@x", None, later).is_ok());
    }

    #[test]
    fn success_resets_the_account() {
        let t = throttle();
        let now = Instant::now();
        t.record_failure_at("a@x", None, now);
        t.record_failure_at("a@x", None, now);
        t.record_success("a@x");
        t.record_failure_at("a@x", None, now);
        assert!(t.check_at("a@x", None, now).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED + 10) {
            t.record_failure_at(&format!("u{i}"), None, now + Duration::from_millis(i as u64));
        }
        assert!(t.tracked() <= MAX_TRACKED);
    }
}
