//! The order in which a task reads several topics: by record time, as Kafka Streams does.
//! A join's task holds the fetched records of each of its input partitions and takes the
//! earliest head among them; while an input partition has nothing fetched but more to
//! read, the task waits for it rather than run ahead of it. That makes a table loaded
//! before a stream's records (by time) join them, whatever order fetches return in.

use crate::pipeline::InputRecord;
use std::collections::{BTreeMap, VecDeque};

pub struct Merger {
    /// The input topics, in FROM order: among equal times, the earlier topic goes first.
    topics: Vec<String>,
    buffers: BTreeMap<(String, i32), VecDeque<InputRecord>>,
}

impl Merger {
    pub fn new(topics: Vec<String>) -> Self {
        let mut unique = Vec::new();
        for t in topics {
            if !unique.contains(&t) {
                unique.push(t);
            }
        }
        Self {
            topics: unique,
            buffers: BTreeMap::new(),
        }
    }

    /// Whether records of `topic` are put in time order here (others, such as an
    /// aggregation's repartition topic behind a join, go on as they come).
    pub fn merges(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }

    pub fn push(&mut self, records: Vec<InputRecord>) {
        for r in records {
            self.buffers
                .entry((r.topic.clone(), r.partition))
                .or_default()
                .push_back(r);
        }
    }

    /// Drops what was fetched from a partition this process no longer owns.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.buffers.remove(&(topic.to_string(), partition));
    }

    /// Whether records are held back.
    pub fn holding(&self) -> bool {
        self.buffers.values().any(|b| !b.is_empty())
    }

    /// The records each task can process now, in time order. An input partition with no
    /// fetched records holds its task back unless `caught_up(topic, partition)` says it has
    /// nothing more to read.
    pub fn ready(&mut self, mut caught_up: impl FnMut(&str, i32) -> bool) -> Vec<InputRecord> {
        let partitions: Vec<i32> = {
            let mut p: Vec<i32> = self.buffers.keys().map(|(_, p)| *p).collect();
            p.dedup();
            p.sort_unstable();
            p.dedup();
            p
        };
        let mut out = Vec::new();
        for p in partitions {
            let mut known_done: BTreeMap<usize, bool> = BTreeMap::new();
            loop {
                let mut best: Option<(i64, usize)> = None;
                let mut blocked = false;
                for (i, t) in self.topics.iter().enumerate() {
                    match self.buffers.get(&(t.clone(), p)).and_then(|b| b.front()) {
                        Some(head) => {
                            if best.is_none_or(|(ts, _)| head.timestamp < ts) {
                                best = Some((head.timestamp, i));
                            }
                        }
                        None => {
                            let done = *known_done.entry(i).or_insert_with(|| caught_up(t, p));
                            if !done {
                                blocked = true;
                            }
                        }
                    }
                }
                match best {
                    Some((_, i)) if !blocked => {
                        let key = (self.topics[i].clone(), p);
                        if let Some(r) = self.buffers.get_mut(&key).and_then(|b| b.pop_front()) {
                            out.push(r);
                        }
                    }
                    _ => break,
                }
            }
        }
        self.buffers.retain(|_, b| !b.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, offset: i64, timestamp: i64) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: topic.into(),
            partition: 0,
            offset,
            timestamp,
            key: None,
            value: None,
        }
    }

    #[test]
    fn takes_the_earliest_head_and_waits_for_partitions_still_to_read() {
        let mut m = Merger::new(vec!["trades".into(), "users".into()]);
        m.push(vec![record("trades", 0, 10), record("trades", 1, 30)]);
        // Users not fetched yet and not caught up: nothing runs ahead of them.
        assert!(m.ready(|_, _| false).is_empty());
        m.push(vec![record("users", 0, 5), record("users", 1, 20)]);
        let order: Vec<(String, i64)> = m
            .ready(|_, _| false)
            .into_iter()
            .map(|r| (r.topic, r.timestamp))
            .collect();
        // Trades at 30 waits: users may still have records before it.
        assert_eq!(
            order,
            vec![
                ("users".into(), 5),
                ("trades".into(), 10),
                ("users".into(), 20)
            ]
        );
        assert!(m.holding());
        // Once users has nothing more to read, trades go on.
        let rest = m.ready(|t, _| t == "users");
        assert_eq!(rest.len(), 1);
        assert!(!m.holding());
    }
}
