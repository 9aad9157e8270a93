//! What a sink task counts for its status (Kafka Connect's REST API, DESCRIBE CONNECTOR).

use std::sync::atomic::AtomicU64;

#[derive(Default)]
pub struct TaskCounters {
    /// Records the endpoint acknowledged.
    pub records_sent: AtomicU64,
    /// Requests sent and not answered yet.
    pub in_flight: AtomicU64,
    /// Requests sent again after a retriable failure.
    pub retries: AtomicU64,
    /// Records written to the dead-letter topic.
    pub dead_letters: AtomicU64,
}
