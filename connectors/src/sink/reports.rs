//! Result and error reporting (Confluent's `reporter.*` for its HTTP and function sinks):
//! a record on the result topic for each record delivered, its value the endpoint's
//! answer, and one on the error topic for each record whose delivery failed for good, its
//! value the error; both with headers naming the input record. A report is acknowledged
//! before the input offsets are committed, as dead letters are.

use super::delivery::Failure;
use super::request::SinkRecord;
use crate::config::{ReportTopic, ReporterConfig};
use brook_engine::kafka::{KafkaSettings, Topics};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Reports {
    producer: FutureProducer,
    result: Option<String>,
    error: Option<String>,
}

impl Reports {
    /// The task's reports, with their topics created where missing; `None` when both are
    /// off. `kafka` is the connector's cluster; `producer` writes to it.
    pub async fn open(
        config: &ReporterConfig,
        kafka: &KafkaSettings,
        engine: &brook_engine::Engine,
        producer: &FutureProducer,
    ) -> Result<Option<Self>, String> {
        if config.result.is_none() && config.error.is_none() {
            return Ok(None);
        }
        let elsewhere = config
            .bootstrap
            .as_ref()
            .filter(|b| **b != kafka.bootstrap_servers)
            .map(|bootstrap| KafkaSettings {
                bootstrap_servers: bootstrap.clone(),
                client: kafka.client.clone(),
            });
        let producer = match &elsewhere {
            Some(settings) => settings
                .producer_config()
                .create()
                .map_err(|e| format!("cannot create the reporter's producer: {e}"))?,
            None => producer.clone(),
        };
        let owned;
        let topics = match &elsewhere {
            Some(settings) => {
                owned = Topics::new(settings, None)?;
                &owned
            }
            None => engine.topics()?,
        };
        let brokers = topics.brokers().await?.max(1) as i32;
        for topic in [&config.result, &config.error].into_iter().flatten() {
            ensure(topics, topic, brokers).await?;
        }
        Ok(Some(Self {
            producer,
            result: config.result.as_ref().map(|t| t.name.clone()),
            error: config.error.as_ref().map(|t| t.name.clone()),
        }))
    }

    /// Reports the records of a batch the endpoint took, with its answer.
    pub async fn delivered(&self, batch: &[SinkRecord], answer: &[u8]) -> Result<(), String> {
        let Some(topic) = &self.result else {
            return Ok(());
        };
        let sends = batch.iter().map(|record| {
            let out = report(topic, record, input_headers(record)).payload(answer);
            self.producer.send(out, TIMEOUT)
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| format!("cannot write to result topic {topic}: {e}"))?;
        }
        Ok(())
    }

    /// Reports a record whose delivery failed for good.
    pub async fn failed(&self, record: &SinkRecord, failure: &Failure) -> Result<(), String> {
        let Some(topic) = &self.error else {
            return Ok(());
        };
        let status = failure.status.map(|s| s.to_string()).unwrap_or_default();
        let reason = if failure.status.is_some() {
            failure.reason.as_str()
        } else {
            ""
        };
        let message = failure.to_string();
        let headers = super::with_text_headers(
            input_headers(record),
            &[
                ("status_code", status.as_str()),
                ("reason_phrase", reason),
                ("url", &failure.url),
                ("response_content", &failure.response),
                ("error_message", &message),
            ],
        );
        let out = report(topic, record, headers).payload(message.as_bytes());
        self.producer
            .send(out, TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("cannot write to error topic {topic}: {e}"))
    }
}

/// Creates a report topic unless it exists, with no more copies than there are brokers.
async fn ensure(topics: &Topics, topic: &ReportTopic, brokers: i32) -> Result<(), String> {
    let replicas = topic.replicas.min(brokers);
    if replicas < topic.replicas {
        tracing::warn!(
            "report topic {}: {} replicas asked, the cluster has {brokers} broker(s); creating it with {replicas}",
            topic.name,
            topic.replicas
        );
    }
    topics
        .ensure(&topic.name, topic.partitions, replicas, &[])
        .await
        .map(|_| ())
}

/// A report of `record`, keyed as it was.
fn report<'a>(
    topic: &'a str,
    record: &'a SinkRecord,
    headers: OwnedHeaders,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut out = FutureRecord::to(topic).headers(headers);
    if let Some(key) = &record.key {
        out = out.key(key.as_slice());
    }
    out
}

/// The headers that say which input record a report is of.
fn input_headers(record: &SinkRecord) -> OwnedHeaders {
    let partition = record.partition.to_string();
    let offset = record.offset.to_string();
    let timestamp = record.timestamp.map(|t| t.to_string()).unwrap_or_default();
    super::with_text_headers(
        OwnedHeaders::new(),
        &[
            ("input_record_topic", record.topic.as_str()),
            ("input_record_partition", &partition),
            ("input_record_offset", &offset),
            ("input_record_timestamp", &timestamp),
        ],
    )
}
