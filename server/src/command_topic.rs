//! The command topic, `_confluent-ksql-<service id>_command_topic` (one partition): every
//! statement that changes what runs (CREATE, DROP, INSERT INTO ... SELECT, types,
//! TERMINATE) is written there, and every server of the service executes the topic's
//! statements in its order, as ksqlDB's servers do: the server a statement was sent to
//! writes it, then answers once its own command runner has executed it. A statement's
//! number (and so its query ids) is its offset in the topic, the same on every server. A
//! server that starts replays the topic, then follows it; a statement that fails is
//! marked failed after it by the server it was sent to, and is skipped by later replays.

use brook_engine::kafka::Prefetch;
use brook_engine::{Engine, EngineError, Session, StatementResult};
use brook_sql::ast::StatementKind;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(30);

type Outcome = Result<StatementResult, EngineError>;

pub struct CommandTopic {
    pub topic: String,
    producer: Arc<brook_engine::kafka::SharedProducer>,
    /// This server, in the commands it writes.
    origin: String,
    /// Statements this server wrote and waits for, by request id.
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
}

/// Whether executing the statement changes what the server runs.
pub fn is_command(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::CreateSource(_)
            | StatementKind::CreateAsSelect(_)
            | StatementKind::InsertInto(_)
            | StatementKind::Drop(_)
            | StatementKind::CreateType { .. }
            | StatementKind::DropType { .. }
            | StatementKind::Alter { .. }
            | StatementKind::AlterSystem { .. }
            | StatementKind::Terminate { .. }
            | StatementKind::SetRunning { .. }
            | StatementKind::CreateConnector(_)
            | StatementKind::DropConnector { .. }
    )
}

pub(crate) fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// The command format this server writes and reads. A command of a later version (a
/// newer Brook wrote it) is not executed: it is refused by name, as ksqlDB refuses log
/// entries of a version it does not know.
const COMMAND_VERSION: u64 = 1;

/// A command as read from the topic.
#[derive(Debug)]
pub(crate) struct Command {
    offset: i64,
    pub(crate) value: Value,
}

/// Reads a record of the command topic: a statement, a failure marker, or why it cannot
/// be used. Commands written before versions were recorded are version 1.
pub(crate) fn parse_command(offset: i64, bytes: &[u8]) -> Result<Command, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("command topic record {offset} is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!(
            "command topic record {offset} is not a JSON object"
        ));
    }
    match value.get("version") {
        None => {}
        Some(v) if v.as_u64() == Some(COMMAND_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "command topic record {offset} is of version {v}; this server reads version {COMMAND_VERSION}: it was written by a newer Brook, and is not executed"
            ))
        }
    }
    let statement = value.get("statement");
    let failed = value.get("failed");
    let terminates = value.get("terminateCluster").is_some_and(|t| t.is_object());
    if statement.is_none_or(|s| !s.is_string()) && failed.is_none_or(|f| !f.is_u64()) && !terminates
    {
        return Err(format!(
            "command topic record {offset} holds neither a statement, a failure marker nor TERMINATE CLUSTER"
        ));
    }
    Ok(Command { offset, value })
}

impl Command {
    /// Its number: the offset (older commands carry theirs).
    fn sequence(&self) -> u64 {
        self.value["sequence"]
            .as_u64()
            .unwrap_or(self.offset.max(0) as u64)
    }
}

