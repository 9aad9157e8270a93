//! State stores of stateful operators: ordered key-value stores in RocksDB (or in memory,
//! for the deterministic driver), with the writes since the last flush kept aside so that
//! they can be produced to the store's changelog topic before input offsets are committed.
//! Keys are bytes whose order callers choose; windowed stores append the window bounds.

mod store;
mod windows;

pub use store::{StateError, Store};
pub use windows::{window_key, window_range, WindowKey};
