//! Running a case on the Kafka runtime against a real broker: the same statements, inputs
//! and checks as on the in-process driver, so that the two execution paths cannot drift
//! apart. Cases run one after the other on one broker; each starts from a broker without
//! the previous case's topics, and its queries' consumer groups and internal topics carry
//! a service id of their own.

use crate::case::Case;
use crate::run::{
    case_session, case_topics, check_results, input_batches, register_schemas, run_statements,
    Statements,
};
use brook_engine::kafka::{KafkaSettings, Topics};
use brook_engine::runtime::driver::TopicRecord;
use brook_engine::runtime::{future_record, read_to_end, OutputRecord, QueryStatus};
use brook_engine::schema_registry::{MemoryRegistry, SchemaRegistry};
use brook_engine::session::EngineConfig;
use brook_engine::Engine;
use rdkafka::producer::FutureProducer;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a case's queries may take to process its inputs.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the queries' lag is read while they catch up.
const LAG_POLL: Duration = Duration::from_millis(50);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Topic settings for what the case writes itself: QTT inputs carry event times from
/// 1970, which a topic with a retention would delete at once.
const INPUT_TOPIC_CONFIG: &[(&str, &str)] = &[("retention.ms", "-1")];

pub(crate) async fn execute(case: &Case, bootstrap: &str, index: usize) -> Result<(), String> {
    let settings = KafkaSettings::new(bootstrap);
    let topics = Topics::new(&settings, None)?;
    remove_topics(&topics).await?;
    for (topic, partitions) in case_topics(case) {
        topics
            .create(&topic, partitions, 1, INPUT_TOPIC_CONFIG)
            .await?;
    }
    let registry = Arc::new(MemoryRegistry::default());
    register_schemas(case, &registry);
    let state_dir = std::env::temp_dir().join(format!("brook-qtt-{}", std::process::id()));
    let mut config = EngineConfig::new(settings.clone());
    // Consumer groups are the broker's to keep: a case's are its own in this run and
    // in any earlier run on the same broker.
    config.service_id = format!("qtt{}x{index}_", std::process::id());
    config.state_dir = state_dir.clone();
    // Every update reaches the output, as on the driver: the record cache is off.
    config
        .properties
        .insert("cache.max.bytes.buffering".into(), "0".into());
    let engine =
        Engine::start_with_registry(config.clone(), Some(registry as Arc<dyn SchemaRegistry>))
            .await
            .map_err(|e| e.message)?;
    let outcome = run(case, &engine, &settings, &topics, &config.service_id).await;
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(state_dir.join(&config.service_id));
    outcome
}

async fn run(
    case: &Case,
    engine: &Arc<Engine>,
    settings: &KafkaSettings,
    topics: &Topics,
    service_id: &str,
) -> Result<(), String> {
    let mut session = case_session(case, engine);
    if run_statements(case, &mut session).await? == Statements::FailedAsExpected {
        return Ok(());
    }
    let sources = engine.sources().await;
    let producer: FutureProducer = settings
        .producer_config()
        .create()
        .map_err(|e| format!("cannot create a producer: {e}"))?;
    for (topic, records) in input_batches(case, &sources, engine.formats())? {
        let partitions = topics.partitions(&topic).await?.unwrap_or(1);
        produce(&producer, &topic, partitions, &records).await?;
    }
    caught_up(engine).await?;
    let mut wanted: Vec<String> = case
        .outputs
        .iter()
        .filter_map(|o| o["topic"].as_str().map(str::to_string))
        .collect();
    let log_topic = format!("{service_id}ksql_processing_log");
    wanted.push(log_topic.clone());
    wanted.dedup();
    let mut written = BTreeMap::new();
    for topic in wanted {
        let read = settings.clone();
        let name = topic.clone();
        let records = tokio::task::spawn_blocking(move || read_to_end(&read, &name, READ_TIMEOUT))
            .await
            .map_err(|e| e.to_string())??;
        written.insert(topic, in_time_order(records));
    }
    let topic_names: Vec<String> = topics.list().await?.into_iter().map(|t| t.0).collect();
    let outputs = |topic: &str| written.get(topic).cloned().unwrap_or_default();
    let processing_log = outputs(&log_topic);
    check_results(
        case,
        &outputs,
        &processing_log,
        &topic_names,
        &sources,
        engine.formats(),
    )
}

