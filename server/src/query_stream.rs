//! Push queries over HTTP. `POST /query-stream` runs `{"sql": "SELECT ... EMIT CHANGES",
//! "properties": {...}}` and streams ksqlDB's delimited format: a header line with the
//! query id and the columns, then one JSON array per row. `POST /query` runs `{"ksql":
//! ..., "streamsProperties": {...}}` and streams the older format: one JSON array of a
//! header, rows and a final message. A query ends at its LIMIT, on `/close-query`, or when
//! the client goes away (the response stream is dropped, which closes the query).

use crate::errors;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use brook_engine::serving::{PushQuery, PushRow};
use brook_engine::{Session, StatementResult};
use serde_json::json;
use std::sync::Arc;

/// ksqlDB's content type for newline-delimited results.
const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

/// A query admitted within the server's limits: its place is held until its answer ends.
struct Admitted {
    push: PushQuery,
    permit: crate::limits::Permit,
}

/// Starts the one query the request body holds in `field` (with its properties in
/// `properties_field`), registered for `/close-query`.
async fn start(
    state: &Arc<AppState>,
    body: &[u8],
    field: &str,
    properties_field: &str,
) -> Result<Admitted, Response> {
    let body = errors::json_body(body).map_err(|response| *response)?;
    let Some(sql) = body.get(field).and_then(|k| k.as_str()) else {
        return Err(errors::generic(
            errors::BAD_REQUEST,
            format!("The request has no '{field}' field"),
        ));
    };
    let properties = errors::properties(&body, properties_field);
    let mut variables = errors::session_variables(&body);
    let statements = brook_sql::parse_statements(sql, &mut variables)
        .map_err(|e| errors::statement(&e.to_string(), sql, vec![]))?;
    let [statement] = statements.as_slice() else {
        return Err(errors::statement(
            "Expected exactly one statement",
            sql,
            vec![],
        ));
    };
    // Only queries run here: anything else would change the service without going
    // through the command topic (and headless mode).
    if !statement.kind.answers_with_rows() {
        return Err(errors::statement(
            &format!(
                "Statement type `{}' not supported for this resource",
                statement_type(&statement.kind)
            ),
            &statement.text,
            vec![],
        ));
    }
    // A SELECT without EMIT is a pull query; the rest run until they are closed.
    let pull =
        matches!(&statement.kind, brook_sql::ast::StatementKind::Query(q) if q.emit.is_none());
    let admitted = if pull {
        state.admission.pull()
    } else {
        state.admission.push()
    };
    let permit = admitted.map_err(crate::limits::Refusal::response)?;
    let mut session = Session::new(state.engine.clone());
    for (k, v) in properties {
        session.properties.insert(k, v);
    }
    match session.execute(statement).await {
        Ok(StatementResult::Rows(push)) => {
            state.register(&push);
            Ok(Admitted { push, permit })
        }
        Ok(
            StatementResult::Status { .. }
            | StatementResult::Listing(_)
            | StatementResult::Warning(_)
            | StatementResult::ConnectorCreated(_)
            | StatementResult::ConnectorDropped(_),
        ) => Err(errors::statement(
            "This endpoint runs queries (SELECT ... EMIT CHANGES); send other statements to /ksql",
            &statement.text,
            vec![],
        )),
        Err(e) => Err(errors::statement(&e.message, &statement.text, vec![])),
    }
}

/// A statement's type as ksqlDB names it in errors (its statement class).
fn statement_type(kind: &brook_sql::ast::StatementKind) -> &'static str {
    use brook_sql::ast::{SourceKind, StatementKind};
    match kind {
        StatementKind::CreateSource(c) if c.kind == SourceKind::Table => "CreateTable",
        StatementKind::CreateSource(_) => "CreateStream",
        StatementKind::CreateAsSelect(c) if c.kind == SourceKind::Table => "CreateTableAsSelect",
        StatementKind::CreateAsSelect(_) => "CreateStreamAsSelect",
        StatementKind::InsertValues(_) => "InsertValues",
        StatementKind::InsertInto(_) => "InsertInto",
        StatementKind::Drop(d) if d.kind == SourceKind::Table => "DropTable",
        StatementKind::Drop(_) => "DropStream",
        StatementKind::Terminate { .. } => "TerminateQuery",
        StatementKind::SetRunning { running: false, .. } => "PauseQuery",
        StatementKind::SetRunning { running: true, .. } => "ResumeQuery",
        _ => "Statement",
    }
}

/// How a row is written.
type Line = Arc<dyn Fn(&PushRow) -> String + Send + Sync>;

/// How an answer ends, given whether the query reached its LIMIT.
type End = fn(bool) -> String;

/// How an answer is laid out: its content type, what comes before the rows, each row,
/// and what comes after them.
struct Layout {
    content_type: &'static str,
    first: String,
    line: Line,
    end: Option<End>,
}

/// A row as a JSON array.
fn json_row(row: &[brook_planner::value::Value]) -> serde_json::Value {
    serde_json::Value::Array(
        row.iter()
            .map(brook_engine::formats::value_to_json)
            .collect(),
    )
}

