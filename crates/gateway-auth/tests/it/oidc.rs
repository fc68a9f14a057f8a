//! External identity providers, against a real HTTP server standing in for the IdP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use gateway_auth::AuthError;
use gateway_auth::jwt::JwtKeys;
use gateway_auth::oidc::{HttpJwksFetcher, OidcVerifier, OrgResolver};
use gateway_auth::principal::Subject;
use gateway_types::config::{OidcIssuerConfig, SigningAlgorithm};
use gateway_types::ids::OrgId;
use gateway_types::model::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const RSA_PEM: &[u8] = include_bytes!("../../testdata/test-only-rsa.pem");
const ED_PEM: &[u8] = include_bytes!("../../testdata/test-only-ed25519.pem");

/// A minimal IdP: discovery document and a JWKS that tests can swap, with request counters.
struct FakeIdp {
    base: String,
    jwks: Arc<Mutex<Value>>,
    discovery_hits: Arc<AtomicUsize>,
    jwks_hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeIdp {
    async fn start(jwks: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let jwks = Arc::new(Mutex::new(jwks));
        let discovery_hits = Arc::new(AtomicUsize::new(0));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let (j, d, h, b) = (
            jwks.clone(),
            discovery_hits.clone(),
            jwks_hits.clone(),
            base.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                    match sock.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = match path.as_str() {
                    "/.well-known/openid-configuration" => {
                        d.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", json!({"issuer": b, "jwks_uri": format!("{b}/jwks")}))
                    }
                    "/jwks" => {
                        h.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", j.lock().unwrap().clone())
                    }
                    _ => ("404 Not Found", json!({})),
                };
                let body = body.to_string();
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        Self {
            base,
            jwks,
            discovery_hits,
            jwks_hits,
            task,
        }
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Orgs(HashMap<String, OrgId>);

#[async_trait]
impl OrgResolver for Orgs {
    async fn org_id(&self, slug: &str) -> Result<Option<OrgId>, AuthError> {
        Ok(self.0.get(slug).copied())
    }
}

fn public_jwks(keys: &[(&str, SigningAlgorithm, &[u8])]) -> Value {
    let sets: Vec<Value> = keys
        .iter()
        .map(|(kid, alg, pem)| {
            serde_json::to_value(JwtKeys::from_pem(kid, *alg, pem).unwrap().jwks()).unwrap()
        })
        .collect();
    json!({ "keys": sets.iter().flat_map(|s| s["keys"].as_array().unwrap().clone()).collect::<Vec<_>>() })
}

fn issuer_cfg(base: &str) -> OidcIssuerConfig {
    OidcIssuerConfig {
        issuer: base.to_owned(),
        audience: "mcp-gateway".into(),
        jwks_url: None,
        organization: None,
        organization_claim: Some("org".into()),
        role_claim: Some("groups".into()),
        role_map: [
            ("mcp-admins".to_owned(), "admin".to_owned()),
            ("mcp-users".to_owned(), "user".to_owned()),
        ]
        .into(),
        default_role: None,
    }
}

fn token(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, key).unwrap()
}

fn claims(iss: &str, extra: Value) -> Value {
    let now = Utc::now().timestamp();
    let mut c = json!({"iss": iss, "aud": "mcp-gateway", "sub": "alice", "exp": now + 300, "iat": now,
                       "jti": "t-1", "org": "acme", "groups": ["staff", "mcp-users"]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

struct Setup {
    idp: FakeIdp,
    verifier: OidcVerifier,
    org: OrgId,
    rsa: EncodingKey,
    ed: EncodingKey,
}

async fn setup(cfg_edit: impl FnOnce(&mut OidcIssuerConfig), min_refresh: Option<Duration>) -> Setup {
    gateway_auth::jwt::install_crypto_provider();
    let idp = FakeIdp::start(public_jwks(&[("rsa1", SigningAlgorithm::Rs256, RSA_PEM)])).await;
    let mut cfg = issuer_cfg(&idp.base);
    cfg_edit(&mut cfg);
    let org = OrgId::new();
    let orgs = Arc::new(Orgs([("acme".to_owned(), org)].into()));
    let mut verifier = OidcVerifier::new(&[cfg], Arc::new(HttpJwksFetcher::new().unwrap()), orgs);
    if let Some(d) = min_refresh {
        verifier = verifier.with_min_refresh_interval(d);
    }
    Setup {
        idp,
        verifier,
        org,
        rsa: EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
        ed: EncodingKey::from_ed_pem(ED_PEM).unwrap(),
    }
}

#[tokio::test]
async fn a_valid_token_maps_to_organization_and_role() {
    let s = setup(|_| {}, None).await;
    let t = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&s.idp.base, json!({})),
    );
    let p = s.verifier.verify(&t).await.unwrap();
    assert_eq!(p.org_id, s.org);
    assert_eq!(p.role, Role::User);
    assert_eq!(
        p.subject,
        Subject::External {
            issuer: s.idp.base.clone(),
            subject: "alice".into()
        }
    );
    assert_eq!(p.claims["groups"], ["staff", "mcp-users"]);
    assert_eq!(p.token.as_ref().map(|t| t.0.as_str()), Some("t-1"));
    assert_eq!(
        s.idp.discovery_hits.load(Ordering::SeqCst),
        1,
        "keys found through discovery"
    );

    // The most privileged mapping wins; the keys are cached.
    let t = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&s.idp.base, json!({"groups": "mcp-users mcp-admins"})),
    );
    assert_eq!(s.verifier.verify(&t).await.unwrap().role, Role::Admin);
    assert_eq!(s.idp.jwks_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let s = setup(|_| {}, None).await;
    let base = s.idp.base.clone();
    let now = Utc::now().timestamp();
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong audience",
            token(
                Algorithm::RS256,
                Some("rsa1"),
                &s.rsa,
                claims(&base, json!({"aud": "other"})),
            ),
        ),
        (
            "unknown issuer",
            token(
                Algorithm::RS256,
                Some("rsa1"),
                &s.rsa,
                claims("https://evil.example", json!({})),
            ),
        ),
        (
            "unknown kid",
            token(Algorithm::RS256, Some("nope"), &s.rsa, claims(&base, json!({}))),
        ),
        (
            "no kid, key not unique is fine only with one key: wrong key",
            token(Algorithm::EdDSA, None, &s.ed, claims(&base, json!({}))),
        ),
        (
            "HMAC with the public modulus",
            token(
                Algorithm::HS256,
                Some("rsa1"),
                &EncodingKey::from_secret(b"whatever-public-material"),
                claims(&base, json!({})),
            ),
        ),
        (
            "not yet valid",
            token(
                Algorithm::RS256,
                Some("rsa1"),
                &s.rsa,
                claims(&base, json!({"nbf": now + 600})),
            ),
        ),
        (
            "organization missing",
            token(
                Algorithm::RS256,
                Some("rsa1"),
                &s.rsa,
                claims(&base, json!({"org": null})),
            ),
        ),
    ];
    for (what, t) in cases {
        let err = s.verifier.verify(&t).await.unwrap_err();
        assert!(matches!(err, AuthError::InvalidToken), "{what}: {err:?}");
    }
    let expired = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&base, json!({"exp": now - 600})),
    );
    assert!(matches!(
        s.verifier.verify(&expired).await,
        Err(AuthError::TokenExpired)
    ));
    let unknown_org = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&base, json!({"org": "globex"})),
    );
    assert!(matches!(
        s.verifier.verify(&unknown_org).await,
        Err(AuthError::InvalidCredentials)
    ));
    let unmapped = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&base, json!({"groups": ["staff"]})),
    );
    assert!(matches!(
        s.verifier.verify(&unmapped).await,
        Err(AuthError::Forbidden)
    ));
}

