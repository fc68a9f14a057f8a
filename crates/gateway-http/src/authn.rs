//! Authentication on REST routes: the [`Authenticated`] extractor and RBAC checks.
//!
//! Credentials come as `Authorization: Bearer <access token | A2A token | API key | external
//! IdP token>` or `X-API-Key: <key>`. A missing or bad credential is a 401 whose
//! `WWW-Authenticate` header points clients at the protected-resource metadata (RFC 9728, as
//! the MCP authorization spec requires); a missing permission is a 403. An authenticated
//! request is then checked against its principal, organization and endpoint rate limits
//! ([`crate::ratelimit::after_authentication`]): 429 when one refuses it.

use std::future::Future;
use std::pin::Pin;

use actix_web::HttpMessage as _;
use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, web};
use gateway_auth::AuthError;
use gateway_auth::principal::Principal;
use gateway_auth::rbac::Permission;
use gateway_types::error::{ErrorCode, GatewayError};

use crate::error::ApiError;
use crate::state::AppState;

/// Longest credential accepted; anything longer is not one of ours and not a sane JWT.
const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// An authenticated caller. Use it as a handler argument.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// Refuses with 403 unless the principal holds `permission`.
    ///
    /// # Errors
    /// 403 `forbidden` naming the missing permission.
    pub fn require(&self, permission: Permission) -> Result<&Principal, ApiError> {
        if self.0.allows(permission) {
            Ok(&self.0)
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this requires the {permission} permission"),
            ))
        }
    }
}

/// The credential of a request, if any.
pub(crate) fn credential(req: &HttpRequest) -> Option<&str> {
    let from_bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    from_bearer
        .or_else(|| {
            req.headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|c| !c.is_empty())
}

/// The public base URL: `auth.public_url`, else scheme and host of the request.
pub(crate) fn public_base(req: &HttpRequest, state: &AppState) -> String {
    match &state.config.auth.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// A 401 with the `WWW-Authenticate` challenge.
pub(crate) fn unauthorized(
    req: &HttpRequest,
    state: &AppState,
    err: GatewayError,
    had_credential: bool,
) -> ApiError {
    let metadata = format!("{}/.well-known/oauth-protected-resource", public_base(req, state));
    let mut challenge = format!("Bearer realm=\"mcp-gateway\", resource_metadata=\"{metadata}\"");
    if had_credential {
        challenge.push_str(", error=\"invalid_token\"");
    }
    let api: ApiError = err.into();
    match HeaderValue::from_str(&challenge) {
        Ok(v) => api.with_header(header::WWW_AUTHENTICATE, v),
        Err(_) => api,
    }
}

/// Maps an authentication failure: 401s carry the challenge, other codes (429, 503) do not.
pub(crate) fn auth_error(
    req: &HttpRequest,
    state: &AppState,
    err: AuthError,
    had_credential: bool,
) -> ApiError {
    let retry = match &err {
        AuthError::Throttled { retry_after_seconds } => Some(*retry_after_seconds),
        _ => None,
    };
    let gw: GatewayError = err.into();
    if gw.code() == ErrorCode::Unauthorized {
        return unauthorized(req, state, gw, had_credential);
    }
    let api: ApiError = gw.into();
    match retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        Some(v) => api.with_header(header::RETRY_AFTER, v),
        None => api,
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(ApiError::internal("AppState missing from the app"));
            };
            let Some(cred) = credential(&req).filter(|c| c.len() <= MAX_CREDENTIAL_BYTES) else {
                let had = credential(&req).is_some();
                return Err(unauthorized(
                    &req,
                    &state,
                    GatewayError::from_code(ErrorCode::Unauthorized),
                    had,
                ));
            };
            match state.auth.authenticate(cred).await {
                Ok(principal) => {
                    crate::ratelimit::after_authentication(&req, &state, &principal).await?;
                    // For the request log (the edge middleware reads it when the request ends).
                    req.extensions_mut().insert(principal.clone());
                    Ok(Self(principal))
                }
                Err(err) => Err(auth_error(&req, &state, err, true)),
            }
        })
    }
}
