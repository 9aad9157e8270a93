//! Running Brook statements: sessions, formats, operators over Arrow batches, the runtime
//! that runs persistent queries on Kafka (or the in-process driver), serving of push and
//! pull queries, and the processing log.

pub mod aggregation;
pub mod arrays;
pub mod asserts;
pub mod batch;
pub mod connect;
pub mod dataflow;
mod error;
pub mod eval;
pub mod formats;
#[cfg(test)]
mod fuzz;
pub mod internal_format;
pub mod join;
pub mod kafka;
mod lambdas;
pub mod metadata;
pub mod metrics;
pub mod partitioner;
pub mod pipeline;
pub mod processing_log;
pub mod runtime;
pub mod schema_registry;
pub mod serving;
pub mod session;
pub mod settings;
pub mod sink;

pub use error::EngineError;
pub use session::{
    Engine, EngineConfig, HostQuery, HostStatus, Listing, QueryDescription, QuerySummary, Session,
    SourceDescription, SourceSummary, StatementResult,
};
