//! ksqlDB's error bodies: `{"@type": ..., "error_code": ..., "message": ...}`, with the
//! HTTP status the code starts with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A request body that is not the JSON the endpoint takes.
pub const BAD_REQUEST: u32 = 40000;
/// A statement that failed.
pub const BAD_STATEMENT: u32 = 40001;
pub const NOT_FOUND: u32 = 40400;
/// The server could not do what it should have.
pub const SERVER_ERROR: u32 = 50000;

pub fn generic(code: u32, message: impl Into<String>) -> Response {
    with_status(
        code,
        json!({"@type": "generic_error", "error_code": code, "message": message.into()}),
    )
}

pub fn statement(
    message: &str,
    statement_text: &str,
    entities: Vec<serde_json::Value>,
) -> Response {
    with_status(
        BAD_STATEMENT,
        json!({
            "@type": "statement_error",
            "error_code": BAD_STATEMENT,
            "message": message,
            "statementText": statement_text,
            "entities": entities,
        }),
    )
}

fn with_status(code: u32, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16((code / 100) as u16).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(body)).into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    generic(NOT_FOUND, format!("No endpoint at {}", uri.path()))
}

/// Reads a JSON object body, or answers with ksqlDB's bad-request error.
pub fn json_body(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Box<Response>> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Box::new(generic(
            BAD_REQUEST,
            "The request body must be a JSON object",
        ))),
        Err(e) => Err(Box::new(generic(
            BAD_REQUEST,
            format!("Invalid JSON in request: {e}"),
        ))),
    }
}

/// The request's `sessionVariables`, as `${name}` substitution takes them (names in upper
/// case, values as text).
pub fn session_variables(
    body: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::BTreeMap<String, String> {
    properties(body, "sessionVariables")
        .into_iter()
        .map(|(k, v)| (k.to_uppercase(), v))
        .collect()
}

/// The request's properties (`streamsProperties` / `properties`) as strings.
pub fn properties(
    body: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Vec<(String, String)> {
    body.get(field)
        .and_then(|p| p.as_object())
        .map(|p| {
            p.iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A body over the size limit is refused in ksqlDB's shape rather than as plain text.
pub async fn too_large(response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return with_status(
            41300,
            json!({
                "@type": "generic_error",
                "error_code": 41300,
                "message": "The request body is larger than the server accepts",
            }),
        );
    }
    response
}
