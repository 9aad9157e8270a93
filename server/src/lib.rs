//! The REST API of `brook server`, shaped as ksqlDB's: `/info`, `/healthcheck`, `/ksql`
//! for statements and `/query-stream` for push queries. Every request runs in its own
//! session over the one engine, with the request's properties and variables.

mod command_topic;
mod entities;
mod errors;
mod inserts_stream;
mod ksql;
mod query_stream;

use axum::routing::{get, post};
use axum::{Json, Router};
use brook_engine::query::PushCloser;
use brook_engine::Engine;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The version ksqlDB clients see in `/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every request handler shares.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Where statements that change what runs are recorded, if anywhere.
    commands: Commands,
    /// Push queries running for clients, for `/close-query`.
    push_queries: std::sync::Mutex<std::collections::BTreeMap<String, PushCloser>>,
    /// The outcome of each command, by command id, for `/status`.
    statuses: std::sync::Mutex<std::collections::BTreeMap<String, (String, String)>>,
}

impl AppState {
    fn push_queries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, PushCloser>> {
        self.push_queries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, push: &brook_engine::query::PushQuery) {
        self.push_queries().insert(push.id.clone(), push.closer());
    }

    fn unregister(&self, id: &str) {
        self.push_queries().remove(id);
    }

    fn record_status(&self, command_id: &str, status: &str, message: &str) {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                command_id.to_string(),
                (status.to_string(), message.to_string()),
            );
    }

    fn status(&self, command_id: &str) -> Option<(String, String)> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(command_id)
            .cloned()
    }

    /// Ends a push query; false if none has this id.
    fn close(&self, id: &str) -> bool {
        match self.push_queries().remove(id) {
            Some(closer) => {
                closer.close();
                true
            }
            None => false,
        }
    }
}

/// How the server takes statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/ksql` takes statements and records them in the command topic, which is replayed
    /// at start.
    Interactive,
    /// A queries file says what runs; `/ksql` takes no statements.
    Headless,
    /// `/ksql` takes statements and records them nowhere: what runs lives as long as the
    /// process (an engine on the in-process driver, for conformance runs).
    Unrecorded,
}

enum Commands {
    /// One statement at a time is recorded, then executed.
    Recorded(tokio::sync::Mutex<command_topic::CommandTopic>),
    Refused,
    Unrecorded(tokio::sync::Mutex<()>),
}

/// Opens (and replays) the service's command topic in interactive mode, then routes
/// requests.
pub async fn router(engine: Arc<Engine>, mode: Mode) -> Result<Router, String> {
    let commands = match mode {
        Mode::Interactive => {
            let topic = command_topic::CommandTopic::open(&engine).await?;
            Commands::Recorded(tokio::sync::Mutex::new(topic))
        }
        Mode::Headless => Commands::Refused,
        Mode::Unrecorded => Commands::Unrecorded(Default::default()),
    };
    let state = Arc::new(AppState {
        engine,
        commands,
        push_queries: Default::default(),
        statuses: Default::default(),
    });
    Ok(Router::new()
        .route("/info", get(info))
        .route("/healthcheck", get(healthcheck))
        .route("/ksql", post(ksql::handle))
        .route("/query-stream", post(query_stream::query_stream))
        .route("/query", post(query_stream::query))
        .route("/close-query", post(query_stream::close_query))
        .route("/inserts-stream", post(inserts_stream::inserts_stream))
        .route("/status", get(statuses))
        .route("/status/{kind}/{entity}/{action}", get(status))
        .route("/chc/live", get(live))
        .route("/chc/ready", get(ready))
        .fallback(errors::not_found)
        .layer(axum::middleware::map_response(errors::too_large))
        .with_state(state))
}

/// Serves the API on `listen` until `shutdown` completes.
pub async fn serve(
    engine: Arc<Engine>,
    listen: SocketAddr,
    mode: Mode,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let app = router(engine, mode).await?;
    eprintln!("Brook server listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server failed: {e}"))
}

async fn info(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Json<serde_json::Value> {
    let engine = &state.engine;
    Json(json!({
        "KsqlServerInfo": {
            "version": VERSION,
            "kafkaClusterId": "",
            "ksqlServiceId": engine.config().service_id,
            "serverStatus": "RUNNING"
        }
    }))
}

/// `GET /status`: every command's status, by command id.
async fn statuses(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Json<serde_json::Value> {
    let all = state.statuses.lock().unwrap_or_else(|p| p.into_inner());
    let statuses: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|(id, (status, _))| (id.clone(), json!(status)))
        .collect();
    Json(json!({ "commandStatuses": statuses }))
}

/// `GET /status/{type}/{entity}/{action}`: one command's status and message.
async fn status(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::extract::Path((kind, entity, action)): axum::extract::Path<(String, String, String)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let id = format!("{kind}/{entity}/{action}");
    match state.status(&id) {
        Some((status, message)) => {
            Json(json!({"status": status, "message": message})).into_response()
        }
        None => errors::generic(errors::NOT_FOUND, format!("Command not found: {id}")),
    }
}

/// `GET /chc/live`: the process answers.
async fn live() -> Json<serde_json::Value> {
    Json(json!({}))
}

/// `GET /chc/ready`: the server can reach its brokers, so it can take statements.
async fn ready(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.engine.check_brokers().await {
        Ok(_) => Json(json!({"isHealthy": true})).into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"isHealthy": false, "message": e})),
        )
            .into_response(),
    }
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
