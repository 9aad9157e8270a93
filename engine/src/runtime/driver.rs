//! The in-process deterministic driver: topics in memory, and every persistent query run
//! synchronously as records arrive, in order, with nothing cached. It plays the role Kafka
//! Streams' TopologyTestDriver plays for ksqlDB, for the conformance runner and unit tests.

use crate::dataflow::Operators;
use crate::partitioner::partition_for;
use crate::pipeline::{InputRecord, RecordError};
use crate::processing_log::entry;
use crate::runtime::OutputRecord;
use crate::sink::SinkWriter;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A record stored in a driver topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    pub headers: crate::pipeline::Headers,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub partition: i32,
    pub offset: i64,
}

impl TopicRecord {
    pub fn into_input(self, topic: &str) -> InputRecord {
        InputRecord {
            headers: self.headers,
            topic: topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key,
            value: self.value,
        }
    }
}

struct Topic {
    partitions: i32,
    records: Vec<TopicRecord>,
    /// When each record was written, counted over all topics: queries over several
    /// topics read them in that order.
    sequence: Vec<u64>,
    next_offset: Vec<i64>,
}

struct DriverQuery {
    id: String,
    /// The topics it reads.
    source_topics: Vec<String>,
    operators: Operators,
    sink: SinkWriter,
    /// One task holds all the query's state: the driver runs a single task per query.
    store: brook_state::Store,
}

/// A push query: its rows go to a client until it has `limit` rows or goes away.
struct DriverPush {
    id: String,
    source_topics: Vec<String>,
    operators: Operators,
    store: brook_state::Store,
    rows: PushRows,
    limit: Option<u64>,
    sent: u64,
}

/// Where a push query's rows go.
pub type PushRows = tokio::sync::mpsc::Sender<crate::serving::Row>;

pub struct Driver {
    state: Mutex<State>,
    /// How many consecutive records of a topic go through a query at once.
    batch_size: usize,
    log_topic: String,
}

#[derive(Default)]
struct State {
    topics: BTreeMap<String, Topic>,
    queries: Vec<DriverQuery>,
    pushes: Vec<DriverPush>,
    written: u64,
}

