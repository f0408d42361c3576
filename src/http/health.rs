//! Health checks: liveness and readiness, as load balancers and orchestrators ask for them.
//!
//! Owns: `GET /health/live` (200 while the process answers) and `GET /health/ready` (200 once
//! the stored state is restored and the store commits; 503 with a JSON body naming why not:
//! `restoring`, `store_unavailable`). Reads the metrics the start-up and the store keep, so
//! there is one truth for both. Must not: change anything.

use actix_web::{get, HttpResponse, Responder};
use serde_json::json;

use crate::metrics::metrics;

/// `GET /health/live`.
#[get("/health/live")]
pub(crate) async fn live() -> impl Responder {
    HttpResponse::Ok().json(json!({ "status": "live" }))
}

/// Why the server is not ready, if it is not.
pub fn not_ready() -> Option<&'static str> {
    let m = metrics();
    if m.restored.get() == 0 {
        Some("restoring")
    } else if m.store_up.get() == 0 {
        Some("store_unavailable")
    } else {
        None
    }
}

/// `GET /health/ready`.
#[get("/health/ready")]
pub(crate) async fn ready() -> impl Responder {
    match not_ready() {
        None => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not_ready", "reason": reason })),
    }
}
