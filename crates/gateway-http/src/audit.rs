//! Audit-trail glue between requests and [`gateway_logging::audit`]: who acted (from the
//! [`Principal`]), where from ([`ClientContext`]), the secret-free summaries of audited
//! records, and [`policy_denied`], which the MCP pipeline calls for every denied message.
//!
//! Recording is fire-and-forget ([`Auditor::record`] never blocks and never fails a request);
//! handlers record after the change succeeded, so a refused or failed request leaves no
//! "change" record (refused logins and token exchanges have records of their own).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use gateway_auth::policy::{Decision, PolicyRequest};
use gateway_auth::principal::Principal;
use gateway_logging::audit::{Actor, Auditor, PolicyDenial, RequestContext};
use gateway_types::model::{ApiKey, StoredPolicy, User};
use serde_json::{Value, json};

use crate::request_id::RequestId;

/// The audit actor of an authenticated caller (`user`, `api_key`, `app`, `external`).
#[must_use]
pub fn actor(principal: &Principal) -> Actor {
    let (kind, id) = principal.actor();
    Actor::new(kind, id)
}

/// The client address ([`crate::client_ip::client_ip`]: the TCP peer, or the client a trusted
/// proxy names) and the request id.
#[must_use]
pub fn context(req: &HttpRequest) -> RequestContext {
    RequestContext {
        ip: crate::client_ip::client_ip(req),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned()),
    }
}

/// [`context`] as a handler argument.
#[derive(Clone, Debug)]
pub struct ClientContext(pub RequestContext);

impl FromRequest for ClientContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(context(req))))
    }
}

/// Records a policy denial of `request` (never its arguments) by `principal`. For the MCP
/// message pipeline: call it whenever [`Decision::allowed`] is false for a real request (not
/// for dry runs, and not for items merely hidden from a listing). Never blocks.
pub fn policy_denied(
    auditor: &Auditor,
    principal: &Principal,
    request: &PolicyRequest,
    decision: &Decision,
    ctx: &RequestContext,
) -> bool {
    let item = request.target.item.as_ref();
    auditor.policy_denied(
        principal.org_id,
        PolicyDenial {
            actor: actor(principal),
            action: request.action.as_str().to_owned(),
            namespace: request.target.namespace.clone(),
            server: request.target.server.clone(),
            item_kind: item.map(|i| i.kind.as_str().to_owned()),
            item_name: item.map(|i| i.name.clone()),
            rule_id: decision.rule.as_ref().map(|r| r.id.clone()),
            rule_name: decision.rule.as_ref().map(|r| r.name.clone()),
            reason: decision.reason.clone(),
            context: ctx.clone(),
        },
    )
}

/// A user as audited: never the password hash.
#[must_use]
pub fn user_summary(u: &User) -> Value {
    json!({
        "email": u.email,
        "name": u.name,
        "role": u.role.as_str(),
        "is_active": u.is_active,
    })
}

/// An API key as audited: never the secret or its hash.
#[must_use]
pub fn key_summary(k: &ApiKey) -> Value {
    json!({
        "name": k.name,
        "type": k.key_type.as_str(),
        "prefix": k.prefix,
        "user_id": k.user_id.map(|u| u.to_string()),
        "namespace_id": k.namespace_id.map(|n| n.to_string()),
        "permissions": k.permissions,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
    })
}

/// A policy rule as audited: the rule document (rules hold no secrets).
#[must_use]
pub fn policy_summary(p: &StoredPolicy) -> Value {
    json!({
        "name": p.name,
        "enabled": p.enabled,
        "source": p.source.as_str(),
        "rule": p.rule,
    })
}
