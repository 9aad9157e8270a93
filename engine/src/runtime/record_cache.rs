//! The record cache of stateful queries: between two commits, only the latest update of
//! each output key is written, as Kafka Streams' cache does (`cache.max.bytes.buffering`).
//! Hot keys then cost one output record per commit instead of one per input record.

use super::records::OutputRecord;
use std::collections::{HashMap, VecDeque};

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

/// Keeps the last record of each key, as Kafka Streams' cache does between two commits.
/// `max_bytes` bounds what the cache holds: when an update takes it past that, the least
/// recently updated entries are evicted (written at once, in that order) until it fits;
/// at the commit the rest is written, least recently updated first. A key's records thus
/// come out in their order and its last one is always written. Records without a key
/// pass through at once.
pub fn coalesce(records: Vec<OutputRecord>, max_bytes: u64) -> Vec<OutputRecord> {
    if max_bytes == 0 {
        return records;
    }
    let size = |r: &OutputRecord| {
        (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64
    };
    let mut slots: Vec<Option<OutputRecord>> = records.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    // The cached entry of each key: the index of its latest record.
    let mut cached: HashMap<Vec<u8>, usize> = HashMap::new();
    // Keys by last update, oldest first; an index that is no longer its key's latest is
    // a stale place and is skipped.
    let mut order: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
    let mut bytes = 0u64;
    for i in 0..slots.len() {
        let Some(key) = slots[i].as_ref().and_then(|r| r.key.clone()) else {
            out.extend(slots[i].take());
            continue;
        };
        if let Some(previous) = cached.insert(key.clone(), i) {
            bytes -= slots[previous].take().as_ref().map_or(0, size);
        }
        bytes += slots[i].as_ref().map_or(0, size);
        order.push_back((i, key));
        while bytes > max_bytes {
            let Some((j, key)) = order.pop_front() else {
                break;
            };
            if cached.get(&key) == Some(&j) {
                cached.remove(&key);
                if let Some(r) = slots[j].take() {
                    bytes -= size(&r);
                    out.push(r);
                }
            }
        }
    }
    for (j, key) in order {
        if cached.get(&key) == Some(&j) {
            out.extend(slots[j].take());
        }
    }
    out
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

    /// Past its byte limit the cache evicts old entries; the newest update of every key
    /// is still written, after that key's older ones.
    #[test]
    fn a_full_cache_never_drops_the_newest_update() {
        let mut input = Vec::new();
        for round in 0..50 {
            for key in 0..20 {
                input.push(record(&format!("k{key}"), &format!("{round}")));
            }
        }
        let last_of = |records: &[OutputRecord]| {
            let mut last = std::collections::BTreeMap::new();
            for r in records {
                last.insert(r.key.clone(), r.value.clone());
            }
            last
        };
        let expected = last_of(&input);
        // Each entry is 3 or 4 bytes: 20 bytes hold about five keys.
        for max in [1, 20, 60, 1_000_000] {
            let out = coalesce(input.clone(), max);
            assert_eq!(last_of(&out), expected, "cache of {max} bytes");
            // Per key, values come out in increasing rounds.
            let mut seen: std::collections::BTreeMap<Vec<u8>, i32> = Default::default();
            for r in &out {
                let round: i32 = String::from_utf8_lossy(r.value.as_deref().unwrap())
                    .parse()
                    .unwrap();
                let key = r.key.clone().unwrap();
                assert!(seen.get(&key).is_none_or(|p| *p < round), "out of order");
                seen.insert(key, round);
            }
        }
        assert_eq!(coalesce(input.clone(), 1_000_000).len(), 20);
    }
}
