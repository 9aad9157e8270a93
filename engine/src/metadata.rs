//! What `SHOW FUNCTIONS` and `DESCRIBE FUNCTION` tell of the function library.

use brook_planner::functions::{aggregates, names};

/// Table functions: one input row gives several output rows.
const TABLE_FUNCTIONS: &[&str] = &["EXPLODE"];

/// Every function with its kind (SCALAR, AGGREGATE or TABLE), by name.
pub fn functions() -> Vec<(String, &'static str)> {
    let mut all: Vec<(String, &'static str)> = names()
        .into_iter()
        .map(|n| (n.to_string(), "SCALAR"))
        .chain(
            aggregates::NAMES
                .iter()
                .map(|n| (n.to_string(), "AGGREGATE")),
        )
        .chain(TABLE_FUNCTIONS.iter().map(|n| (n.to_string(), "TABLE")))
        .collect();
    all.sort();
    all.dedup_by(|a, b| a.0 == b.0);
    all
}

/// The kind of the function named `name`, if there is one.
pub fn function_kind(name: &str) -> Option<&'static str> {
    let upper = name.to_uppercase();
    functions()
        .into_iter()
        .find(|(n, _)| *n == upper)
        .map(|(_, kind)| kind)
}
