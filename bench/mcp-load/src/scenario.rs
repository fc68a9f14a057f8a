//! The scenarios of `BENCHMARKS.md`, run by virtual clients on one thread.
//!
//! Timeline: setup (many-sessions only) → warm-up → measured window → clean-up (sessions are
//! deleted, not measured). An operation counts when it *starts* inside the measured window (for
//! `latency`: its intended send time), so slow answers at the end are not dropped; clients start
//! nothing after the window. CPU is read at the window's edges, memory every 250 ms.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::LocalSet;
use tokio::time::sleep_until;

use crate::client::{CallError, Client, Session, Target};
use crate::report::{self, Latency, ProcUsage, Report, SessionMemory};
use crate::sampler::{Group, Snapshot};

/// Memory sampling period.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Pause after a failed exchange, so a dead target is not hammered in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(5);

/// Which scenario, with its own parameters.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Closed loop `tools/call` on one session per client.
    Throughput,
    /// Fixed total rate (calls/s) spread over the clients, latency from the intended send time.
    Latency { rate: f64 },
    /// Clients loop initialize → initialized → call → DELETE.
    Storm,
    /// Closed loop with a progress token; every answer must carry this many progress
    /// notifications.
    Streaming { expect_progress: u32 },
    /// Open `sessions` sessions, wait `idle`, then closed-loop calls spread over all of them.
    ManySessions { sessions: usize, idle: Duration },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::Latency { .. } => "latency",
            Self::Storm => "storm",
            Self::Streaming { .. } => "streaming",
            Self::ManySessions { .. } => "many-sessions",
        }
    }

    /// The clients of BENCHMARKS.md when none are given.
    pub fn default_clients(&self) -> usize {
        match self {
            Self::Latency { .. } => 4,
            Self::Storm => 8,
            _ => 16,
        }
    }
}

/// Everything a run needs besides the target.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Length of each echoed text.
    pub text_bytes: usize,
    /// The gateway's process tree (may be empty).
    pub gateway: Group,
    /// The upstream's process tree (may be empty).
    pub upstream: Group,
    /// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`).
    pub clk_tck: u64,
    pub labels: BTreeMap<String, String>,
}

struct Stats {
    hist: Histogram<u64>,
    ops: u64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    warmup_errors: u64,
    first_error: Option<String>,
    progress: u64,
}

struct Shared {
    target: Target,
    text_bytes: usize,
    measure_start: Instant,
    end: Instant,
    stats: RefCell<Stats>,
}

impl Shared {
    fn in_window(&self, start: Instant) -> bool {
        start >= self.measure_start && start < self.end
    }

    fn ok(&self, start: Instant, progress: u32) {
        self.ok_since(start, start, progress);
    }

    /// An operation counted by `start` (window membership) and timed from `since`.
    fn ok_since(&self, start: Instant, since: Instant, progress: u32) {
        if !self.in_window(start) {
            return;
        }
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut s = self.stats.borrow_mut();
        s.hist.saturating_record(nanos.max(1));
        s.ops += 1;
        s.progress += u64::from(progress);
    }

    fn error(&self, start: Instant, err: &CallError) {
        let mut s = self.stats.borrow_mut();
        if s.first_error.is_none() {
            s.first_error = Some(err.to_string());
        }
        if self.in_window(start) {
            s.errors += 1;
            *s.error_kinds.entry(err.kind()).or_default() += 1;
        } else {
            s.warmup_errors += 1;
        }
    }

    fn text(&self, tag: usize, seq: u64, buf: &mut String) {
        use std::fmt::Write as _;
        buf.clear();
        let _ = write!(buf, "c{tag}-{seq}-");
        while buf.len() < self.text_bytes {
            buf.push('x');
        }
    }
}

/// Runs one scenario against `target` and reports it.
pub async fn run(target: Target, plan: Plan) -> Result<Report, String> {
    if target.stateless && matches!(plan.kind, Kind::Storm | Kind::ManySessions { .. }) {
        return Err(format!("{} needs sessions: drop --stateless", plan.kind.name()));
    }
    if let Kind::Latency { rate } = plan.kind
        && !(rate > 0.0 && rate.is_finite())
    {
        return Err("--rate must be positive".into());
    }
    let clients = plan.clients.max(1);
    let hist = report::new_histogram().map_err(|e| format!("histogram: {e}"))?;
    let local = LocalSet::new();
    local.run_until(run_local(target, plan, clients, hist)).await
}

