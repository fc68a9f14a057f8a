//! Route table. Every route is registered here, with the methods it accepts; any other method
//! on a known path is a 405 with `Allow`, any unknown path a 404, both as JSON envelopes.

mod auth;
mod catalog;
mod health;
mod logs;
mod metrics;
mod namespaces;
mod policies;
mod rate_limits;
mod servers;
mod stats;
mod users;

use actix_web::dev::Handler;
use actix_web::http::header;
use actix_web::{FromRequest, HttpResponse, Resource, Responder, web};
use gateway_types::error::ErrorCode;

use crate::error::ApiError;

pub(crate) use namespaces::{namespace_problems, summary as namespace_summary};
pub(crate) use servers::{
    CreateBody as ServerCreateBody, Draft, ServerView, new_server, summary as server_summary,
};

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    crate::mcp::configure(cfg);
    cfg.service(get_only("/", root))
        .service(get_only("/health", health::readiness))
        .service(get_only("/health/live", health::liveness))
        .service(get_only("/metrics", metrics::render))
        .service(post_only("/auth/login", auth::login))
        .service(post_only("/auth/refresh", auth::refresh))
        .service(post_only("/auth/logout", auth::logout))
        .service(
            web::resource("/auth/profile")
                .route(web::get().to(auth::profile))
                .route(web::put().to(auth::update_profile))
                .default_service(not_allowed("GET, PUT")),
        )
        .service(
            web::resource("/auth/api-keys")
                .route(web::get().to(auth::list_keys))
                .route(web::post().to(auth::create_key))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/auth/api-keys/{id}")
                .route(web::delete().to(auth::revoke_key))
                .default_service(not_allowed("DELETE")),
        )
        .service(post_only("/auth/a2a/token", auth::a2a_token))
        .service(get_only("/.well-known/jwks.json", auth::jwks))
        .service(get_only(
            "/.well-known/oauth-protected-resource",
            auth::protected_resource,
        ))
        .service(get_only(
            "/.well-known/oauth-protected-resource/{resource:.*}",
            auth::protected_resource,
        ))
        .service(
            web::resource("/gateway/servers")
                .route(web::get().to(servers::list))
                .route(web::post().to(servers::create))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/gateway/servers/{id}")
                .route(web::get().to(servers::get))
                .route(web::put().to(servers::update))
                .route(web::delete().to(servers::delete))
                .default_service(not_allowed("GET, PUT, DELETE")),
        )
        .service(
            web::resource("/gateway/servers/{id}/catalog")
                .route(web::get().to(catalog::get))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/gateway/servers/{id}/catalog/refresh")
                .route(web::post().to(catalog::refresh))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/gateway/servers/{id}/catalog/approve")
                .route(web::post().to(catalog::approve))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/api/admin/users")
                .route(web::get().to(users::list))
                .route(web::post().to(users::create))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/api/admin/policies")
                .route(web::get().to(policies::list))
                .route(web::post().to(policies::create))
                .default_service(not_allowed("GET, POST")),
        )
        .service(post_only("/api/admin/policies/evaluate", policies::evaluate))
        .service(
            web::resource("/api/admin/policies/{id}")
                .route(web::get().to(policies::get))
                .route(web::put().to(policies::update))
                .route(web::delete().to(policies::delete))
                .default_service(not_allowed("GET, PUT, DELETE")),
        )
        .service(
            web::resource("/api/admin/namespaces")
                .route(web::get().to(namespaces::list))
                .route(web::post().to(namespaces::create))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/api/admin/namespaces/{id}")
                .route(web::get().to(namespaces::get))
                .route(web::put().to(namespaces::update))
                .route(web::delete().to(namespaces::delete))
                .default_service(not_allowed("GET, PUT, DELETE")),
        )
        .service(
            web::resource("/api/admin/namespaces/{id}/servers")
                .route(web::get().to(namespaces::list_servers))
                .route(web::post().to(namespaces::attach_server))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/api/admin/namespaces/{id}/servers/{server}")
                .route(web::delete().to(namespaces::detach_server))
                .default_service(not_allowed("DELETE")),
        )
        .service(get_only(
            "/api/admin/namespaces/{id}/sessions",
            namespaces::sessions,
        ))
        .service(
            web::resource("/api/admin/rate-limits")
                .route(web::get().to(rate_limits::list))
                .route(web::post().to(rate_limits::create))
                .default_service(not_allowed("GET, POST")),
        )
        .service(get_only("/api/admin/rate-limits/usage", rate_limits::usage))
        .service(
            web::resource("/api/admin/rate-limits/{id}")
                .route(web::get().to(rate_limits::get))
                .route(web::put().to(rate_limits::update))
                .route(web::delete().to(rate_limits::delete))
                .default_service(not_allowed("GET, PUT, DELETE")),
        )
        .service(get_only("/admin/logs", logs::list))
        .service(get_only("/admin/logs/verify", logs::verify))
        .service(get_only("/admin/logs/{id}/body", logs::body))
        .service(get_only("/admin/stats", stats::stats))
        .service(
            web::resource("/api/admin/users/{id}")
                .route(web::get().to(users::get))
                .route(web::put().to(users::update))
                .route(web::delete().to(users::delete))
                .default_service(not_allowed("GET, PUT, DELETE")),
        );
}

/// A default service answering 405 with `Allow: allow`.
pub(crate) fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(allow)) })
}

/// A resource answering POST and 405 to anything else.
pub(crate) fn post_only<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(not_allowed("POST"))
}

/// A resource answering GET (and HEAD, body stripped) and 405 to anything else.
pub(crate) fn get_only<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::method_not_allowed("GET, HEAD"))
        }))
}

/// `GET /`: the dashboard lives under `/ui/`.
async fn root() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

/// The app's default service: no route matched.
pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such route"))
}
