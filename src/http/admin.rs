//! The admin API, under `/admin/v1`, in JSON: what a running server holds, and the few things
//! an operator may make it do. Described by the OpenAPI document it serves
//! (`/admin/v1/openapi.json`).
//!
//! Owns: the bearer-token check (`http.admin_token`: unset, the API is off and answers 404; a
//! wrong or missing token gets 401), paging (`limit` at most 1,000, `after` the last AOR of
//! the previous page), and turning the actors' reports into JSON. Must not: change state but
//! through the actors' messages (a removal is committed, then notified, as a PUBLISH would be).

use std::sync::{Arc, OnceLock};

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::events::EventAgent;
use crate::inspect::{
    BindingReport, InspectBindings, InspectPresentity, InspectResources, ListPresentities,
    PublicationReport, RemovePublication, Renotify,
};
use crate::presence::aor::Aor;
use crate::presence::PresenceAgent;
use crate::registrar::Registrar;

/// The OpenAPI document of this API.
const OPENAPI: &str = include_str!("openapi.json");

/// Largest page.
const MAX_LIMIT: usize = 1000;

/// The actors the API asks, known once the server has started them.
pub struct AdminTargets {
    /// Presentities.
    pub presence: Addr<PresenceAgent>,
    /// The other packages' resources.
    pub events: Addr<EventAgent>,
    /// Registrar bindings.
    pub registrar: Addr<Registrar>,
}

/// Filled by `app` once the actors run.
pub type Targets = Arc<OnceLock<AdminTargets>>;

/// What the routes share.
pub struct AdminState {
    /// The bearer token; empty turns the API off.
    pub token: String,
    /// The actors.
    pub targets: Targets,
}

fn error(status: actix_web::http::StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": text }))
}

/// Equal in time whatever the first differing byte (a token is a secret).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request is refused before its handler's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The API is off (no token configured).
    Off,
    /// No token, or the wrong one.
    Unauthorized,
    /// The actors are not running yet.
    Starting,
    /// The path's AOR is not one.
    BadAor,
}

impl Refusal {
    fn response(self) -> HttpResponse {
        use actix_web::http::StatusCode;
        match self {
            Refusal::Off => HttpResponse::NotFound().finish(),
            Refusal::Unauthorized => HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"presenced\""))
                .json(json!({ "error": "a valid bearer token is required" })),
            Refusal::Starting => error(StatusCode::SERVICE_UNAVAILABLE, "starting"),
            Refusal::BadAor => error(
                StatusCode::BAD_REQUEST,
                "not a SIP AOR (sip:user@domain, percent-encoded)",
            ),
        }
    }
}

/// The actors, once the request carries the token.
fn authorize<'a>(req: &HttpRequest, state: &'a AdminState) -> Result<&'a AdminTargets, Refusal> {
    if state.token.is_empty() {
        return Err(Refusal::Off);
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(given.trim().as_bytes(), state.token.as_bytes()) {
        return Err(Refusal::Unauthorized);
    }
    state.targets.get().ok_or(Refusal::Starting)
}

fn aor_of(text: &str) -> Result<Aor, Refusal> {
    Aor::parse(text).ok_or(Refusal::BadAor)
}

/// The actors and the path's AOR, once the request carries the token.
fn authorize_on<'a>(
    req: &HttpRequest,
    state: &'a AdminState,
    aor: &str,
) -> Result<(&'a AdminTargets, Aor), Refusal> {
    Ok((authorize(req, state)?, aor_of(aor)?))
}

fn unavailable() -> HttpResponse {
    error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "the server cannot answer now",
    )
}

