//! The REST API of `brook server`, shaped as ksqlDB's: `/info`, `/healthcheck`, `/ksql`
//! for statements and `/query-stream` for push queries. Every request runs in its own
//! session over the one engine, with the request's properties and variables.

mod errors;
mod ksql;
mod query_stream;

use axum::routing::{get, post};
use axum::{Json, Router};
use brook_engine::Engine;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The version ksqlDB clients see in `/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/healthcheck", get(healthcheck))
        .route("/ksql", post(ksql::handle))
        .route("/query-stream", post(query_stream::handle))
        .fallback(errors::not_found)
        .with_state(engine)
}

/// Serves the API on `listen` until `shutdown` completes.
pub async fn serve(
    engine: Arc<Engine>,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("Brook server listening on http://{local}");
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server failed: {e}"))
}

async fn info(
    axum::extract::State(engine): axum::extract::State<Arc<Engine>>,
) -> Json<serde_json::Value> {
    Json(json!({
        "KsqlServerInfo": {
            "version": VERSION,
            "kafkaClusterId": "",
            "ksqlServiceId": engine.config().service_id,
            "serverStatus": "RUNNING"
        }
    }))
}

async fn healthcheck() -> Json<serde_json::Value> {
    Json(json!({
        "isHealthy": true,
        "details": {
            "metastore": {"isHealthy": true},
            "kafka": {"isHealthy": true}
        }
    }))
}