async fn run_local(
    target: Target,
    plan: Plan,
    clients: usize,
    hist: Histogram<u64>,
) -> Result<Report, String> {
    // The gateway, the upstream, and this load generator itself (to show it is not the limit).
    let this = Group {
        roots: vec![std::process::id()],
        exclude_comm: Vec::new(),
    };
    let groups = [plan.gateway.clone(), plan.upstream.clone(), this];
    let peaks = Rc::new(RefCell::new([0u64; 3]));
    let sample = {
        let peaks = Rc::clone(&peaks);
        let groups = groups.clone();
        move || -> [Snapshot; 3] {
            let snaps = groups.clone().map(|g| {
                if g.is_empty() {
                    Snapshot::default()
                } else {
                    g.snapshot()
                }
            });
            let mut p = peaks.borrow_mut();
            for (peak, snap) in p.iter_mut().zip(&snaps) {
                *peak = (*peak).max(snap.rss_kib);
            }
            snaps
        }
    };
    // Memory is sampled from the very start until the clients are done.
    let done = Rc::new(std::cell::Cell::new(false));
    let sampler = {
        let sample = sample.clone();
        let done = Rc::clone(&done);
        tokio::task::spawn_local(async move {
            while !done.get() {
                sample();
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        })
    };

    // many-sessions: open the sessions first and measure the memory they hold while idle.
    let mut session_memory = None;
    let mut pools: Vec<Vec<Session>> = vec![Vec::new(); clients];
    let mut setup_errors = 0;
    let target = Rc::new(target);
    if let Kind::ManySessions { sessions, idle } = plan.kind {
        // Warm the path first (connections, allocator) so the baseline is not a cold process.
        for_each_client(clients, |tag| {
            let target = Rc::clone(&target);
            async move {
                let mut c = Client::new();
                if let Ok(s) = c.open_session(&target).await {
                    for i in 0..10 {
                        let _ = c
                            .call_echo(&target, Some(&s), &format!("warm-{tag}-{i}"), None, tag)
                            .await;
                    }
                    let _ = c.close_session(&target, &s).await;
                }
            }
        })
        .await;
        tokio::time::sleep(idle.min(Duration::from_secs(1))).await;
        let before = sample();
        let opened_at = Instant::now();
        let opened = for_each_client(clients, |tag| {
            let target = Rc::clone(&target);
            let mine = sessions / clients + usize::from(tag < sessions % clients);
            async move {
                let mut c = Client::new();
                let mut list = Vec::with_capacity(mine);
                let mut errors = 0u64;
                let mut first = None;
                while list.len() < mine {
                    match c.open_session(&target).await {
                        Ok(s) => list.push(s),
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert_with(|| e.to_string());
                            if errors > 100 {
                                break;
                            }
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                }
                (list, errors, first)
            }
        })
        .await;
        let open_seconds = opened_at.elapsed().as_secs_f64();
        let mut first_error = None;
        for (tag, (list, errors, first)) in opened.into_iter().enumerate() {
            pools[tag] = list;
            setup_errors += errors;
            if first_error.is_none() {
                first_error = first;
            }
        }
        let count: usize = pools.iter().map(Vec::len).sum();
        if count == 0 {
            done.set(true);
            return Err(format!(
                "could not open any session: {}",
                first_error.unwrap_or_default()
            ));
        }
        tokio::time::sleep(idle).await;
        let idle_snap = sample();
        let per = |i: usize| {
            (!groups[i].is_empty())
                .then(|| (idle_snap[i].rss_kib as f64 - before[i].rss_kib as f64) * 1024.0 / count as f64)
        };
        let rss = |snap: &[Snapshot; 3], i: usize| (!groups[i].is_empty()).then_some(snap[i].rss_kib);
        session_memory = Some(SessionMemory {
            sessions: count,
            open_seconds: (open_seconds * 1000.0).round() / 1000.0,
            gateway_rss_before_kib: rss(&before, 0),
            gateway_rss_idle_kib: rss(&idle_snap, 0),
            gateway_bytes_per_session: per(0).map(report::round1),
            upstream_rss_before_kib: rss(&before, 1),
            upstream_rss_idle_kib: rss(&idle_snap, 1),
            upstream_bytes_per_session: per(1).map(report::round1),
        });
    }

    let t0 = Instant::now();
    let measure_start = t0 + plan.warmup;
    let end = measure_start + plan.duration;
    let target = Rc::try_unwrap(target).map_err(|_| "target still shared".to_owned())?;
    let shared = Rc::new(Shared {
        target,
        text_bytes: plan.text_bytes,
        measure_start,
        end,
        stats: RefCell::new(Stats {
            hist,
            ops: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            warmup_errors: setup_errors,
            first_error: None,
            progress: 0,
        }),
    });

    let mut handles = Vec::with_capacity(clients);
    for (tag, pool) in pools.into_iter().enumerate() {
        let shared = Rc::clone(&shared);
        let kind = plan.kind.clone();
        handles.push(tokio::task::spawn_local(async move {
            match kind {
                Kind::Throughput => closed_loop(&shared, tag, None, pool).await,
                Kind::Streaming { expect_progress } => {
                    closed_loop(&shared, tag, Some(expect_progress), pool).await;
                }
                Kind::ManySessions { .. } => closed_loop(&shared, tag, None, pool).await,
                Kind::Storm => storm(&shared, tag).await,
                Kind::Latency { rate } => {
                    let interval = Duration::from_secs_f64(clients as f64 / rate);
                    // Clients are staggered evenly over one interval.
                    let offset = interval.mul_f64(tag as f64 / clients as f64);
                    paced(&shared, tag, t0 + offset, interval).await;
                }
            }
        }));
    }

    sleep_until(measure_start.into()).await;
    let cpu_start = sample();
    sleep_until(end.into()).await;
    let cpu_end = sample();
    for h in handles {
        let _ = h.await;
    }
    done.set(true);
    let _ = sampler.await;
    sample();

    let shared = Rc::try_unwrap(shared).map_err(|_| "clients still running".to_owned())?;
    let stats = shared.stats.into_inner();
    let seconds = plan.duration.as_secs_f64();
    let peaks = *peaks.borrow();
    let usage = |i: usize| {
        (!groups[i].is_empty()).then(|| {
            let cpu = cpu_end[i].ticks.saturating_sub(cpu_start[i].ticks) as f64 / plan.clk_tck.max(1) as f64;
            ProcUsage {
                processes: cpu_end[i].processes,
                cpu_seconds: (cpu * 1000.0).round() / 1000.0,
                cpu_us_per_op: if stats.ops == 0 {
                    0.0
                } else {
                    report::round1(cpu * 1e6 / stats.ops as f64)
                },
                peak_rss_kib: peaks[i],
            }
        })
    };
    Ok(Report {
        scenario: plan.kind.name().to_owned(),
        url: shared.target.url.clone(),
        clients,
        unit: if matches!(plan.kind, Kind::Storm) {
            "session".into()
        } else {
            "call".into()
        },
        warmup_s: plan.warmup.as_secs_f64(),
        duration_s: seconds,
        target_rate: match plan.kind {
            Kind::Latency { rate } => Some(rate),
            _ => None,
        },
        ops: stats.ops,
        rate: report::round1(stats.ops as f64 / seconds.max(1e-9)),
        errors: stats.errors,
        error_kinds: stats.error_kinds,
        warmup_errors: stats.warmup_errors,
        first_error: stats.first_error,
        progress_events: stats.progress,
        latency: Latency::from_histogram(&stats.hist),
        gateway: usage(0),
        upstream: usage(1),
        load_generator: usage(2),
        sessions: session_memory,
        labels: plan.labels,
    })
}

/// Runs one future per client tag on this thread and collects their outputs in tag order.
async fn for_each_client<F, Fut, T>(clients: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    let handles: Vec<_> = (0..clients).map(|tag| tokio::task::spawn_local(f(tag))).collect();
    let mut out = Vec::with_capacity(clients);
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Opens a session when the target needs one and none is open.
async fn ensure_session(
    shared: &Shared,
    client: &mut Client,
    session: &mut Option<Session>,
) -> Result<(), CallError> {
    if shared.target.stateless || session.is_some() {
        return Ok(());
    }
    *session = Some(client.open_session(&shared.target).await?);
    Ok(())
}

async fn after_error(err: &CallError, client: &mut Client, session: Option<&mut Option<Session>>) {
    if err.loses_session()
        && let Some(s) = session
    {
        *s = None;
    }
    if err.breaks_connection() {
        client.reset();
    }
    tokio::time::sleep(ERROR_PAUSE).await;
}

/// Closed loop on one session (or, with `pool`, round-robin over the pool's sessions).
async fn closed_loop(shared: &Shared, tag: usize, progress: Option<u32>, pool: Vec<Session>) {
    let mut client = Client::new();
    let mut pool: Vec<Option<Session>> = pool.into_iter().map(Some).collect();
    if pool.is_empty() {
        pool.push(None);
    }
    let mut text = String::with_capacity(shared.text_bytes + 16);
    let mut seq = 0u64;
    let mut slot = 0;
    while Instant::now() < shared.end {
        let len = pool.len();
        let session = &mut pool[slot];
        slot = (slot + 1) % len;
        let start = Instant::now();
        if let Err(e) = ensure_session(shared, &mut client, session).await {
            shared.error(start, &e);
            after_error(&e, &mut client, Some(session)).await;
            continue;
        }
        shared.text(tag, seq, &mut text);
        seq += 1;
        let start = Instant::now();
        match client
            .call_echo(&shared.target, session.as_ref(), &text, progress, tag)
            .await
        {
            Ok(p) => shared.ok(start, p),
            Err(e) => {
                shared.error(start, &e);
                after_error(&e, &mut client, Some(session)).await;
            }
        }
    }
    for s in pool.iter().flatten() {
        let _ = client.close_session(&shared.target, s).await;
    }
}

/// initialize → initialized → call → DELETE, timed as one operation.
async fn storm(shared: &Shared, tag: usize) {
    let mut client = Client::new();
    let mut text = String::with_capacity(shared.text_bytes + 16);
    let mut seq = 0u64;
    while Instant::now() < shared.end {
        let start = Instant::now();
        shared.text(tag, seq, &mut text);
        seq += 1;
        let cycle = async {
            let session = client.open_session(&shared.target).await?;
            client
                .call_echo(&shared.target, Some(&session), &text, None, tag)
                .await?;
            client.close_session(&shared.target, &session).await
        };
        match cycle.await {
            Ok(()) => shared.ok(start, 0),
            Err(e) => {
                shared.error(start, &e);
                after_error(&e, &mut client, None).await;
            }
        }
    }
}

/// Fixed-rate sending without coordinated omission: when the previous call was still running at
/// the intended send time (the system under test fell behind), latency runs from the intended
/// time. Otherwise it runs from the actual send: tokio's timer wakes up to a millisecond late, and
/// that lateness is the load generator's, not the system's.
async fn paced(shared: &Shared, tag: usize, first: Instant, interval: Duration) {
    let mut client = Client::new();
    let mut session = None;
    let mut text = String::with_capacity(shared.text_bytes + 16);
    let mut seq = 0u64;
    let mut intended = first;
    while intended < shared.end {
        let behind = Instant::now() > intended;
        sleep_until(intended.into()).await;
        let sent = if behind { intended } else { Instant::now() };
        let result = async {
            ensure_session(shared, &mut client, &mut session).await?;
            shared.text(tag, seq, &mut text);
            client
                .call_echo(&shared.target, session.as_ref(), &text, None, tag)
                .await
        }
        .await;
        seq += 1;
        match result {
            Ok(p) => shared.ok_since(intended, sent, p),
            Err(e) => {
                shared.error(intended, &e);
                after_error(&e, &mut client, Some(&mut session)).await;
            }
        }
        intended += interval;
    }
    if let Some(s) = &session {
        let _ = client.close_session(&shared.target, s).await;
    }
}
