//! Every scenario, briefly, against an in-process `mcp-echo`: the load generator's client and
//! checks agree with a real server, and nothing errs.
#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_load::client::Target;
use mcp_load::report::Report;
use mcp_load::sampler::Group;
use mcp_load::scenario::{self, Kind, Plan};

async fn echo(opts: mcp_echo::Options) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mcp_echo::http::serve(listener, opts, std::future::pending()));
    format!("http://{addr}/mcp")
}

fn plan(kind: Kind, clients: usize) -> Plan {
    Plan {
        kind,
        clients,
        warmup: Duration::from_millis(50),
        duration: Duration::from_millis(250),
        text_bytes: 40,
        gateway: Group {
            roots: vec![std::process::id()],
            exclude_comm: vec![],
        },
        upstream: Group {
            roots: vec![],
            exclude_comm: vec![],
        },
        clk_tck: 100,
        labels: BTreeMap::from([("role".to_owned(), "baseline".to_owned())]),
    }
}

async fn run(url: &str, stateless: bool, plan: Plan) -> Report {
    let target = Target::new(url, &["X-Bench: 1".into()], stateless, Duration::from_secs(5)).unwrap();
    let report = scenario::run(target, plan).await.unwrap();
    assert!(report.ops > 0, "{}", report.table());
    assert_eq!(report.errors, 0, "{}", report.table());
    assert_eq!(report.warmup_errors, 0, "{}", report.table());
    assert!(report.latency.p50_us > 0.0);
    report
}

#[tokio::test]
async fn throughput_storm_and_latency() {
    let url = echo(mcp_echo::Options::default()).await;
    let r = run(&url, false, plan(Kind::Throughput, 4)).await;
    let gw = r.gateway.as_ref().unwrap();
    assert!(gw.processes >= 1 && gw.peak_rss_kib > 0, "{gw:?}");
    assert!(r.upstream.is_none());
    assert_eq!(r.labels["role"], "baseline");

    let r = run(&url, false, plan(Kind::Storm, 2)).await;
    assert_eq!(r.unit, "session");

    let r = run(&url, false, plan(Kind::Latency { rate: 200.0 }, 2)).await;
    // 200/s for 0.25 s: about 50 calls, whatever the machine's speed.
    assert!((40..=60).contains(&r.ops), "{}", r.table());
}

#[tokio::test]
async fn streaming_stateless_and_many_sessions() {
    let url = echo(mcp_echo::Options {
        stateless: true,
        sse_progress: Some(3),
        delay: Duration::ZERO,
    })
    .await;
    let r = run(&url, false, plan(Kind::Streaming { expect_progress: 3 }, 2)).await;
    assert_eq!(r.progress_events, 3 * r.ops);
    let r = run(&url, true, plan(Kind::Streaming { expect_progress: 3 }, 2)).await;
    assert_eq!(r.progress_events, 3 * r.ops);

    let r = run(
        &url,
        false,
        plan(
            Kind::ManySessions {
                sessions: 30,
                idle: Duration::from_millis(50),
            },
            3,
        ),
    )
    .await;
    let s = r.sessions.unwrap();
    assert_eq!(s.sessions, 30);
    assert!(s.gateway_bytes_per_session.is_some());
}

#[tokio::test]
async fn a_wrong_progress_count_is_an_error() {
    let url = echo(mcp_echo::Options {
        sse_progress: Some(2),
        ..mcp_echo::Options::default()
    })
    .await;
    let target = Target::new(&url, &[], false, Duration::from_secs(5)).unwrap();
    let report = scenario::run(target, plan(Kind::Streaming { expect_progress: 3 }, 1))
        .await
        .unwrap();
    assert_eq!(report.ops, 0);
    assert!(report.errors > 0);
    assert!(report.error_kinds.contains_key("invalid_answer"), "{report:?}");
}
