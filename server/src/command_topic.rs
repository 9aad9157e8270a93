//! The command topic, `_confluent-ksql-<service id>_command_topic` (one partition): every
//! statement that changes what the server runs (CREATE, DROP, INSERT INTO ... SELECT,
//! types) is recorded there, with its properties and statement number, before it is
//! executed. A server starting with the same service id replays the topic and comes back
//! with the same streams, tables, types and queries (same query ids, so the queries
//! resume from their committed offsets). A statement that fails is marked failed after
//! it, and a replay skips it.

use brook_engine::{Engine, Session};
use brook_sql::ast::StatementKind;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct CommandTopic {
    pub topic: String,
    producer: FutureProducer,
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
            | StatementKind::Terminate { .. }
    )
}

impl CommandTopic {
    /// Creates the topic if needed and replays what it holds into `engine`.
    pub async fn open(engine: &Arc<Engine>) -> Result<Self, String> {
        let topic = format!(
            "_confluent-ksql-{}_command_topic",
            engine.config().service_id
        );
        engine
            .create_internal_topic(&topic, 1, &[("retention.ms", "-1")])
            .await
            .map_err(|e| e.to_string())?;
        let producer: FutureProducer = engine
            .config()
            .kafka
            .producer_config()
            .create()
            .map_err(|e| format!("cannot create the command topic producer: {e}"))?;
        let commands = Self { topic, producer };
        let replayed = commands.replay(engine).await?;
        if replayed > 0 {
            eprintln!("Replayed {replayed} statement(s) from {}", commands.topic);
        }
        Ok(commands)
    }

    /// Records a statement before it is executed; returns once the broker has it.
    pub async fn append(
        &self,
        statement: &str,
        properties: &BTreeMap<String, String>,
        sequence: u64,
    ) -> Result<(), String> {
        let value = json!({
            "statement": statement,
            "streamsProperties": properties,
            "sequence": sequence,
        })
        .to_string();
        let key = sequence.to_string();
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(&key).payload(&value),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| format!("cannot write to the command topic {}: {e}", self.topic))?;
        Ok(())
    }

    /// Records that the statement numbered `sequence` failed, so that a replay skips it:
    /// what failed did not change what runs.
    pub async fn mark_failed(&self, sequence: u64) -> Result<(), String> {
        let value = json!({ "failed": sequence }).to_string();
        let key = format!("failed-{sequence}");
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(&key).payload(&value),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| format!("cannot write to the command topic {}: {e}", self.topic))?;
        Ok(())
    }

    async fn replay(&self, engine: &Arc<Engine>) -> Result<usize, String> {
        let topic = self.topic.clone();
        let settings = engine.config().kafka.clone();
        let records = tokio::task::spawn_blocking(move || read_all(&settings, &topic))
            .await
            .map_err(|e| e.to_string())??;
        let commands: Vec<serde_json::Value> = records
            .iter()
            .filter_map(|value| match serde_json::from_slice(value) {
                Ok(command) => Some(command),
                Err(_) => {
                    tracing::warn!("skipping a command that is not JSON");
                    None
                }
            })
            .collect();
        let failed: std::collections::BTreeSet<u64> = commands
            .iter()
            .filter_map(|c| c["failed"].as_u64())
            .collect();
        let mut replayed = 0;
        let mut next = 0;
        for command in commands.iter().filter(|c| c.get("statement").is_some()) {
            let text = command["statement"].as_str().unwrap_or_default();
            let sequence = command["sequence"].as_u64().unwrap_or(next);
            if failed.contains(&sequence) {
                next = sequence + 1;
                continue;
            }
            let mut session = Session::new(engine.clone());
            if let Some(props) = command["streamsProperties"].as_object() {
                for (k, v) in props {
                    session
                        .properties
                        .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            let statements = match brook_sql::parse_statements(text, &mut BTreeMap::new()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("skipping command {sequence}: {e}");
                    continue;
                }
            };
            for statement in &statements {
                engine.set_sequence(sequence).await;
                if let Err(e) = session.execute(statement).await {
                    tracing::warn!("replayed command {sequence} failed: {}", e.message);
                }
            }
            next = sequence + 1;
            replayed += 1;
        }
        if engine.sequence().await < next {
            engine.set_sequence(next).await;
        }
        Ok(replayed)
    }
}

/// The topic's record values from the start to its current end.
fn read_all(
    settings: &brook_engine::kafka::KafkaSettings,
    topic: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let records = brook_engine::query::read_to_end(settings, topic, TIMEOUT * 4)
        .map_err(|e| format!("cannot read the command topic: {e}"))?;
    Ok(records
        .into_iter()
        .map(|r| r.value.unwrap_or_default())
        .collect())
}
