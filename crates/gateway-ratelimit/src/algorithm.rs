//! The one algorithm: a sliding-window counter.
//!
//! Time is cut into fixed windows of `W` ms aligned on the Unix epoch (every replica agrees on
//! them). A key keeps two counts: `curr`, the requests admitted in the current window, and
//! `prev`, those of the window before. At `e` ms into the current window the previous window
//! still overlaps the trailing window `[now - W, now]` by `W - e` ms, so its count is weighted
//! by `(W - e) / W` (assumed evenly spread). A request is admitted when
//!
//! ```text
//! prev · (W − e) + (curr + 1) · W  ≤  limit · W
//! ```
//!
//! all in integers (no rounding, and the same arithmetic in Rust and in the Redis script).
//! Refused requests are not counted, so a client that keeps hammering is admitted again as
//! soon as its rate drops.
//!
//! **No double burst at the edge.** A fixed window admits `limit` at the end of one window and
//! `limit` again at the start of the next. Here the full previous window still weighs almost
//! `limit` just after the edge, and capacity comes back gradually: one request per `W / limit`.
//!
//! **Why this one** (rather than a sliding log or GCRA): two integers per key in memory and in
//! Redis whatever the limit (a log keeps one timestamp per admitted request, so a 10 000/min
//! limit costs 10 000 entries per key), one atomic script per decision, and exact counting
//! within a window (N concurrent requests against a fresh limit of M admit exactly M). GCRA
//! is as cheap but limits a *rate* (it admits `2·limit − 1` in some windows of length `W`),
//! not a count per window. The price is the evenly-spread assumption: the trailing-window count
//! is estimated, so a client can reach up to about `2·limit` in some window of length `W` when
//! all of the previous window's requests came at its very end, but never as a burst (the
//! second `limit` is spread over the window).

use std::cmp::min;

/// At most `limit` requests per window of `window_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests per window (at least 1).
    pub limit: u32,
    /// Window length in milliseconds (at least 1).
    pub window_ms: u64,
}

impl Quota {
    /// `limit` per `window_seconds` seconds (both at least 1).
    #[must_use]
    pub fn per_seconds(limit: u32, window_seconds: u32) -> Self {
        Self {
            limit: limit.max(1),
            window_ms: u64::from(window_seconds.max(1)) * 1000,
        }
    }

    /// The window in whole seconds (rounded up).
    #[must_use]
    pub const fn window_seconds(&self) -> u64 {
        self.window_ms.div_ceil(1000)
    }

    /// The window `now_ms` falls in, and the milliseconds elapsed in it.
    #[must_use]
    pub const fn position(&self, now_ms: u64) -> (u64, u64) {
        let w = if self.window_ms == 0 { 1 } else { self.window_ms };
        (now_ms / w, now_ms % w)
    }
}

/// What a backend stores per key: the window `curr` belongs to, and the two counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// Index of the window `curr` counts (`now_ms / window_ms`).
    pub window: u64,
    /// Admitted in window `window - 1`.
    pub prev: u64,
    /// Admitted in window `window`.
    pub curr: u64,
}

impl Slot {
    /// The counts as seen from window `index`: rolled forward by one window (curr becomes
    /// prev), or empty when the slot is older than that.
    #[must_use]
    pub const fn rolled(self, index: u64) -> Counts {
        if self.window == index {
            Counts {
                prev: self.prev,
                curr: self.curr,
            }
        } else if self.window.wrapping_add(1) == index {
            Counts {
                prev: self.curr,
                curr: 0,
            }
        } else {
            Counts { prev: 0, curr: 0 }
        }
    }

    /// Whether both counts are of windows that no longer matter at window `index`.
    #[must_use]
    pub const fn expired(self, index: u64) -> bool {
        index > self.window.saturating_add(1)
    }
}

/// The two counts of a key at decision time, rolled to the current window, before the
/// request being decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Admitted in the previous window.
    pub prev: u64,
    /// Admitted in the current window.
    pub curr: u64,
}

/// Whether one more request is admitted: `prev·(W − e) + (curr + 1)·W ≤ limit·W`.
#[must_use]
pub fn admits(quota: Quota, counts: Counts, elapsed_ms: u64) -> bool {
    let w = u128::from(quota.window_ms);
    let e = u128::from(min(elapsed_ms, quota.window_ms));
    let used = u128::from(counts.prev) * (w - e) + (u128::from(counts.curr) + 1) * w;
    used <= u128::from(quota.limit) * w
}

/// The answer for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether this key alone would admit the request.
    pub allowed: bool,
    /// The quota decided against.
    pub quota: Quota,
    /// Requests still admitted right now (after this one, when it was admitted).
    pub remaining: u32,
    /// Milliseconds until the current window ends.
    pub reset_ms: u64,
    /// When refused: milliseconds until a request would be admitted (at least 1); 0 otherwise.
    pub retry_after_ms: u64,
}

impl Decision {
    /// The decision for `counts` (before this request) at `elapsed_ms` into the window, given
    /// whether the request was admitted (and so counted). Both backends return their counts
    /// and this one function turns them into answers, so the answers cannot differ.
    #[must_use]
    pub fn new(quota: Quota, counts: Counts, elapsed_ms: u64, counted: bool) -> Self {
        let allowed = admits(quota, counts, elapsed_ms);
        let w = u128::from(quota.window_ms);
        let e = u128::from(min(elapsed_ms, quota.window_ms));
        let curr = u128::from(counts.curr) + u128::from(counted);
        let used = u128::from(counts.prev) * (w - e) + curr * w;
        let capacity = u128::from(quota.limit) * w;
        let remaining = u32::try_from(capacity.saturating_sub(used) / w).unwrap_or(u32::MAX);
        let reset_ms = quota.window_ms - min(elapsed_ms, quota.window_ms);
        let retry_after_ms = if allowed {
            0
        } else {
            retry_after(quota, counts, elapsed_ms).max(1)
        };
        Self {
            allowed,
            quota,
            remaining,
            reset_ms,
            retry_after_ms,
        }
    }

