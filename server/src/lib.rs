//! The REST API of `brook server`, shaped as ksqlDB's: `/info`, `/healthcheck`, `/ksql`
//! for statements and `/query-stream` for push queries. Every request runs in its own
//! session over the one engine, with the request's properties and variables.

mod command_topic;
mod connect;
mod connections;
mod entities;
mod errors;
#[cfg(test)]
mod fuzz;
mod inserts_stream;
mod ksql;
mod limits;
mod observability;
mod query_stream;
mod rest_proxy;
mod routes;
mod security;
mod terminate;

pub use limits::Limits;
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
    /// How many queries may run at once, and how often pull queries may start.
    admission: limits::Admission,
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
    let limits = Limits::from_properties(&engine.config().properties)?;
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
        admission: limits::Admission::new(limits.clone()),
    });
    Ok(routes()
        .into_router()
        .fallback(errors::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            limits.max_request_bytes,
        ))
        .layer(axum::middleware::map_response(errors::too_large))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observability::track::<Arc<AppState>>,
        ))
        .with_state(state))
}

/// Every route of the API.
fn routes() -> routes::Routes<Arc<AppState>> {
    routes::Routes::new()
        .route("/info", get(info))
        .route("/healthcheck", get(healthcheck))
        .route("/clusterStatus", get(cluster_status))
        .route("/ksql", post(ksql::handle))
        .route("/ksql/terminate", post(terminate::handle))
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
    // Queries the command topic starts carry the address they are served at, so it is
    // known before they start (a port of 0 is known only once listening).
    if listener.address.port() != 0 {
        engine.set_host(advertised(listener.address));
    }
    let mut app = router(engine.clone(), mode).await?;
    if let Some(auth) = listener.basic_auth {
        app = app.layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            security::require,
        ));
    }
    let limits = Limits::from_properties(&engine.config().properties)?;
    let address = listener.address;
    let handle = axum_server::Handle::<SocketAddr>::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let announcer = handle.clone();
    tokio::spawn(async move {
        if let Some(local) = announcer.listening().await {
            engine.set_host(local.to_string());
            eprintln!("Brook server listening on {scheme}://{local}");
        }
    });
    let idle = connections::IdleAcceptor::new(
        axum_server::accept::DefaultAcceptor::new(),
        limits.idle_timeout,
    );
    let service = app.into_make_service();
    let served = match listener.tls {
        None => {
            let server = axum_server::bind(address).handle(handle).acceptor(idle);
            with_header_timeout(server, &limits).serve(service).await
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
            let tls = axum_server::tls_openssl::OpenSSLAcceptor::new(config)
                .handshake_timeout(limits.header_timeout)
                .acceptor(idle);
            let server = axum_server::bind(address).handle(handle).acceptor(tls);
            with_header_timeout(server, &limits).serve(service).await
        }
    };
    served.map_err(|e| format!("cannot serve on {address}: {e}"))
}

/// A server that closes a connection whose request head takes longer than the limit.
fn with_header_timeout<A>(
    mut server: axum_server::Server<SocketAddr, A>,
    limits: &Limits,
) -> axum_server::Server<SocketAddr, A> {
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout);
    server
}

async fn info(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Json<serde_json::Value> {
    let engine = &state.engine;
    // The brokers' cluster id; null while they cannot be reached.
    let cluster = engine.cluster_id().await.ok();
    Json(json!({
        "KsqlServerInfo": {
            "version": VERSION,
            "kafkaClusterId": cluster,
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
    match brokers_answer(&state).await {
        Ok(_) => Json(json!({"isHealthy": true})).into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"isHealthy": false, "message": e})),
        )
            .into_response(),
    }
}

/// How long a health check waits for the brokers: probes (Kubernetes' among them) give
/// up after a few seconds, and a broker that takes longer is not healthy.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether the brokers answer within the health check's time.
async fn brokers_answer(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_TIMEOUT, state.engine.check_brokers()).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "the brokers did not answer within {} s",
            HEALTH_TIMEOUT.as_secs()
        )),
    }
}

/// `GET /healthcheck`: ksqlDB's checks. The metastore is this process's catalog, there
/// as long as the process answers; Kafka is healthy when the brokers answer. An unhealthy
/// server answers 503, as ksqlDB's does.
async fn healthcheck(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let kafka = brokers_answer(&state).await;
    let healthy = kafka.is_ok();
    let mut kafka_check = json!({"isHealthy": healthy});
    if let Err(e) = &kafka {
        kafka_check["message"] = json!(e);
    }
    let status = match healthy {
        true => axum::http::StatusCode::OK,
        false => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        status,
        Json(json!({
            "isHealthy": healthy,
            "details": {
                "metastore": {"isHealthy": true},
                "kafka": kafka_check,
            }
        })),
    )
        .into_response()
}