/// Deletes every topic but the broker's own, and waits until they are gone.
async fn remove_topics(topics: &Topics) -> Result<(), String> {
    let existing: Vec<String> = topics
        .list()
        .await?
        .into_iter()
        .map(|t| t.0)
        .filter(|t| !t.starts_with("__"))
        .collect();
    for topic in &existing {
        topics.delete(topic).await?;
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    for topic in &existing {
        while topics.partitions(topic).await?.is_some() {
            if Instant::now() > deadline {
                return Err(format!("topic {topic} was deleted but is still listed"));
            }
            tokio::time::sleep(LAG_POLL).await;
        }
    }
    Ok(())
}

/// Writes records to the partitions the driver puts them in (by their keys' murmur2
/// hash, keyless ones to the first), and waits until the broker has them all.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    records: &[OutputRecord],
) -> Result<(), String> {
    let mut deliveries = Vec::with_capacity(records.len());
    for r in records {
        let partition = match &r.key {
            Some(k) if partitions > 1 => brook_engine::partitioner::partition_for(k, partitions),
            _ => 0,
        };
        let record = future_record(topic, r).partition(partition);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| format!("cannot produce to {topic}: {e}"))?;
        deliveries.push(delivery);
    }
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(format!("cannot produce to {topic}: {e}")),
            Err(_) => return Err(format!("producing to {topic} was cancelled")),
        }
    }
    Ok(())
}

/// Waits until every query has committed past everything its inputs hold, twice in a
/// row (a query's output is the input of the next only once it is committed). A query
/// in ERROR fails the case at once.
async fn caught_up(engine: &Arc<Engine>) -> Result<(), String> {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let mut quiet_rounds = 0;
    loop {
        for (id, status) in engine.queries().await {
            if let QueryStatus::Error(failure) = status {
                return Err(format!("query {id} failed: {}", failure.message));
            }
        }
        let lags = engine.lag().await?;
        let behind: Vec<String> = lags
            .iter()
            .flat_map(|(id, partitions)| {
                partitions
                    .iter()
                    .filter(|p| p.lag() > 0)
                    .map(move |p| format!("{id} {}/{}: {}", p.topic, p.partition, p.lag()))
            })
            .collect();
        if behind.is_empty() {
            quiet_rounds += 1;
            if quiet_rounds == 2 {
                return Ok(());
            }
        } else {
            quiet_rounds = 0;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the queries did not process their inputs within {} s: {}",
                CATCH_UP_TIMEOUT.as_secs(),
                behind.join(", ")
            ));
        }
        tokio::time::sleep(LAG_POLL).await;
    }
}

/// A topic's records as one sequence: each partition's in its order, the partitions
/// merged by timestamp (the driver writes them in processing order, which follows time).
fn in_time_order(records: Vec<brook_engine::pipeline::InputRecord>) -> Vec<TopicRecord> {
    let mut partitions: BTreeMap<i32, std::collections::VecDeque<TopicRecord>> = BTreeMap::new();
    for r in records {
        partitions
            .entry(r.partition)
            .or_default()
            .push_back(TopicRecord {
                headers: r.headers,
                key: r.key,
                value: r.value,
                timestamp: r.timestamp,
                partition: r.partition,
                offset: r.offset,
            });
    }
    let mut merged = Vec::new();
    while let Some(next) = partitions
        .iter()
        .filter_map(|(p, q)| q.front().map(|r| (r.timestamp, *p)))
        .min()
        .map(|(_, p)| p)
    {
        if let Some(r) = partitions.get_mut(&next).and_then(|q| q.pop_front()) {
            merged.push(r);
        }
    }
    merged
}
