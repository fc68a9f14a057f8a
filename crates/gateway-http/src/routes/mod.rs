//! Route table. Every route is registered here, with the methods it accepts; any other method
//! on a known path is a 405 with `Allow`, any unknown path a 404, both as JSON envelopes.

mod health;
mod metrics;

use actix_web::dev::Handler;
use actix_web::http::header;
use actix_web::{FromRequest, HttpResponse, Resource, Responder, web};
use gateway_types::error::ErrorCode;

use crate::error::ApiError;

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/", root))
        .service(get_only("/health", health::readiness))
        .service(get_only("/health/live", health::liveness))
        .service(get_only("/metrics", metrics::render));
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
