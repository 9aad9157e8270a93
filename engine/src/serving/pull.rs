//! A pull query: the rows a source holds now, filtered and projected once. A table holds
//! the latest record of each key (a record without a value deletes its key); a stream
//! holds every record.

use crate::dataflow::Operators;
use crate::pipeline::InputRecord;
use brook_planner::value::Value;
use std::collections::BTreeMap;

/// What a table's records amount to: its latest record per key (windowed keys carry their
/// window), in partition and key order, without deleted keys.
pub fn table_rows(records: Vec<InputRecord>) -> Vec<InputRecord> {
    let mut latest: BTreeMap<(i32, Option<Vec<u8>>), InputRecord> = BTreeMap::new();
    for record in records {
        let key = (record.partition, record.key.clone());
        if record.value.is_some() {
            latest.insert(key, record);
        } else {
            latest.remove(&key);
        }
    }
    latest.into_values().collect()
}

/// Runs a stateless query over `records`: the rows it selects, up to its limit.
pub fn run_pull(operators: &Operators, records: &[InputRecord]) -> Result<Vec<Vec<Value>>, String> {
    let mut store = brook_state::Store::memory();
    let mut errors = Vec::new();
    let limit = operators.limit().map(|l| l as usize).unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    for chunk in records.chunks(1000) {
        let output = operators.process(chunk, &mut store, &mut errors)?;
        for row in 0..output.len {
            if rows.len() >= limit {
                return Ok(rows);
            }
            if !output.tombstone.get(row).copied().unwrap_or(false) {
                rows.push(output.row(operators.projection(), row));
            }
        }
    }
    Ok(rows)
}
