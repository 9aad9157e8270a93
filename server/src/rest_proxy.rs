//! Confluent REST Proxy v3's produce API, for clients that cannot keep Kafka connections
//! (functions): `GET /v3/clusters[/{cluster}]`, and `POST
//! /v3/clusters/{cluster}/topics/{topic}/records` with one record, or a stream of them
//! (concatenated JSON, sent chunked) answered by one delivery report per record, in
//! order, for as long as the client keeps sending.

use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use futures::StreamExt;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Records sent and not yet reported on, per request: what a fast client can have in
/// flight before its stream is read no further.
const IN_FLIGHT: usize = 1024;

pub fn routes() -> crate::routes::Routes<Arc<AppState>> {
    crate::routes::Routes::new()
        .route("/v3/clusters", get(clusters))
        .route("/v3/clusters/{cluster}", get(cluster))
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/records",
            post(produce),
        )
}

/// REST Proxy's error shape.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error_code": status.as_u16(), "message": message.into()})),
    )
        .into_response()
}

/// The base URL the client used, for the `self` links of resources.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/v3")
}

fn cluster_entity(id: &str, base: &str) -> Value {
    let own = format!("{base}/clusters/{id}");
    json!({
        "kind": "KafkaCluster",
        "metadata": {"self": own, "resource_name": format!("crn:///kafka={id}")},
        "cluster_id": id,
        "controller": null,
        "acls": {"related": format!("{own}/acls")},
        "brokers": {"related": format!("{own}/brokers")},
        "broker_configs": {"related": format!("{own}/broker-configs")},
        "consumer_groups": {"related": format!("{own}/consumer-groups")},
        "topics": {"related": format!("{own}/topics")},
        "partition_reassignments": {"related": format!("{own}/topics/-/partitions/-/reassignment")},
    })
}

async fn clusters(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let id = match state.engine.cluster_id().await {
        Ok(id) => id,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.message),
    };
    let base = base_url(&headers);
    axum::Json(json!({
        "kind": "KafkaClusterList",
        "metadata": {"self": format!("{base}/clusters"), "next": null},
        "data": [cluster_entity(&id, &base)],
    }))
    .into_response()
}

async fn cluster(
    State(state): State<Arc<AppState>>,
    Path(wanted): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.engine.cluster_id().await {
        Ok(id) if id == wanted => {
            axum::Json(cluster_entity(&id, &base_url(&headers))).into_response()
        }
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            format!("Cluster {wanted} cannot be found."),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.message),
    }
}

/// A record as the client sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRecord {
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<RecordHeader>,
    key: Option<RecordData>,
    value: Option<RecordData>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct RecordHeader {
    name: String,
    /// Base64, or null.
    value: Option<String>,
}

#[derive(Deserialize)]
struct RecordData {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    data: Value,
}

/// A key or value as it goes to Kafka, and what its report says of it.
struct Encoded {
    bytes: Option<Vec<u8>>,
    kind: &'static str,
}

impl RecordData {
    fn encode(&self) -> Result<Encoded, String> {
        let kind = self.kind.as_deref().unwrap_or("JSON").to_ascii_uppercase();
        let (bytes, kind) = match kind.as_str() {
            _ if self.data.is_null() => (None, "JSON"),
            "BINARY" => {
                let text = self
                    .data
                    .as_str()
                    .ok_or("BINARY data must be a base64 string")?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("BINARY data is not valid base64: {e}"))?;
                (Some(bytes), "BINARY")
            }
            "STRING" => {
                let text = self.data.as_str().ok_or("STRING data must be a string")?;
                (Some(text.as_bytes().to_vec()), "STRING")
            }
            "JSON" => (
                Some(serde_json::to_vec(&self.data).map_err(|e| e.to_string())?),
                "JSON",
            ),
            "AVRO" | "PROTOBUF" | "JSONSCHEMA" => {
                return Err(format!(
                    "{kind} data is not taken here yet: send BINARY (the serialized bytes), JSON or STRING"
                ))
            }
            other => return Err(format!("Unknown data type {other}: use BINARY, JSON or STRING")),
        };
        Ok(Encoded { bytes, kind })
    }
}

