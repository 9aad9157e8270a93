//! Running persistent queries: the Kafka backend (a consumer group per query, tasks with
//! their stores and changelogs, the commit protocol, rebalances, the supervisor that
//! restarts or fails queries) and the in-process driver that runs the same operators
//! synchronously for the conformance tests. The runtime never sees SQL.

pub(crate) mod backend;
mod commit;
pub mod driver;
mod in_flight;
pub mod lag;
mod merge;
mod persistent;
mod placement;
mod purge;
mod rebalance;
mod record_cache;
mod records;
mod standby;
mod supervisor;
mod task_state;
mod workers;

pub use commit::{process_id, Guarantee};
pub use persistent::{
    join_repartition_topic, repartition_topic, source_changelog, state_changelog, PersistentQuery,
    QuerySpec,
};
pub use rebalance::RebalanceContext;
pub use records::{future_record, produce_all, read_to_end, OutputRecord};
pub(crate) use records::{next_batch, partitions_of};
pub use standby::{standby_replicas, Standbys};
pub use supervisor::{
    supervise, QueryFailure, QueryHealth, QueryStatus, RestoreProgress, RetryPolicy, TaskError,
};
pub use task_state::TaskStates;

/// How repartition topics are created: records are kept until the query that reads them
/// has committed past them and purges them, so old event times are not the broker's to
/// delete first (Kafka Streams creates them so).
pub const REPARTITION_CONFIG: &[(&str, &str)] =
    &[("cleanup.policy", "delete"), ("retention.ms", "-1")];
