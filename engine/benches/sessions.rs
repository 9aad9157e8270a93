//! The cost of a record in a session window as a key's history grows: one key gets
//! `PAST` sessions (each record a gap and more after the last), then `RECORDS` more
//! records are timed, each starting a session of its own. The cost per record should not
//! grow with `PAST`: a record looks only at the sessions within its reach.
//!
//!     cargo bench -p brook-engine --bench sessions [-- PAST [RECORDS]]

mod plans;

use brook_engine::dataflow::Operators;
use brook_engine::formats::FormatContext;
use brook_engine::pipeline::InputRecord;
use std::time::Instant;

/// A record of the one key at `time`.
fn record(offset: usize, time: i64) -> InputRecord {
    InputRecord {
        headers: vec![],
        topic: "clicks".into(),
        partition: 0,
        offset: offset as i64,
        timestamp: time,
        key: Some(b"user-1".to_vec()),
        value: Some(br#"{"PAGE":"/home"}"#.to_vec()),
    }
}

/// Microseconds per record of `timed` records after `past` sessions of one key.
fn cost(past: usize, timed: usize) -> f64 {
    let script = "CREATE STREAM clicks (k STRING KEY, page STRING)
                    WITH (kafka_topic='clicks', value_format='JSON');
                  CREATE TABLE visits AS SELECT k, COUNT(*) AS n FROM clicks
                    WINDOW SESSION (1 SECOND, GRACE PERIOD 365 DAYS) GROUP BY k;";
    let (plan, _) = plans::plan(script);
    let operators = Operators::new(plan, &FormatContext::default());
    let dir = std::env::temp_dir().join(format!(
        "brook-bench-sessions-{}-{past}",
        std::process::id()
    ));
    let mut store = brook_state::Store::open(&dir).expect("store");
    let mut errors = Vec::new();
    // Sessions ten seconds apart, well past the one-second gap: none merge.
    let history: Vec<InputRecord> = (0..past).map(|i| record(i, i as i64 * 10_000)).collect();
    for chunk in history.chunks(1_000) {
        operators
            .process(chunk, &mut store, &mut errors)
            .expect("process");
        store.flush(None).expect("flush");
    }
    let base = past as i64 * 10_000;
    let timed_records: Vec<InputRecord> = (0..timed)
        .map(|i| record(past + i, base + i as i64 * 10_000))
        .collect();
    let start = Instant::now();
    for chunk in timed_records.chunks(100) {
        operators
            .process(chunk, &mut store, &mut errors)
            .expect("process");
        store.flush(None).expect("flush");
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / timed as f64;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(errors.is_empty(), "{} records failed", errors.len());
    micros
}

fn main() {
    let past = plans::argument(0, 100_000);
    let timed = plans::argument(1, 2_000).max(1);
    let small = cost(1_000, timed);
    let large = cost(past, timed);
    println!(
        "session window, one key: {small:.1} us a record after 1000 past sessions, {large:.1} us after {past} ({:.2}x)",
        large / small
    );
}
