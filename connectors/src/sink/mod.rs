//! A sink task: a member of the connector's consumer group (`connect-<name>`) that groups
//! the records it reads by partition, cuts each group into batches of the batch size,
//! keeps at most `max.pending.requests` requests in flight, and commits a partition only
//! up to the end of its contiguous prefix of settled batches (answered, dead-lettered or
//! skipped by the error policy): at-least-once, whatever the concurrency. With one request
//! in flight a partition's batches reach the endpoint in offset order, a failing one
//! retried in place. Each attempt runs under the engine's supervisor, which retries what
//! passes (a broker away) and marks the task failed otherwise.

pub mod dead_letters;
pub mod delivery;
pub mod oauth2;
pub mod offsets;
pub mod reports;
pub mod request;

use crate::config::{OnError, OnNull, SinkConfig, Topics};
use crate::status::TaskCounters;
use brook_engine::formats::JsonRewriter;
use brook_engine::kafka::{KafkaSettings, Prefetch};
use brook_engine::runtime::{QueryHealth, RebalanceContext, TaskError};
use dead_letters::DeadLetters;
use delivery::{Failure, Request};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use offsets::{Offsets, Partition};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use request::SinkRecord;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a partial batch waits for more records before it is sent.
const LINGER: Duration = Duration::from_millis(10);

/// Everything a task's attempts share.
pub struct SinkTask {
    pub connector: String,
    pub class: String,
    pub id: u32,
    pub config: Arc<SinkConfig>,
    pub kafka: KafkaSettings,
    /// This process's stable identity, for static group membership.
    pub instance_id: Option<String>,
    pub producer: FutureProducer,
    pub client: reqwest::Client,
    pub counters: Arc<TaskCounters>,
    pub health: Arc<QueryHealth>,
    pub paused: watch::Receiver<bool>,
    /// The User-Agent of its requests.
    pub agent: String,
    /// Its OAuth2 token, with `auth.type=OAUTH2`.
    pub tokens: oauth2::Tokens,
    /// What it read and delivered, for the usage topic.
    pub usage: Arc<brook_engine::metrics::usage::Usage>,
    /// Where the streams and tables over its topics are defined (their formats).
    pub engine: std::sync::Weak<brook_engine::Engine>,
    /// Its result and error reports, opened by its first attempt (`None` when off).
    pub reports: tokio::sync::OnceCell<Option<reports::Reports>>,
}

/// What a batch's delivery settled to: fine (every record delivered or skipped by the
/// policy), or the task must fail with this trace.
type Settled = (Partition, u64, usize, Result<(), String>);

