//! Answering clients: push queries (rows handed to a client as they come), pull queries
//! over the local stores that follow tables' topics, and PRINT of a topic.

mod lookup;
mod print;
mod pull;
mod push;
mod view;

pub(crate) use lookup::combinations;
pub use lookup::{check_like, key_lookup, Access, Lookup};
pub use print::print_topic;
pub use pull::{run_pull, table_rows, KeySelection};
pub use push::{start_push_query, PushCloser, PushQuery, PushRow, Row, RowReceiver};
pub use view::TableViews;
