//! Records whose delivery failed for good, written to the dead-letter topic as they were
//! read, with Kafka Connect's `__connect.errors.*` headers telling where they came from
//! and why (when `errors.deadletterqueue.context.headers.enable` is on).

use super::delivery::Failure;
use super::request::SinkRecord;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

pub struct DeadLetters<'a> {
    pub producer: &'a FutureProducer,
    pub topic: &'a str,
    pub connector: &'a str,
    pub task: u32,
    pub class: &'a str,
    pub with_headers: bool,
}

impl DeadLetters<'_> {
    /// Writes the record and waits for the broker's acknowledgement, so that its offset
    /// is committed only once the dead letter is safe.
    pub async fn write(&self, record: &SinkRecord, failure: &Failure) -> Result<(), String> {
        let mut headers = OwnedHeaders::new();
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        if self.with_headers {
            let partition = record.partition.to_string();
            let offset = record.offset.to_string();
            let task = self.task.to_string();
            let message = failure.to_string();
            let context: [(&str, &str); 9] = [
                ("__connect.errors.topic", &record.topic),
                ("__connect.errors.partition", &partition),
                ("__connect.errors.offset", &offset),
                ("__connect.errors.connector.name", self.connector),
                ("__connect.errors.task.id", &task),
                ("__connect.errors.stage", "TASK_PUT"),
                ("__connect.errors.class.name", self.class),
                (
                    "__connect.errors.exception.class.name",
                    "io.confluent.connect.errors.RetriableException",
                ),
                ("__connect.errors.exception.message", &message),
            ];
            headers = super::with_text_headers(headers, &context);
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(self.topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            out = out.payload(value.as_slice());
        }
        if let Some(ts) = record.timestamp {
            out = out.timestamp(ts);
        }
        self.producer
            .send(out, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("cannot write to dead-letter topic {}: {e}", self.topic))
    }
}
