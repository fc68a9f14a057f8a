//! CORS from `server.cors`.

use gateway_e2e::TestApp;
use reqwest::Method;

fn preflight(app: &TestApp, origin: &str) -> reqwest::RequestBuilder {
    app.client
        .request(Method::OPTIONS, app.url("/health"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
}

#[tokio::test]
async fn configured_origins_are_allowed_exactly() {
    let app = TestApp::builder()
        .env(
            "GATEWAY__SERVER__CORS__ALLOWED_ORIGINS",
            "https://app.example.com,https://admin.example.com",
        )
        .spawn()
        .await;

    let res = preflight(&app, "https://admin.example.com").send().await.unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://admin.example.com");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["vary"], "Origin");
    assert!(h.get("access-control-allow-credentials").is_none());

    let res = preflight(&app, "https://evil.example.com").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");

    let res = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(res.headers()["vary"], "Origin");
}

#[tokio::test]
async fn no_origins_means_no_cors_headers() {
    let app = TestApp::spawn().await;
    let res = preflight(&app, "https://app.example.com").send().await.unwrap();
    assert_ne!(res.status(), 204);
    assert!(
        res.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        res.headers()
    );
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(res.headers().get("vary").is_none());
}