/// Runs a recorded statement in a session of its own, with its properties.
async fn execute(engine: &Arc<Engine>, command: &Command) -> Outcome {
    if let Some(terminate) = command.value.get("terminateCluster") {
        let patterns: Vec<String> = terminate["deleteTopicList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        return crate::terminate::terminate_cluster(engine, &patterns).await;
    }
    let text = command.value["statement"].as_str().unwrap_or_default();
    let mut session = Session::new(engine.clone());
    if let Some(props) = command.value["streamsProperties"].as_object() {
        for (k, v) in props {
            session
                .properties
                .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    let at = |key: &str| command.value["position"][key].as_u64().filter(|n| *n > 0);
    let start = brook_sql::Position {
        line: at("line").unwrap_or(1),
        column: at("column").unwrap_or(1),
    };
    let statements = brook_sql::parse_statements_at(text, &mut BTreeMap::new(), start)
        .map_err(|e| EngineError::new(e.to_string()))?;
    let mut last = Err(EngineError::new("an empty command"));
    for statement in &statements {
        engine.set_sequence(command.sequence()).await;
        last = session.execute(statement).await;
        if last.is_err() {
            break;
        }
    }
    last
}

impl CommandTopic {
    /// Creates the topic if needed, replays what it holds into `engine`, then follows it.
    pub async fn open(engine: &Arc<Engine>) -> Result<Self, String> {
        let topic = format!(
            "_confluent-ksql-{}_command_topic",
            engine.config().service_id
        );
        engine
            .create_internal_topic(&topic, 1, &[("retention.ms", "-1")])
            .await
            .map_err(|e| e.to_string())?;
        // The engine's, which is replaced when it fails for good, so that a broker
        // restart that loses its producer state does not leave the service unable to take
        // statements.
        let producer = engine
            .shared_producer()
            .ok_or("the command topic needs a Kafka engine")?;
        let commands = Self {
            topic,
            producer,
            origin: unique_token(),
            pending: Default::default(),
        };
        let (replayed, end) = commands.replay(engine).await?;
        if replayed > 0 {
            eprintln!("Replayed {replayed} statement(s) from {}", commands.topic);
        }
        commands.follow(engine.clone(), end)?;
        Ok(commands)
    }

    /// Writes a statement, then waits until this server's runner has executed it.
    pub async fn run(
        &self,
        statement: &str,
        position: brook_sql::Position,
        properties: &BTreeMap<String, String>,
    ) -> Result<Outcome, String> {
        self.write(json!({
            "statement": statement,
            // Where the statement was in its request, for the places messages give.
            "position": {"line": position.line, "column": position.column},
            "streamsProperties": properties,
        }))
        .await
    }

    /// Writes TERMINATE CLUSTER with the topic patterns to delete, then waits until this
    /// server's runner has executed it.
    pub async fn terminate_cluster(&self, patterns: &[String]) -> Result<Outcome, String> {
        self.write(json!({"terminateCluster": {"deleteTopicList": patterns}}))
            .await
    }

    /// Writes a command, then waits until this server's runner has executed it.
    async fn write(&self, mut command: serde_json::Value) -> Result<Outcome, String> {
        let request = unique_token();
        let (done, outcome) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "a lock was poisoned")?
            .insert(request.clone(), done);
        command["version"] = json!(COMMAND_VERSION);
        command["origin"] = json!(self.origin);
        command["request"] = json!(request);
        let value = command.to_string();
        let written = self
            .producer
            .get()
            .send(
                FutureRecord::to(&self.topic).key(&request).payload(&value),
                TIMEOUT,
            )
            .await;
        if let Err((e, _)) = written {
            if let Ok(mut pending) = self.pending.lock() {
                pending.remove(&request);
            }
            return Err(format!(
                "cannot write to the command topic {}: {e}",
                self.topic
            ));
        }
        match tokio::time::timeout(TIMEOUT * 2, outcome).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => Err(format!(
                "the statement was written to {} but not executed in time; it will be",
                self.topic
            )),
        }
    }

    /// Executes the statements every server of the service writes, from `from` on.
    fn follow(&self, engine: Arc<Engine>, from: i64) -> Result<(), String> {
        let consumer: StreamConsumer = engine
            .config()
            .kafka
            .reader_config(
                &format!("{}-runner-{}", self.topic, self.origin),
                Prefetch::Small,
            )
            .create()
            .map_err(|e| format!("cannot follow the command topic: {e}"))?;
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.topic, 0, rdkafka::Offset::Offset(from))
            .map_err(|e| e.to_string())?;
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot follow the command topic: {e}"))?;
        let pending = self.pending.clone();
        let origin = self.origin.clone();
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::spawn(async move {
            use rdkafka::message::Message;
            loop {
                let message = match consumer.recv().await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("reading the command topic: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let command =
                    match parse_command(message.offset(), message.payload().unwrap_or_default()) {
                        Ok(command) => command,
                        Err(e) => {
                            tracing::error!("{e}");
                            continue;
                        }
                    };
                let terminates = command.value.get("terminateCluster").is_some();
                if command.value.get("statement").is_none() && !terminates {
                    continue;
                }
                let outcome = execute(&engine, &command).await;
                if terminates {
                    // The service is gone: so is its command topic, and nothing more
                    // is read from it.
                    if let Err(e) = engine.delete_topic(&topic).await {
                        tracing::warn!("cannot delete the command topic {topic}: {e}");
                    }
                    let request = command.value["request"].as_str().unwrap_or_default();
                    if let Some(waiting) = pending.lock().ok().and_then(|mut p| p.remove(request)) {
                        let _ = waiting.send(outcome);
                    }
                    return;
                }
                let mine = command.value["origin"].as_str() == Some(origin.as_str());
                if !mine {
                    if let Err(e) = &outcome {
                        tracing::warn!("command {} failed: {}", command.sequence(), e.message);
                    }
                    continue;
                }
                if outcome.is_err() {
                    let marker =
                        json!({ "version": COMMAND_VERSION, "failed": command.sequence() })
                            .to_string();
                    let key = format!("failed-{}", command.sequence());
                    let written = producer
                        .get()
                        .send(FutureRecord::to(&topic).key(&key).payload(&marker), TIMEOUT)
                        .await;
                    if let Err((e, _)) = written {
                        tracing::warn!("cannot mark command {} failed: {e}", command.sequence());
                    }
                }
                let request = command.value["request"].as_str().unwrap_or_default();
                let waiting = pending.lock().ok().and_then(|mut p| p.remove(request));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(outcome);
                }
            }
        });
        Ok(())
    }

    /// Executes what the topic holds; returns how many statements ran and the offset
    /// after the last record.
    async fn replay(&self, engine: &Arc<Engine>) -> Result<(usize, i64), String> {
        let topic = self.topic.clone();
        let settings = engine.config().kafka.clone();
        let records = tokio::task::spawn_blocking(move || {
            brook_engine::runtime::read_to_end(&settings, &topic, TIMEOUT * 4)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the command topic: {e}"))?;
        let end = records.last().map(|r| r.offset + 1).unwrap_or(0);
        let commands: Vec<Command> = records
            .iter()
            .filter_map(
                |r| match parse_command(r.offset, r.value.as_deref().unwrap_or_default()) {
                    Ok(command) => Some(command),
                    Err(e) => {
                        tracing::error!("{e}");
                        None
                    }
                },
            )
            .collect();
        let failed: BTreeSet<u64> = commands
            .iter()
            .filter_map(|c| c.value["failed"].as_u64())
            .collect();
        let mut replayed = 0;
        let mut next = 0;
        // A TERMINATE CLUSTER whose server went before it deleted the topic ends the
        // service again.
        for command in commands.iter().filter(|c| {
            c.value.get("statement").is_some() || c.value.get("terminateCluster").is_some()
        }) {
            let sequence = command.sequence();
            next = sequence + 1;
            if failed.contains(&sequence) {
                continue;
            }
            if let Err(e) = execute(engine, command).await {
                tracing::warn!("replayed command {sequence} failed: {}", e.message);
            }
            replayed += 1;
        }
        if engine.sequence().await < next {
            engine.set_sequence(next).await;
        }
        Ok((replayed, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_by_version() {
        let command = parse_command(3, br#"{"version": 1, "statement": "SHOW STREAMS;"}"#)
            .expect("version 1");
        assert_eq!(command.sequence(), 3);
        assert!(
            parse_command(4, br#"{"statement": "SHOW STREAMS;"}"#).is_ok(),
            "unversioned is 1"
        );
        assert!(parse_command(5, br#"{"failed": 3}"#).is_ok());
        let newer = parse_command(6, br#"{"version": 2, "statement": "X"}"#).expect_err("newer");
        assert!(newer.contains("version 2"), "{newer}");
        assert!(parse_command(7, b"\xff\x00").is_err());
        assert!(parse_command(8, b"[1]").is_err());
        assert!(parse_command(9, br#"{"statement": 12}"#).is_err());
    }
}
