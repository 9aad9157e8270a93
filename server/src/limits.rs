//! What a client can ask the server to hold: concurrent push and pull queries, pull
//! queries per second, request body size, and how long a connection may stay idle or take
//! to send its request head. Each is a server setting, with ksqlDB's name where ksqlDB has
//! one; the answers past a limit are ksqlDB's.

use crate::errors;
use axum::response::Response;
use brook_engine::settings::positive;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// ksqlDB's error code for a push query past `ksql.max.push.queries`.
const MAX_PUSH_QUERIES_EXCEEDED: u32 = 40003;

/// The server's limits, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `ksql.max.push.queries`: push queries (and PRINTs) running at once.
    pub max_push_queries: usize,
    /// `ksql.query.pull.max.concurrent.requests`: pull queries answering at once.
    pub max_pull_queries: usize,
    /// `ksql.query.pull.max.qps`: pull queries started per second.
    pub pull_queries_per_second: u64,
    /// `brook.server.request.max.bytes`: the largest request body taken.
    pub max_request_bytes: usize,
    /// `ksql.idle.connection.timeout.seconds`: a connection with no data either way for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// `brook.server.request.header.timeout.ms`: a client must send a request's head within
    /// this long (a client that trickles it holds a connection for nothing).
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_push_queries: 100,
            max_pull_queries: i32::MAX as usize,
            pull_queries_per_second: i32::MAX as u64,
            max_request_bytes: 2 * 1024 * 1024,
            idle_timeout: Duration::from_secs(600),
            header_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Reads the limits from the server's settings; a setting that is not a positive
    /// number is an error that names it.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self, String> {
        let d = Self::default();
        let size = |name, default: usize| {
            positive(properties, name, default as u64)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        Ok(Self {
            max_push_queries: size("ksql.max.push.queries", d.max_push_queries)?
                .min(Semaphore::MAX_PERMITS),
            max_pull_queries: size(
                "ksql.query.pull.max.concurrent.requests",
                d.max_pull_queries,
            )?
            .min(Semaphore::MAX_PERMITS),
            pull_queries_per_second: positive(
                properties,
                "ksql.query.pull.max.qps",
                d.pull_queries_per_second,
            )?,
            max_request_bytes: size("brook.server.request.max.bytes", d.max_request_bytes)?,
            idle_timeout: Duration::from_secs(positive(
                properties,
                "ksql.idle.connection.timeout.seconds",
                d.idle_timeout.as_secs(),
            )?),
            header_timeout: Duration::from_millis(positive(
                properties,
                "brook.server.request.header.timeout.ms",
                d.header_timeout.as_millis() as u64,
            )?),
        })
    }
}

/// Admits queries within the limits; a permit is held for as long as a query's answer is
/// being streamed.
pub struct Admission {
    limits: Limits,
    push: Arc<Semaphore>,
    pull: Arc<Semaphore>,
    /// Pull queries started in the current one-second window: (window start, count).
    pull_window: Mutex<(Instant, u64)>,
}

/// A running query's place within its limit, given back when dropped.
pub type Permit = OwnedSemaphorePermit;

/// Why a query was not admitted: ksqlDB's error code and message.
#[derive(Debug)]
pub struct Refusal {
    pub code: u32,
    pub message: String,
}

impl Refusal {
    pub fn response(self) -> Response {
        errors::generic(self.code, self.message)
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self {
            push: Arc::new(Semaphore::new(limits.max_push_queries)),
            pull: Arc::new(Semaphore::new(limits.max_pull_queries)),
            pull_window: Mutex::new((Instant::now(), 0)),
            limits,
        }
    }

    /// A place for one more push query, or ksqlDB's refusal.
    pub fn push(&self) -> Result<Permit, Refusal> {
        self.push.clone().try_acquire_owned().map_err(|_| Refusal {
            code: MAX_PUSH_QUERIES_EXCEEDED,
            message: format!(
                "Maximum number of push queries exceeded (ksql.max.push.queries={})",
                self.limits.max_push_queries
            ),
        })
    }

    /// A place for one more pull query, or ksqlDB's refusal: at the rate limit first, then
    /// at the concurrency limit.
    pub fn pull(&self) -> Result<Permit, Refusal> {
        {
            // As ksqlDB's rate limiter, a query that passes the rate counts towards it,
            // even if the concurrency limit then refuses it.
            let mut window = self.pull_window.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if now.duration_since(window.0) >= Duration::from_secs(1) {
                *window = (now, 0);
            }
            if window.1 >= self.limits.pull_queries_per_second {
                return Err(Refusal {
                    code: errors::BAD_REQUEST,
                    message: format!(
                        "Host is at rate limit for pull queries. Currently set to {} qps.",
                        self.limits.pull_queries_per_second
                    ),
                });
            }
            window.1 += 1;
        }
        self.pull.clone().try_acquire_owned().map_err(|_| Refusal {
            code: errors::BAD_REQUEST,
            message: format!(
                "Host is at concurrency limit for pull queries. Currently set to {} maximum concurrent operations.",
                self.limits.max_pull_queries
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_are_read_and_bad_ones_named() {
        let limits = Limits::from_properties(&properties(&[
            ("ksql.max.push.queries", "3"),
            ("ksql.idle.connection.timeout.seconds", "5"),
            ("brook.server.request.max.bytes", "1024"),
        ]))
        .expect("valid");
        assert_eq!(limits.max_push_queries, 3);
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.max_request_bytes, 1024);
        assert_eq!(limits.max_pull_queries, i32::MAX as usize);
        let error = Limits::from_properties(&properties(&[("ksql.max.push.queries", "-1")]))
            .expect_err("negative");
        assert!(error.contains("ksql.max.push.queries"), "{error}");
        assert!(Limits::from_properties(&properties(&[("ksql.query.pull.max.qps", "0")])).is_err());
    }

    #[test]
    fn permits_are_given_back() {
        let admission = Admission::new(Limits {
            max_push_queries: 1,
            max_pull_queries: 1,
            pull_queries_per_second: 2,
            ..Limits::default()
        });
        let first = admission.push().expect("room for one");
        assert!(admission.push().is_err(), "the limit is one");
        drop(first);
        assert!(
            admission.push().is_ok(),
            "a finished query gives its place back"
        );

        let pull = admission.pull().expect("room for one pull");
        let refused = admission.pull().expect_err("one at a time");
        assert!(refused.message.contains("concurrency limit"), "{refused:?}");
        drop(pull);
        // Two pulls passed the rate in this second (one refused for concurrency): a third
        // is past it.
        let refused = admission.pull().expect_err("past the rate limit");
        assert!(refused.message.contains("rate limit"), "{refused:?}");
    }
}