impl Driver {
    pub fn new(service_id: &str, batch_size: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            batch_size: batch_size.max(1),
            log_topic: format!("{service_id}ksql_processing_log"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn partitions(&self, topic: &str) -> Option<i32> {
        self.lock().topics.get(topic).map(|t| t.partitions)
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.lock()
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| Topic {
                partitions: partitions.max(1),
                records: Vec::new(),
                sequence: Vec::new(),
                next_offset: vec![0; partitions.max(1) as usize],
            });
    }

    pub fn delete_topic(&self, topic: &str) {
        self.lock().topics.remove(topic);
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.lock().topics.keys().cloned().collect()
    }

    /// The records of `topic` in the order they were written.
    pub fn records(&self, topic: &str) -> Vec<TopicRecord> {
        self.lock()
            .topics
            .get(topic)
            .map(|t| t.records.clone())
            .unwrap_or_default()
    }

    /// What `topics` hold (when read `from_beginning`), each record with its topic, in the
    /// order it was written.
    fn existing(
        state: &State,
        topics: &[String],
        from_beginning: bool,
    ) -> Vec<(String, TopicRecord)> {
        let mut existing: Vec<(u64, String, TopicRecord)> = Vec::new();
        if !from_beginning {
            return Vec::new();
        }
        for topic in topics {
            if let Some(t) = state.topics.get(topic) {
                if existing.iter().any(|(_, name, _)| name == topic) {
                    continue;
                }
                for (r, seq) in t.records.iter().zip(&t.sequence) {
                    existing.push((*seq, topic.clone(), r.clone()));
                }
            }
        }
        existing.sort_by_key(|(seq, _, _)| *seq);
        existing.into_iter().map(|(_, t, r)| (t, r)).collect()
    }

    /// Runs of consecutive records of one topic, at most `batch_size` long.
    fn runs(&self, records: Vec<(String, TopicRecord)>) -> Vec<(String, Vec<TopicRecord>)> {
        let mut runs: Vec<(String, Vec<TopicRecord>)> = Vec::new();
        for (topic, record) in records {
            match runs.last_mut() {
                Some((t, run)) if *t == topic && run.len() < self.batch_size => run.push(record),
                _ => runs.push((topic, vec![record])),
            }
        }
        runs
    }

    /// Starts a query; with `from_beginning` it first processes what its topic holds.
    pub fn add_query(
        &self,
        id: String,
        operators: Operators,
        sink: SinkWriter,
        from_beginning: bool,
    ) {
        let mut state = self.lock();
        let source_topics = operators.topics();
        let existing = Self::existing(&state, &source_topics, from_beginning);
        state.queries.push(DriverQuery {
            id,
            source_topics,
            operators,
            sink,
            store: brook_state::Store::memory(),
        });
        let index = state.queries.len() - 1;
        for (topic, run) in self.runs(existing) {
            let produced = self.run_query(&mut state, index, &topic, &run);
            self.deliver(&mut state, produced);
        }
    }

    /// Starts a push query; with `from_beginning` it first processes what its topics hold.
    pub fn add_push(&self, id: String, operators: Operators, rows: PushRows, from_beginning: bool) {
        let mut state = self.lock();
        let source_topics = operators.topics();
        let existing = Self::existing(&state, &source_topics, from_beginning);
        let limit = operators.limit();
        let mut push = DriverPush {
            id,
            source_topics,
            operators,
            store: brook_state::Store::memory(),
            rows,
            limit,
            sent: 0,
        };
        for (topic, run) in self.runs(existing) {
            if !Self::run_push(&mut push, &topic, &run) {
                return;
            }
        }
        state.pushes.push(push);
    }

    /// Ends a push query: its rows channel closes.
    pub fn remove_push(&self, id: &str) {
        self.lock().pushes.retain(|p| p.id != id);
    }

    /// Runs a push query over records; false once it has ended (its limit reached, its
    /// client gone, or failed).
    fn run_push(push: &mut DriverPush, topic: &str, records: &[TopicRecord]) -> bool {
        let inputs: Vec<InputRecord> = records
            .iter()
            .map(|r| r.clone().into_input(topic))
            .collect();
        let mut errors = Vec::new();
        let output = match push
            .operators
            .process(&inputs, &mut push.store, &mut errors)
        {
            Ok(output) => output,
            Err(e) => {
                let _ = push.rows.try_send(Err(e));
                return false;
            }
        };
        for row in 0..output.len {
            if push.limit.is_some_and(|l| push.sent >= l) {
                return false;
            }
            let Some(shown) = push.operators.push_row(&output, row) else {
                continue;
            };
            if push.rows.try_send(Ok(shown)).is_err() {
                return false;
            }
            push.sent += 1;
        }
        push.limit.is_none_or(|l| push.sent < l) && !push.rows.is_closed()
    }

    /// Stops running a query.
    pub fn remove_query(&self, id: &str) {
        self.lock().queries.retain(|q| q.id != id);
    }

    /// Writes records to `topic` and runs every query that reads it, and so on downstream.
    pub fn produce(&self, topic: &str, records: &[OutputRecord]) {
        let mut state = self.lock();
        for chunk in records.chunks(self.batch_size) {
            self.append(&mut state, topic, chunk);
        }
    }

    fn append(&self, state: &mut State, topic: &str, records: &[OutputRecord]) {
        let Some(t) = state.topics.get_mut(topic) else {
            // Writing creates the topic with one partition, as brokers do by default.
            self.create_topic_locked(state, topic);
            return self.append(state, topic, records);
        };
        let mut stored = Vec::with_capacity(records.len());
        for r in records {
            let partition = match &r.key {
                Some(k) if t.partitions > 1 => partition_for(k, t.partitions),
                _ => 0,
            };
            let offset = t.next_offset[partition as usize];
            t.next_offset[partition as usize] += 1;
            let record = TopicRecord {
                headers: r.headers.clone(),
                key: r.key.clone(),
                value: r.value.clone(),
                timestamp: r.timestamp,
                partition,
                offset,
            };
            t.records.push(record.clone());
            state.written += 1;
            t.sequence.push(state.written);
            stored.push(record);
        }
        let readers: Vec<usize> = (0..state.queries.len())
            .filter(|i| state.queries[*i].source_topics.iter().any(|t| t == topic))
            .collect();
        for index in readers {
            let produced = self.run_query(state, index, topic, &stored);
            self.deliver(state, produced);
        }
        state.pushes.retain_mut(|push| {
            !push.source_topics.iter().any(|t| t == topic) || Self::run_push(push, topic, &stored)
        });
    }

    fn create_topic_locked(&self, state: &mut State, topic: &str) {
        state.topics.insert(
            topic.to_string(),
            Topic {
                partitions: 1,
                records: Vec::new(),
                sequence: Vec::new(),
                next_offset: vec![0],
            },
        );
    }

    /// Runs one query over records of its source; returns what it writes, by topic.
    fn run_query(
        &self,
        state: &mut State,
        index: usize,
        topic: &str,
        records: &[TopicRecord],
    ) -> Vec<(String, Vec<OutputRecord>)> {
        let query = &mut state.queries[index];
        let inputs: Vec<InputRecord> = records
            .iter()
            .map(|r| r.clone().into_input(topic))
            .collect();
        let mut errors: Vec<RecordError> = Vec::new();
        let records = match query
            .operators
            .process(&inputs, &mut query.store, &mut errors)
        {
            Ok(output) => {
                let _ = query.store.flush(None);
                query
                    .sink
                    .encode(query.operators.projection(), &output, &mut errors)
            }
            Err(message) => {
                errors.extend(inputs.iter().map(|r| RecordError::Processing {
                    message: message.clone(),
                    record: Box::new(r.clone()),
                }));
                vec![]
            }
        };
        let mut produced = vec![(query.sink.topic.clone(), records)];
        if !errors.is_empty() {
            let log = errors
                .iter()
                .map(|e| OutputRecord {
                    headers: vec![],
                    key: None,
                    value: Some(entry(&query.id, e, 0).to_string().into_bytes()),
                    timestamp: 0,
                })
                .collect();
            produced.push((self.log_topic.clone(), log));
        }
        produced
    }

    fn deliver(&self, state: &mut State, produced: Vec<(String, Vec<OutputRecord>)>) {
        for (topic, records) in produced {
            if !records.is_empty() {
                self.append(state, &topic, &records);
            }
        }
    }
}
