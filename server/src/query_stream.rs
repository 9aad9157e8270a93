//! `POST /query-stream`: runs `{"sql": "SELECT ... EMIT CHANGES", "properties": {...}}` and
//! streams its rows in ksqlDB's delimited format: a header line with the query id and the
//! columns, then one JSON array per row. The query ends at its LIMIT or when the client
//! goes away (the response stream is dropped, which closes the query).

use crate::errors;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use brook_engine::{Session, StatementResult};
use serde_json::json;
use std::sync::Arc;

/// ksqlDB's content type for newline-delimited results.
const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

pub async fn handle(State(state): State<Arc<crate::AppState>>, body: Bytes) -> Response {
    let engine = state.engine.clone();
    let body = match errors::json_body(&body) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let Some(sql) = body.get("sql").and_then(|k| k.as_str()) else {
        return errors::generic(errors::BAD_REQUEST, "The request has no 'sql' field");
    };
    let mut variables = Default::default();
    let statements = match brook_sql::parse_statements(sql, &mut variables) {
        Ok(s) => s,
        Err(e) => return errors::statement(&e.to_string(), sql, vec![]),
    };
    let [statement] = statements.as_slice() else {
        return errors::statement("Expected exactly one statement", sql, vec![]);
    };
    let mut session = Session::new(engine);
    for (k, v) in errors::properties(&body, "properties") {
        session.properties.insert(k, v);
    }
    let push = match session.execute(statement).await {
        Ok(StatementResult::Rows(push)) => push,
        Ok(StatementResult::Status { .. } | StatementResult::Listing(_)) => {
            return errors::statement(
                "The /query-stream endpoint runs queries (SELECT); send other statements to /ksql",
                &statement.text,
                vec![],
            )
        }
        Err(e) => return errors::statement(&e.message, &statement.text, vec![]),
    };
    let header_line = json!({
        "queryId": push.id,
        "columnNames": push.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "columnTypes": push.columns.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>(),
    });
    let first = futures::stream::once(async move {
        Ok::<Bytes, std::io::Error>(Bytes::from(format!("{header_line}\n")))
    });
    let rows = futures::stream::unfold(push, |mut push| async move {
        match push.rows.recv().await {
            Some(Ok(row)) => {
                let values: Vec<serde_json::Value> = row
                    .iter()
                    .map(brook_engine::formats::value_to_json)
                    .collect();
                let line = format!("{}\n", serde_json::Value::Array(values));
                Some((Ok(Bytes::from(line)), push))
            }
            Some(Err(e)) => {
                let line = format!(
                    "{}\n",
                    json!({"@type": "generic_error", "error_code": 50000, "message": e})
                );
                push.close();
                Some((Ok(Bytes::from(line)), push))
            }
            None => None,
        }
    });
    (
        [(header::CONTENT_TYPE, DELIMITED)],
        Body::from_stream(futures::StreamExt::chain(first, rows)),
    )
        .into_response()
}