/// `GET /admin/v1/openapi.json`.
async fn openapi(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(refusal) = authorize(&req, &state) {
        return refusal.response();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// A page of presentities.
#[derive(Debug, Deserialize)]
struct Page {
    prefix: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct PresentityPage {
    items: Vec<String>,
    /// The `after` of the next page; null on the last one.
    next: Option<String>,
}

/// `GET /admin/v1/presentities`.
async fn presentities(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let targets = match authorize(&req, &state) {
        Ok(t) => t,
        Err(refusal) => return refusal.response(),
    };
    // Read after the token check, so that a caller without it learns nothing from a 400.
    let page = match web::Query::<Page>::from_query(req.query_string()) {
        Ok(p) => p.into_inner(),
        Err(e) => return error(actix_web::http::StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "limit must lie between 1 and 1000",
        );
    }
    let listed = targets
        .presence
        .send(ListPresentities {
            prefix: page.prefix.clone().unwrap_or_default(),
            after: page.after.clone(),
            limit,
        })
        .await;
    match listed {
        Ok(items) => {
            let next = (items.len() == limit)
                .then(|| items.last().cloned())
                .flatten();
            HttpResponse::Ok().json(PresentityPage { items, next })
        }
        Err(_) => unavailable(),
    }
}

#[derive(Debug, Serialize)]
struct PresentityView {
    aor: String,
    publications: Vec<PublicationReport>,
    bindings: Vec<BindingReport>,
    watchers: usize,
    document: Option<String>,
}

/// `GET /admin/v1/presentities/{aor}`.
async fn presentity(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let (targets, aor) = match authorize_on(&req, &state, &path) {
        Ok(both) => both,
        Err(refusal) => return refusal.response(),
    };
    let presence = targets.presence.send(InspectPresentity(aor.clone()));
    let others = targets.events.send(InspectResources(aor.clone()));
    let bindings = targets.registrar.send(InspectBindings(aor.clone()));
    let (Ok(presence), Ok(others), Ok(bindings)) = (presence.await, others.await, bindings.await)
    else {
        return unavailable();
    };
    if presence.is_none() && others.is_empty() && bindings.is_empty() {
        return error(
            actix_web::http::StatusCode::NOT_FOUND,
            "nothing is known of it",
        );
    }
    let (mut publications, watchers, document) = match presence {
        Some(r) => (r.publications, r.watchers, Some(r.document)),
        None => (Vec::new(), 0, None),
    };
    publications.extend(others);
    HttpResponse::Ok().json(PresentityView {
        aor: aor.to_string(),
        publications,
        bindings,
        watchers,
        document,
    })
}

/// `DELETE /admin/v1/presentities/{aor}/publications/{etag}`.
async fn remove_publication(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (aor, etag) = path.into_inner();
    let (targets, aor) = match authorize_on(&req, &state, &aor) {
        Ok(both) => both,
        Err(refusal) => return refusal.response(),
    };
    let removal = RemovePublication {
        aor: aor.clone(),
        etag: etag.clone(),
    };
    let presence = match targets.presence.send(removal).await {
        Ok(Ok(removed)) => removed,
        Ok(Err(_)) => return unavailable(),
        Err(_) => return unavailable(),
    };
    let removed = presence
        || match targets.events.send(RemovePublication { aor, etag }).await {
            Ok(Ok(removed)) => removed,
            _ => return unavailable(),
        };
    if removed {
        HttpResponse::NoContent().finish()
    } else {
        error(
            actix_web::http::StatusCode::NOT_FOUND,
            "no such publication",
        )
    }
}

/// `POST /admin/v1/presentities/{aor}/notify`.
async fn renotify(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let (targets, aor) = match authorize_on(&req, &state, &path) {
        Ok(both) => both,
        Err(refusal) => return refusal.response(),
    };
    match targets.presence.send(Renotify(aor)).await {
        Ok(true) => HttpResponse::NoContent().finish(),
        Ok(false) => error(actix_web::http::StatusCode::NOT_FOUND, "no such presentity"),
        Err(_) => unavailable(),
    }
}

/// A method a path does not take: 405 with the one it does (401 first without the token).
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(
        move |req: HttpRequest, state: web::Data<AdminState>| async move {
            match authorize(&req, &state) {
                Err(refusal) => refusal.response(),
                Ok(_) => HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, allow))
                    .json(json!({ "error": "method not allowed here" })),
            }
        },
    )
}

/// Adds the routes under `/admin/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .service(
                web::resource("/openapi.json")
                    .get(openapi)
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/presentities")
                    .get(presentities)
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/presentities/{aor}")
                    .get(presentity)
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/presentities/{aor}/publications/{etag}")
                    .delete(remove_publication)
                    .default_service(not_allowed("DELETE")),
            )
            .service(
                web::resource("/presentities/{aor}/notify")
                    .post(renotify)
                    .default_service(not_allowed("POST")),
            )
            // Anything else under the scope: 404 (or 401 first when the API is on).
            .default_service(web::to(
                |req: HttpRequest, state: web::Data<AdminState>| async move {
                    match authorize(&req, &state) {
                        Err(refusal) => refusal.response(),
                        Ok(_) => HttpResponse::NotFound().finish(),
                    }
                },
            )),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    }
}
