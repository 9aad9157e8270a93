//! `POST /inserts-stream`: rows streamed into a stream or table. The body is
//! newline-delimited JSON: first `{"target": "NAME", "properties": {...}}`, then one
//! object of column values per row. Each row is acknowledged in order, once written, with
//! `{"status":"ok","seq":n}`, or `{"status":"error","seq":n,"error_code":...,"message":...}`;
//! a bad row does not end the stream. Acks come a JSON object a line, or, when the client
//! sends `Accept: application/json`, as the elements of one JSON array, as ksqlDB writes
//! them.

use crate::errors;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use brook_engine::Session;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;

const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

pub async fn inserts_stream(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let json_array = crate::query_stream::accepts(&headers, "application/json");
    let mut chunks = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    // The first line names the target.
    let first = loop {
        if let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            break line;
        }
        match chunks.next().await {
            Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return errors::generic(
                    errors::BAD_REQUEST,
                    format!("cannot read the request: {e}"),
                )
            }
            None => break std::mem::take(&mut pending),
        }
    };
    let request = match errors::json_body(&first) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let Some(target) = request.get("target").and_then(|t| t.as_str()) else {
        return errors::generic(errors::BAD_REQUEST, "The first line has no 'target' field");
    };
    // Unquoted names are upper case, as in SQL.
    let target = if state.engine.source(target).await.is_some() {
        target.to_string()
    } else {
        target.to_uppercase()
    };
    if state.engine.source(&target).await.is_none() {
        return errors::generic(
            errors::BAD_REQUEST,
            format!("Cannot insert into {target}: no such stream or table"),
        );
    }
    let mut session = Session::new(state.engine.clone());
    for (k, v) in errors::properties(&request, "properties") {
        session.properties.insert(k, v);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(64);
    tokio::spawn(async move {
        let mut seq: u64 = 0;
        let mut ended = false;
        loop {
            while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                if !insert_line(&session, &target, &line, &mut seq, &tx).await {
                    return;
                }
            }
            if ended {
                if !pending.is_empty() {
                    let line = std::mem::take(&mut pending);
                    insert_line(&session, &target, &line, &mut seq, &tx).await;
                }
                return;
            }
            match chunks.next().await {
                Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                Some(Err(_)) | None => ended = true,
            }
        }
    });
    // (receiver, acks written so far, whether the answer is complete)
    let acks = futures::stream::unfold((rx, 0usize, false), move |(mut rx, n, done)| async move {
        if done {
            return None;
        }
        let ack = rx.recv().await;
        let text = match (&ack, json_array) {
            (Some(ack), false) => format!("{ack}\n"),
            (Some(ack), true) if n == 0 => format!("[{ack}"),
            (Some(ack), true) => format!(",{ack}"),
            (None, true) if n == 0 => "[]".to_string(),
            (None, true) => "]".to_string(),
            (None, false) => return None,
        };
        let done = ack.is_none();
        Some((
            Ok::<Bytes, std::io::Error>(Bytes::from(text)),
            (rx, n + 1, done),
        ))
    });
    let content_type = if json_array {
        "application/json"
    } else {
        DELIMITED
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(acks),
    )
        .into_response()
}

/// Inserts the row of one line and acknowledges it; false once the client is gone.
async fn insert_line(
    session: &Session,
    target: &str,
    line: &[u8],
    seq: &mut u64,
    acks: &tokio::sync::mpsc::Sender<Value>,
) -> bool {
    if line.iter().all(u8::is_ascii_whitespace) {
        return true;
    }
    let outcome = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(row)) => session
            .insert_json(target, &row)
            .await
            .map_err(|e| (errors::BAD_STATEMENT, e.message)),
        Ok(_) => Err((
            errors::BAD_REQUEST,
            "A row must be a JSON object".to_string(),
        )),
        Err(e) => Err((errors::BAD_REQUEST, format!("Invalid JSON in row: {e}"))),
    };
    let ack = match outcome {
        Ok(()) => json!({"status": "ok", "seq": *seq}),
        Err((code, message)) => {
            json!({"status": "error", "seq": *seq, "error_code": code, "message": message})
        }
    };
    *seq += 1;
    acks.send(ack).await.is_ok()
}
