//! The HTTP side: one listener set (`http.listen`) serving health checks (`health`), the
//! Prometheus metrics (`GET /metrics`) and the admin API (`admin`), on the actix runtime the
//! SIP side runs on.
//!
//! Owns: starting the actix-web server on sockets `app` bound, and its routes. Its one worker
//! thread only reads atomics the SIP side writes, so a scrape never waits for SIP work nor
//! delays it. Must not: change presence state.

pub mod admin;
pub mod health;

use actix_web::dev::ServerHandle;
use actix_web::{get, web, App, HttpResponse, HttpServer, Responder};
use log::{error, info};

use crate::metrics;

/// `GET /metrics`: every metric, Prometheus text format 0.0.4.
#[get("/metrics")]
async fn metrics_text() -> impl Responder {
    match metrics::render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            error!("metrics: cannot render ({e})");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Serves the HTTP routes on `listeners`, the admin API with `admin_token` (empty: off) on
/// `targets`; `None` when there are no listeners (HTTP off).
pub fn start(
    listeners: Vec<std::net::TcpListener>,
    admin_token: String,
    targets: admin::Targets,
) -> std::io::Result<Option<ServerHandle>> {
    if listeners.is_empty() {
        info!("http: off (http.listen is empty)");
        return Ok(None);
    }
    if admin_token.is_empty() {
        info!("http: admin API off (http.admin_token is empty)");
    }
    let state = web::Data::new(admin::AdminState {
        token: admin_token,
        targets,
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(health::live)
            .service(health::ready)
            .service(metrics_text)
            .configure(admin::configure)
    })
    .workers(1)
    // SIGINT and SIGTERM are the SIP side's: it stops this server itself.
    .disable_signals()
    .shutdown_timeout(1);
    for listener in listeners {
        let local = listener.local_addr()?;
        server = server.listen(listener)?;
        info!("listening on http:{local}");
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(e) = server.await {
            error!("http: server stopped: {e}");
        }
    });
    Ok(Some(handle))
}