/// `GET /clusterStatus`: every server of the service, as its queries' consumer groups
/// know them, with the stores and partitions each runs. Lag reporting between servers is
/// not kept: `hostStoreLags` is empty, as ksqlDB's is without `ksql.lag.reporting.enable`.
async fn cluster_status(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let hosts = match state.engine.cluster_status().await {
        Ok(hosts) => hosts,
        Err(e) => return errors::generic(errors::SERVER_ERROR, e),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let status: serde_json::Map<String, serde_json::Value> = hosts
        .into_iter()
        .map(|(host, s)| {
            let queries: serde_json::Map<String, serde_json::Value> = s
                .queries
                .into_iter()
                .map(|(id, q)| {
                    let partitions: Vec<serde_json::Value> = q
                        .partitions
                        .iter()
                        .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
                        .collect();
                    (
                        id,
                        json!({
                            "activeStores": q.stores,
                            "activePartitions": partitions,
                            "standByStores": [],
                            "standByPartitions": [],
                        }),
                    )
                })
                .collect();
            (
                host,
                json!({
                    "hostAlive": true,
                    "lastStatusUpdateMs": now,
                    "activeStandbyPerQuery": queries,
                    "hostStoreLags": {"stateStoreLags": {}, "updateTimeMs": 0},
                }),
            )
        })
        .collect();
    Json(json!({ "clusterStatus": status })).into_response()
}

/// The address other servers and clients reach this one at: the listener's, with the
/// machine's name for an address that listens on every interface (as ksqlDB advertises).
fn advertised(address: SocketAddr) -> String {
    if !address.ip().is_unspecified() {
        return address.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", address.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_engine::runtime::driver::Driver;
    use brook_engine::schema_registry::MemoryRegistry;

    /// With authentication on, walks every route the API serves, with every method, and
    /// fails if any answers a request without credentials (the health checks aside).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_route_answers_without_credentials() {
        let dir = std::env::temp_dir().join(format!("brook-auth-walk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let users = dir.join("users.properties");
        std::fs::write(&users, "alice: wonderland\n").expect("users file");
        let auth = BasicAuth::from_file(&users, "Walk").expect("users");
        let engine = Engine::on_driver(
            Arc::new(Driver::new("walk_", 1)),
            "walk_",
            Arc::new(MemoryRegistry::default()),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = Listener {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            tls: None,
            basic_auth: Some(auth),
        };
        let server = tokio::spawn(serve(engine, listener, Mode::Unrecorded, async {
            let _ = stopped.await;
        }));

        let base = format!("http://127.0.0.1:{port}");
        let paths: Vec<String> = routes()
            .paths()
            .iter()
            .map(|p| {
                // Path parameters take any value: the refusal comes before the route.
                p.split('/')
                    .map(|part| if part.starts_with('{') { "x" } else { part })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .chain(["/no-such-endpoint".to_string()])
            .collect();
        assert!(paths.len() >= 30, "the walk sees every route: {paths:?}");
        let walked = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let call = |method: &str, path: &str, credentials: Option<&str>| {
                let mut request = ureq::http::Request::builder()
                    .method(method)
                    .uri(format!("{base}{path}"))
                    .header("Content-Type", "application/json");
                if let Some(c) = credentials {
                    use base64::Engine as _;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(c);
                    request = request.header("Authorization", format!("Basic {encoded}"));
                }
                let body = match method {
                    "POST" | "PUT" => "{}".to_string(),
                    _ => String::new(),
                };
                let request = request.body(body).expect("request");
                // The server may still be binding its port.
                for _ in 0..200 {
                    match agent.run(request.clone()) {
                        Ok(response) => return response.status().as_u16(),
                        Err(ureq::Error::Io(_) | ureq::Error::ConnectionFailed) => {
                            std::thread::sleep(std::time::Duration::from_millis(25))
                        }
                        Err(e) => panic!("{method} {path}: {e}"),
                    }
                }
                panic!("the server never answered {method} {path}");
            };
            let mut answered = Vec::new();
            for path in &paths {
                for method in ["GET", "POST", "PUT", "DELETE"] {
                    let status = call(method, path, None);
                    let open = security::OPEN_PATHS.contains(&path.as_str());
                    if open == (status == 401) {
                        answered.push(format!("{method} {path}: {status}"));
                    }
                }
            }
            let wrong = call("GET", "/info", Some("alice:rabbit"));
            let right = call("GET", "/info", Some("alice:wonderland"));
            (answered, wrong, right)
        })
        .await
        .expect("the walk");
        let (answered, wrong, right) = walked;
        assert!(
            answered.is_empty(),
            "routes that answered without credentials (or open ones that refused): {answered:?}"
        );
        assert_eq!(wrong, 401, "a wrong password is refused");
        assert_eq!(right, 200, "the right one is let in");
        let _ = stop.send(());
        server.await.expect("server task").expect("served");
        let _ = std::fs::remove_dir_all(dir);
    }
}
