//! `POST /ksql`: runs the statements of `{"ksql": "...", "streamsProperties": {...},
//! "sessionVariables": {...}}` in order and answers with one entity per statement, or with
//! a `statement_error` for the first that fails (carrying the entities before it).

use crate::errors;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use brook_engine::{Engine, Session, StatementResult};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let body = match errors::json_body(&body) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let Some(text) = body.get("ksql").and_then(|k| k.as_str()) else {
        return errors::generic(errors::BAD_REQUEST, "The request has no 'ksql' field");
    };
    let mut variables: BTreeMap<String, String> = body
        .get("sessionVariables")
        .and_then(|v| v.as_object())
        .map(|v| {
            v.iter()
                .map(|(k, v)| {
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.to_uppercase(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    let statements = match brook_sql::parse_statements(text, &mut variables) {
        Ok(s) => s,
        Err(e) => return errors::statement(&e.to_string(), text, vec![]),
    };
    let mut session = Session::new(engine);
    for (k, v) in errors::properties(&body, "streamsProperties") {
        session.properties.insert(k, v);
    }
    let mut entities = Vec::new();
    for (sequence, statement) in statements.iter().enumerate() {
        match session.execute(statement).await {
            Ok(StatementResult::Status { message, query_id }) => entities.push(json!({
                "@type": "currentStatus",
                "statementText": statement.text,
                "commandId": format!("{}/{}", sequence, query_id.as_deref().unwrap_or("statement")),
                "commandStatus": {
                    "status": "SUCCESS",
                    "message": message,
                    "queryId": query_id,
                },
                "commandSequenceNumber": sequence,
                "warnings": [],
            })),
            Ok(StatementResult::Rows(push)) => {
                push.close();
                return errors::statement(
                    "The following statement types should be issued to the streaming endpoint '/query-stream': SELECT ... EMIT CHANGES",
                    &statement.text,
                    entities,
                );
            }
            Err(e) => return errors::statement(&e.message, &statement.text, entities),
        }
    }
    Json(serde_json::Value::Array(entities)).into_response()
}