#[tokio::test]
async fn default_role_and_fixed_organization() {
    let s = setup(
        |c| {
            c.organization = Some("acme".into());
            c.organization_claim = None;
            c.default_role = Some("viewer".into());
        },
        None,
    )
    .await;
    let t = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&s.idp.base, json!({"org": "ignored", "groups": []})),
    );
    let p = s.verifier.verify(&t).await.unwrap();
    assert_eq!((p.org_id, p.role), (s.org, Role::Viewer));
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let s = setup(|_| {}, Some(Duration::ZERO)).await;
    let base = s.idp.base.clone();
    let rsa_token = token(Algorithm::RS256, Some("rsa1"), &s.rsa, claims(&base, json!({})));
    assert!(s.verifier.verify(&rsa_token).await.is_ok());
    let ed_token = token(Algorithm::EdDSA, Some("ed1"), &s.ed, claims(&base, json!({})));
    assert!(s.verifier.verify(&ed_token).await.is_err(), "not published yet");

    *s.idp.jwks.lock().unwrap() = public_jwks(&[
        ("ed1", SigningAlgorithm::EdDsa, ED_PEM),
        ("rsa1", SigningAlgorithm::Rs256, RSA_PEM),
    ]);
    let before = s.idp.jwks_hits.load(Ordering::SeqCst);
    assert!(s.verifier.verify(&ed_token).await.is_ok());
    assert_eq!(s.idp.jwks_hits.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn forged_key_ids_do_not_hammer_the_provider() {
    let s = setup(|_| {}, None).await;
    let base = s.idp.base.clone();
    assert!(
        s.verifier
            .verify(&token(
                Algorithm::RS256,
                Some("rsa1"),
                &s.rsa,
                claims(&base, json!({}))
            ))
            .await
            .is_ok()
    );
    let before = s.idp.jwks_hits.load(Ordering::SeqCst);
    for i in 0..25 {
        let t = token(
            Algorithm::RS256,
            Some(&format!("forged-{i}")),
            &s.rsa,
            claims(&base, json!({})),
        );
        assert!(s.verifier.verify(&t).await.is_err());
    }
    assert!(
        s.idp.jwks_hits.load(Ordering::SeqCst) <= before + 1,
        "at most one refetch per interval"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_distinct_error() {
    let s = setup(|c| c.jwks_url = Some("http://127.0.0.1:9/jwks".into()), None).await;
    let t = token(
        Algorithm::RS256,
        Some("rsa1"),
        &s.rsa,
        claims(&s.idp.base, json!({})),
    );
    assert!(matches!(
        s.verifier.verify(&t).await,
        Err(AuthError::ProviderUnavailable(_))
    ));
}
