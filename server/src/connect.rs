//! Connectors over HTTP: the entities `/ksql` answers connector statements with (ksqlDB's
//! `connector_info`, `connector_list`, `connector_description`,
//! `connector_plugins_list`), and Kafka Connect's REST API (`/connectors`,
//! `/connector-plugins`) in Connect's shapes and error bodies, so Connect tooling manages
//! Brook's connectors. Creating and deleting go through the same statements, and so
//! through the command topic, as `CREATE/DROP CONNECTOR` over `/ksql`.

use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Json;
use brook_engine::connect::{ConnectorInfo, ConnectorStatus, Connectors};
use brook_engine::{Session, SourceSummary, StatementResult};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn connector_info(statement_text: &str, info: &ConnectorInfo) -> Value {
    json!({
        "@type": "connector_info",
        "statementText": statement_text,
        "info": info_body(&info.name, info.kind.name(), &info.config, &info.tasks),
        "warnings": [],
    })
}

fn info_body(name: &str, kind: &str, config: &BTreeMap<String, String>, tasks: &[u32]) -> Value {
    let mut shown: Map<String, Value> = config
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    shown.insert("name".into(), Value::String(name.to_string()));
    json!({
        "name": name,
        "config": shown,
        "tasks": tasks.iter().map(|t| json!({"connector": name, "task": t})).collect::<Vec<_>>(),
        "type": kind,
    })
}

pub fn connector_list(statement_text: &str, connectors: &[ConnectorStatus]) -> Value {
    json!({
        "@type": "connector_list",
        "statementText": statement_text,
        "connectors": connectors.iter().map(|c| json!({
            "name": c.name,
            "type": c.kind.name(),
            "className": c.class,
            "state": c.summary(),
        })).collect::<Vec<_>>(),
        "warnings": [],
    })
}

pub fn connector_description(
    statement_text: &str,
    status: &ConnectorStatus,
    sources: &[SourceSummary],
) -> Value {
    json!({
        "@type": "connector_description",
        "statementText": statement_text,
        "connectorClass": status.class,
        "status": status_body(status),
        "sources": sources.iter().map(|s| json!({
            "name": s.name,
            "type": s.kind.keyword(),
            "topic": s.topic,
            "keyFormat": s.key_format,
            "valueFormat": s.value_format,
        })).collect::<Vec<_>>(),
        "topics": status.topics,
        "warnings": [],
    })
}

pub fn plugins_list(
    statement_text: &str,
    plugins: &[brook_engine::connect::ConnectorPlugin],
) -> Value {
    json!({
        "@type": "connector_plugins_list",
        "statementText": statement_text,
        "connectorsPlugins": plugins.iter().map(plugin).collect::<Vec<_>>(),
        "warnings": [],
    })
}

fn plugin(p: &brook_engine::connect::ConnectorPlugin) -> Value {
    json!({"className": p.class, "type": p.kind.name(), "version": p.version})
}

/// Kafka Connect's status of a connector, with each task's figures.
fn status_body(status: &ConnectorStatus) -> Value {
    let mut connector = json!({"state": status.state.name(), "worker_id": status.worker_id});
    if let Some(trace) = &status.trace {
        connector["trace"] = json!(trace);
    }
    json!({
        "name": status.name,
        "connector": connector,
        "tasks": status.tasks.iter().map(task_body).collect::<Vec<_>>(),
        "type": status.kind.name(),
    })
}

fn task_body(t: &brook_engine::connect::TaskStatus) -> Value {
    let mut task = json!({
        "id": t.id,
        "state": t.state.name(),
        "worker_id": t.worker_id,
        "records_sent": t.records_sent,
        "batches_in_flight": t.batches_in_flight,
        "retries": t.retries,
        "dead_letters": t.dead_letters,
    });
    if let Some(trace) = &t.trace {
        task["trace"] = json!(trace);
    }
    task
}

/// Kafka Connect's REST API.
pub fn routes() -> crate::routes::Routes<Arc<AppState>> {
    crate::routes::Routes::new()
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/topics", get(topics))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connectors/{name}/restart", post(restart))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connector-plugins", get(plugins))
}

/// Connect's error body.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error_code": status.as_u16(), "message": message.into()})),
    )
        .into_response()
}

fn runtime(state: &AppState) -> Result<&Arc<dyn Connectors>, Box<Response>> {
    state.engine.connectors().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "this server runs no connector runtime",
        ))
    })
}

fn find(state: &AppState, name: &str) -> Result<ConnectorStatus, Box<Response>> {
    runtime(state)?.status(name).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("Connector {name} not found"),
        ))
    })
}

fn info_of(c: &ConnectorStatus) -> Value {
    let tasks: Vec<u32> = c.tasks.iter().map(|t| t.id).collect();
    info_body(&c.name, c.kind.name(), &c.config, &tasks)
}

#[derive(serde::Deserialize)]
struct Expand {
    expand: Option<String>,
}

async fn list(State(state): State<Arc<AppState>>, Query(q): Query<Expand>) -> Response {
    let runtime = match runtime(&state) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let connectors = runtime.statuses();
    match q.expand.as_deref() {
        None => Json(json!(connectors
            .iter()
            .map(|c| &c.name)
            .collect::<Vec<_>>()))
        .into_response(),
        Some(expand) => {
            let mut out = Map::new();
            for c in &connectors {
                let mut entry = Map::new();
                if expand.contains("status") {
                    entry.insert("status".into(), status_body(c));
                }
                if expand.contains("info") {
                    entry.insert("info".into(), info_of(c));
                }
                out.insert(c.name.clone(), Value::Object(entry));
            }
            Json(Value::Object(out)).into_response()
        }
    }
}

