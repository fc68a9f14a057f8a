//! Status transitions with hysteresis: a server's status follows its recent health-check
//! results, never a single one (unless the thresholds say 1).
//!
//! `active` → `degraded` after `degraded_after` failures in a row, → `down` after `down_after`
//! failures in a row (from `active` or `degraded`), and `degraded` or `down` → `active` after
//! `recover_after` successes in a row. Anything else keeps the status. `inactive` servers
//! are an admin's decision and are never checked; the older `unhealthy` and `error` are read
//! as `degraded` and `down`.

use gateway_types::model::{HealthStatus, ServerStatus};

/// The thresholds of the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures in a row: `active` → `degraded`.
    pub degraded_after: u32,
    /// Failures in a row: → `down`.
    pub down_after: u32,
    /// Successes in a row: `degraded`/`down` → `active`.
    pub recover_after: u32,
}

impl Thresholds {
    /// How many recent results [`next_status`] needs to decide.
    #[must_use]
    pub fn window(&self) -> u32 {
        self.degraded_after
            .max(self.down_after)
            .max(self.recover_after)
            .max(1)
    }
}

/// Whether a result counts as a success (a slow but answering server is not failing).
fn ok(result: HealthStatus) -> bool {
    matches!(result, HealthStatus::Healthy | HealthStatus::Degraded)
}

/// How many of the newest results (newest first) in a row satisfy `pred`.
fn streak(recent: &[HealthStatus], pred: impl Fn(HealthStatus) -> bool) -> u32 {
    u32::try_from(recent.iter().take_while(|r| pred(**r)).count()).unwrap_or(u32::MAX)
}

/// The status a server should have now, given its current status and its recent results,
/// newest first.
#[must_use]
pub fn next_status(current: ServerStatus, recent: &[HealthStatus], t: Thresholds) -> ServerStatus {
    let current = match current {
        ServerStatus::Unhealthy => ServerStatus::Degraded,
        ServerStatus::Error => ServerStatus::Down,
        other => other,
    };
    if current == ServerStatus::Inactive {
        return current;
    }
    let failures = streak(recent, |r| !ok(r));
    let successes = streak(recent, ok);
    match current {
        ServerStatus::Active | ServerStatus::Degraded if failures >= t.down_after => ServerStatus::Down,
        ServerStatus::Active if failures >= t.degraded_after => ServerStatus::Degraded,
        ServerStatus::Degraded | ServerStatus::Down if successes >= t.recover_after => ServerStatus::Active,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::{Healthy as H, Unhealthy as U};
    use ServerStatus::{Active, Degraded, Down, Inactive};

    const T: Thresholds = Thresholds {
        degraded_after: 1,
        down_after: 3,
        recover_after: 2,
    };

    #[test]
    fn failures_degrade_then_down_and_successes_recover() {
        assert_eq!(next_status(Active, &[H], T), Active);
        assert_eq!(next_status(Active, &[U, H], T), Degraded);
        assert_eq!(next_status(Degraded, &[U, U, H], T), Degraded);
        assert_eq!(next_status(Degraded, &[U, U, U], T), Down);
        assert_eq!(next_status(Down, &[U, U, U, U], T), Down);
        // One success is not enough (hysteresis), two are.
        assert_eq!(next_status(Down, &[H, U, U], T), Down);
        assert_eq!(next_status(Down, &[H, H, U], T), Active);
        assert_eq!(next_status(Degraded, &[H, H], T), Active);
        assert_eq!(next_status(Degraded, &[H, U], T), Degraded);
        // A sudden long outage goes straight to down.
        assert_eq!(next_status(Active, &[U, U, U], T), Down);
    }

    #[test]
    fn inactive_and_older_statuses() {
        assert_eq!(next_status(Inactive, &[U, U, U], T), Inactive);
        assert_eq!(next_status(ServerStatus::Unhealthy, &[H, H], T), Active);
        assert_eq!(next_status(ServerStatus::Error, &[U], T), Down);
        assert_eq!(next_status(ServerStatus::Unhealthy, &[U], T), Degraded);
    }

    #[test]
    fn a_slow_answer_is_not_a_failure() {
        assert_eq!(next_status(Down, &[HealthStatus::Degraded, H], T), Active);
        let strict = Thresholds {
            degraded_after: 2,
            down_after: 2,
            recover_after: 1,
        };
        assert_eq!(next_status(Active, &[U], strict), Active);
        assert_eq!(next_status(Active, &[U, U], strict), Down);
        assert_eq!(next_status(Down, &[H], strict), Active);
        assert_eq!(strict.window(), 2);
        assert_eq!(T.window(), 3);
    }
}
