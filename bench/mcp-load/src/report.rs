//! One run's result: the JSON line (machine-read by `summarize` and `bench/run.sh`) and the human
//! table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in nanoseconds, 1 ns .. 100 s, three significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| round1(ns as f64 / 1000.0);
        Self {
            count: h.len(),
            mean_us: round1(h.mean() / 1000.0),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// CPU and memory of one group of processes (the gateway's tree, or the upstream's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcUsage {
    /// Processes seen in the group (roots and their descendants).
    pub processes: usize,
    /// user + system CPU during the measured window.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per completed operation, in microseconds.
    pub cpu_us_per_op: f64,
    /// Largest summed VmRSS seen, sampled every 250 ms over the whole run.
    pub peak_rss_kib: u64,
}

/// Resident memory around opening many idle sessions (the `many-sessions` scenario).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionMemory {
    pub sessions: usize,
    pub open_seconds: f64,
    pub gateway_rss_before_kib: Option<u64>,
    pub gateway_rss_idle_kib: Option<u64>,
    pub gateway_bytes_per_session: Option<f64>,
    pub upstream_rss_before_kib: Option<u64>,
    pub upstream_rss_idle_kib: Option<u64>,
    pub upstream_bytes_per_session: Option<f64>,
}

/// The result of one run; one JSON line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub url: String,
    pub clients: usize,
    /// What one operation is: `call` or `session` (storm).
    pub unit: String,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Requested rate (latency scenario), operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Operations completed and checked inside the measured window.
    pub ops: u64,
    pub rate: f64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
    /// Errors during warm-up and setup (not in `errors`).
    pub warmup_errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub progress_events: u64,
    pub latency: Latency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<ProcUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<ProcUsage>,
    /// This process: near 1 s of CPU per second means the load generator was the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_generator: Option<ProcUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionMemory>,
    /// `--label key=value` pairs (bench/run.sh: role, target, round).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Report {
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let unit = &self.unit;
        let _ = writeln!(
            t,
            "{} → {}  ({} clients, {:.1} s measured after {:.1} s warm-up)",
            self.scenario, self.url, self.clients, self.duration_s, self.warmup_s
        );
        let target = self
            .target_rate
            .map(|r| format!("   (target {r:.0}/s)"))
            .unwrap_or_default();
        let _ = writeln!(t, "  rate        {:>12} {unit}s/s{target}", thousands(self.rate));
        let l = &self.latency;
        let _ = writeln!(
            t,
            "  latency     p50 {} µs   p99 {} µs   p99.9 {} µs   max {} µs   mean {} µs",
            l.p50_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
        );
        let kinds = if self.error_kinds.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            format!("   ({})", list.join(", "))
        };
        let _ = writeln!(
            t,
            "  errors      {} of {} {unit}s{kinds}; {} during warm-up",
            self.errors,
            self.ops + self.errors,
            self.warmup_errors
        );
        if let Some(e) = &self.first_error {
            let _ = writeln!(t, "  first error {e}");
        }
        if self.progress_events > 0 {
            let _ = writeln!(t, "  progress    {} notifications", self.progress_events);
        }
        for (name, usage) in [
            ("gateway", &self.gateway),
            ("upstream", &self.upstream),
            ("load gen", &self.load_generator),
        ] {
            if let Some(u) = usage {
                let _ = writeln!(
                    t,
                    "  {name:<10}  CPU {:.1} µs/{unit} ({:.0} % of a core)   peak RSS {:.1} MiB   ({} processes)",
                    u.cpu_us_per_op,
                    u.cpu_seconds * 100.0 / self.duration_s.max(1e-9),
                    u.peak_rss_kib as f64 / 1024.0,
                    u.processes
                );
            }
        }
        if let Some(s) = &self.sessions {
            let _ = writeln!(
                t,
                "  sessions    {} opened in {:.2} s",
                s.sessions, s.open_seconds
            );
            for (name, per) in [
                ("gateway", s.gateway_bytes_per_session),
                ("upstream", s.upstream_bytes_per_session),
            ] {
                if let Some(per) = per {
                    let _ = writeln!(t, "  {name:<10}  RSS {per:.0} bytes per idle session");
                }
            }
        }
        t
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `12345.6` → `12,346`.
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = new_histogram().unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1000);
        // Three significant digits: within 0.1 %.
        assert!((l.p50_us - 500.0).abs() <= 0.5, "{l:?}");
        assert!((l.p99_us - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.p999_us - 999.0).abs() <= 1.0, "{l:?}");
        assert!((l.max_us - 1000.0).abs() <= 1.0, "{l:?}");
        assert!((l.mean_us - 500.5).abs() <= 0.6, "{l:?}");
    }

    #[test]
    fn sub_microsecond_and_empty() {
        assert_eq!(
            Latency::from_histogram(&new_histogram().unwrap()),
            Latency::default()
        );
        let mut h = new_histogram().unwrap();
        h.record(12_345).unwrap(); // 12.345 µs
        let l = Latency::from_histogram(&h);
        assert!((l.p50_us - 12.35).abs() <= 0.1, "{l:?}");
    }

    #[test]
    fn json_line_round_trips_and_table_shows_the_figures() {
        let mut r = Report {
            scenario: "throughput".into(),
            url: "http://127.0.0.1:1/mcp".into(),
            clients: 16,
            unit: "call".into(),
            duration_s: 10.0,
            ops: 123_456,
            rate: 12_345.6,
            errors: 2,
            gateway: Some(ProcUsage {
                processes: 1,
                cpu_seconds: 7.8,
                cpu_us_per_op: 63.2,
                peak_rss_kib: 43_008,
            }),
            ..Report::default()
        };
        r.error_kinds.insert("status_502".into(), 2);
        r.labels.insert("role".into(), "subject".into());
        let line = r.json_line();
        assert!(!line.contains('\n'));
        let back: Report = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        let table = r.table();
        assert!(table.contains("12,346 calls/s"), "{table}");
        assert!(table.contains("status_502: 2"), "{table}");
        assert!(
            table.contains("CPU 63.2 µs/call (78 % of a core)   peak RSS 42.0 MiB"),
            "{table}"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-1234.0), "-1,234");
    }
}
