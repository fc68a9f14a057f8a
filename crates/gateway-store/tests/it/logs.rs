use gateway_types::ids::{AggregateId, LogId, OrgId, ServerId};
use gateway_types::model::{Granularity, LogAggregate, LogRecord};
use gateway_types::store::LogQuery;

use crate::harness::{TestDb, at, contract, org};

contract!(
    insert_query_filters_and_cursor,
    delete_before_is_per_organization,
    aggregates_upsert_is_idempotent
);

fn record(
    org: OrgId,
    secs: i64,
    server: Option<ServerId>,
    method: &str,
    name: Option<&str>,
    status: &str,
) -> LogRecord {
    LogRecord {
        id: LogId::new(),
        org_id: org,
        namespace_id: None,
        server_id: server,
        principal_type: Some("api_key".into()),
        principal_id: Some(if secs % 2 == 0 { "even" } else { "odd" }.into()),
        transport: "streamable_http".into(),
        protocol_era: Some("legacy".into()),
        method: method.into(),
        name: name.map(str::to_owned),
        status: status.into(),
        http_status: Some(200),
        error_code: None,
        latency_ms: 12,
        request_bytes: 100,
        response_bytes: 2_000_000_000_000,
        client_ip: Some("10.0.0.1".into()),
        request_id: Some(format!("req-{secs}")),
        trace_id: None,
        body_ref: Some(format!("bodies/{secs}.json")),
        created_at: at(secs),
    }
}

async fn insert_query_filters_and_cursor(db: &TestDb) {
    let s = &db.stores().logs;
    let o = org(db).await;
    let other = org(db).await;
    let srv = ServerId::new();
    let mut records: Vec<LogRecord> = (0..30)
        .map(|i| {
            let name = match i % 3 {
                0 => Some("Read_File"),
                1 => Some("read%file"),
                _ => None,
            };
            record(
                o.id,
                i,
                (i % 5 == 0).then_some(srv),
                if i < 20 { "tools/call" } else { "tools/list" },
                name,
                if i % 7 == 0 { "error" } else { "ok" },
            )
        })
        .collect();
    // Two records in the same instant: the id breaks the tie.
    let mut twin = record(o.id, 15, None, "tools/call", None, "ok");
    twin.id = LogId::new();
    records.push(twin.clone());
    records.push(record(other.id, 3, None, "tools/call", None, "ok"));
    s.insert_batch(&records).await.unwrap();
    s.insert_batch(&[]).await.unwrap();

    let all = s.query(o.id, LogQuery::default(), 100).await.unwrap();
    assert_eq!(all.len(), 31);
    assert!(all.iter().all(|r| r.org_id == o.id));
    assert!(
        all.windows(2)
            .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id)),
        "newest first"
    );
    let stored = all.iter().find(|r| r.id == records[7].id).unwrap();
    assert_eq!(stored, &records[7], "stored exactly");
    assert_eq!(
        s.get(o.id, records[7].id).await.unwrap().as_ref(),
        Some(&records[7]),
        "by id"
    );
    assert!(
        s.get(other.id, records[7].id).await.unwrap().is_none(),
        "another org's record"
    );
    assert!(s.get(o.id, LogId::new()).await.unwrap().is_none());

    let count = |q: LogQuery| async move { s.query(o.id, q, 100).await.unwrap().len() };
    assert_eq!(
        count(LogQuery {
            server_id: Some(srv),
            ..Default::default()
        })
        .await,
        6
    );
    assert_eq!(
        count(LogQuery {
            principal_id: Some("even".into()),
            ..Default::default()
        })
        .await,
        15
    );
    assert_eq!(
        count(LogQuery {
            method: Some("tools/list".into()),
            ..Default::default()
        })
        .await,
        10
    );
    assert_eq!(
        count(LogQuery {
            status: Some("error".into()),
            ..Default::default()
        })
        .await,
        5
    );
    assert_eq!(
        count(LogQuery {
            from: Some(at(10)),
            to: Some(at(20)),
            ..Default::default()
        })
        .await,
        11,
        "[from, to), twin included"
    );
    // Substring match, case-insensitive, with LIKE wildcards taken literally.
    assert_eq!(
        count(LogQuery {
            name_contains: Some("READ".into()),
            ..Default::default()
        })
        .await,
        20
    );
    assert_eq!(
        count(LogQuery {
            name_contains: Some("d_f".into()),
            ..Default::default()
        })
        .await,
        10
    );
    assert_eq!(
        count(LogQuery {
            name_contains: Some("%".into()),
            ..Default::default()
        })
        .await,
        10
    );

    // Walking with the cursor visits every record once, in order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .query(
                o.id,
                LogQuery {
                    before: cursor,
                    ..Default::default()
                },
                7,
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|r| (r.created_at, r.id));
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, all.iter().map(|r| r.id).collect::<Vec<_>>());
}

