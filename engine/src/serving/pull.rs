//! A pull query: the rows a source holds now, filtered and projected once. A table holds
//! the latest record of each key (a record without a value deletes its key); a stream
//! holds every record.

use crate::dataflow::Operators;
use crate::pipeline::InputRecord;
use brook_planner::value::Value;
use std::collections::BTreeMap;

/// Which stored keys of a table a pull query reads, as encoded key bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySelection {
    All,
    /// Keys that start with one of these (a windowed key starts with its key).
    Prefixes(Vec<Vec<u8>>),
    /// Keys from `from` up to every key that starts with `to`, both ends included: a
    /// superset of a range, whose WHERE clause decides the ends.
    Between {
        from: Option<Vec<u8>>,
        to: Option<Vec<u8>>,
    },
}

impl KeySelection {
    pub fn holds(&self, key: &[u8]) -> bool {
        match self {
            KeySelection::All => true,
            KeySelection::Prefixes(keys) => keys.iter().any(|wanted| key.starts_with(wanted)),
            KeySelection::Between { from, to } => {
                from.as_deref().is_none_or(|f| key >= f)
                    && to.as_deref().is_none_or(|t| key <= t || key.starts_with(t))
            }
        }
    }
}

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
