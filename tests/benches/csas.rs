//! End to end through a real broker, as a user runs a query: JSON records over 4
//! partitions, `brook run` of a stateless CREATE STREAM AS SELECT (a filter and three
//! computed columns) from process start to the last output record, against a raw
//! librdkafka consume->produce copy of the same topic on the same broker in the same run;
//! and the records per second of CPU time brook used (per core).
//!
//!     cargo build --release -p brook && cargo bench -p brook-tests --bench csas [-- RECORDS]
//!
//! `BENCH_BROOK_ARGS` adds arguments to `brook run` (`--kafka-property KEY=VALUE`, say).

use brook_tests::{broker, recent_timestamp, unique, wait_for, BrookRun};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;

fn main() {
    let records = brook_tests::bench_records(500_000);
    let b = broker();
    let topic = unique("bench_orders");
    b.create_topic(&topic, PARTITIONS);
    let base = recent_timestamp();
    let tiers = ["gold", "silver", "bronze"];
    let inputs: Vec<brook_tests::Input> = (0..records)
        .map(|i| {
            let value = format!(
                r#"{{"id":{i},"amount":{}.5,"name":"customer {}","tier":"{}"}}"#,
                i % 100,
                i % 1000,
                tiers[i % 3]
            );
            (
                Some(format!("order-{i}").into_bytes()),
                Some(value.into_bytes()),
                base + i as i64,
            )
        })
        .collect();
    // What the query's filter keeps: amounts above 10 of gold and silver orders.
    let expected = (0..records).filter(|i| i % 100 > 10 && i % 3 != 2).count();
    b.produce(&topic, &inputs);

    let raw_out = unique("bench_raw_copy");
    b.create_topic(&raw_out, PARTITIONS);
    let started = Instant::now();
    raw_copy(&b.bootstrap, &topic, &raw_out, records);
    let raw_seconds = started.elapsed().as_secs_f64();
    let raw = records as f64 / raw_seconds;
    println!("raw librdkafka copy: {records} records in {raw_seconds:.2} s, {raw:.0} records/s");

    let out = unique("BENCH_BIG");
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM orders (k STRING KEY, id BIGINT, amount DOUBLE, name STRING, tier STRING)
           WITH (kafka_topic='{topic}', value_format='JSON');
         CREATE STREAM big WITH (kafka_topic='{out}', partitions={PARTITIONS}) AS
           SELECT k, id, amount * 2 AS doubled, name + '!' AS shout, id % 7 AS bucket
           FROM orders WHERE amount > 10 AND tier IN ('gold', 'silver');"
    );
    let state = std::env::temp_dir().join(unique("bench-state"));
    let state = state.display().to_string();
    let args = [
        "--bootstrap-servers",
        b.bootstrap.as_str(),
        "--service-id",
        &unique("bench"),
        "--state-dir",
        state.as_str(),
    ];
    let extra: Vec<String> = std::env::var("BENCH_BROOK_ARGS")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let args: Vec<&str> = args
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .collect();
    let started = Instant::now();
    let run = BrookRun::start("bench-csas", &sql, &args);
    // The output's end offsets, read by a client made once the query has created the
    // topic (a client that looked it up before would not see it for minutes).
    let created = wait_for(Duration::from_secs(120), || b.partitions(&out));
    assert!(created.is_some(), "the query created its output topic");
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b.bootstrap)
        .create()
        .expect("consumer");
    let written = || -> i64 {
        (0..PARTITIONS)
            .map(|p| {
                watcher
                    .fetch_watermarks(&out, p, Duration::from_secs(1))
                    .map_or(0, |(_, high)| high)
            })
            .sum()
    };
    // Polled finely: the end of the run is what is timed.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = false;
    while !done && Instant::now() < deadline {
        done = written() as usize >= expected;
        if !done {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = run.cpu_time().unwrap_or_default().as_secs_f64();
    run.terminate();
    assert!(done, "the query wrote its {expected} records");
    let rate = records as f64 / seconds;
    println!(
        "brook run, stateless CSAS: {records} records ({expected} written) in {seconds:.2} s, \
         {rate:.0} records/s ({:.2}x the raw copy), {:.0} records per CPU second of brook",
        rate / raw,
        records as f64 / cpu.max(0.001)
    );
}

/// Counts acknowledged records.
struct Acks(Arc<AtomicUsize>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Copies the topic whole with a plain consumer and producer, as fast as librdkafka
/// goes; returns when every copy is acknowledged.
fn raw_copy(bootstrap: &str, from: &str, to: &str, expected: usize) {
    let consumer = brook_tests::consumer_from_start(bootstrap, from, PARTITIONS);
    let acks = Arc::new(AtomicUsize::new(0));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Acks(acks.clone()))
        .expect("producer");
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while read < expected && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(to).partition(m.partition());
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(v) = m.payload() {
            record = record.payload(v);
        }
        while let Err((_, back)) = producer.send(record) {
            // The queue is full: let deliveries drain.
            std::thread::sleep(Duration::from_millis(1));
            record = back;
        }
        read += 1;
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert!(
        acks.load(Ordering::Relaxed) >= expected,
        "the raw copy wrote everything"
    );
}
