//! Records/s through a native sink connector to a local endpoint that answers at once,
//! with `max.batch.size=1000` and 1 and 8 requests in flight, against a raw librdkafka
//! read of the same topic on the same broker in the same run; and the records per second
//! of CPU time brook used (per core).
//!
//!     cargo build --release -p brook && cargo bench -p brook-tests --bench sink [-- RECORDS]

use brook_tests::{
    broker, free_port, recent_timestamp, unique, wait_for, BrookRun, Endpoint, Http,
};
use std::time::{Duration, Instant};

fn main() {
    let records = brook_tests::bench_records(500_000) as i64;
    let b = broker();
    let topic = unique("bench_sink");
    b.create_topic(&topic, 4);
    let base = recent_timestamp();
    let inputs: Vec<brook_tests::Input> = (0..records)
        .map(|i| {
            let value = format!(
                r#"{{"userid":"User_{}","symbol":"ZVV","side":"BUY","quantity":{},"price":{}}}"#,
                i % 1000,
                i % 5000,
                i % 997
            );
            (
                Some(format!("k{i}").into_bytes()),
                Some(value.into_bytes()),
                base + i,
            )
        })
        .collect();
    b.produce(&topic, &inputs);

    let started = Instant::now();
    let read = raw_read(&b.bootstrap, &topic, records as usize);
    let raw = read as f64 / started.elapsed().as_secs_f64();
    println!("raw librdkafka read: {read} records, {raw:.0} records/s");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = std::env::temp_dir().join(unique("bench-state"));
    let server = BrookRun::serve(
        "bench-sink",
        &b.bootstrap,
        &listen,
        &unique("bench"),
        &state.display().to_string(),
    );
    let http = Http::new(port);
    for pending in [1, 8] {
        let endpoint = Endpoint::counting();
        let cpu_before = server.cpu_time().unwrap_or_default();
        let started = Instant::now();
        let (status, answer) = http.ksql(&format!(
            "CREATE SINK CONNECTOR bench_{pending} WITH ('connector.class' = 'AzureFunctionsSink',
               'function.url' = '{}', 'function.key' = 'k', 'topics' = '{topic}',
               'max.batch.size' = '1000', 'max.pending.requests' = '{pending}');",
            endpoint.url()
        ));
        assert_eq!(status, 200, "{answer}");
        let done = wait_for(Duration::from_secs(600), || {
            (endpoint.delivered_count() >= records as usize).then_some(())
        });
        assert!(done.is_some(), "the sink delivered everything");
        let seconds = started.elapsed().as_secs_f64();
        let cpu = (server.cpu_time().unwrap_or_default() - cpu_before).as_secs_f64();
        let rate = records as f64 / seconds;
        println!(
            "sink, pending {pending}: {records} records in {seconds:.2} s, {rate:.0} records/s \
             ({:.2}x the raw read), {:.0} records per CPU second of brook",
            rate / raw,
            records as f64 / cpu.max(0.001)
        );
    }
    server.terminate();
}

/// Reads the topic whole with a plain consumer; returns how many records it read.
fn raw_read(bootstrap: &str, topic: &str, expected: usize) -> usize {
    let consumer = brook_tests::consumer_from_start(bootstrap, topic, 4);
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while read < expected && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    read
}
