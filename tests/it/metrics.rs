//! `GET /metrics`.

use gateway_e2e::TestApp;
use serde_json::Value;

#[tokio::test]
async fn prometheus_text_with_route_pattern_labels() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    assert_eq!(app.get("/no/such/path/12345").await.status(), 404);

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"gateway_http_requests_total{method="GET",route="/health/live",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gateway_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"gateway_http_request_duration_seconds_bucket{method="GET",route="/health/live",le="0.005"}"#
        ),
        "histograms have buckets: {text}"
    );
    assert!(!text.contains("12345"), "raw paths never become labels");
    assert!(text.contains("# TYPE gateway_http_requests_total counter"));
}

#[tokio::test]
async fn disabled_metrics_are_not_found() {
    let app = TestApp::builder()
        .env("GATEWAY__METRICS__ENABLED", "false")
        .spawn()
        .await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