    /// `Retry-After` in whole seconds (rounded up, at least 1).
    #[must_use]
    pub const fn retry_after_seconds(&self) -> u64 {
        let s = self.retry_after_ms.div_ceil(1000);
        if s == 0 { 1 } else { s }
    }

    /// Seconds until the current window ends (rounded up), or until a refused request would
    /// be admitted.
    #[must_use]
    pub const fn reset_seconds(&self) -> u64 {
        if self.allowed {
            self.reset_ms.div_ceil(1000)
        } else {
            self.retry_after_seconds()
        }
    }
}

/// The shortest wait after which one request would be admitted, if nothing else is admitted
/// meanwhile.
fn retry_after(quota: Quota, counts: Counts, elapsed_ms: u64) -> u64 {
    let w = u128::from(quota.window_ms);
    let e = u128::from(min(elapsed_ms, quota.window_ms));
    let limit = u128::from(quota.limit);
    let (p, c) = (u128::from(counts.prev), u128::from(counts.curr));
    let wait = if c < limit {
        // The current window has room; the previous one's weight must shrink until
        // p·(W − e') ≤ (limit − c − 1)·W, i.e. e' ≥ W − ⌊(limit − c − 1)·W / p⌋.
        let room = limit - c - 1;
        let target = (room * w).checked_div(p).map_or(e, |free| w - min(w, free));
        target.saturating_sub(e)
    } else {
        // Full: wait for the next window, where this one's count is the previous one:
        // c·(W − e'') ≤ (limit − 1)·W.
        let target = ((limit - 1) * w)
            .checked_div(c)
            .map_or(0, |free| w - min(w, free));
        (w - e) + target
    };
    u64::try_from(wait).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        limit: 10,
        window_ms: 60_000,
    };

    fn counts(prev: u64, curr: u64) -> Counts {
        Counts { prev, curr }
    }

    #[test]
    fn a_fresh_window_admits_exactly_the_limit() {
        let mut c = counts(0, 0);
        for i in 0..10 {
            assert!(admits(Q, c, 5_000), "request {i}");
            c.curr += 1;
        }
        assert!(!admits(Q, c, 5_000));
        let d = Decision::new(Q, c, 5_000, false);
        assert_eq!((d.allowed, d.remaining), (false, 0));
        assert_eq!(
            d.retry_after_ms,
            55_000 + 6_000,
            "next window, until 10 · (W − e) ≤ 9 · W"
        );
    }

    #[test]
    fn the_previous_window_weighs_by_its_overlap() {
        // 10 in the previous window, none yet: at e = 0 it weighs 10 → refused.
        assert!(!admits(Q, counts(10, 0), 0));
        // Capacity returns one request per W / limit = 6 s.
        assert!(!admits(Q, counts(10, 0), 5_999));
        assert!(admits(Q, counts(10, 0), 6_000));
        assert!(!admits(Q, counts(10, 1), 6_000));
        assert!(admits(Q, counts(10, 1), 12_000));
        let d = Decision::new(Q, counts(10, 0), 1_000, false);
        assert_eq!(d.retry_after_ms, 5_000);
        assert_eq!(d.retry_after_seconds(), 5);
    }

    #[test]
    fn remaining_and_reset() {
        let d = Decision::new(Q, counts(0, 3), 15_000, true);
        assert!(d.allowed);
        assert_eq!(d.remaining, 6, "10 − 3 − this one");
        assert_eq!(d.reset_ms, 45_000);
        assert_eq!(d.reset_seconds(), 45);
        let d = Decision::new(Q, counts(5, 0), 30_000, true);
        assert_eq!(
            d.remaining, 6,
            "5 weighted by half = 2.5, plus this one: ⌊10 − 3.5⌋"
        );
    }

    #[test]
    fn slots_roll_forward_and_expire() {
        let s = Slot {
            window: 7,
            prev: 4,
            curr: 9,
        };
        assert_eq!(s.rolled(7), counts(4, 9));
        assert_eq!(s.rolled(8), counts(9, 0));
        assert_eq!(s.rolled(9), counts(0, 0));
        assert!(!s.expired(8));
        assert!(s.expired(9));
    }

    #[test]
    fn retry_after_is_when_a_request_would_be_admitted() {
        for prev in 0..=12 {
            for curr in 0..=10 {
                for e in [0, 1, 999, 6_000, 30_000, 59_999] {
                    let c = counts(prev, curr);
                    if admits(Q, c, e) {
                        continue;
                    }
                    let wait = Decision::new(Q, c, e, false).retry_after_ms;
                    let at = |t: u64| {
                        let (idx, el) = Q.position(t);
                        let slot = Slot {
                            window: 0,
                            prev,
                            curr,
                        };
                        admits(Q, slot.rolled(idx), el)
                    };
                    assert!(at(e + wait), "admitted after the wait ({prev}, {curr}, {e})");
                    assert!(
                        !at(e + wait - 1),
                        "not a millisecond sooner ({prev}, {curr}, {e})"
                    );
                }
            }
        }
    }

    #[test]
    fn large_limits_and_windows_do_not_overflow() {
        let q = Quota {
            limit: 1_000_000,
            window_ms: 86_400_000,
        };
        let d = Decision::new(q, counts(1_000_000, 999_999), 1, true);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(d.retry_after_ms > 0);
    }
}
