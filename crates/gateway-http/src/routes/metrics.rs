//! `GET /metrics`: Prometheus text exposition, rendered from the process-wide recorder.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use gateway_types::error::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus text format 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric; 404 when `metrics.enabled` is false.
pub(crate) async fn render(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match (&state.metrics, state.config.metrics.enabled) {
        (Some(handle), true) => {
            crate::metrics::record_gauges(&state);
            Ok(HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
                .body(handle.render()))
        }
        _ => Err(ApiError::new(ErrorCode::NotFound, "metrics are disabled")),
    }
}
