//! The worker pool persistent queries run on: a runtime of their own, so that their
//! processing (decoding, operators, RocksDB, blocking Kafka calls) never takes the
//! threads that serve HTTP. Its size is Kafka Streams' `num.stream.threads` (with or
//! without the `ksql.streams.` prefix) as the first query finds it, by default the number
//! of cores.

use std::collections::BTreeMap;
use std::sync::OnceLock;

static WORKERS: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The pool, started on first use.
pub fn workers(properties: &BTreeMap<String, String>) -> Result<tokio::runtime::Handle, String> {
    let pool = WORKERS.get_or_init(|| {
        let threads = ["ksql.streams.num.stream.threads", "num.stream.threads"]
            .iter()
            .find_map(|k| {
                properties
                    .get(*k)
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("brook-query")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the query worker pool: {e}"))
    });
    match pool {
        Ok(runtime) => Ok(runtime.handle().clone()),
        Err(e) => Err(e.clone()),
    }
}
