//! Running Brook statements: sessions, formats, operators over Arrow batches, persistent
//! and push queries on Kafka, and the processing log.

pub mod aggregation;
pub mod arrays;
pub mod asserts;
mod backend;
pub mod dataflow;
pub mod driver;
mod error;
pub mod eval;
pub mod formats;
pub mod join;
pub mod kafka;
mod lambdas;
pub mod metadata;
mod partitioner;
pub mod pipeline;
pub mod processing_log;
pub mod query;
pub mod schema_registry;
pub mod session;
pub mod sink;

pub use error::EngineError;
pub use session::{
    Engine, EngineConfig, Listing, QuerySummary, Session, SourceDescription, SourceSummary,
    StatementResult,
};
