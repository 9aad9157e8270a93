//! The conformance runner: loads ksqlDB's query-validation test files, expands each case
//! over its formats and configs, runs it through a session on the in-process driver and
//! checks outputs, expected errors and post-conditions. REST cases run through the
//! REST API of a server on the same driver; with a broker, cases run on the Kafka runtime.

mod case;
mod compare;
mod kafka;
mod lenient_json;
pub mod ratchet;
mod records;
mod report;
mod rest;
mod run;

pub use case::{load_cases, load_path, Case};
pub use report::{CaseResult, Report, Status};
pub use run::{run_case, run_cases, Options};
