//! The record cache of stateful queries: between two commits, only the latest update of
//! each output key is written, as Kafka Streams' cache does (`cache.max.bytes.buffering`).
//! Hot keys then cost one output record per commit instead of one per input record.

use super::OutputRecord;
use std::collections::HashMap;

/// Where the cache size is read from, with or without ksqlDB's `ksql.streams.` prefix.
const PROPERTY: &str = "cache.max.bytes.buffering";
/// Kafka Streams' default size: caching is on unless set to 0.
const DEFAULT_BYTES: u64 = 10 * 1024 * 1024;

/// The cache size the query's properties ask for.
pub fn cache_bytes(properties: &std::collections::BTreeMap<String, String>) -> u64 {
    properties
        .get(PROPERTY)
        .or_else(|| properties.get(&format!("ksql.streams.{PROPERTY}")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_BYTES)
}

/// Keeps the last record of each key, in the order of those last records. Records without
/// a key are all kept. `max_bytes` bounds how much is coalesced: past it, the rest of the
/// records are kept as they are.
pub fn coalesce(records: Vec<OutputRecord>, max_bytes: u64) -> Vec<OutputRecord> {
    if max_bytes == 0 {
        return records;
    }
    let mut last: HashMap<&[u8], usize> = HashMap::new();
    let mut bytes = 0u64;
    for (i, r) in records.iter().enumerate() {
        if let Some(k) = &r.key {
            bytes += (k.len() + r.value.as_ref().map_or(0, Vec::len)) as u64;
            if bytes > max_bytes {
                break;
            }
            last.insert(k.as_slice(), i);
        }
    }
    let keep: Vec<bool> = records
        .iter()
        .enumerate()
        .map(|(i, r)| match &r.key {
            Some(k) => last.get(k.as_slice()).is_none_or(|j| *j == i),
            None => true,
        })
        .collect();
    records
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &str) -> OutputRecord {
        OutputRecord {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            timestamp: 0,
            headers: vec![],
        }
    }

    #[test]
    fn keeps_the_last_update_of_each_key() {
        let out = coalesce(
            vec![record("a", "1"), record("b", "1"), record("a", "2")],
            DEFAULT_BYTES,
        );
        let values: Vec<(String, String)> = out
            .iter()
            .map(|r| {
                (
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into(),
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into(),
                )
            })
            .collect();
        assert_eq!(
            values,
            vec![("b".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert_eq!(
            coalesce(vec![record("a", "1"), record("a", "2")], 0).len(),
            2
        );
    }
}
