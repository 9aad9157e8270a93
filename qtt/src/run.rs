//! Running a case through a session on the in-process driver.

use crate::case::Case;
use crate::compare::json_matches;
use crate::records::{deserialize, serialize};
use crate::report::{CaseResult, Report, Status};
use brook_engine::formats::FormatContext;
use brook_engine::formats::RecordCodec;
use brook_engine::runtime::driver::{Driver, TopicRecord};
use brook_engine::runtime::OutputRecord;
use brook_engine::schema_registry::MemoryRegistry;
use brook_engine::{Engine, Session, StatementResult};
use brook_planner::catalog::{ColumnRole, SourceDef};
use brook_sql::ast::StatementKind;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Options {
    /// Consecutive input records handed to the queries at once.
    pub batch_size: usize,
    /// Run the cases through the REST API of a server (REST test files).
    pub rest: bool,
    /// Run the cases on the Kafka runtime against the broker at these bootstrap servers,
    /// rather than on the in-process driver.
    pub kafka: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_size: 100,
            rest: false,
            kafka: None,
        }
    }
}

const SERVICE_ID: &str = "qtt_";

/// Runs cases one after the other. A case that panics fails; the others still run.
pub fn run_cases(cases: &[Case], options: &Options) -> Report {
    // A REST case's server runs on the runtime while the case waits for its answers; the
    // Kafka runtime's tasks need a runtime with worker threads.
    let mut builder = if options.rest || options.kafka.is_some() {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            let results = cases
                .iter()
                .map(|c| result(c, Status::Fail, format!("no runtime: {e}")))
                .collect();
            return Report::new(results);
        }
    };
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let results = cases
        .iter()
        .enumerate()
        .map(|(index, c)| run_case(&runtime, c, index, options))
        .collect();
    std::panic::set_hook(previous_hook);
    Report::new(results)
}

fn result(case: &Case, status: Status, reason: String) -> CaseResult {
    CaseResult {
        file: case.file.clone(),
        name: case.name.clone(),
        status,
        reason,
    }
}

/// Runs one case; `index` tells it from the other cases of the run (on Kafka, its queries'
/// consumer groups and internal topics are its own).
pub fn run_case(
    runtime: &tokio::runtime::Runtime,
    case: &Case,
    index: usize,
    options: &Options,
) -> CaseResult {
    if let Some(why) = &case.disabled {
        return result(case, Status::Skip, why.clone());
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if options.rest {
            crate::rest::execute(runtime, case, options)
        } else if let Some(bootstrap) = &options.kafka {
            runtime.block_on(crate::kafka::execute(case, bootstrap, index))
        } else {
            runtime.block_on(execute(case, options))
        }
    }));
    match outcome {
        Ok(Ok(())) => result(case, Status::Pass, String::new()),
        Ok(Err(reason)) => result(case, Status::Fail, reason),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            result(case, Status::Fail, format!("panic: {message}"))
        }
    }
}

async fn execute(case: &Case, options: &Options) -> Result<(), String> {
    let driver = Arc::new(Driver::new(SERVICE_ID, options.batch_size));
    let registry = Arc::new(MemoryRegistry::default());
    let engine = Engine::on_driver(driver.clone(), SERVICE_ID, registry.clone());
    let mut session = case_session(case, &engine);
    create_topics(case, &driver);
    register_schemas(case, &registry);
    if run_statements(case, &mut session).await? == Statements::FailedAsExpected {
        return Ok(());
    }
    let sources = engine.sources().await;
    pipe_inputs(case, &driver, &sources, engine.formats())?;
    let processing_log = driver.records(&format!("{SERVICE_ID}ksql_processing_log"));
    let outputs = |topic: &str| driver.records(topic);
    check_results(
        case,
        &outputs,
        &processing_log,
        &driver.topic_names(),
        &sources,
        engine.formats(),
    )
}

/// A session with the properties a case runs with.
pub(crate) fn case_session(case: &Case, engine: &Arc<Engine>) -> Session {
    let mut session = Session::new(engine.clone());
    session
        .properties
        .insert("auto.offset.reset".into(), "earliest".into());
    for (k, v) in &case.properties {
        session.properties.insert(k.clone(), v.clone());
    }
    session
}

/// How a case's statements went, when none failed unexpectedly.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Statements {
    /// Every statement succeeded: the case goes on with its inputs.
    Succeeded,
    /// A statement failed with the error the case expects: the case holds.
    FailedAsExpected,
}

