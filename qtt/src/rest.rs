//! Running a REST case as ksqlDB's REST runner does, through a `brook server` on the
//! in-process driver: the statements before the first query go to `/ksql` in one request,
//! the inputs are produced, then each query goes to `/query` and its streamed answer is
//! read; the answers are compared with the case's `responses`, and a failing request with
//! its `expectedError`.

use crate::case::Case;
use crate::compare::json_matches;
use crate::run::{check_outputs, create_topics, pipe_inputs, register_schemas, Options};
use brook_engine::runtime::driver::Driver;
use brook_engine::schema_registry::MemoryRegistry;
use brook_engine::Engine;
use serde_json::{json, Value as Json};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

const SERVICE_ID: &str = "rqtt_";

/// The server of one case; dropping it stops the server.
struct Server {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_server(engine: Arc<Engine>) -> Result<Server, String> {
    let app = brook_server::router(engine, brook_server::Mode::Unrecorded).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Server {
        base: format!("http://{address}"),
        _stop: stop,
    })
}

fn is_query(statement: &str) -> bool {
    let first = statement.split_whitespace().next().unwrap_or_default();
    first.eq_ignore_ascii_case("SELECT") || first.eq_ignore_ascii_case("PRINT")
}

pub(crate) fn execute(
    runtime: &tokio::runtime::Runtime,
    case: &Case,
    options: &Options,
) -> Result<(), String> {
    let driver = Arc::new(Driver::new(SERVICE_ID, options.batch_size));
    let registry = Arc::new(MemoryRegistry::default());
    let engine = Engine::on_driver(driver.clone(), SERVICE_ID, registry.clone());
    create_topics(case, &driver);
    register_schemas(case, &registry);
    let server = runtime.block_on(start_server(engine.clone()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();

    let mut properties = serde_json::Map::new();
    // The server settings of ksqlDB's REST runner.
    properties.insert("auto.offset.reset".into(), json!("earliest"));
    properties.insert("ksql.query.push.v2.enabled".into(), json!("true"));
    for (k, v) in &case.properties {
        properties.insert(k.clone(), json!(v));
    }
    let split = case
        .statements
        .iter()
        .position(|s| is_query(s))
        .unwrap_or(case.statements.len());
    let (admin, queries) = case.statements.split_at(split);
    if let Some(s) = queries.iter().find(|s| !is_query(s)) {
        return Err(format!("a statement follows a query: {s}"));
    }

    let mut responses: Vec<Json> = Vec::new();
    if !admin.is_empty() {
        let body = json!({"ksql": admin.join("\n"), "streamsProperties": properties});
        let mut response = agent
            .post(format!("{}/ksql", server.base))
            .send(body.to_string())
            .map_err(|e| format!("POST /ksql: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("POST /ksql: {e}"))?;
        let answer: Json = serde_json::from_str(&text).map_err(|e| {
            format!("POST /ksql answered with something else than JSON ({e}): {text}")
        })?;
        if status != 200 {
            return expect_error(case, status, &answer);
        }
        for entity in answer.as_array().into_iter().flatten() {
            responses.push(json!({ "admin": entity }));
        }
    }
    let sources = runtime.block_on(engine.sources());
    if !case.inputs_after_push {
        pipe_inputs(case, &driver, &sources, engine.formats())?;
    }
    if case.expected_error.is_none() {
        check_outputs(case, &|t| driver.records(t), &sources, engine.formats())?;
    }
    for (i, query) in queries.iter().enumerate() {
        let body = json!({"ksql": query, "streamsProperties": properties});
        let response = agent
            .post(format!("{}/query", server.base))
            .send(body.to_string())
            .map_err(|e| format!("POST /query: {e}"))?;
        let status = response.status().as_u16();
        let mut reader = std::io::BufReader::new(response.into_body().into_reader());
        if status != 200 {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut reader, &mut text);
            let answer: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
            return expect_error(case, status, &answer);
        }
        if case.inputs_after_push && i == 0 {
            pipe_inputs(case, &driver, &sources, engine.formats())?;
        }
        let expected = case
            .responses
            .get(responses.len())
            .and_then(|r| r["query"].as_array())
            .map(Vec::len);
        responses.push(json!({ "query": read_elements(&mut reader, expected)? }));
    }
    if case.protobuf_queries {
        for query in queries {
            responses.push(
                json!({ "queryProto": protobuf_query(&agent, &server.base, query, &properties)? }),
            );
        }
    }
    if let Some(error) = &case.expected_error {
        return Err(format!(
            "expected the error {error}, but every request succeeded"
        ));
    }
    if case.responses.is_empty() {
        return Ok(());
    }
    compare_responses(&case.responses, &responses)
}

/// A query asked for protobuf rows: its header, then each row decoded with the header's
/// schema and written in protobuf's text format.
fn protobuf_query(
    agent: &ureq::Agent,
    base: &str,
    query: &str,
    properties: &serde_json::Map<String, Json>,
) -> Result<Vec<Json>, String> {
    use base64::Engine as _;
    let body = json!({"ksql": query, "streamsProperties": properties});
    let response = agent
        .post(format!("{base}/query"))
        .header("Accept", "application/vnd.ksql.v1+protobuf")
        .send(body.to_string())
        .map_err(|e| format!("POST /query (protobuf): {e}"))?;
    let mut reader = std::io::BufReader::new(response.into_body().into_reader());
    let elements = read_elements(&mut reader, None)?;
    let schema = elements
        .first()
        .and_then(|h| h["header"]["protoSchema"].as_str())
        .ok_or("the protobuf answer has no protoSchema")?
        .to_string();
    let descriptor = brook_engine::formats::protobuf::compile(&schema)?
        .into_iter()
        .next()
        .ok_or("the protoSchema has no message")?;
    let mut out = vec![elements[0].clone()];
    for element in &elements[1..] {
        let Some(encoded) = element["row"]["protobufBytes"].as_str() else {
            out.push(element.clone());
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("protobufBytes is not base64: {e}"))?;
        let message = prost_reflect::DynamicMessage::decode(descriptor.clone(), bytes.as_slice())
            .map_err(|e| format!("a protobuf row does not decode: {e}"))?;
        let text = message.to_text_format_with_options(
            &prost_reflect::text_format::FormatOptions::new().pretty(true),
        );
        out.push(json!({ "row": text }));
    }
    Ok(out)
}

/// The elements of a streamed `/query` answer (`[{header},\n{row},\n...]`), one per line,
/// until the stream ends or `expected` of them have come.
fn read_elements(reader: &mut impl BufRead, expected: Option<usize>) -> Result<Vec<Json>, String> {
    let mut elements = Vec::new();
    let mut line = String::new();
    while expected.is_none_or(|n| elements.len() < n) {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|e| {
            format!(
                "reading the /query answer after {} elements: {e}",
                elements.len()
            )
        })?;
        if read == 0 {
            break;
        }
        let text = line.trim();
        let text = text.strip_prefix('[').unwrap_or(text);
        let text = text.strip_suffix(',').unwrap_or(text);
        let text = text.strip_suffix(']').unwrap_or(text);
        if text.is_empty() {
            continue;
        }
        let element: Json = serde_json::from_str(text)
            .map_err(|e| format!("a /query answer line is not JSON ({e}): {text}"))?;
        elements.push(element);
    }
    Ok(elements)
}

fn expect_error(case: &Case, status: u16, answer: &Json) -> Result<(), String> {
    let message = answer["message"].as_str().unwrap_or_default();
    let Some(expected) = &case.expected_error else {
        return Err(format!("request failed with {status}: {message}"));
    };
    if let Some(want) = expected["status"].as_u64() {
        if want != u64::from(status) {
            return Err(format!("expected status {want}, got {status}: {message}"));
        }
    }
    match expected["message"].as_str() {
        Some(want) if !message.contains(want) => Err(format!(
            "expected an error containing {want:?}, got {message:?}"
        )),
        _ => Ok(()),
    }
}

/// Whether `actual` has every field of `expected`, with matching values. A field named
/// `name|starts_with` holds a prefix of the value of `name`.
fn has_fields(expected: &Json, actual: &Json) -> bool {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => e.iter().all(|(k, ev)| match k.split_once('|') {
            Some((name, "starts_with")) => {
                let prefix = ev.as_str().unwrap_or_default();
                a.get(name)
                    .and_then(Json::as_str)
                    .is_some_and(|v| v.starts_with(prefix))
            }
            _ => a.get(k).is_some_and(|av| has_fields(ev, av)),
        }),
        _ => json_matches(expected, actual),
    }
}

fn compare_responses(expected: &[Json], actual: &[Json]) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!(
            "expected {} responses, got {}: {}",
            expected.len(),
            actual.len(),
            Json::Array(actual.to_vec())
        ));
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if let Some(admin) = e.get("admin") {
            if !has_fields(admin, &a["admin"]) {
                return Err(format!("response {i}: expected {e}, got {a}"));
            }
        } else if let Some(expected) = e.get("queryProto").and_then(Json::as_array) {
            let got = a["queryProto"].as_array().cloned().unwrap_or_default();
            compare_protobuf(expected, &got).map_err(|why| format!("response {i}: {why}"))?;
        } else if let Some(query) = e.get("query").and_then(Json::as_array) {
            let got = a["query"].as_array().cloned().unwrap_or_default();
            compare_query(query, &got).map_err(|why| format!("response {i}: {why}"))?;
        } else {
            return Err(format!("response {i}: cannot check {e}"));
        }
    }
    Ok(())
}

