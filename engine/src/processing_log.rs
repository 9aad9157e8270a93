//! The processing log: records a query could not process, as a log line and as JSON on the
//! `<service id>ksql_processing_log` topic, in ksqlDB's message shape.

use crate::kafka::SharedProducer;
use crate::pipeline::{InputRecord, RecordError};
use crate::runtime::{produce_all, OutputRecord};
use base64::Engine;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct ProcessingLog {
    pub topic: String,
    producer: std::sync::Arc<SharedProducer>,
    count: AtomicU64,
    /// Keeps a flood of bad records from flooding the log too: the topic has them all.
    warnings: Mutex<WarningLimit>,
}

/// Per-record warnings written per query and window.
const WARNINGS_PER_WINDOW: u64 = 10;
const WARNING_WINDOW: Duration = Duration::from_secs(10);

/// How many per-record warnings each query wrote in its current window, and how many it
/// left out.
#[derive(Default)]
struct WarningLimit {
    windows: HashMap<String, (Instant, u64, u64)>,
}

impl WarningLimit {
    /// Whether this query's next warning is written; when a window ends with warnings left
    /// out, how many (to say so once).
    fn admit(&mut self, query: &str, now: Instant) -> (bool, Option<u64>) {
        let (start, written, skipped) =
            self.windows.entry(query.to_string()).or_insert((now, 0, 0));
        let mut ended = None;
        if now.duration_since(*start) >= WARNING_WINDOW {
            if *skipped > 0 {
                ended = Some(*skipped);
            }
            *start = now;
            *written = 0;
            *skipped = 0;
        }
        if *written < WARNINGS_PER_WINDOW {
            *written += 1;
            (true, ended)
        } else {
            *skipped += 1;
            (false, ended)
        }
    }
}

impl ProcessingLog {
    pub fn new(topic: String, producer: std::sync::Arc<SharedProducer>) -> Self {
        Self {
            topic,
            producer,
            count: AtomicU64::new(0),
            warnings: Mutex::default(),
        }
    }

    /// How many records have been logged since start.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Logs the errors and waits until the broker has them.
    pub async fn log(&self, query_id: &str, errors: &[RecordError]) -> Result<(), String> {
        let now = chrono::Utc::now().timestamp_millis();
        let records = self.entries(query_id, errors, now);
        produce_all(&self.producer.get(), &self.topic, &records)
            .await
            .map_err(|e| format!("cannot write to the processing log: {e}"))?;
        self.count.fetch_add(errors.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The topic's records of `errors`, each also a warning within the limit.
    fn entries(&self, query_id: &str, errors: &[RecordError], now: i64) -> Vec<OutputRecord> {
        let mut limit = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        errors
            .iter()
            .map(|error| {
                let text = entry(query_id, error, now).to_string();
                let (write, skipped) = limit.admit(query_id, Instant::now());
                if let Some(skipped) = skipped {
                    tracing::warn!(
                        query = query_id,
                        "{skipped} more processing errors were not logged in the last {} s; the topic {} has every one",
                        WARNING_WINDOW.as_secs(),
                        self.topic
                    );
                }
                if write {
                    tracing::warn!(query = query_id, "processing error: {text}");
                }
                OutputRecord {
                    headers: vec![],
                    key: None,
                    value: Some(text.into_bytes()),
                    timestamp: now,
                }
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::{WarningLimit, WARNINGS_PER_WINDOW, WARNING_WINDOW};
    use std::time::Instant;

    #[test]
    fn warnings_are_limited_per_query_and_window_and_the_rest_counted() {
        let mut limit = WarningLimit::default();
        let start = Instant::now();
        let written = (0..25).filter(|_| limit.admit("Q1", start).0).count() as u64;
        assert_eq!(written, WARNINGS_PER_WINDOW);
        // Another query has a window of its own.
        assert_eq!(limit.admit("Q2", start), (true, None));
        // The next window says how many were left out, once.
        let later = start + WARNING_WINDOW;
        assert_eq!(
            limit.admit("Q1", later),
            (true, Some(25 - WARNINGS_PER_WINDOW))
        );
        assert_eq!(limit.admit("Q1", later), (true, None));
    }
}
