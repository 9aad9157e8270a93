//! Running queries on Kafka: persistent queries (consumer group, sink topic, committed
//! offsets) and push queries (rows handed to a client).

mod lookup;
mod merge;
mod persistent;
mod print;
mod pull;
mod push;
mod rebalance;
mod record_cache;
mod records;
mod task_state;
mod view;

pub(crate) use lookup::combinations;
pub use lookup::{key_lookup, Lookup};
pub use persistent::{
    join_repartition_topic, repartition_topic, source_changelog, state_changelog, PersistentQuery,
    QueryStatus,
};
pub use print::print_topic;
pub use pull::{run_pull, table_rows};
pub use push::{start_push_query, PushCloser, PushQuery};
pub use records::{produce_all, read_to_end, OutputRecord};
pub use task_state::TaskStates;
pub use view::TableViews;