/// Streams the query's answer in `layout`; the query is unregistered when its rows run out
/// or the client goes away.
fn answer(state: Arc<AppState>, admitted: Admitted, layout: Layout) -> Response {
    struct Guard {
        state: Arc<AppState>,
        push: PushQuery,
        sent: u64,
        ended: bool,
        /// The query's place within the server's limits, given back with the guard.
        _permit: crate::limits::Permit,
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            self.state.unregister(&self.push.id);
        }
    }
    let Layout {
        content_type,
        first,
        line,
        end,
    } = layout;
    let guard = Guard {
        state,
        push: admitted.push,
        sent: 0,
        ended: false,
        _permit: admitted.permit,
    };
    let rows = futures::stream::unfold(guard, move |mut g| {
        let line = line.clone();
        async move {
            if g.ended {
                return None;
            }
            match g.push.rows.recv().await {
                Some(Ok(row)) => {
                    g.sent += 1;
                    Some((Ok(Bytes::from(line(&row))), g))
                }
                Some(Err(e)) => {
                    g.push.close();
                    let text = format!(
                        "{}\n",
                        json!({"@type": "generic_error", "error_code": errors::SERVER_ERROR, "message": e})
                    );
                    Some((Ok(Bytes::from(text)), g))
                }
                None => {
                    g.ended = true;
                    let limit_reached = g.push.limit.is_some_and(|l| g.sent >= l);
                    let end = end?;
                    Some((Ok(Bytes::from(end(limit_reached))), g))
                }
            }
        }
    });
    let first =
        futures::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(first)) });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(futures::StreamExt::chain(first, rows)),
    )
        .into_response()
}

/// Whether the request's Accept header names `media`.
pub(crate) fn accepts(headers: &axum::http::HeaderMap, media: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains(media))
}

pub async fn query_stream(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match start(&state, &body, "sql", "properties").await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let push = &admitted.push;
    let header_line = json!({
        "queryId": push.id,
        "columnNames": push.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "columnTypes": push.columns.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>(),
    });
    // `Accept: application/json` asks for one JSON array rather than delimited lines.
    let layout = if accepts(&headers, "application/json") {
        Layout {
            content_type: "application/json",
            first: format!("[{header_line}"),
            line: Arc::new(|row| format!(",\n{}", json_row(&row.columns))),
            end: Some(|_| "]\n".to_string()),
        }
    } else {
        Layout {
            content_type: DELIMITED,
            first: format!("{header_line}\n"),
            line: Arc::new(|row| format!("{}\n", json_row(&row.columns))),
            end: None,
        }
    };
    answer(state, admitted, layout)
}

pub async fn query(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match start(&state, &body, "ksql", "streamsProperties").await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let push = &admitted.push;
    // Pull query results name their key columns, as ksqlDB's do.
    let schema = push
        .columns
        .iter()
        .zip(&push.keys)
        .map(|((n, t), key)| match *key && push.pull {
            true => format!("`{n}` {t} KEY"),
            false => format!("`{n}` {t}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut header_line = json!({"header": {"queryId": push.id, "schema": schema}});
    // `Accept: application/vnd.ksql.v1+protobuf` asks for rows as protobuf messages of
    // the schema the header gives.
    let line: Line = if accepts(&headers, "protobuf") {
        let codec = match brook_engine::formats::protobuf::ProtobufCodec::new(
            None,
            String::new(),
            push.columns.clone(),
        ) {
            Ok(c) => c,
            Err(e) => return errors::generic(errors::SERVER_ERROR, e),
        };
        header_line["header"]["protoSchema"] =
            json!(brook_engine::formats::protobuf::schema_text(&push.columns));
        Arc::new(move |row| {
            use base64::Engine as _;
            let element = match codec.encode(&row.columns) {
                Ok(bytes) => {
                    json!({"row": {"protobufBytes": base64::engine::general_purpose::STANDARD.encode(bytes)}})
                }
                Err(e) => {
                    json!({"errorMessage": {"@type": "generic_error", "error_code": errors::SERVER_ERROR, "message": e}})
                }
            };
            format!(",\n{element}")
        })
    } else {
        // A table's delete says so, as ksqlDB's `row.tombstone`; other rows leave it out.
        Arc::new(|row| {
            let element = match row.tombstone {
                true => json!({"row": {"columns": json_row(&row.columns), "tombstone": true}}),
                false => json!({"row": {"columns": json_row(&row.columns)}}),
            };
            format!(",\n{element}")
        })
    };
    // A pull query's answer over a table ends without a final message, as ksqlDB's does.
    let end: End = if push.pull {
        |_| "]\n".to_string()
    } else {
        |limit_reached| {
            let message = if limit_reached {
                "Limit Reached"
            } else {
                "Query Completed"
            };
            format!(",\n{}]\n", json!({"finalMessage": message}))
        }
    };
    let layout = Layout {
        content_type: "application/json",
        first: format!("[{header_line}"),
        line,
        end: Some(end),
    };
    answer(state, admitted, layout)
}

/// `POST /close-query` with `{"queryId": ...}`: ends a push query another request runs.
pub async fn close_query(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let body = match errors::json_body(&body) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let Some(id) = body.get("queryId").and_then(|k| k.as_str()) else {
        return errors::generic(errors::BAD_REQUEST, "The request has no 'queryId' field");
    };
    if state.close(id) {
        axum::http::StatusCode::OK.into_response()
    } else {
        errors::generic(errors::BAD_REQUEST, format!("No query with id {id}"))
    }
}
