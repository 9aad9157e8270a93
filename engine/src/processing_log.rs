//! The processing log: records a query could not process, as a log line and as JSON on the
//! `<service id>ksql_processing_log` topic, in ksqlDB's message shape.

use crate::pipeline::{InputRecord, RecordError};
use crate::runtime::{produce_all, OutputRecord};
use base64::Engine;
use rdkafka::producer::FutureProducer;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct ProcessingLog {
    pub topic: String,
    producer: FutureProducer,
    count: AtomicU64,
}

impl ProcessingLog {
    pub fn new(topic: String, producer: FutureProducer) -> Self {
        Self {
            topic,
            producer,
            count: AtomicU64::new(0),
        }
    }

    /// How many records have been logged since start.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Logs the errors and waits until the broker has them.
    pub async fn log(&self, query_id: &str, errors: &[RecordError]) -> Result<(), String> {
        let now = chrono::Utc::now().timestamp_millis();
        let records: Vec<OutputRecord> = errors
            .iter()
            .map(|error| {
                let text = entry(query_id, error, now).to_string();
                tracing::warn!(query = query_id, "processing error: {text}");
                OutputRecord {
                    headers: vec![],
                    key: None,
                    value: Some(text.into_bytes()),
                    timestamp: now,
                }
            })
            .collect();
        produce_all(&self.producer, &self.topic, &records)
            .await
            .map_err(|e| format!("cannot write to the processing log: {e}"))?;
        self.count.fetch_add(errors.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn b64(bytes: &Option<Vec<u8>>) -> serde_json::Value {
    match bytes {
        Some(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        None => serde_json::Value::Null,
    }
}

fn location(record: &InputRecord) -> serde_json::Value {
    json!({"topic": record.topic, "partition": record.partition, "offset": record.offset})
}

/// A processing log message in ksqlDB's shape.
pub(crate) fn entry(query_id: &str, error: &RecordError, now: i64) -> serde_json::Value {
    let (logger, message) = match error {
        RecordError::Deserialization {
            target,
            message,
            record,
        } => (
            format!("processing.{query_id}.KsqlTopic.Source.deserializer"),
            json!({
                "type": 0,
                "deserializationError": {
                    "target": target,
                    "errorMessage": message,
                    "recordB64": b64(if *target == "key" { &record.key } else { &record.value }),
                    "cause": [],
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
                "recordProcessingError": null,
                "productionError": null,
                "serializationError": null,
                "kafkaStreamsThreadError": null,
            }),
        ),
        RecordError::Processing { message, record } => (
            format!("processing.{query_id}.Project"),
            json!({
                "type": 1,
                "deserializationError": null,
                "recordProcessingError": {
                    "errorMessage": message,
                    "record": location(record),
                    "cause": [],
                },
                "productionError": null,
                "serializationError": null,
                "kafkaStreamsThreadError": null,
            }),
        ),
    };
    json!({"level": "ERROR", "logger": logger, "time": now, "message": message})
}