impl SinkTask {
    /// One attempt: runs until `stop` is set (Ok) or something fails.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<(), TaskError> {
        self.reports
            .get_or_try_init(|| async {
                let engine = self
                    .engine
                    .upgrade()
                    .ok_or_else(|| TaskError::fatal("the engine has stopped"))?;
                reports::Reports::open(&self.config.reporter, &self.kafka, &engine, &self.producer)
                    .await
                    .map_err(TaskError::retriable)
            })
            .await?;
        let consumer = Arc::new(self.consumer()?);
        let context = consumer.context().clone();
        let mut paused = self.paused.clone();
        let mut offsets = Offsets::default();
        let mut buffers: BTreeMap<Partition, Vec<SinkRecord>> = BTreeMap::new();
        let mut buffered = 0usize;
        let mut in_flight: FuturesUnordered<Pin<Box<dyn Future<Output = Settled> + Send>>> =
            FuturesUnordered::new();
        let mut next_batch = 0u64;
        let mut linger_until: Option<Instant> = None;
        let mut next_commit = Instant::now() + self.config.commit_interval;
        let pending = self.config.pending;
        let batch_size = self.config.batch_size;
        // Enough read ahead to fill every free request slot with a whole batch.
        let read_ahead = batch_size * (pending + 1);
        let mut is_paused = false;
        let mut warned_missing = false;
        // Per topic: how its records are rewritten as JSON, if they need it.
        let mut rewriters: BTreeMap<String, Option<JsonRewriter>> = BTreeMap::new();
        loop {
            for (topic, partition) in context.take_revoked() {
                let p = (topic, partition);
                buffered -= buffers.remove(&p).map_or(0, |b| b.len());
                offsets.forget(&p);
            }
            let wanted = *paused.borrow();
            if wanted != is_paused {
                is_paused = wanted;
                let assignment = consumer
                    .assignment()
                    .map_err(|e| TaskError::kafka("cannot read the assignment", &e))?;
                let toggled = if is_paused {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                toggled.map_err(|e| TaskError::kafka("cannot pause or resume", &e))?;
            }
            // Whole batches go first; partial ones once nothing more came in for a while.
            let flush_partial = linger_until.is_some_and(|at| Instant::now() >= at);
            while !is_paused && in_flight.len() < pending {
                let Some(batch) = take_batch(&mut buffers, batch_size, flush_partial) else {
                    break;
                };
                buffered -= batch.len();
                let partition = (batch[0].topic.clone(), batch[0].partition);
                let next = batch[batch.len() - 1].offset + 1;
                next_batch += 1;
                offsets.sent(&partition, next_batch, next);
                in_flight.push(Box::pin(self.clone().deliver(partition, next_batch, batch)));
            }
            if buffered == 0 {
                linger_until = None;
            }
            let can_read = buffered < read_ahead;
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => break,
                Some((partition, id, records, settled)) = in_flight.next(), if !in_flight.is_empty() => {
                    settled.map_err(TaskError::fatal)?;
                    self.counters.records_sent.fetch_add(records as u64, Ordering::Relaxed);
                    offsets.acknowledged(&partition, id);
                }
                message = consumer.recv(), if can_read => {
                    let message = match message {
                        Ok(message) => message,
                        // A topic not created yet (its stream's query has not written it):
                        // the consumer picks it up once it exists.
                        Err(e) if is_missing_topic(&e) => {
                            if !warned_missing {
                                tracing::warn!("connector {}: {e}; waiting for it", self.connector);
                                warned_missing = true;
                            }
                            continue;
                        }
                        Err(e) => return Err(TaskError::kafka("cannot read", &e)),
                    };
                    let mut record = sink_record(&message);
                    if !rewriters.contains_key(&record.topic) {
                        let rewriter = match self.engine.upgrade() {
                            Some(engine) => engine.json_rewriter(&record.topic).await,
                            None => None,
                        };
                        let rewriter = rewriter.filter(JsonRewriter::rewrites);
                        rewriters.insert(record.topic.clone(), rewriter);
                    }
                    if let Some(Some(rewriter)) = rewriters.get(&record.topic) {
                        self.rewrite(rewriter, &mut record);
                    }
                    buffers
                        .entry((record.topic.clone(), record.partition))
                        .or_default()
                        .push(record);
                    buffered += 1;
                    // The linger restarts with each record: a steady stream fills batches.
                    linger_until = Some(Instant::now() + LINGER);
                }
                _ = sleep_until(linger_until), if !is_paused && buffered > 0 && in_flight.len() < pending => {}
                _ = paused.changed() => {}
                _ = tokio::time::sleep_until(next_commit) => {
                    self.commit(&consumer, &mut offsets).await?;
                    next_commit = Instant::now() + self.config.commit_interval;
                }
            }
        }
        // Stopping: what was answered is committed; what was not is read again later.
        while let Ok(Some((partition, id, records, Ok(())))) =
            tokio::time::timeout(Duration::from_millis(100), in_flight.next()).await
        {
            self.counters
                .records_sent
                .fetch_add(records as u64, Ordering::Relaxed);
            offsets.acknowledged(&partition, id);
        }
        self.commit(&consumer, &mut offsets).await
    }

    /// Sets the record's JSON form; a record its source's format cannot read is sent as
    /// read (text, or base64 bytes), with a warning.
    fn rewrite(&self, rewriter: &JsonRewriter, record: &mut SinkRecord) {
        let key = rewriter.key(record.key.as_deref());
        let value = rewriter.value(record.value.as_deref());
        match (key, value) {
            (Ok(key), Ok(value)) => record.rewritten = Some((key, value)),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(
                "connector {}: {}-{}@{} is not in its source's format ({e}); sent as read",
                self.connector,
                record.topic,
                record.partition,
                record.offset
            ),
        }
    }

    fn consumer(&self) -> Result<StreamConsumer<RebalanceContext>, TaskError> {
        let group = brook_engine::connect::sink_group(&self.connector);
        let instance = self
            .instance_id
            .as_ref()
            .map(|i| format!("{i}-{group}-{}", self.id));
        let mut config = self.kafka.consumer_config(
            &group,
            &BTreeMap::new(),
            instance.as_deref(),
            Prefetch::Throughput,
        );
        // Kafka Connect's sinks start from the earliest record of a new group.
        config.set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer<RebalanceContext> = config
            .create_with_context(RebalanceContext::default())
            .map_err(|e| TaskError::kafka("cannot create the consumer", &e))?;
        let subscribed = match &self.config.topics {
            Topics::List(topics) => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer.subscribe(&names)
            }
            // librdkafka reads a subscription that starts with ^ as a regular expression.
            Topics::Regex(regex) => {
                let anchored = if regex.starts_with('^') {
                    regex.clone()
                } else {
                    format!("^{regex}")
                };
                consumer.subscribe(&[anchored.as_str()])
            }
        };
        subscribed.map_err(|e| TaskError::kafka("cannot subscribe", &e))?;
        Ok(consumer)
    }

    /// Commits what is settled; a failed commit puts the offsets back for the next one.
    async fn commit(
        &self,
        consumer: &Arc<StreamConsumer<RebalanceContext>>,
        offsets: &mut Offsets,
    ) -> Result<(), TaskError> {
        let ready = offsets.take_committable();
        if ready.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &ready {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| TaskError::kafka("cannot list offsets", &e))?;
        }
        let committer = consumer.clone();
        let outcome =
            tokio::task::spawn_blocking(move || committer.commit(&list, CommitMode::Sync))
                .await
                .map_err(|e| TaskError::fatal(format!("the commit was cancelled: {e}")))?;
        match outcome {
            Ok(()) => {
                self.health.add_committed(ready.len() as u64);
                Ok(())
            }
            Err(e) => {
                let error = TaskError::kafka("cannot commit offsets", &e);
                if !error.retriable {
                    return Err(error);
                }
                // A rebalance under way: the revoked partitions' new owners read them again.
                tracing::warn!(
                    "connector {} task {}: {error}; committing later",
                    self.connector,
                    self.id
                );
                offsets.restore(ready);
                Ok(())
            }
        }
    }

    /// Sends one batch and settles every record of it.
    async fn deliver(
        self: Arc<Self>,
        partition: Partition,
        id: u64,
        batch: Vec<SinkRecord>,
    ) -> (Partition, u64, usize, Result<(), String>) {
        let count = batch.len();
        let bytes: u64 = batch
            .iter()
            .map(|r| {
                (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64
            })
            .sum();
        let settled = self.settle(batch).await;
        if settled.is_ok() {
            // Read once it is settled: the offsets it reaches can be committed.
            self.usage
                .records_read
                .fetch_add(count as u64, Ordering::Relaxed);
            self.usage.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        }
        (partition, id, count, settled)
    }

    async fn settle(&self, batch: Vec<SinkRecord>) -> Result<(), String> {
        let config = &self.config;
        let (tombstones, batch): (Vec<_>, Vec<_>) =
            if config.class == crate::config::SinkClass::Http {
                batch.into_iter().partition(|r| r.value.is_none())
            } else {
                (Vec::new(), batch)
            };
        for record in &tombstones {
            self.tombstone(record).await?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let failure = match self.send(&batch).await {
            Ok(answer) => return self.report_delivered(&batch, &answer).await,
            Err(failure) => failure,
        };
        // The endpoint refused the batch (a status it is not retried for): one record at a
        // time, so that only the records it refuses take the error path.
        if !failure.retriable && batch.len() > 1 {
            for record in &batch {
                let one = std::slice::from_ref(record);
                match self.send(one).await {
                    Ok(answer) => self.report_delivered(one, &answer).await?,
                    Err(failure) => self.failed(record, &failure).await?,
                }
            }
            return Ok(());
        }
        for record in &batch {
            self.failed(record, &failure).await?;
        }
        Ok(())
    }

    /// Reports delivered records, when the result report is on.
    async fn report_delivered(&self, batch: &[SinkRecord], answer: &[u8]) -> Result<(), String> {
        match self.reports.get().and_then(Option::as_ref) {
            Some(reports) => reports.delivered(batch, answer).await,
            None => Ok(()),
        }
    }

    /// Sends a batch until it is delivered (the endpoint's answer) or fails for good.
    async fn send(&self, batch: &[SinkRecord]) -> Result<Vec<u8>, Failure> {
        let config = &self.config;
        // Building the body is the task's own work: its CPU time is metered.
        let cpu_before = brook_engine::metrics::usage::thread_cpu_nanos();
        let body = request::body(&config.body, batch);
        if let (Some(before), Some(after)) =
            (cpu_before, brook_engine::metrics::usage::thread_cpu_nanos())
        {
            self.usage
                .cpu_nanos
                .fetch_add(after.saturating_sub(before), Ordering::Relaxed);
        }
        let bytes = body.len() as u64;
        let request = Request {
            url: request::url_for(&config.url, &batch[0]),
            method: config.method.clone(),
            body,
            config,
            agent: &self.agent,
            tokens: &self.tokens,
        };
        let answer = delivery::send(&self.client, request, &self.counters).await?;
        self.usage
            .records_written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.usage.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        Ok(answer)
    }

    /// The HTTP sink's `behavior.on.null.values`.
    async fn tombstone(&self, record: &SinkRecord) -> Result<(), String> {
        match self.config.on_null {
            OnNull::Ignore => Ok(()),
            OnNull::Log => {
                tracing::info!(
                    "connector {}: skipping the tombstone at {}-{}@{}",
                    self.connector,
                    record.topic,
                    record.partition,
                    record.offset
                );
                Ok(())
            }
            OnNull::Fail => Err(format!(
                "a record with a null value at {}-{}@{} (behavior.on.null.values=fail)",
                record.topic, record.partition, record.offset
            )),
            OnNull::Delete => {
                let config = &self.config;
                let request = Request {
                    url: request::url_for(&config.url, record),
                    method: reqwest::Method::DELETE,
                    body: Vec::new(),
                    config,
                    agent: &self.agent,
                    tokens: &self.tokens,
                };
                match delivery::send(&self.client, request, &self.counters).await {
                    Ok(_) => Ok(()),
                    Err(failure) => self.failed(record, &failure).await,
                }
            }
        }
    }

    /// A record whose delivery failed for good: to the dead-letter topic, skipped, or the
    /// task's end, as the error settings say.
    async fn failed(&self, record: &SinkRecord, failure: &Failure) -> Result<(), String> {
        if let Some(reports) = self.reports.get().and_then(Option::as_ref) {
            reports.failed(record, failure).await?;
        }
        let config = &self.config;
        let at = format!("{}-{}@{}", record.topic, record.partition, record.offset);
        if config.tolerate_all {
            if let Some(topic) = &config.dead_letter_topic {
                DeadLetters {
                    producer: &self.producer,
                    topic,
                    connector: &self.connector,
                    task: self.id,
                    class: &self.class,
                    with_headers: config.dead_letter_headers,
                }
                .write(record, failure)
                .await?;
                self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
            } else {
                tracing::warn!("connector {}: skipping {at}: {failure}", self.connector);
            }
            return Ok(());
        }
        match config.on_error {
            OnError::Fail => Err(format!("delivering {at} failed: {failure}")),
            OnError::Log => {
                tracing::warn!("connector {}: skipping {at}: {failure}", self.connector);
                Ok(())
            }
            OnError::Ignore => Ok(()),
        }
    }
}

/// `headers` with text headers added: the context dead letters and reports carry.
fn with_text_headers(
    mut headers: rdkafka::message::OwnedHeaders,
    pairs: &[(&str, &str)],
) -> rdkafka::message::OwnedHeaders {
    for (key, value) in pairs {
        headers = headers.insert(rdkafka::message::Header {
            key,
            value: Some(*value),
        });
    }
    headers
}

/// The next batch to send: a whole one if a partition has it, else (when `partial`) the
/// records of the partition that has the most.
fn take_batch(
    buffers: &mut BTreeMap<Partition, Vec<SinkRecord>>,
    size: usize,
    partial: bool,
) -> Option<Vec<SinkRecord>> {
    let key = buffers
        .iter()
        .filter(|(_, b)| b.len() >= size)
        .map(|(p, _)| p.clone())
        .next()
        .or_else(|| {
            partial
                .then(|| {
                    buffers
                        .iter()
                        .filter(|(_, b)| !b.is_empty())
                        .max_by_key(|(_, b)| b.len())
                        .map(|(p, _)| p.clone())
                })
                .flatten()
        })?;
    let buffer = buffers.get_mut(&key)?;
    let take = buffer.len().min(size);
    let batch: Vec<SinkRecord> = buffer.drain(..take).collect();
    if buffer.is_empty() {
        buffers.remove(&key);
    }
    Some(batch)
}

fn is_missing_topic(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{
        UnknownPartition, UnknownTopic, UnknownTopicOrPartition,
    };
    matches!(
        e.rdkafka_error_code(),
        Some(UnknownTopicOrPartition | UnknownTopic | UnknownPartition)
    )
}

/// Resolves once `stop` is set (the guard `wait_for` gives is not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn sink_record<M: Message>(message: &M) -> SinkRecord {
    SinkRecord {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
        rewritten: None,
    }
}
