//! The REST API of `brook server`, shaped as ksqlDB's: `/info`, `/healthcheck`, `/ksql`
//! for statements and `/query-stream` for push queries. Every request runs in its own
//! session over the one engine, with the request's properties and variables.

mod command_topic;
mod connect;
mod entities;
mod errors;
mod inserts_stream;
mod ksql;
mod observability;
mod query_stream;
mod rest_proxy;
mod security;

pub use observability::serve_metrics;
pub use security::BasicAuth;

use axum::routing::{get, post};
use axum::{Json, Router};
use brook_engine::runtime::QueryStatus;
use brook_engine::serving::PushCloser;
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
    statuses: std::sync::Mutex<std::collections::BTreeMap<String, CommandOutcome>>,
}

impl observability::WithEngine for Arc<AppState> {
    fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// How a command went, and the persistent query it started, if any.
#[derive(Clone)]
struct CommandOutcome {
    status: String,
    message: String,
    query_id: Option<String>,
}

impl CommandOutcome {
    /// Its status and message now: a command whose query has failed since is in ERROR,
    /// with the query's failure, since it no longer does what it was for.
    fn current(
        self,
        queries: &std::collections::BTreeMap<String, QueryStatus>,
    ) -> (String, String) {
        let failed = self.query_id.as_ref().and_then(|q| match queries.get(q) {
            Some(QueryStatus::Error(failure)) => Some((q, failure)),
            _ => None,
        });
        match failed {
            Some((query, failure)) => (
                "ERROR".to_string(),
                format!(
                    "Query {query} failed at {}: {}",
                    failure.timestamp, failure.message
                ),
            ),
            None => (self.status, self.message),
        }
    }
}

impl AppState {
    fn push_queries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, PushCloser>> {
        self.push_queries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, push: &brook_engine::serving::PushQuery) {
        self.push_queries().insert(push.id.clone(), push.closer());
    }

    fn unregister(&self, id: &str) {
        self.push_queries().remove(id);
    }

    fn record_status(&self, command_id: &str, status: &str, message: &str, query_id: Option<&str>) {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                command_id.to_string(),
                CommandOutcome {
                    status: status.to_string(),
                    message: message.to_string(),
                    query_id: query_id.map(str::to_string),
                },
            );
    }

    /// Every command's status and message, by command id.
    async fn statuses(&self) -> Vec<(String, String, String)> {
        let recorded: Vec<(String, CommandOutcome)> = self
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, o)| (id.clone(), o.clone()))
            .collect();
        let queries = self.query_statuses().await;
        recorded
            .into_iter()
            .map(|(id, outcome)| {
                let (status, message) = outcome.current(&queries);
                (id, status, message)
            })
            .collect()
    }

    /// One command's status and message, if it ran here.
    async fn command_status(&self, command_id: &str) -> Option<(String, String)> {
        let outcome = self
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(command_id)
            .cloned()?;
        Some(outcome.current(&self.query_statuses().await))
    }

    async fn query_statuses(&self) -> std::collections::BTreeMap<String, QueryStatus> {
        self.engine.queries().await.into_iter().collect()
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
        .route("/is_valid_property/{name}", get(is_valid_property))
        .route("/chc/live", get(live))
        .route("/chc/ready", get(ready))
        .merge(connect::routes())
        .merge(observability::routes())
        .merge(rest_proxy::routes())
        .fallback(errors::not_found)
        .layer(axum::middleware::map_response(errors::too_large))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observability::track::<Arc<AppState>>,
        ))
        .with_state(state))
}

/// Where and how the API is served.
pub struct Listener {
    pub address: SocketAddr,
    /// PEM files of the certificate (chain) and private key: the API is served over TLS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Requests must carry one of these users' credentials.
    pub basic_auth: Option<BasicAuth>,
}

/// Serves the API until `shutdown` completes.
pub async fn serve(
    engine: Arc<Engine>,
    listener: Listener,
    mode: Mode,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let mut app = router(engine.clone(), mode).await?;
    if let Some(auth) = listener.basic_auth {
        app = app.layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            security::require,
        ));
    }
    let address = listener.address;
    match listener.tls {
        None => {
            let tcp = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
            let local = tcp.local_addr().map_err(|e| e.to_string())?;
            engine.set_host(local.to_string());
            eprintln!("Brook server listening on http://{local}");
            axum::serve(tcp, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| format!("server failed: {e}"))
        }
        Some((certificate, key)) => {
            let config = axum_server::tls_openssl::OpenSSLConfig::from_pem_file(&certificate, &key)
                .map_err(|e| {
                    format!(
                        "cannot use the certificate {} and key {}: {e}",
                        certificate.display(),
                        key.display()
                    )
                })?;
            let handle = axum_server::Handle::<SocketAddr>::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            let announcer = handle.clone();
            tokio::spawn(async move {
                if let Some(local) = announcer.listening().await {
                    engine.set_host(local.to_string());
                    eprintln!("Brook server listening on https://{local}");
                }
            });
            axum_server::bind_openssl(address, config)
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .map_err(|e| format!("cannot serve on {address}: {e}"))
        }
    }
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
    let statuses: serde_json::Map<String, serde_json::Value> = state
        .statuses()
        .await
        .into_iter()
        .map(|(id, status, _)| (id, json!(status)))
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
    match state.command_status(&id).await {
        Some((status, message)) => {
            Json(json!({"status": status, "message": message})).into_response()
        }
        None => errors::generic(errors::NOT_FOUND, format!("Command not found: {id}")),
    }
}

/// Settings a request cannot override: they belong to the server.
const SERVER_ONLY: &[&str] = &[
    "bootstrap.servers",
    "ksql.streams.bootstrap.servers",
    "ksql.service.id",
    "ksql.streams.state.dir",
    "ksql.schema.registry.url",
    "listeners",
];

/// `GET /is_valid_property/{name}`: whether a request may set the property.
async fn is_valid_property(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if SERVER_ONLY.contains(&name.as_str()) {
        return errors::generic(
            errors::BAD_REQUEST,
            format!("One or more properties overrides set locally are prohibited by the KSQL server (use UNSET to reset their default value): [{name}]"),
        );
    }
    Json(json!(true)).into_response()
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
