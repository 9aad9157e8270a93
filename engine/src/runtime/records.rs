//! Reading batches of records from a consumer and writing records to topics.

use super::supervisor::TaskError;
use crate::kafka::Prefetch;
use crate::pipeline::{Headers, InputRecord};
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::sync::watch;

/// Waits for at least one record (or a stop request, returning `None`), then takes what is
/// already there, up to `max` records.
pub(crate) async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    stop: &mut watch::Receiver<bool>,
    max: usize,
) -> Option<Vec<InputRecord>> {
    next_batch_within(consumer, stop, max, None, None).await
}

/// As `next_batch`, but gives up waiting for a first record after `wait` (returning an
/// empty batch). With `rebalances`, records of partitions revoked while the batch was
/// gathered are left out when they came before the revocation.
pub(super) async fn next_batch_within<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    stop: &mut watch::Receiver<bool>,
    max: usize,
    wait: Option<Duration>,
    rebalances: Option<&super::rebalance::RebalanceContext>,
) -> Option<Vec<InputRecord>> {
    let mut batch = Vec::new();
    // The revocations seen, set when the first record comes.
    let mut revocations: Option<u64>;
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        if *stop.borrow() {
            return None;
        }
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return None,
            _ = timeout => return Some(batch),
            message = consumer.recv() => match message {
                Ok(m) => {
                    batch.push(owned(&m));
                    // It came after any revocation served while it was awaited.
                    revocations = rebalances.map(|r| r.revocations());
                    break;
                }
                Err(e) => {
                    tracing::warn!("error while consuming: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    // What is already fetched, without a timer per record.
    while batch.len() < max {
        match futures::FutureExt::now_or_never(consumer.recv()) {
            Some(Ok(m)) => {
                // A revocation is served inside `recv`, before the message it returns.
                let before = batch.len();
                drop_revoked(rebalances, &mut revocations, &mut batch, before);
                batch.push(owned(&m));
            }
            _ => break,
        }
    }
    let all = batch.len();
    drop_revoked(rebalances, &mut revocations, &mut batch, all);
    Some(batch)
}

/// Leaves out the records among the first `before` of `batch` whose partitions were
/// revoked since the `seen`-th revocation (which it moves to the latest).
fn drop_revoked(
    rebalances: Option<&super::rebalance::RebalanceContext>,
    seen: &mut Option<u64>,
    batch: &mut Vec<InputRecord>,
    before: usize,
) {
    let (Some(r), Some(seen)) = (rebalances, seen.as_mut()) else {
        return;
    };
    let now = r.revocations();
    if now == *seen {
        return;
    }
    let revoked = r.revoked_after(*seen);
    *seen = now;
    let mut i = 0;
    batch.retain(|rec| {
        i += 1;
        i > before
            || !revoked
                .iter()
                .any(|(t, p)| *t == rec.topic && *p == rec.partition)
    });
}

fn owned(m: &rdkafka::message::BorrowedMessage<'_>) -> InputRecord {
    use rdkafka::message::Headers as _;
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    InputRecord {
        headers,
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
    }
}

/// `r` as a record to send to `topic`, where the producer's partitioner places it unless
/// the caller names a partition.
pub fn future_record<'a>(topic: &'a str, r: &'a OutputRecord) -> FutureRecord<'a, [u8], [u8]> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).timestamp(r.timestamp);
    if let Some(k) = &r.key {
        record = record.key(k.as_slice());
    }
    if let Some(v) = &r.value {
        record = record.payload(v.as_slice());
    }
    if !r.headers.is_empty() {
        let mut headers = rdkafka::message::OwnedHeaders::new();
        for (key, value) in &r.headers {
            headers = headers.insert(rdkafka::message::Header {
                key,
                value: value.as_deref(),
            });
        }
        record = record.headers(headers);
    }
    record
}

/// An encoded output record.
#[derive(Debug, Clone)]
pub struct OutputRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Produces all records and waits until the broker has acknowledged every one of them.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[OutputRecord],
) -> Result<(), TaskError> {
    let pending = send_all(producer, topic, records).await?;
    await_deliveries(topic, pending).await
}

/// Sends records without waiting for their acknowledgements (but for those of earlier
/// records when the producer's queue is full); their deliveries come in their order.
pub async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[OutputRecord],
) -> Result<Vec<DeliveryFuture>, TaskError> {
    let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(records.len());
    let mut delivered = 0;
    for r in records {
        loop {
            match producer.send_result(future_record(topic, r)) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // The local queue is full: wait for what is in flight, then retry.
                    for d in &mut pending[delivered..] {
                        super::in_flight::delivered(topic, d.await)?;
                    }
                    delivered = pending.len();
                }
                Err((e, _)) => {
                    return Err(TaskError::kafka(format!("cannot produce to {topic}"), &e))
                }
            }
        }
    }
    Ok(pending)
}

async fn await_deliveries(topic: &str, pending: Vec<DeliveryFuture>) -> Result<(), TaskError> {
    for result in futures::future::join_all(pending).await {
        super::in_flight::delivered(topic, result)?;
    }
    Ok(())
}

/// The partitions of `topic`.
pub(crate) fn partitions_of<X: ConsumerContext, C: rdkafka::consumer::Consumer<X>>(
    consumer: &C,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("cannot read {topic}: {e}"))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Every record of `topic`, from the start of each partition to where it ended when the
/// read began, partition after partition. Blocking: call it off the async runtime.
pub fn read_to_end(
    settings: &crate::kafka::KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<InputRecord>, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = settings
        .reader_config(&format!("{topic}-reader"), Prefetch::Throughput)
        .create()
        .map_err(|e| format!("cannot read {topic}: {e}"))?;
    let partitions = partitions_of(&consumer, topic, timeout)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        if high <= low {
            continue;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(low))
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let mut position = low;
        while position < high {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "reading {topic} timed out at offset {position} of {high} in partition {partition}"
                ));
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    position = m.offset() + 1;
                    out.push(owned(&m));
                }
                Some(Err(e)) => tracing::warn!("reading {topic}: {e}"),
                None => {}
            }
        }
    }
    Ok(out)
}