/// A connector statement built from a Connect request, run as `/ksql` would run it.
async fn run_statement(state: &AppState, text: String) -> Result<StatementResult, Box<Response>> {
    let statement = brook_sql::parse_statement(&text, Default::default())
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e.to_string())))?;
    let mut session = Session::new(state.engine.clone());
    let failed = |status, message| Err(Box::new(error(status, message)));
    match crate::ksql::execute(state, &mut session, &statement).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) if e.message.contains("already exists") => {
            failed(StatusCode::CONFLICT, e.message)
        }
        Ok(Err(e)) if e.message.contains("not found") => failed(StatusCode::NOT_FOUND, e.message),
        Ok(Err(e)) => failed(StatusCode::BAD_REQUEST, e.message),
        Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn create(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    if matches!(state.commands, crate::Commands::Refused) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "The server is running in headless mode from a queries file: it takes no new connectors.",
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")),
    };
    let (Some(name), Some(config)) = (body["name"].as_str(), body["config"].as_object()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request must be {\"name\": ..., \"config\": {...}}",
        );
    };
    if name.is_empty() || name.contains('`') {
        return error(
            StatusCode::BAD_REQUEST,
            "A connector name cannot be empty or hold `",
        );
    }
    let class = config
        .get("connector.class")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = match class {
        c if c.to_lowercase().contains("source") => "SOURCE",
        _ => "SINK",
    };
    let properties: Vec<String> = config
        .iter()
        .filter(|(k, _)| k.as_str() != "name")
        .map(|(k, v)| {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            format!("{} = {}", quoted(k), quoted(&text))
        })
        .collect();
    if properties.is_empty() {
        return error(StatusCode::BAD_REQUEST, "The connector config is empty");
    }
    let text = format!(
        "CREATE {kind} CONNECTOR `{name}` WITH ({})",
        properties.join(", ")
    );
    match run_statement(&state, text).await {
        Ok(StatementResult::ConnectorCreated(info)) => (
            StatusCode::CREATED,
            Json(info_body(
                &info.name,
                info.kind.name(),
                &info.config,
                &info.tasks,
            )),
        )
            .into_response(),
        Ok(_) => error(
            StatusCode::CONFLICT,
            format!("Connector {name} already exists"),
        ),
        Err(response) => *response,
    }
}

async fn delete(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    if let Err(response) = find(&state, &name) {
        return *response;
    }
    if name.contains('`') {
        return error(StatusCode::BAD_REQUEST, "A connector name cannot hold `");
    }
    match run_statement(&state, format!("DROP CONNECTOR `{name}`")).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => *response,
    }
}

async fn info(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Ok(c) => Json(info_of(&c)).into_response(),
        Err(response) => *response,
    }
}

async fn config(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Ok(c) => Json(info_of(&c)["config"].clone()).into_response(),
        Err(response) => *response,
    }
}

async fn status(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Ok(c) => Json(status_body(&c)).into_response(),
        Err(response) => *response,
    }
}

async fn topics(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Ok(c) => Json(json!({ c.name.clone(): {"topics": c.topics} })).into_response(),
        Err(response) => *response,
    }
}

async fn tasks(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Ok(c) => {
            let config = info_of(&c)["config"].clone();
            Json(json!(c
                .tasks
                .iter()
                .map(|t| json!({"id": {"connector": c.name, "task": t.id}, "config": config}))
                .collect::<Vec<_>>()))
            .into_response()
        }
        Err(response) => *response,
    }
}

async fn task_status(
    State(state): State<Arc<AppState>>,
    Path((name, task)): Path<(String, u32)>,
) -> Response {
    match find(&state, &name) {
        Ok(c) => match c.tasks.iter().find(|t| t.id == task) {
            Some(t) => Json(task_body(t)).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                format!("Task {task} of connector {name} not found"),
            ),
        },
        Err(response) => *response,
    }
}

#[derive(serde::Deserialize)]
struct RestartQuery {
    #[serde(rename = "includeTasks")]
    include_tasks: Option<bool>,
    #[serde(rename = "onlyFailed")]
    only_failed: Option<bool>,
}

async fn restart(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<RestartQuery>,
) -> Response {
    let runtime = match runtime(&state) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    // A native connector is its tasks: restarting "the connector" alone restarts the
    // failed ones, as the connector instance itself cannot fail apart from them.
    let only_failed = q.only_failed.unwrap_or(false) || !q.include_tasks.unwrap_or(false);
    match runtime.restart(&name, only_failed) {
        Ok(()) if q.include_tasks.unwrap_or(false) => match find(&state, &name) {
            Ok(c) => (StatusCode::ACCEPTED, Json(status_body(&c))).into_response(),
            Err(response) => *response,
        },
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn restart_task(
    State(state): State<Arc<AppState>>,
    Path((name, task)): Path<(String, u32)>,
) -> Response {
    let connector = match find(&state, &name) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    if !connector.tasks.iter().any(|t| t.id == task) {
        return error(
            StatusCode::NOT_FOUND,
            format!("Task {task} of connector {name} not found"),
        );
    }
    let runtime = match runtime(&state) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match runtime.restart_task(&name, task) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn pause(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    paused(&state, &name, true)
}

async fn resume(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    paused(&state, &name, false)
}

fn paused(state: &AppState, name: &str, paused: bool) -> Response {
    let runtime = match runtime(state) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match runtime.pause(name, paused) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn plugins(State(state): State<Arc<AppState>>) -> Response {
    match runtime(&state) {
        Ok(r) => Json(json!(r.plugins().iter().map(plugin).collect::<Vec<_>>())).into_response(),
        Err(response) => *response,
    }
}