/// A protobuf query's header and rows (text format, compared line by line, in any
/// order).
fn compare_protobuf(expected: &[Json], actual: &[Json]) -> Result<(), String> {
    let shown = || Json::Array(actual.to_vec());
    let (eh, ah) = (expected.first(), actual.first());
    if !eh
        .zip(ah)
        .is_some_and(|(e, a)| has_fields(&e["header"], &a["header"]))
    {
        return Err(format!("expected the header {eh:?}, got {}", shown()));
    }
    let lines = |v: &Json| -> Vec<String> {
        v.as_str()
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let mut unmatched: Vec<Vec<String>> = actual.iter().skip(1).map(|r| lines(&r["row"])).collect();
    if unmatched.len() != expected.len().saturating_sub(1) {
        return Err(format!(
            "expected {} rows, got {}",
            expected.len() - 1,
            shown()
        ));
    }
    for row in expected.iter().skip(1) {
        let want = lines(&row["row"]);
        match unmatched.iter().position(|a| *a == want) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => return Err(format!("expected the row {want:?}, got {}", shown())),
        }
    }
    Ok(())
}

/// A query's header, rows and final message. Rows may come in any order: ksqlDB's order
/// depends on partitions and storage.
fn compare_query(expected: &[Json], actual: &[Json]) -> Result<(), String> {
    let part = |list: &[Json], field: &str| -> Vec<Json> {
        list.iter().filter_map(|x| x.get(field).cloned()).collect()
    };
    let shown = || Json::Array(actual.to_vec());
    let (eh, ah) = (part(expected, "header"), part(actual, "header"));
    if eh.len() != ah.len() || !eh.iter().zip(&ah).all(|(e, a)| has_fields(e, a)) {
        return Err(format!("expected header {eh:?}, got {}", shown()));
    }
    let (er, ar) = (part(expected, "row"), part(actual, "row"));
    if er.len() != ar.len() {
        return Err(format!("expected {} rows, got {}", er.len(), shown()));
    }
    let mut unmatched: Vec<&Json> = ar.iter().collect();
    for row in &er {
        match unmatched.iter().position(|a| {
            // A table's delete is flagged; other rows leave the flag out.
            let tombstone = |r: &Json| r["tombstone"].as_bool().unwrap_or(false);
            json_matches(&row["columns"], &a["columns"]) && tombstone(row) == tombstone(a)
        }) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => return Err(format!("expected row {row}, got {}", shown())),
        }
    }
    let (ef, af) = (part(expected, "finalMessage"), part(actual, "finalMessage"));
    if ef != af {
        return Err(format!("expected final message {ef:?}, got {}", shown()));
    }
    Ok(())
}
