//! The JSON error envelope, request ids, security headers and body limits on the real server.

use gateway_e2e::TestApp;
use serde_json::Value;

async fn envelope(res: reqwest::Response) -> Value {
    assert_eq!(res.headers()["content-type"], "application/json");
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], id.as_str());
    body
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = TestApp::spawn().await;
    let res = app.get("/no/such/route").await;
    assert_eq!(res.status(), 404);
    let body = envelope(res).await;
    insta::assert_json_snapshot!(body, { ".error.request_id" => "[request_id]" });

    let res = app.get("/ui/").await;
    assert_eq!(res.status(), 404, "the dashboard is not served yet");
    envelope(res).await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let res = app.client.post(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    let body = envelope(res).await;
    insta::assert_json_snapshot!(body, { ".error.request_id" => "[request_id]" });
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = TestApp::builder()
        .env("GATEWAY__SERVER__MAX_BODY_BYTES", "1024")
        .spawn()
        .await;
    let res = app
        .client
        .post(app.url("/health"))
        .header("content-type", "application/json")
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body = envelope(res).await;
    insta::assert_json_snapshot!(body, { ".error.request_id" => "[request_id]" });
}

#[tokio::test]
async fn request_ids_on_every_response() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/health/live", "/metrics", "/", "/nope"] {
        let res = app.get(path).await;
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid_like(id), "{path}: {id}");
    }

    let res = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "lb-7f3a.trace_01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "lb-7f3a.trace_01");

    let long = "a".repeat(129);
    for hostile in ["abc def", "../../etc/passwd", "x\"}{\"injected", long.as_str()] {
        let res = app
            .client
            .get(app.url("/nope"))
            .header("x-request-id", hostile)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid_like(&id), "{hostile:?} was replaced, got {id}");
        let body = envelope(res).await;
        assert!(!body.to_string().contains(hostile));
    }
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test]
async fn security_headers_on_success_and_error() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/nope"] {
        let res = app.get(path).await;
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'"),
            "{path}"
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "plain HTTP never claims HSTS"
        );
    }
}