/// What happened to one record of a request, in the order records came.
enum Outcome {
    Sent {
        delivery: DeliveryFuture,
        key: Option<(&'static str, usize)>,
        value: Option<(&'static str, usize)>,
    },
    Refused {
        status: StatusCode,
        message: String,
    },
}

async fn produce(
    State(state): State<Arc<AppState>>,
    Path((cluster, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let engine = state.engine.clone();
    let Some(producer) = engine.producer() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Producing needs Kafka: this server runs on the in-process driver",
        );
    };
    match engine.cluster_id().await {
        Ok(id) if id == cluster => {}
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("Cluster {cluster} cannot be found."),
            )
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.message),
    }
    match engine.topic_partitions(&topic).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "This server does not host this topic-partition.",
            )
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.message),
    }
    let streaming = headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (outcomes, pending) = tokio::sync::mpsc::channel::<Outcome>(IN_FLIGHT);
    let sender_topic = topic.clone();
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut ended = false;
        loop {
            // Every complete JSON value in the buffer is a record.
            let mut values = serde_json::Deserializer::from_slice(&buffer).into_iter::<Value>();
            let mut records = Vec::new();
            let mut broken = None;
            loop {
                match values.next() {
                    Some(Ok(v)) => records.push(v),
                    Some(Err(e)) if e.is_eof() && !ended => break,
                    Some(Err(e)) => {
                        broken = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let used = values.byte_offset();
            buffer.drain(..used);
            for record in records {
                let outcome = send(&producer, &sender_topic, record).await;
                if outcomes.send(outcome).await.is_err() {
                    return; // The client went away.
                }
            }
            if let Some(e) = broken {
                // Past a syntax error the stream cannot be read on: say so and stop.
                let _ = outcomes
                    .send(Outcome::Refused {
                        status: StatusCode::BAD_REQUEST,
                        message: format!("Invalid JSON in the request: {e}"),
                    })
                    .await;
                return;
            }
            if ended {
                return;
            }
            match chunks.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let _ = outcomes
                        .send(Outcome::Refused {
                            status: StatusCode::BAD_REQUEST,
                            message: format!("cannot read the request: {e}"),
                        })
                        .await;
                    return;
                }
                None => ended = true,
            }
        }
    });
    let reports = futures::stream::unfold(
        (pending, cluster, topic),
        |(mut pending, cluster, topic)| async move {
            let outcome = pending.recv().await?;
            let report = report(outcome, &cluster, &topic).await;
            Some((report, (pending, cluster, topic)))
        },
    );
    if streaming {
        let body = reports.map(|(_, report)| {
            let mut line = report.to_string().into_bytes();
            line.push(b'\n');
            Ok::<Bytes, std::io::Error>(Bytes::from(line))
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response();
    }
    // One record: its report is the answer, with its status.
    let mut reports = Box::pin(reports);
    match reports.next().await {
        Some((status, report)) => (status, axum::Json(report)).into_response(),
        None => error(StatusCode::BAD_REQUEST, "The request has no record"),
    }
}

/// Sends one record: queued in the producer, its delivery to be awaited in order.
async fn send(producer: &rdkafka::producer::FutureProducer, topic: &str, record: Value) -> Outcome {
    let refused = |message: String| Outcome::Refused {
        status: StatusCode::BAD_REQUEST,
        message,
    };
    let record: ProduceRecord = match serde_json::from_value(record) {
        Ok(r) => r,
        Err(e) => return refused(format!("Invalid record: {e}")),
    };
    let key = match record.key.as_ref().map(RecordData::encode).transpose() {
        Ok(k) => k,
        Err(e) => return refused(format!("key: {e}")),
    };
    let value = match record.value.as_ref().map(RecordData::encode).transpose() {
        Ok(v) => v,
        Err(e) => return refused(format!("value: {e}")),
    };
    let timestamp = match record
        .timestamp
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(t)) => Some(t.timestamp_millis()),
        Some(Err(e)) => return refused(format!("timestamp is not an ISO-8601 date-time: {e}")),
    };
    let mut headers = OwnedHeaders::new();
    for h in &record.headers {
        let value = match h
            .value
            .as_deref()
            .map(|v| base64::engine::general_purpose::STANDARD.decode(v))
        {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => return refused(format!("header {}: not valid base64: {e}", h.name)),
        };
        headers = headers.insert(Header {
            key: &h.name,
            value: value.as_deref(),
        });
    }
    let key_bytes = key.as_ref().and_then(|k| k.bytes.as_deref());
    let value_bytes = value.as_ref().and_then(|v| v.bytes.as_deref());
    let mut future: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(k) = key_bytes {
        future = future.key(k);
    }
    if let Some(v) = value_bytes {
        future = future.payload(v);
    }
    if let Some(p) = record.partition_id {
        future = future.partition(p);
    }
    if let Some(t) = timestamp {
        future = future.timestamp(t);
    }
    let described = |e: &Option<Encoded>| {
        e.as_ref()
            .map(|e| (e.kind, e.bytes.as_ref().map_or(0, Vec::len)))
    };
    loop {
        match producer.send_result(future) {
            Ok(delivery) => {
                return Outcome::Sent {
                    delivery,
                    key: described(&key),
                    value: described(&value),
                }
            }
            // The producer's queue is full: wait for deliveries to make room.
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                back,
            )) => {
                future = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => {
                return Outcome::Refused {
                    status: status_of(&e),
                    message: e.to_string(),
                }
            }
        }
    }
}

fn status_of(e: &rdkafka::error::KafkaError) -> StatusCode {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        Some(RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::UnknownTopicOrPartition) => {
            StatusCode::NOT_FOUND
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The delivery report of one record, once the broker answered.
async fn report(outcome: Outcome, cluster: &str, topic: &str) -> (StatusCode, Value) {
    let (delivery, key, value) = match outcome {
        Outcome::Sent {
            delivery,
            key,
            value,
        } => (delivery, key, value),
        Outcome::Refused { status, message } => {
            return (
                status,
                json!({"error_code": status.as_u16(), "message": message}),
            )
        }
    };
    let delivered = match delivery.await {
        Ok(Ok(d)) => d,
        Ok(Err((e, _))) => {
            let status = status_of(&e);
            return (
                status,
                json!({"error_code": status.as_u16(), "message": e.to_string()}),
            );
        }
        Err(_) => {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return (
                status,
                json!({"error_code": status.as_u16(), "message": "the producer closed before the record was delivered"}),
            );
        }
    };
    let timestamp = delivered
        .timestamp
        .to_millis()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    let size = |d: Option<(&str, usize)>| d.map(|(kind, size)| json!({"type": kind, "size": size}));
    (
        StatusCode::OK,
        json!({
            "error_code": 200,
            "cluster_id": cluster,
            "topic_name": topic,
            "partition_id": delivered.partition,
            "offset": delivered.offset,
            "timestamp": timestamp,
            "key": size(key),
            "value": size(value),
        }),
    )
}
