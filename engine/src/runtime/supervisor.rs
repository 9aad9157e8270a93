//! The supervisor of a persistent query: it runs the query's tasks, retries what failed
//! for a passing reason (a broker away, a rebalance, a timeout) with backoff, and marks
//! the query ERROR, with the reason and the time, for anything else (a panic included).
//! A query in ERROR has left its consumer group; it is restarted after ksqlDB's
//! `ksql.query.retry.backoff.*` delay, doubling up to the maximum, and never takes another
//! query down with it.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Why a task stopped, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    pub message: String,
    pub retriable: bool,
}

impl TaskError {
    /// A failure that trying again will not mend.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: false,
        }
    }

    /// A failure that passes by itself (a broker away, a coordinator moving).
    pub fn retriable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: true,
        }
    }

    /// A Kafka client's error, retriable when its code says the condition is transient.
    pub fn kafka(context: impl std::fmt::Display, error: &KafkaError) -> Self {
        let message = format!("{context}: {error}");
        match error.rdkafka_error_code() {
            Some(code) if is_transient(code) => Self::retriable(message),
            _ => Self::fatal(message),
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for TaskError {
    fn from(message: String) -> Self {
        Self::fatal(message)
    }
}

impl From<TaskError> for String {
    fn from(e: TaskError) -> Self {
        e.message
    }
}

/// Codes of conditions that pass: the broker or coordinator is away or moving, a request
/// timed out, the group is rebalancing (the task's partitions may have moved: it rejoins),
/// the broker lost the producer's sequence state (a restarted broker: each attempt has a
/// new producer, so the next one starts afresh).
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        BrokerTransportFailure
            | AllBrokersDown
            | Resolve
            | MessageTimedOut
            | RequestTimedOut
            | OperationTimedOut
            | TimedOutQueue
            | QueueFull
            | NetworkException
            | NotLeaderForPartition
            | LeaderNotAvailable
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | CoordinatorNotAvailable
            | NotCoordinator
            | CoordinatorLoadInProgress
            | RebalanceInProgress
            | IllegalGeneration
            | UnknownMemberId
            | FencedInstanceId
            | KafkaStorageError
            | UnknownLeaderEpoch
            | FencedLeaderEpoch
            | OffsetNotAvailable
            | PreferredLeaderNotAvailable
            | ConcurrentTransactions
            | ProducerFenced
            | Fenced
            | InvalidProducerEpoch
            | OutOfOrderSequenceNumber
            | UnknownProducerId
            | State
            | WaitingForCoordinator
            | AssignmentLost
            | NoOffset
    )
}

/// A query's state as SHOW QUERIES, DESCRIBE EXTENDED, EXPLAIN and `/status` show it.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryStatus {
    Running,
    Error(QueryFailure),
    Stopped,
    /// Stopped by PAUSE, to go on when RESUME comes.
    Paused,
}

/// A failure of a query: what happened and when (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFailure {
    pub message: String,
    pub timestamp: i64,
}

/// How many past failures a query keeps for DESCRIBE EXTENDED and EXPLAIN.
const KEPT_FAILURES: usize = 10;

/// What the supervisor and the query's tasks share: the status, the failures, and counts
/// that tell whether the query is making progress.
#[derive(Default)]
pub struct QueryHealth {
    state: Mutex<HealthState>,
    /// Input records whose offsets were committed.
    committed: AtomicU64,
    /// Attempts made again after a retriable failure.
    retries: AtomicU64,
    /// Restarts after the query was in ERROR.
    restarts: AtomicU64,
    /// Input records not in the partition Kafka's default partitioner gives their keys.
    misplaced: Arc<AtomicU64>,
}

#[derive(Default)]
struct HealthState {
    status: Option<QueryStatus>,
    failures: VecDeque<QueryFailure>,
    /// The latest restore of each store (changelog, partition): under way or done.
    restores: std::collections::BTreeMap<(String, i32), RestoreProgress>,
}

/// How far a store's restore from its changelog has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreProgress {
    pub restored: u64,
    /// The changelog records after the store's own (about: transaction markers count).
    pub to_restore: u64,
    pub done: bool,
}

