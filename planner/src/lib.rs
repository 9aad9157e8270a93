//! The metastore (streams, tables, their columns and formats), typing of expressions against
//! a source's row, and the plans that the engine runs. No I/O happens here.

pub mod aggregate;
pub mod catalog;
mod coercion;
mod error;
pub mod explain;
pub mod formats;
pub mod functions;
pub mod join;
pub mod plan;
pub mod types;
pub mod typing;
pub mod value;

pub use error::PlanError;
