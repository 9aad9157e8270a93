//! `POST /ksql`: runs the statements of `{"ksql": "...", "streamsProperties": {...},
//! "sessionVariables": {...}}` in order and answers with one entity per statement, or with
//! a `statement_error` for the first that fails (carrying the entities before it).

use crate::errors;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_engine::{Session, StatementResult};
use brook_sql::ast::{SourceKind, StatementKind};
use serde_json::json;
use std::sync::Arc;

/// Where queries go instead of `/ksql`.
const QUERY_ELSEWHERE: &str = "The following statement types should be issued to the streaming endpoint '/query-stream': SELECT ... EMIT CHANGES";

pub async fn handle(State(state): State<Arc<crate::AppState>>, body: Bytes) -> Response {
    let engine = state.engine.clone();
    let body = match errors::json_body(&body) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let Some(text) = body.get("ksql").and_then(|k| k.as_str()) else {
        return errors::generic(errors::BAD_REQUEST, "The request has no 'ksql' field");
    };
    if matches!(state.commands, crate::Commands::Refused) {
        return errors::statement(
            "The server is running in headless mode from a queries file: it takes no statements over /ksql.",
            text,
            vec![],
        );
    }
    let mut variables = errors::session_variables(&body);
    let statements = match brook_sql::parse_statements(text, &mut variables) {
        Ok(s) => s,
        Err(e) => return errors::statement(&e.to_string(), text, vec![]),
    };
    let mut session = Session::new(engine.clone());
    for (k, v) in errors::properties(&body, "streamsProperties") {
        session.properties.insert(k, v);
    }
    let mut entities = Vec::new();
    for (sequence, statement) in statements.iter().enumerate() {
        // Queries stream from their own endpoints, within the limits kept there; run here,
        // they would hold a consumer for an answer nobody reads.
        if statement.kind.answers_with_rows() {
            return errors::statement(QUERY_ELSEWHERE, &statement.text, entities);
        }
        // Statements that change what runs are recorded before they take effect, one at a
        // time, with the number their query ids end with.
        let is_command = crate::command_topic::is_command(&statement.kind);
        let outcome = match execute(&state, &mut session, statement).await {
            Ok(outcome) => outcome,
            Err(e) => return errors::generic(errors::SERVER_ERROR, e),
        };
        match outcome {
            // ksqlDB answers INSERT ... VALUES with no entity.
            Ok(StatementResult::Status { .. })
                if matches!(
                    statement.kind,
                    brook_sql::ast::StatementKind::InsertValues(_)
                ) => {}
            Ok(StatementResult::Status { message, query_id }) => {
                let command_id = command_id(&statement.kind)
                    .unwrap_or_else(|| format!("statement/{sequence}/execute"));
                if is_command {
                    state.record_status(&command_id, "SUCCESS", &message, query_id.as_deref());
                }
                entities.push(json!({
                    "@type": "currentStatus",
                    "statementText": statement.text,
                    "commandId": command_id,
                    "commandStatus": {
                        "status": "SUCCESS",
                        "message": message,
                        "queryId": query_id,
                    },
                    "commandSequenceNumber": sequence,
                    "warnings": [],
                }))
            }
            Ok(StatementResult::Warning(message)) => entities.push(json!({
                "@type": "warning_entity",
                "statementText": statement.text,
                "message": message,
                "warnings": [],
            })),
            Ok(StatementResult::ConnectorCreated(info)) => {
                entities.push(crate::connect::connector_info(&statement.text, &info))
            }
            Ok(StatementResult::ConnectorDropped(name)) => entities.push(json!({
                "@type": "drop_connector",
                "statementText": statement.text,
                "connectorName": name,
                "warnings": [],
            })),
            Ok(StatementResult::Listing(listing)) => {
                entities.push(crate::entities::listing(&statement.text, &listing))
            }
            // Refused above; a statement that answers with rows all the same is closed.
            Ok(StatementResult::Rows(push)) => {
                push.close();
                return errors::statement(QUERY_ELSEWHERE, &statement.text, entities);
            }
            Err(e) => return errors::statement(&e.message, &statement.text, entities),
        }
    }
    Json(serde_json::Value::Array(entities)).into_response()
}

/// Executes a statement, through the command topic when it changes what runs (so every
/// server of the service runs it, and it survives restarts). The outer error is the
/// command topic's.
pub async fn execute(
    state: &crate::AppState,
    session: &mut Session,
    statement: &brook_sql::ast::Statement,
) -> Result<Result<StatementResult, brook_engine::EngineError>, String> {
    let is_command = crate::command_topic::is_command(&statement.kind);
    // A terminated cluster has no command topic to write to; the session says why.
    if state.engine.is_terminated() {
        return Ok(session.execute(statement).await);
    }
    Ok(match &state.commands {
        crate::Commands::Recorded(commands) if is_command => {
            // One command of this server at a time, each run by the command runner.
            let commands = commands.lock().await;
            commands
                .run(&statement.text, statement.position, &session.properties)
                .await?
        }
        crate::Commands::Unrecorded(one_at_a_time) if is_command => {
            let _turn = one_at_a_time.lock().await;
            session.execute(statement).await
        }
        _ => session.execute(statement).await,
    })
}

/// ksqlDB's id of a command, `<type>/<entity>/<action>`, which `/status` answers for.
pub fn command_id(kind: &StatementKind) -> Option<String> {
    let noun = |k: SourceKind| match k {
        SourceKind::Stream => "stream",
        SourceKind::Table => "table",
    };
    Some(match kind {
        StatementKind::CreateSource(c) => format!("{}/{}/create", noun(c.kind), c.name),
        StatementKind::CreateAsSelect(c) => format!("{}/{}/create", noun(c.kind), c.name),
        StatementKind::InsertInto(i) => format!("stream/{}/create", i.target),
        StatementKind::Drop(d) => format!("{}/{}/drop", noun(d.kind), d.name),
        StatementKind::CreateType { name, .. } => format!("type/{name}/create"),
        StatementKind::DropType { name, .. } => format!("type/{name}/drop"),
        StatementKind::Alter { kind, name, .. } => format!("{}/{name}/alter", noun(*kind)),
        // Each change of the cluster's properties is a command of its own.
        StatementKind::AlterSystem { .. } => {
            format!("cluster/{}/alter", crate::command_topic::unique_token())
        }
        StatementKind::Terminate { query_id } => {
            format!("terminate/{}/execute", query_id.as_deref().unwrap_or("ALL"))
        }
        StatementKind::SetRunning { query_id, running } => format!(
            "{}/{}/execute",
            if *running { "resume" } else { "pause" },
            query_id.as_deref().unwrap_or("ALL")
        ),
        _ => return None,
    })
}