impl QueryHealth {
    pub fn status(&self) -> QueryStatus {
        self.lock().status.clone().unwrap_or(QueryStatus::Running)
    }

    /// The latest failures, oldest first.
    pub fn failures(&self) -> Vec<QueryFailure> {
        self.lock().failures.iter().cloned().collect()
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Records how far the restore of `changelog` `partition` has come.
    pub fn restoring(&self, changelog: &str, partition: i32, progress: RestoreProgress) {
        self.lock()
            .restores
            .insert((changelog.to_string(), partition), progress);
    }

    /// The latest restore of each store, by changelog and partition.
    pub fn restores(&self) -> Vec<(String, i32, RestoreProgress)> {
        self.lock()
            .restores
            .iter()
            .map(|((c, p), r)| (c.clone(), *p, *r))
            .collect()
    }

    /// Input records not where Kafka's default partitioner puts their keys.
    pub fn misplaced(&self) -> u64 {
        self.misplaced.load(Ordering::Relaxed)
    }

    /// What the co-partitioning check counts into.
    pub fn misplaced_counter(&self) -> Arc<AtomicU64> {
        self.misplaced.clone()
    }

    /// Counts input records whose offsets were committed.
    pub fn add_committed(&self, records: u64) {
        self.committed.fetch_add(records, Ordering::Relaxed);
    }

    pub fn set_paused(&self) {
        self.set(QueryStatus::Paused);
    }

    fn set(&self, status: QueryStatus) {
        self.lock().status = Some(status);
    }

    fn fail(&self, message: String) -> QueryFailure {
        let failure = QueryFailure {
            message,
            timestamp: now_millis(),
        };
        let mut state = self.lock();
        if state.failures.len() == KEPT_FAILURES {
            state.failures.pop_front();
        }
        state.failures.push_back(failure.clone());
        failure
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// When the supervisor tries again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The first delay before a query in ERROR restarts (`ksql.query.retry.backoff.initial.ms`).
    pub restart_initial: Duration,
    /// The longest such delay (`ksql.query.retry.backoff.max.ms`).
    pub restart_max: Duration,
    /// How long retriable failures may go on without progress before the query is in
    /// ERROR (Kafka Streams' `task.timeout.ms`).
    pub task_timeout: Duration,
    /// The first delay before a retriable failure is tried again (`retry.backoff.ms`).
    pub retry_initial: Duration,
}

impl RetryPolicy {
    /// The policy the query's properties ask for, with ksqlDB's and Kafka Streams'
    /// defaults.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Self {
        let millis = |name: &str, default: u64| {
            let value = properties
                .get(name)
                .or_else(|| properties.get(&format!("ksql.streams.{name}")))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default);
            Duration::from_millis(value)
        };
        Self {
            restart_initial: millis("ksql.query.retry.backoff.initial.ms", 15_000),
            restart_max: millis("ksql.query.retry.backoff.max.ms", 900_000),
            task_timeout: millis("task.timeout.ms", 300_000),
            retry_initial: millis("retry.backoff.ms", 100),
        }
    }
}

