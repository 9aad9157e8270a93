//! `POST /ksql/terminate` (`{"deleteTopicList": [...], "streamsProperties": {...}}`):
//! ksqlDB's TERMINATE CLUSTER. Through the command topic, every server of the service stops
//! its persistent queries and deletes their internal topics, deletes the topics queries
//! wrote whose names match the list (names or regular expressions), forgets its streams,
//! tables and types, and takes no more statements; the command topic is deleted last.

use crate::errors;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_engine::{Engine, EngineError, StatementResult};
use serde_json::json;
use std::sync::Arc;

/// The statement ksqlDB records for the request.
const STATEMENT: &str = "TERMINATE CLUSTER;";
const COMMAND_ID: &str = "cluster/TerminateCluster/terminate";

/// The topic patterns of a request: each must be a regular expression.
fn patterns(body: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<String>, String> {
    let Some(list) = body.get("deleteTopicList") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err("deleteTopicList must be a list of topic names or patterns".into());
    };
    list.iter()
        .map(|p| {
            let pattern = p
                .as_str()
                .ok_or("deleteTopicList must be a list of topic names or patterns")?;
            matcher(pattern).map_err(|e| format!("Invalid pattern: {pattern}: {e}"))?;
            Ok(pattern.to_string())
        })
        .collect()
}

/// A pattern that matches whole topic names, as Java's `Pattern.matches` does.
fn matcher(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

/// Terminates the cluster in this process: what the command does on every server.
pub(crate) async fn terminate_cluster(
    engine: &Arc<Engine>,
    patterns: &[String],
) -> Result<StatementResult, EngineError> {
    let matchers: Vec<regex::Regex> = patterns.iter().filter_map(|p| matcher(p).ok()).collect();
    let deleted = engine
        .terminate_cluster(|topic| matchers.iter().any(|m| m.is_match(topic)))
        .await?;
    Ok(StatementResult::Status {
        message: format!(
            "Cluster terminated; deleted topics: [{}]",
            deleted.join(", ")
        ),
        query_id: None,
    })
}

pub async fn handle(State(state): State<Arc<crate::AppState>>, body: Bytes) -> Response {
    let body = match errors::json_body(&body) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let patterns = match patterns(&body) {
        Ok(p) => p,
        Err(e) => return errors::generic(errors::BAD_REQUEST, e),
    };
    if state.engine.is_terminated() {
        return errors::statement(
            "The cluster has been terminated: it takes no more statements.",
            STATEMENT,
            vec![],
        );
    }
    let outcome = match &state.commands {
        crate::Commands::Recorded(commands) => {
            let commands = commands.lock().await;
            commands.terminate_cluster(&patterns).await
        }
        _ => Ok(terminate_cluster(&state.engine, &patterns).await),
    };
    // Push queries end with the cluster.
    for closer in std::mem::take(&mut *state.push_queries()).into_values() {
        closer.close();
    }
    match outcome {
        Ok(Ok(StatementResult::Status { message, .. })) => {
            state.record_status(COMMAND_ID, "SUCCESS", &message, None);
            Json(json!([{
                "@type": "currentStatus",
                "statementText": STATEMENT,
                "commandId": COMMAND_ID,
                "commandStatus": {"status": "SUCCESS", "message": message, "queryId": null},
                "commandSequenceNumber": 0,
                "warnings": [],
            }]))
            .into_response()
        }
        Ok(Ok(_)) => errors::generic(errors::SERVER_ERROR, "TERMINATE CLUSTER gave no status"),
        Ok(Err(e)) => errors::statement(&e.message, STATEMENT, vec![]),
        Err(e) => errors::generic(errors::SERVER_ERROR, e),
    }
}
