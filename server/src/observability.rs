//! What an operator and an autoscaler read: `/metrics` (Prometheus text format), `/scaling`
//! (the replicas the backlog asks for, in a shape KEDA's `metrics-api` scaler reads), and
//! the HTTP figures every request adds to them.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use brook_engine::Engine;
use std::sync::Arc;
use std::time::Instant;

/// A router state that holds the engine.
pub trait WithEngine: Clone + Send + Sync + 'static {
    fn engine(&self) -> &Arc<Engine>;
}

impl WithEngine for Arc<Engine> {
    fn engine(&self) -> &Arc<Engine> {
        self
    }
}

/// `/metrics` and `/scaling`, on any router whose state holds the engine.
pub fn routes<S: WithEngine>() -> crate::routes::Routes<S> {
    crate::routes::Routes::new()
        .route("/metrics", get(metrics::<S>))
        .route("/scaling", get(scaling::<S>))
}

async fn metrics<S: WithEngine>(State(state): State<S>) -> Response {
    let engine = state.engine();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        engine.scrape().await,
    )
        .into_response()
}

async fn scaling<S: WithEngine>(State(state): State<S>) -> Response {
    match state.engine().scaling().await {
        Ok(scaling) => Json(scaling).into_response(),
        Err(message) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "@type": "generic_error",
                "error_code": 50300,
                "message": message,
            })),
        )
            .into_response(),
    }
}

/// Counts each request by method, matched route and status, with its latency (to the
/// first byte of the answer: streamed answers run as long as their clients stay).
pub async fn track<S: WithEngine>(
    State(state): State<S>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    // The route's pattern keeps the label set bounded; paths no route matched share one.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.engine().metrics().http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Serves `/metrics` and `/scaling` alone (`brook run --metrics-listen`) on `tcp` until
/// `shutdown`.
pub async fn serve_metrics(
    engine: Arc<Engine>,
    tcp: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = routes::<Arc<Engine>>()
        .into_router()
        .route_layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            track::<Arc<Engine>>,
        ))
        .with_state(engine);
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    eprintln!("Brook metrics on http://{local}/metrics");
    axum::serve(tcp, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("the metrics listener failed: {e}"))
}