/// Executes a case's statements in order, until one fails.
pub(crate) async fn run_statements(
    case: &Case,
    session: &mut Session,
) -> Result<Statements, String> {
    let mut variables = BTreeMap::new();
    for (line, text) in case.statements.iter().enumerate() {
        // ksqlDB's runner reads the statements as one script, a statement a line: the
        // places its messages give count the lines before.
        let start = brook_sql::Position {
            line: line as u64 + 1,
            column: 1,
        };
        let outcome = match brook_sql::parse_statements_at(text, &mut variables, start) {
            Ok(statements) => {
                let mut outcome = Ok(());
                for statement in &statements {
                    match session.execute(statement).await {
                        Ok(
                            StatementResult::Status { .. }
                            | StatementResult::Listing(_)
                            | StatementResult::Warning(_)
                            | StatementResult::ConnectorCreated(_)
                            | StatementResult::ConnectorDropped(_),
                        ) => {}
                        Ok(StatementResult::Rows(_)) => {
                            outcome = Err("push queries are not part of these tests".to_string())
                        }
                        Err(e) => outcome = Err(e.message),
                    }
                    if outcome.is_err() {
                        break;
                    }
                }
                outcome
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(message) = outcome {
            return match &case.expected_exception {
                Some(expected) if message.contains(expected.as_str()) => {
                    Ok(Statements::FailedAsExpected)
                }
                Some(expected) => Err(format!(
                    "expected error containing {expected:?}, got {message:?}"
                )),
                None => Err(format!("statement failed: {message}")),
            };
        }
    }
    Ok(Statements::Succeeded)
}

/// Checks what the queries wrote once every input was processed: the outputs, the
/// processing log where the case expects a failure, and the post-conditions.
pub(crate) fn check_results(
    case: &Case,
    outputs: &dyn Fn(&str) -> Vec<TopicRecord>,
    processing_log: &[TopicRecord],
    topic_names: &[String],
    sources: &[SourceDef],
    engine_formats: &FormatContext,
) -> Result<(), String> {
    if let Some(expected) = &case.expected_exception {
        // ksqlDB stops a query whose record processing throws ("Exception caught in
        // process"); Brook logs the record to the processing log and goes on. The case
        // holds when the outputs before the failure match and the log has the cause.
        let logged = processing_log
            .iter()
            .filter_map(|r| r.value.as_deref())
            .any(|v| {
                let text = String::from_utf8_lossy(v);
                case.expected_cause
                    .as_deref()
                    .is_some_and(|c| text.contains(c))
            });
        if expected == "Exception caught in process" && logged {
            return check_outputs(case, outputs, sources, engine_formats);
        }
        return Err(format!(
            "expected error containing {expected:?}, but every statement succeeded"
        ));
    }
    if std::env::var_os("BROOK_QTT_DEBUG").is_some() {
        for r in processing_log {
            eprintln!(
                "processing log: {}",
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
            );
        }
    }
    check_outputs(case, outputs, sources, engine_formats)?;
    if let Some(post) = &case.post {
        check_post(post, topic_names, sources)?;
    }
    Ok(())
}

/// Topics the test declares or feeds, and those its CREATE statements read, with their
/// partition counts: they exist first, as ksqlDB's runner creates them.
pub(crate) fn case_topics(case: &Case) -> Vec<(String, i32)> {
    let mut topics: Vec<(String, i32)> = Vec::new();
    let mut add = |name: &str, partitions: i32| {
        if !topics.iter().any(|(t, _)| t == name) {
            topics.push((name.to_string(), partitions.max(1)));
        }
    };
    for t in &case.topics {
        if let Some(name) = t["name"].as_str() {
            add(name, t["partitions"].as_i64().unwrap_or(1) as i32);
        }
    }
    for input in &case.inputs {
        if let Some(topic) = input["topic"].as_str() {
            add(topic, 1);
        }
    }
    let mut variables = BTreeMap::new();
    for text in &case.statements {
        let Ok(statements) = brook_sql::parse_statements(text, &mut variables) else {
            continue;
        };
        for s in statements {
            if let StatementKind::CreateSource(c) = &s.kind {
                if !c.properties.contains_key("PARTITIONS") {
                    if let Some(topic) = c.properties.get("KAFKA_TOPIC") {
                        add(&topic.as_property_text(), 1);
                    }
                }
            }
        }
    }
    topics
}

pub(crate) fn create_topics(case: &Case, driver: &Driver) {
    for (topic, partitions) in case_topics(case) {
        driver.create_topic(&topic, partitions);
    }
}

/// Schemas the test declares for its topics go into the registry first, under the ids it
/// names, as ksqlDB's runner registers them.
pub(crate) fn register_schemas(case: &Case, registry: &MemoryRegistry) {
    for t in &case.topics {
        let Some(name) = t["name"].as_str() else {
            continue;
        };
        for (side, schema, id, format) in [
            ("key", &t["keySchema"], &t["keySchemaId"], &t["keyFormat"]),
            (
                "value",
                &t["valueSchema"],
                &t["valueSchemaId"],
                &t["valueFormat"],
            ),
        ] {
            let registered = ["AVRO", "JSON", "JSON_SR", "PROTOBUF"];
            // A schema without a format has the format the statements give its topic.
            let declared = declared_format(case, name, side);
            let format = format.as_str().or(declared.as_deref()).unwrap_or_default();
            if schema.is_null() || !registered.iter().any(|r| format.eq_ignore_ascii_case(r)) {
                continue;
            }
            let text = match schema {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let subject = format!("{name}-{side}");
            match id.as_u64() {
                Some(id) => registry.register_with_id(&subject, id as u32, &text),
                None => {
                    let _ = brook_engine::schema_registry::SchemaRegistry::register(
                        registry, &subject, &text, "AVRO",
                    );
                }
            }
        }
    }
}

/// The key or value format a case's CREATE statements give `topic`: `KEY_FORMAT` or
/// `VALUE_FORMAT`, else `FORMAT`.
fn declared_format(case: &Case, topic: &str, side: &str) -> Option<String> {
    let mut variables = BTreeMap::new();
    let own = if side == "key" {
        "KEY_FORMAT"
    } else {
        "VALUE_FORMAT"
    };
    for text in &case.statements {
        let Ok(statements) = brook_sql::parse_statements(text, &mut variables) else {
            continue;
        };
        for s in statements {
            let (name, properties) = match &s.kind {
                StatementKind::CreateSource(c) => (&c.name, &c.properties),
                StatementKind::CreateAsSelect(c) => (&c.name, &c.properties),
                _ => continue,
            };
            let topic_of = properties
                .get("KAFKA_TOPIC")
                .map(|t| t.as_property_text())
                .unwrap_or_else(|| name.clone());
            if topic_of != topic {
                continue;
            }
            if let Some(format) = properties.get(own).or_else(|| properties.get("FORMAT")) {
                return Some(format.as_property_text());
            }
        }
    }
    None
}

fn source_of<'a>(sources: &'a [SourceDef], topic: &str) -> Option<&'a SourceDef> {
    // A topic written by a query is described best by the source that query creates.
    sources.iter().rev().find(|s| s.topic == topic)
}

pub(crate) fn pipe_inputs(
    case: &Case,
    driver: &Driver,
    sources: &[SourceDef],
    engine_formats: &FormatContext,
) -> Result<(), String> {
    for (topic, records) in input_batches(case, sources, engine_formats)? {
        driver.produce(&topic, &records);
    }
    Ok(())
}

/// A case's input records, serialized as their sources read them, in runs of consecutive
/// records of one topic.
pub(crate) fn input_batches(
    case: &Case,
    sources: &[SourceDef],
    engine_formats: &FormatContext,
) -> Result<Vec<(String, Vec<OutputRecord>)>, String> {
    let mut batches = Vec::new();
    let mut pending: Vec<OutputRecord> = Vec::new();
    let mut pending_topic = String::new();
    for input in &case.inputs {
        let topic = input["topic"].as_str().unwrap_or_default().to_string();
        let source = sources.iter().find(|s| s.topic == topic);
        let codec = source.map(|s| RecordCodec::for_source(s, engine_formats));
        let key = serialize(
            codec.as_ref().map(|c| &c.key),
            source.map(|s| s.key_format.kind),
            &input["key"],
        )?;
        let value = serialize(
            codec.as_ref().map(|c| &c.value),
            source.map(|s| s.value_format.kind),
            &input["value"],
        )?;
        let key = match (&input.get("window"), source.and_then(|s| s.window)) {
            (Some(w), Some(sw)) => Some(brook_engine::sink::windowed_key(
                key,
                sw.kind,
                brook_state::WindowKey {
                    start: w["start"].as_i64().unwrap_or(0),
                    end: w["end"].as_i64().unwrap_or(0),
                },
            )),
            _ => key,
        };
        if topic != pending_topic && !pending.is_empty() {
            batches.push((pending_topic.clone(), std::mem::take(&mut pending)));
        }
        pending_topic = topic;
        use base64::Engine as _;
        let headers = input["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        let key = h["KEY"].as_str().unwrap_or_default().to_string();
                        let value = h["VALUE"]
                            .as_str()
                            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
                        (key, value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        pending.push(OutputRecord {
            headers,
            key,
            value,
            timestamp: input["timestamp"].as_i64().unwrap_or(0),
        });
    }
    if !pending.is_empty() {
        batches.push((pending_topic, pending));
    }
    Ok(batches)
}

pub(crate) fn check_outputs(
    case: &Case,
    outputs: &dyn Fn(&str) -> Vec<TopicRecord>,
    sources: &[SourceDef],
    engine_formats: &FormatContext,
) -> Result<(), String> {
    let mut by_topic: Vec<(String, Vec<&Json>)> = Vec::new();
    for output in &case.outputs {
        let topic = output["topic"].as_str().unwrap_or_default().to_string();
        match by_topic.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, list)) => list.push(output),
            None => by_topic.push((topic, vec![output])),
        }
    }
    for (topic, expected) in by_topic {
        let actual = outputs(&topic);
        let source = source_of(sources, &topic);
        let codec = source.map(|s| RecordCodec::for_source(s, engine_formats));
        let read = |codec: Option<&brook_engine::formats::ColumnsCodec>,
                    kind,
                    bytes: Option<&[u8]>| match (codec, kind) {
            (Some(c), Some(k)) => deserialize(c, k, bytes),
            _ => Ok(bytes
                .map(|b| {
                    serde_json::from_slice(b)
                        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(b).into_owned()))
                })
                .unwrap_or(Json::Null)),
        };
        if actual.len() != expected.len() {
            let shown: Vec<String> = actual
                .iter()
                .take(5)
                .map(|r| {
                    let k = read(
                        codec.as_ref().map(|c| &c.key),
                        source.map(|s| s.key_format.kind),
                        r.key.as_deref(),
                    )
                    .unwrap_or(Json::Null);
                    let v = read(
                        codec.as_ref().map(|c| &c.value),
                        source.map(|s| s.value_format.kind),
                        r.value.as_deref(),
                    )
                    .unwrap_or(Json::Null);
                    format!("{k}:{v}")
                })
                .collect();
            return Err(format!(
                "topic {topic}: expected {} records, got {} (first: {})",
                expected.len(),
                actual.len(),
                shown.join(", ")
            ));
        }
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            let (key_bytes, window) = split_window(a.key.as_deref(), source);
            let key = read(
                codec.as_ref().map(|c| &c.key),
                source.map(|s| s.key_format.kind),
                key_bytes,
            )?;
            if let Some(w) = e.get("window") {
                let expected = (w["start"].as_i64(), w["end"].as_i64());
                let actual = window.map(|(s, e)| (Some(s), Some(e)));
                if actual != Some(expected) {
                    return Err(format!(
                        "topic {topic} record {i}: expected window {w}, got {window:?}"
                    ));
                }
            }
            let value = read(
                codec.as_ref().map(|c| &c.value),
                source.map(|s| s.value_format.kind),
                a.value.as_deref(),
            )?;
            let expected_key = e.get("key").cloned().unwrap_or(Json::Null);
            let expected_value = e.get("value").cloned().unwrap_or(Json::Null);
            if !json_matches(&expected_key, &key) || !json_matches(&expected_value, &value) {
                return Err(format!(
                    "topic {topic} record {i}: expected {expected_key}:{expected_value}, got {key}:{value}"
                ));
            }
            if let Some(ts) = e.get("timestamp").and_then(|t| t.as_i64()) {
                if ts != a.timestamp {
                    return Err(format!(
                        "topic {topic} record {i}: expected timestamp {ts}, got {}",
                        a.timestamp
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_post(post: &Json, topic_names: &[String], sources: &[SourceDef]) -> Result<(), String> {
    for expected in post["sources"].as_array().into_iter().flatten() {
        let name = expected["name"].as_str().unwrap_or_default();
        let Some(source) = sources.iter().find(|s| s.name == name) else {
            return Err(format!("post: source {name} does not exist"));
        };
        if let Some(kind) = expected["type"].as_str() {
            if !kind.eq_ignore_ascii_case(source.kind.keyword()) {
                return Err(format!(
                    "post: {name} is a {}, expected a {kind}",
                    source.kind.keyword()
                ));
            }
        }
        if let Some(schema) = expected["schema"].as_str() {
            let actual = schema_text(source);
            if normalize_schema(schema) != normalize_schema(&actual) {
                return Err(format!(
                    "post: {name} has schema {actual}, expected {schema}"
                ));
            }
        }
        let format_of = |v: &Json| -> Option<String> {
            match v {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("format").and_then(|f| f.as_str()).map(str::to_string),
                _ => None,
            }
        };
        if let Some(f) = format_of(&expected["keyFormat"]) {
            if !f.eq_ignore_ascii_case(source.key_format.kind.name()) {
                return Err(format!(
                    "post: {name} has key format {}, expected {f}",
                    source.key_format.kind
                ));
            }
        }
        if let Some(kind) = expected["keyFormat"]["windowType"].as_str() {
            let actual = source.window.map(|w| w.kind.name()).unwrap_or("none");
            if !kind.eq_ignore_ascii_case(actual) {
                return Err(format!(
                    "post: {name} has window type {actual}, expected {kind}"
                ));
            }
        }
        if let Some(size) = expected["keyFormat"]["windowSize"].as_i64() {
            let actual = source.window.and_then(|w| w.size);
            if actual != Some(size) {
                return Err(format!(
                    "post: {name} has window size {actual:?}, expected {size}"
                ));
            }
        }
        if let Some(f) = format_of(&expected["valueFormat"]) {
            if !f.eq_ignore_ascii_case(source.value_format.kind.name()) {
                return Err(format!(
                    "post: {name} has value format {}, expected {f}",
                    source.value_format.kind
                ));
            }
        }
    }
    if let Some(pattern) = post["topics"]["blacklist"].as_str() {
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("post: bad blacklist: {e}"))?;
        if let Some(t) = topic_names.iter().find(|t| re.is_match(t)) {
            return Err(format!("post: topic {t} should not exist"));
        }
    }
    Ok(())
}

/// A source's columns as ksqlDB prints a schema: `` `ID` INTEGER KEY, `NAME` STRING ``.
fn schema_text(source: &SourceDef) -> String {
    source
        .key_columns()
        .chain(source.columns.iter().filter(|c| c.role != ColumnRole::Key))
        .map(|c| {
            let role = match &c.role {
                ColumnRole::Key if source.kind == brook_sql::ast::SourceKind::Table => {
                    " PRIMARY KEY".to_string()
                }
                ColumnRole::Key => " KEY".to_string(),
                ColumnRole::Value => String::new(),
                ColumnRole::Header(None) => " HEADERS".to_string(),
                ColumnRole::Header(Some(k)) => format!(" HEADER('{k}')"),
            };
            format!("`{}` {}{role}", c.name, c.data_type)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Spelling differences that do not change a schema: quotes, case, type synonyms, spaces.
fn normalize_schema(s: &str) -> String {
    // A table's key may be written KEY or PRIMARY KEY.
    let s = s
        .replace('`', "")
        .to_uppercase()
        .replace("PRIMARY KEY", "KEY");
    let words: Vec<String> = regex::Regex::new(r"[A-Z_0-9]+|[^A-Z_0-9\s]")
        .map(|re| {
            re.find_iter(&s)
                .map(|m| match m.as_str() {
                    "INT" => "INTEGER".to_string(),
                    "VARCHAR" => "STRING".to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    words.join(" ")
}

/// A windowed source's record key: the key itself and the window's start and end.
fn split_window<'a>(
    key: Option<&'a [u8]>,
    source: Option<&SourceDef>,
) -> (Option<&'a [u8]>, Option<(i64, i64)>) {
    let Some(window) = source.and_then(|s| s.window) else {
        return (key, None);
    };
    match brook_engine::pipeline::split_window(key, window.kind, window.size) {
        Some((key, w)) => (key, w.map(|w| (w.start, w.end))),
        None => (key, None),
    }
}