async fn delete_before_is_per_organization(db: &TestDb) {
    let s = &db.stores().logs;
    let o = org(db).await;
    let other = org(db).await;
    let batch: Vec<_> = (0..10)
        .map(|i| record(o.id, i, None, "m", None, "ok"))
        .chain((0..10).map(|i| record(other.id, i, None, "m", None, "ok")))
        .collect();
    s.insert_batch(&batch).await.unwrap();
    assert_eq!(s.delete_before(o.id, at(4)).await.unwrap(), 4);
    assert_eq!(s.query(o.id, LogQuery::default(), 100).await.unwrap().len(), 6);
    assert_eq!(
        s.query(other.id, LogQuery::default(), 100).await.unwrap().len(),
        10
    );

    // A large batch goes in as one.
    let big: Vec<_> = (0..1200)
        .map(|i| record(o.id, 100 + i, None, "m", None, "ok"))
        .collect();
    s.insert_batch(&big).await.unwrap();
    assert_eq!(
        s.query(o.id, LogQuery::default(), 5000).await.unwrap().len(),
        1206
    );
    // A batch with a duplicate id fails as a whole.
    let dup = vec![record(o.id, 5000, None, "m", None, "ok"), big[0].clone()];
    assert!(s.insert_batch(&dup).await.is_err());
    assert_eq!(
        s.query(
            o.id,
            LogQuery {
                from: Some(at(5000)),
                ..Default::default()
            },
            10
        )
        .await
        .unwrap(),
        vec![]
    );
}

fn aggregate(org: OrgId, hour: i64, dimension: &str, key: &str, requests: i64) -> LogAggregate {
    LogAggregate {
        id: AggregateId::new(),
        org_id: org,
        granularity: Granularity::Hour,
        bucket_start: at(hour * 3600),
        dimension: dimension.into(),
        dimension_key: key.into(),
        request_count: requests,
        error_count: 1,
        total_latency_ms: requests * 10,
        p50_ms: Some(8),
        p95_ms: Some(20),
        p99_ms: None,
        request_bytes: 10,
        response_bytes: 20,
        updated_at: at(hour * 3600 + 60),
    }
}

async fn aggregates_upsert_is_idempotent(db: &TestDb) {
    let s = &db.stores().logs;
    let o = org(db).await;
    let other = org(db).await;
    let first = vec![
        aggregate(o.id, 1, "total", "", 10),
        aggregate(o.id, 0, "tool", "read", 4),
        aggregate(o.id, 0, "server", "b", 3),
        aggregate(o.id, 0, "server", "a", 2),
        aggregate(other.id, 0, "total", "", 99),
    ];
    s.upsert_aggregates(&first).await.unwrap();
    s.upsert_aggregates(&first).await.unwrap();
    s.upsert_aggregates(&[]).await.unwrap();
    let got = s
        .aggregates(o.id, Granularity::Hour, at(0), at(7200))
        .await
        .unwrap();
    let keys: Vec<_> = got
        .iter()
        .map(|a| (a.bucket_start, a.dimension.as_str(), a.dimension_key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (at(0), "server", "a"),
            (at(0), "server", "b"),
            (at(0), "tool", "read"),
            (at(3600), "total", "")
        ],
        "ordered by bucket, dimension, key; upserting twice adds no rows"
    );
    assert_eq!(got[0], first[3], "stored exactly");

    // A recomputation replaces the counters (it does not add to them) and keeps the row's id.
    let mut again = aggregate(o.id, 0, "server", "a", 7);
    again.p99_ms = Some(50);
    s.upsert_aggregates(&[again.clone()]).await.unwrap();
    let got = s
        .aggregates(o.id, Granularity::Hour, at(0), at(3600))
        .await
        .unwrap();
    assert_eq!(got.len(), 3, "[from, to)");
    assert_eq!(
        (got[0].request_count, got[0].p99_ms, got[0].id),
        (7, Some(50), first[3].id)
    );
    assert_eq!(
        s.aggregates(o.id, Granularity::Day, at(0), at(7200))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        s.aggregates(other.id, Granularity::Hour, at(0), at(7200))
            .await
            .unwrap()
            .len(),
        1
    );
}
