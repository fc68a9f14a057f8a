//! `mcp-load summarize`: turns the JSON lines of paired runs into the per-scenario table of
//! `BENCHMARKS.md` — the median of the per-pair ratios (subject / baseline) with min..max, the
//! subject's CPU per operation and peak RSS, both latencies and the latency added.
//!
//! Runs are paired through their labels: `role` = `baseline` or `subject`, `round` = the pair,
//! `target` = the name shown (e.g. `direct`, `gateway`); a `scenario` label, when present, names
//! the scenario in place of the load's own (the stdio comparison is a `throughput` load).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{ProcUsage, Report, thousands};

/// Median of a non-empty slice (mean of the middle two for even lengths); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn label<'r>(r: &'r Report, key: &str) -> &'r str {
    r.labels.get(key).map_or("", String::as_str)
}

fn scenario_of(r: &Report) -> &str {
    r.labels.get("scenario").unwrap_or(&r.scenario)
}

/// The summary text. `skipped` explains a missing subject (e.g. the gateway endpoint is absent).
pub fn summarize(records: &[Report], skipped: Option<&str>) -> String {
    // Scenarios in order of first appearance.
    let mut order: Vec<&str> = Vec::new();
    for r in records {
        if !order.contains(&scenario_of(r)) {
            order.push(scenario_of(r));
        }
    }
    let mut out = String::new();
    for scenario in order {
        let runs: Vec<&Report> = records.iter().filter(|r| scenario_of(r) == scenario).collect();
        let base: Vec<&Report> = runs
            .iter()
            .copied()
            .filter(|r| label(r, "role") != "subject")
            .collect();
        let subj: Vec<&Report> = runs
            .iter()
            .copied()
            .filter(|r| label(r, "role") == "subject")
            .collect();
        let first = runs[0];
        let unit = &first.unit;
        let _ = writeln!(
            out,
            "\n== {scenario}: {} clients{}, {:.0} s per run, {} run(s)",
            first.clients,
            first
                .target_rate
                .map(|r| format!(" at {r:.0} {unit}s/s"))
                .unwrap_or_default(),
            first.duration_s,
            runs.len()
        );
        let name = |rs: &[&Report], default: &str| {
            rs.first()
                .map(|r| label(r, "target"))
                .filter(|n| !n.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        let base_name = name(&base, "baseline");
        let subj_name = name(&subj, "subject");
        for (who, rs) in [(&base_name, &base), (&subj_name, &subj)] {
            if rs.is_empty() {
                continue;
            }
            let rates: Vec<f64> = rs.iter().map(|r| r.rate).collect();
            let (lo, hi) = min_max(&rates);
            let p50 = median(&rs.iter().map(|r| r.latency.p50_us).collect::<Vec<_>>());
            let p99 = median(&rs.iter().map(|r| r.latency.p99_us).collect::<Vec<_>>());
            let errors: u64 = rs.iter().map(|r| r.errors).sum();
            let ops: u64 = rs.iter().map(|r| r.ops).sum();
            let _ = writeln!(
                out,
                "  {who:<14} {:>9} {unit}s/s median ({}..{})   p50 {p50:.1} µs   p99 {p99:.1} µs   errors {errors}/{}",
                thousands(median(&rates)),
                thousands(lo),
                thousands(hi),
                ops + errors
            );
            for (group, pick) in [("gateway", 0), ("upstream", 1), ("load gen", 2)] {
                let usage: Vec<(&ProcUsage, f64)> = rs
                    .iter()
                    .filter_map(|r| {
                        let u = match pick {
                            0 => r.gateway.as_ref(),
                            1 => r.upstream.as_ref(),
                            _ => r.load_generator.as_ref(),
                        }?;
                        Some((u, r.duration_s))
                    })
                    .collect();
                if usage.is_empty() {
                    continue;
                }
                let cpu = median(&usage.iter().map(|(u, _)| u.cpu_us_per_op).collect::<Vec<_>>());
                let share = median(
                    &usage
                        .iter()
                        .map(|(u, d)| u.cpu_seconds * 100.0 / d.max(1e-9))
                        .collect::<Vec<_>>(),
                );
                let rss = usage.iter().map(|(u, _)| u.peak_rss_kib).max().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "  {:<14}   {group} CPU {cpu:.1} µs/{unit} ({share:.0} % of a core, medians)   peak RSS {:.1} MiB",
                    "",
                    rss as f64 / 1024.0
                );
            }
            // The largest growth: a later run reuses memory the process freed after an earlier one,
            // so only the first run against a process shows the sessions' full cost.
            let per_session = |f: fn(&crate::report::SessionMemory) -> Option<f64>| {
                rs.iter()
                    .filter_map(|r| r.sessions.as_ref().and_then(f))
                    .fold(f64::NAN, f64::max)
            };
            let gw = per_session(|s| s.gateway_bytes_per_session);
            let up = per_session(|s| s.upstream_bytes_per_session);
            if !gw.is_nan() || !up.is_nan() {
                let mut parts = Vec::new();
                if !gw.is_nan() {
                    parts.push(format!("gateway {gw:.0} B"));
                }
                if !up.is_nan() {
                    parts.push(format!("upstream {up:.0} B"));
                }
                let _ = writeln!(
                    out,
                    "  {:<14}   RSS growth per idle session (max over runs): {}",
                    "",
                    parts.join(", ")
                );
            }
        }
        if subj.is_empty() {
            let _ = writeln!(
                out,
                "  {:<14} skipped: {}",
                "gateway",
                skipped.unwrap_or("no subject runs")
            );
            continue;
        }
        // Pairs: same round.
        let mut pairs: BTreeMap<&str, (Option<&Report>, Option<&Report>)> = BTreeMap::new();
        for r in &base {
            pairs.entry(label(r, "round")).or_default().0 = Some(r);
        }
        for r in &subj {
            pairs.entry(label(r, "round")).or_default().1 = Some(r);
        }
        let mut ratios = Vec::new();
        let mut added50 = Vec::new();
        let mut added99 = Vec::new();
        for (b, s) in pairs.values().filter_map(|(b, s)| Some(((*b)?, (*s)?))) {
            if b.rate > 0.0 {
                ratios.push(s.rate / b.rate);
            }
            added50.push(s.latency.p50_us - b.latency.p50_us);
            added99.push(s.latency.p99_us - b.latency.p99_us);
        }
        if ratios.is_empty() {
            let _ = writeln!(out, "  no complete pair");
            continue;
        }
        let (lo, hi) = min_max(&ratios);
        let _ = writeln!(
            out,
            "  ratio {subj_name}/{base_name}: {:.3} median ({lo:.3}..{hi:.3}, {} pairs)",
            median(&ratios),
            ratios.len()
        );
        let _ = writeln!(
            out,
            "  added latency: p50 {:+.1} µs   p99 {:+.1} µs (median of pairs)",
            median(&added50),
            median(&added99)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Latency;

    fn run(role: &str, target: &str, round: &str, rate: f64, p50: f64) -> Report {
        let mut r = Report {
            scenario: "throughput".into(),
            clients: 16,
            unit: "call".into(),
            duration_s: 10.0,
            ops: (rate * 10.0) as u64,
            rate,
            latency: Latency {
                p50_us: p50,
                p99_us: p50 * 2.0,
                ..Latency::default()
            },
            ..Report::default()
        };
        for (k, v) in [("role", role), ("target", target), ("round", round)] {
            r.labels.insert(k.into(), v.into());
        }
        r
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn pairs_give_the_median_ratio_with_its_range() {
        let mut records = Vec::new();
        for (round, direct, gw) in [
            ("1", 10_000.0, 4_000.0),
            ("2", 12_000.0, 4_200.0),
            ("3", 9_000.0, 4_050.0),
        ] {
            records.push(run("baseline", "direct", round, direct, 50.0));
            let mut g = run("subject", "gateway", round, gw, 120.0);
            g.gateway = Some(ProcUsage {
                processes: 1,
                cpu_seconds: 2.0,
                cpu_us_per_op: 50.0,
                peak_rss_kib: 20_480,
            });
            g.sessions = Some(crate::report::SessionMemory {
                gateway_bytes_per_session: Some(if round == "1" { 300.0 } else { 100.0 }),
                ..crate::report::SessionMemory::default()
            });
            records.push(g);
        }
        let text = summarize(&records, None);
        // Ratios 0.4, 0.35, 0.45 → median 0.400, range 0.350..0.450.
        assert!(
            text.contains("ratio gateway/direct: 0.400 median (0.350..0.450, 3 pairs)"),
            "{text}"
        );
        assert!(
            text.contains("added latency: p50 +70.0 µs   p99 +140.0 µs"),
            "{text}"
        );
        assert!(
            text.contains("gateway CPU 50.0 µs/call (20 % of a core, medians)   peak RSS 20.0 MiB"),
            "{text}"
        );
        assert!(text.contains("10,000 calls/s median (9,000..12,000)"), "{text}");
        assert!(
            text.contains("RSS growth per idle session (max over runs): gateway 300 B"),
            "{text}"
        );
    }

    #[test]
    fn a_scenario_label_names_the_scenario() {
        let mut a = run("baseline", "gateway-http", "1", 5_000.0, 90.0);
        let mut b = run("subject", "gateway-stdio", "1", 4_000.0, 110.0);
        for r in [&mut a, &mut b] {
            r.labels.insert("scenario".into(), "stdio".into());
        }
        let text = summarize(&[run("baseline", "direct", "1", 9_000.0, 50.0), a, b], Some("x"));
        assert!(text.contains("== stdio: "), "{text}");
        assert!(text.contains("ratio gateway-stdio/gateway-http: 0.800"), "{text}");
        assert!(text.contains("skipped: x"), "{text}");
    }

    #[test]
    fn baseline_only_says_why_the_subject_is_missing() {
        let records = vec![run("baseline", "direct", "1", 10_000.0, 50.0)];
        let text = summarize(&records, Some("the gateway has no MCP endpoint yet"));
        assert!(text.contains("direct"), "{text}");
        assert!(
            text.contains("skipped: the gateway has no MCP endpoint yet"),
            "{text}"
        );
        assert!(!text.contains("ratio"), "{text}");
    }
}