/// Longest wait between two tries of a retriable failure.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs `attempt` until it ends cleanly or `stop` is set: each attempt runs as a task of
/// its own, so that a panic is caught and reported like any other failure.
pub async fn supervise<F, Fut>(
    id: String,
    policy: RetryPolicy,
    health: Arc<QueryHealth>,
    mut stop: watch::Receiver<bool>,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
{
    let mut restart_delay = policy.restart_initial;
    let mut retry_delay = policy.retry_initial;
    // When the current run of retriable failures began, and what had been committed then.
    let mut streak: Option<(Instant, u64)> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        health.set(QueryStatus::Running);
        let started = Instant::now();
        let outcome = match tokio::spawn(attempt()).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => Err(TaskError::fatal(format!(
                "a task panicked: {}",
                panic_message(e.into_panic())
            ))),
            Err(e) => Err(TaskError::fatal(format!("a task was cancelled: {e}"))),
        };
        let error = match outcome {
            Ok(()) => break,
            Err(e) => e,
        };
        if *stop.borrow() {
            break;
        }
        let committed = health.committed();
        if streak.is_some_and(|(_, before)| committed > before) {
            // It made progress since the streak began: this is a new streak.
            streak = None;
            retry_delay = policy.retry_initial;
        }
        let (since, _) = *streak.get_or_insert((Instant::now(), committed));
        let delay = if error.retriable && since.elapsed() < policy.task_timeout {
            health.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "query {id}: {error}; trying again in {} ms",
                retry_delay.as_millis()
            );
            let delay = retry_delay;
            retry_delay = (retry_delay * 2).min(RETRY_MAX);
            delay
        } else {
            let failure = health.fail(error.message.clone());
            tracing::error!(
                "query {id} is in ERROR: {error}; restarting in {} s",
                restart_delay.as_secs()
            );
            health.set(QueryStatus::Error(failure));
            // A query that ran for a while before failing starts its backoff again.
            if started.elapsed() > restart_delay * 2 {
                restart_delay = policy.restart_initial;
            }
            let delay = restart_delay;
            restart_delay = (restart_delay * 2).min(policy.restart_max);
            streak = None;
            retry_delay = policy.retry_initial;
            health.restarts.fetch_add(1, Ordering::Relaxed);
            delay
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    health.set(QueryStatus::Stopped);
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            restart_initial: Duration::from_millis(20),
            restart_max: Duration::from_millis(40),
            task_timeout: Duration::from_millis(200),
            retry_initial: Duration::from_millis(1),
        }
    }

    async fn wait_until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition not reached");
    }

    /// A panicking task puts the query in ERROR with the panic's message and is restarted.
    #[tokio::test]
    async fn a_panic_is_an_error_and_the_query_restarts() {
        let health = Arc::new(QueryHealth::default());
        let (stop, stop_rx) = watch::channel(false);
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let task_stop = stop_rx.clone();
        let supervisor = tokio::spawn(supervise(
            "q".into(),
            quick(),
            health.clone(),
            stop_rx,
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                let mut stop = task_stop.clone();
                async move {
                    if n < 2 {
                        panic!("bad input {n}");
                    }
                    // A task runs until it is asked to stop.
                    let _ = stop.wait_for(|s| *s).await;
                    Ok(())
                }
            },
        ));
        wait_until(|| attempts.load(Ordering::SeqCst) >= 3).await;
        let failures = health.failures();
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].message, "a task panicked: bad input 0");
        assert!(failures[0].timestamp > 0);
        assert_eq!(health.restarts(), 2);
        wait_until(|| health.status() == QueryStatus::Running).await;
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(health.status(), QueryStatus::Stopped);
    }

    /// Retriable failures are retried without ERROR while progress is made, and become
    /// an ERROR once they last past the task timeout.
    #[tokio::test]
    async fn retriable_failures_retry_until_the_task_timeout() {
        let health = Arc::new(QueryHealth::default());
        let (stop, stop_rx) = watch::channel(false);
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let progress = health.clone();
        let supervisor = tokio::spawn(supervise(
            "q".into(),
            quick(),
            health.clone(),
            stop_rx,
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                let progress = progress.clone();
                async move {
                    // The first ten attempts make progress before failing.
                    if n < 10 {
                        progress.add_committed(1);
                    }
                    Err(TaskError::retriable("broker away"))
                }
            },
        ));
        wait_until(|| matches!(health.status(), QueryStatus::Error(_))).await;
        assert!(attempts.load(Ordering::SeqCst) > 10);
        assert!(health.retries() >= 10);
        assert_eq!(health.failures()[0].message, "broker away");
        stop.send(true).unwrap();
        supervisor.await.unwrap();
    }

    #[test]
    fn kafka_errors_are_classified_by_code() {
        let away = KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(TaskError::kafka("producing", &away).retriable);
        let gone = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition);
        let e = TaskError::kafka("producing to t", &gone);
        assert!(!e.retriable);
        assert!(e.message.starts_with("producing to t: "), "{}", e.message);
    }
}
