//! The join operator of one task: records of each joined source go through their own
//! stateless stage, then through the join steps in record order, each step keeping its
//! sides in the task's store; joined rows go through WHERE and the projection.
//!
//! Semantics are Kafka Streams' as ksqlDB uses them: a stream record joins the table's
//! current row (table updates emit nothing); table-table joins emit the new result of the
//! changed key, or a tombstone when a result goes away; stream-stream joins buffer both
//! sides for their window, emit each match with the later time, and emit unmatched outer
//! records at once (no grace period given) or when their window closes.

use crate::eval::{evaluate, null_as_false};
use crate::formats::FormatContext;
use crate::pipeline::{InputRecord, Output, Pipeline, RecordError};
use arrow::array::{AsArray, BooleanArray};
use brook_planner::join::JoinPlan;
use brook_planner::plan::Projection;
use brook_planner::value::Value;
use brook_sql::ast::{JoinKind, SourceKind};
use brook_state::Store;

/// ksqlDB's grace period when a stream-stream join names none.
const DEFAULT_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

/// Store key kinds, after the step number.
const LEFT: u8 = 0;
const RIGHT: u8 = 1;
/// Unmatched outer records waiting for their window to close, by time.
const PENDING: u8 = 2;
/// Foreign-key join: left keys by their foreign key.
const INDEX: u8 = 3;
/// Stream time and sequence numbers.
const META: u8 = 4;
/// Stream-stream buffers by time, so that what is past the join's retention is found
/// without a scan of every key: side, time, key, sequence.
const BUFFER_TIME: u8 = 5;

/// The rows joined so far (one per source, absent on an outer join's missing side) and
/// their time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Joined {
    rows: Vec<Option<Vec<Value>>>,
    ts: i64,
}

/// What a step passes on: a stream row, or a table key's new result (or its removal).
struct Change {
    /// The result's key: the step's join key (a foreign-key join's results are keyed by
    /// the left table's key, which its rows hold).
    key: Value,
    /// The new result; for a removal, the rows it had.
    joined: Joined,
    deleted: bool,
    /// A table result's previous value, if any.
    old: Option<Joined>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct StepTime {
    stream_time: Option<i64>,
    observed: [Option<i64>; 2],
    sequence: u64,
}

pub struct Join {
    pub plan: JoinPlan,
    inputs: Vec<Pipeline>,
    post: Pipeline,
    /// Topics carrying an input's rows already decoded and keyed by their join key, in
    /// place of its source topic.
    repartitioned: Vec<(String, usize)>,
}

/// A row on its way through a repartition topic (a table's removed row has its key
/// columns only).
#[derive(serde::Serialize, serde::Deserialize)]
struct MovedRow {
    values: Vec<Value>,
    deleted: bool,
}

use crate::internal_format::encode;

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    crate::internal_format::decode(bytes, "join state")
}

/// Times as bytes in numeric order.
fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn store_key(step: usize, kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&(step as u16).to_be_bytes());
    out.push(kind);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// How long a stream-stream join keeps a side's records: as long as a record of the
/// other side, late within the grace period, can still join them.
fn buffer_retention(within: brook_sql::ast::JoinWithin) -> i64 {
    within.before + within.after + within.grace.unwrap_or(DEFAULT_GRACE_MS)
}

/// A length-prefixed key, so that one key's entries are a contiguous range.
fn sized(key: &[u8]) -> Vec<u8> {
    let mut out = (key.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(key);
    out
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// A join key as stored. INT and BIGINT keys join each other, so both are stored as
/// BIGINT.
fn key_bytes(key: &Value) -> Vec<u8> {
    match key {
        Value::Int(i) => encode(&Value::BigInt(i64::from(*i))),
        k => encode(k),
    }
}

fn store_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Join {
    pub fn new(plan: JoinPlan, formats: &FormatContext) -> Self {
        let inputs = plan
            .inputs
            .iter()
            .map(|i| Pipeline::new(i.pre.clone(), formats))
            .collect();
        let post = Pipeline::new(plan.post.clone(), formats);
        Self {
            plan,
            inputs,
            post,
            repartitioned: Vec::new(),
        }
    }

    /// `input`'s rows come through `topic` (written by `repartition_records`) rather than
    /// from its source topic.
    pub fn read_repartitioned(&mut self, topic: String, input: usize) {
        self.repartitioned.push((topic, input));
    }

    /// `input`'s source records as records of its repartition topic: keyed by their join
    /// key (at `slot` of its projection) as `key` encodes it, so that they land in the
    /// partition where the other side's records with that key are.
    pub fn repartition_records(
        &self,
        input: usize,
        slot: usize,
        key: Option<&crate::formats::ColumnsCodec>,
        records: &[InputRecord],
        errors: &mut Vec<RecordError>,
    ) -> Vec<crate::runtime::OutputRecord> {
        let spec = &self.plan.inputs[input];
        let table = spec.pre.source.kind == SourceKind::Table;
        let output = self.inputs[input].process(records, errors);
        let mut out = Vec::with_capacity(output.len);
        for row in 0..output.len {
            let deleted = output.tombstone[row];
            if deleted && !table {
                continue;
            }
            let values = output.row(&spec.pre.projection, row);
            let key_bytes = match key {
                None => None,
                Some(codec) => {
                    let key_value = values.get(slot).cloned().unwrap_or(Value::Null);
                    match codec.encode(std::slice::from_ref(&key_value)) {
                        Ok(k) => k,
                        Err(message) => {
                            if let Some(r) = records.get(row) {
                                errors.push(RecordError::Processing {
                                    message,
                                    record: Box::new(r.clone()),
                                });
                            }
                            continue;
                        }
                    }
                }
            };
            out.push(crate::runtime::OutputRecord {
                headers: vec![],
                key: key_bytes,
                value: Some(encode(&MovedRow { values, deleted })),
                timestamp: output.rowtime[row],
            });
        }
        out
    }

    pub fn projection(&self) -> &[Projection] {
        &self.plan.post.projection
    }

    /// The topics the join's inputs come from, in FROM order: the sources', or their
    /// repartition topics.
    pub fn topics(&self) -> Vec<String> {
        self.plan
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                self.repartitioned
                    .iter()
                    .find(|(_, index)| *index == i)
                    .map(|(t, _)| t.clone())
                    .unwrap_or_else(|| input.pre.source.topic.clone())
            })
            .collect()
    }

    /// Runs records of any of the joined topics, in order.
    pub fn process(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Output, String> {
        let changes = self.changes(records, store, errors)?;
        self.project(changes)
    }

    /// The joined rows records make, before WHERE and the projection: what an
    /// aggregation of the join reads (the joined row's columns, then whether the row is
    /// a deletion).
    pub fn joined_rows(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Vec<Vec<Value>>, String> {
        Ok(self
            .changes(records, store, errors)?
            .iter()
            .map(|c| self.post_row(&c.key, &c.joined, c.deleted))
            .collect())
    }

    /// What records change in the join's results, in order.
    fn changes(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Vec<Change>, String> {
        let mut results: Vec<Change> = Vec::new();
        let mut start = 0;
        while start < records.len() {
            let topic = &records[start].topic;
            let end = records[start..]
                .iter()
                .position(|r| &r.topic != topic)
                .map(|n| start + n)
                .unwrap_or(records.len());
            let run = &records[start..end];
            if let Some((_, index)) = self.repartitioned.iter().find(|(t, _)| t == topic) {
                for r in run {
                    let width = self.plan.inputs[*index].width;
                    match decode::<MovedRow>(r.value.as_deref().unwrap_or_default()) {
                        // A row (not a removal, which has its key columns only) must have
                        // every column the join takes from this input.
                        Ok(moved) if !moved.deleted && moved.values.len() < width => {
                            errors.push(RecordError::Deserialization {
                                target: "value",
                                message: format!(
                                    "a row of this query's repartition topic with {} columns, not {width}",
                                    moved.values.len()
                                ),
                                record: Box::new(r.clone()),
                            })
                        }
                        Ok(moved) => {
                            let mut rows = vec![None; self.plan.inputs.len()];
                            rows[*index] = Some(moved.values);
                            let joined = Joined {
                                rows,
                                ts: r.timestamp,
                            };
                            self.enter(*index, joined, moved.deleted, store, &mut results)?;
                        }
                        Err(e) => errors.push(RecordError::Deserialization {
                            target: "value",
                            message: format!("not a row of this query's repartition topic: {e}"),
                            record: Box::new(r.clone()),
                        }),
                    }
                }
                start = end;
                continue;
            }
            // A topic read twice (two sources on one topic) feeds each of them.
            for (index, input) in self.plan.inputs.iter().enumerate() {
                if input.pre.source.topic != *topic {
                    continue;
                }
                let pipeline = &self.inputs[index];
                let output = pipeline.process(run, errors);
                for row in 0..output.len {
                    let values = output.row(&input.pre.projection, row);
                    let mut rows = vec![None; self.plan.inputs.len()];
                    rows[index] = Some(values);
                    let joined = Joined {
                        rows,
                        ts: output.rowtime[row],
                    };
                    self.enter(index, joined, output.tombstone[row], store, &mut results)?;
                }
            }
            start = end;
        }
        self.purge_buffers(store)?;
        Ok(results)
    }

    /// Deletes the stream-stream buffers' records that no record can join any more: a
    /// side's records at or before its latest time less the join's retention (the ones
    /// `stream_side` no longer looks at).
    fn purge_buffers(&self, store: &mut Store) -> Result<(), String> {
        for (n, step) in self.plan.steps.iter().enumerate() {
            let Some(within) = step.within else {
                continue;
            };
            let time = self.times(store, n)?;
            for side in [LEFT, RIGHT] {
                let Some(observed) = time.observed[usize::from(side)] else {
                    continue;
                };
                let prefix = store_key(n, BUFFER_TIME, &[&[side]]);
                let bound = observed.saturating_sub(buffer_retention(within));
                let end = [prefix.clone(), time_bytes(bound.saturating_add(1)).to_vec()].concat();
                for (k, _) in store.range(&prefix, &end).map_err(store_err)? {
                    // The index key holds the buffer key's parts: time, key, sequence.
                    let rest = &k[prefix.len()..];
                    if rest.len() < 16 {
                        return Err("corrupt join state: a short buffer index key".into());
                    }
                    let (at, held_seq) = rest.split_at(8);
                    let (held, seq) = held_seq.split_at(held_seq.len() - 8);
                    store.delete(&store_key(n, side, &[held, at, seq]));
                    store.delete(&k);
                }
            }
        }
        Ok(())
    }

    /// A source row goes into the step that joins its source.
    fn enter(
        &self,
        index: usize,
        joined: Joined,
        tombstone: bool,
        store: &mut Store,
        results: &mut Vec<Change>,
    ) -> Result<(), String> {
        let input = &self.plan.inputs[index];
        let kind = input.pre.source.kind;
        if kind == SourceKind::Stream && tombstone {
            return Ok(());
        }
        let change = Change {
            key: Value::Null,
            joined,
            deleted: tombstone,
            old: None,
        };
        let mut changes = Vec::new();
        if index == 0 {
            self.step_left(0, change, store, &mut changes)?;
        } else {
            self.step_right(index - 1, change, store, &mut changes)?;
        }
        self.pass_on(index.max(1), changes, store, results)
    }

    /// Changes out of step `from - 1` go into the following steps as their left side.
    fn pass_on(
        &self,
        from: usize,
        changes: Vec<Change>,
        store: &mut Store,
        results: &mut Vec<Change>,
    ) -> Result<(), String> {
        let mut changes = changes;
        for step in from..self.plan.steps.len() {
            let mut next = Vec::new();
            for c in changes {
                self.step_left(step, c, store, &mut next)?;
            }
            changes = next;
        }
        results.extend(changes);
        Ok(())
    }

    /// Step `n`'s join key of a row of its left or right side.
    fn key_of(&self, n: usize, joined: &Joined, left: bool) -> Value {
        let step = &self.plan.steps[n];
        let (input, slot) = if left {
            step.left_key
        } else {
            (n + 1, step.right_key)
        };
        match joined
            .rows
            .get(input)
            .and_then(|r| r.as_ref())
            .and_then(|r| r.get(slot))
        {
            Some(v) => v.clone(),
            None => Value::Null,
        }
    }

    /// Step `n`'s join key as stored: windowed sources join on their windows too (a time
    /// window's start, a session's start and end), as their keys hold them.
    fn stored(&self, n: usize, joined: &Joined, left: bool, key: &Value) -> Vec<u8> {
        let mut bytes = key_bytes(key);
        let input = if left {
            self.plan.steps[n].left_key.0
        } else {
            n + 1
        };
        if let Some((start, end)) = self.window_of(input, joined) {
            bytes.extend_from_slice(&time_bytes(start));
            if self.plan.inputs[input].pre.source.window.map(|w| w.kind)
                == Some(brook_planner::catalog::WindowType::Session)
            {
                bytes.extend_from_slice(&time_bytes(end));
            }
        }
        bytes
    }

    /// The window of a windowed input's row: the last two columns of its row.
    fn window_of(&self, input: usize, joined: &Joined) -> Option<(i64, i64)> {
        let spec = &self.plan.inputs[input];
        spec.pre.source.window?;
        let row = joined.rows.get(input)?.as_ref()?;
        match (row.get(spec.width - 2)?, row.get(spec.width - 1)?) {
            (Value::BigInt(s), Value::BigInt(e)) => Some((*s, *e)),
            _ => None,
        }
    }

    /// A table row's key as stored: its primary key, or for the left table of a
    /// foreign-key join the same.
    fn primary_key(&self, input: usize, joined: &Joined) -> Vec<u8> {
        let keys: Vec<Value> = match joined.rows.get(input).and_then(|r| r.as_ref()) {
            Some(row) => self.plan.inputs[input]
                .primary_key
                .iter()
                .map(|i| row[*i].clone())
                .collect(),
            None => vec![],
        };
        encode(&keys)
    }

    fn step_left(
        &self,
        n: usize,
        change: Change,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let step = &self.plan.steps[n];
        match (step.left_kind, step.right_kind) {
            (SourceKind::Stream, SourceKind::Table) => {
                let key = self.key_of(n, &change.joined, true);
                if key.is_null() {
                    if step.kind == JoinKind::Left {
                        out.push(self.combine(n, key, &change.joined, None, false));
                    }
                    return Ok(());
                }
                let right = self.load(
                    store,
                    &store_key(n, RIGHT, &[&self.stored(n, &change.joined, true, &key)]),
                )?;
                match right {
                    Some(r) => out.push(self.combine(n, key, &change.joined, Some(&r), false)),
                    None if step.kind == JoinKind::Left => {
                        out.push(self.combine(n, key, &change.joined, None, false))
                    }
                    None => {}
                }
                Ok(())
            }
            (SourceKind::Table, SourceKind::Table) if step.foreign_key => {
                self.foreign_left(n, change, store, out)
            }
            (SourceKind::Table, SourceKind::Table) => self.table_side(n, true, change, store, out),
            (SourceKind::Stream, SourceKind::Stream) => {
                self.stream_side(n, true, change.joined, store, out)
            }
            (SourceKind::Table, SourceKind::Stream) => Ok(()),
        }
    }

    fn step_right(
        &self,
        n: usize,
        change: Change,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let step = &self.plan.steps[n];
        match (step.left_kind, step.right_kind) {
            (SourceKind::Stream, SourceKind::Table) => {
                let key = self.key_of(n, &change.joined, false);
                if key.is_null() {
                    return Ok(());
                }
                let k = store_key(n, RIGHT, &[&self.stored(n, &change.joined, false, &key)]);
                if change.deleted {
                    store.delete(&k);
                } else {
                    store.put(&k, &encode(&change.joined));
                }
                Ok(())
            }
            (SourceKind::Table, SourceKind::Table) if step.foreign_key => {
                self.foreign_right(n, change, store, out)
            }
            (SourceKind::Table, SourceKind::Table) => self.table_side(n, false, change, store, out),
            (SourceKind::Stream, SourceKind::Stream) => {
                self.stream_side(n, false, change.joined, store, out)
            }
            (SourceKind::Table, SourceKind::Stream) => Ok(()),
        }
    }

    fn load(&self, store: &Store, key: &[u8]) -> Result<Option<Joined>, String> {
        match store.get(key).map_err(store_err)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The result of joining `left` (rows of the inputs before the step's right one) with
    /// the right input's row, if the join kind has one.
    fn result(&self, n: usize, left: Option<&Joined>, right: Option<&Joined>) -> Option<Joined> {
        let kind = self.plan.steps[n].kind;
        let present = match kind {
            JoinKind::Inner => left.is_some() && right.is_some(),
            JoinKind::Left => left.is_some(),
            JoinKind::Right => right.is_some(),
            JoinKind::Outer => left.is_some() || right.is_some(),
        };
        if !present {
            return None;
        }
        let mut rows = vec![None; self.plan.inputs.len()];
        let mut ts = i64::MIN;
        if let Some(l) = left {
            for (i, r) in l.rows.iter().enumerate().take(n + 1) {
                rows[i] = r.clone();
            }
            ts = ts.max(l.ts);
        }
        if let Some(r) = right {
            rows[n + 1] = r.rows[n + 1].clone();
            ts = ts.max(r.ts);
        }
        Some(Joined { rows, ts })
    }

    /// A stream row joined with a table row (or with nothing): the stream row's time.
    fn combine(
        &self,
        n: usize,
        key: Value,
        left: &Joined,
        right: Option<&Joined>,
        deleted: bool,
    ) -> Change {
        let mut rows = left.rows.clone();
        if let Some(r) = right {
            rows[n + 1] = r.rows[n + 1].clone();
        }
        Change {
            key,
            joined: Joined { rows, ts: left.ts },
            deleted,
            old: None,
        }
    }

    /// A table-table join on both tables' keys: the changed side replaces its row, and
    /// the key's result changes from the old rows' to the new rows'.
    fn table_side(
        &self,
        n: usize,
        left: bool,
        change: Change,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let mut key = self.key_of(n, &change.joined, left);
        if key.is_null() && left && n > 0 {
            // An outer result without the source the key is read from: the earlier
            // step's key is the same.
            key = change.key.clone();
        }
        if key.is_null() {
            return Ok(());
        }
        let encoded = self.stored(n, &change.joined, left, &key);
        let (mine, theirs) = if left { (LEFT, RIGHT) } else { (RIGHT, LEFT) };
        let my_key = store_key(n, mine, &[&encoded]);
        let trigger = change.joined.ts;
        let old_mine = self.load(store, &my_key)?;
        let new_mine = if change.deleted {
            store.delete(&my_key);
            None
        } else {
            store.put(&my_key, &encode(&change.joined));
            Some(change.joined)
        };
        let other = self.load(store, &store_key(n, theirs, &[&encoded]))?;
        let (old, new) = if left {
            (
                self.result(n, old_mine.as_ref(), other.as_ref()),
                self.result(n, new_mine.as_ref(), other.as_ref()),
            )
        } else {
            (
                self.result(n, other.as_ref(), old_mine.as_ref()),
                self.result(n, other.as_ref(), new_mine.as_ref()),
            )
        };
        let ts = other.as_ref().map_or(trigger, |o| o.ts.max(trigger));
        emit_table(key, old, new, ts, out);
        Ok(())
    }

    fn foreign_left(
        &self,
        n: usize,
        change: Change,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let pk = self.primary_key(0, &change.joined);
        let trigger = change.joined.ts;
        let my_key = store_key(n, LEFT, &[&pk]);
        let old_left = self.load(store, &my_key)?;
        let old_fk = old_left.as_ref().map(|o| self.key_of(n, o, true));
        if let Some(fk) = &old_fk {
            store.delete(&store_key(n, INDEX, &[&sized(&key_bytes(fk)), &pk]));
        }
        let new_left = if change.deleted {
            store.delete(&my_key);
            None
        } else {
            store.put(&my_key, &encode(&change.joined));
            let fk = self.key_of(n, &change.joined, true);
            if !fk.is_null() {
                store.put(&store_key(n, INDEX, &[&sized(&key_bytes(&fk)), &pk]), &[]);
            }
            Some(change.joined)
        };
        let right_of = |store: &Store, fk: Option<&Value>| -> Result<Option<Joined>, String> {
            match fk {
                Some(fk) if !fk.is_null() => {
                    self.load(store, &store_key(n, RIGHT, &[&key_bytes(fk)]))
                }
                _ => Ok(None),
            }
        };
        let old_right = right_of(store, old_fk.as_ref())?;
        let new_fk = new_left.as_ref().map(|l| self.key_of(n, l, true));
        let new_right = right_of(store, new_fk.as_ref())?;
        // Kafka Streams' foreign-key join: a left row that changes or goes away always
        // replaces its result, with a tombstone when there is none.
        let old = self.result(n, old_left.as_ref(), old_right.as_ref());
        let new = self.result(n, new_left.as_ref(), new_right.as_ref());
        let old = match (&old_left, old) {
            (Some(l), None) => Some(l.clone()),
            (_, old) => old,
        };
        let ts = new_right.as_ref().map_or(trigger, |r| r.ts.max(trigger));
        emit_table(Value::Null, old, new, ts, out);
        Ok(())
    }

    fn foreign_right(
        &self,
        n: usize,
        change: Change,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let fk = self.key_of(n, &change.joined, false);
        if fk.is_null() {
            return Ok(());
        }
        let encoded = key_bytes(&fk);
        let trigger = change.joined.ts;
        let my_key = store_key(n, RIGHT, &[&encoded]);
        let old_right = self.load(store, &my_key)?;
        let new_right = if change.deleted {
            store.delete(&my_key);
            None
        } else {
            store.put(&my_key, &encode(&change.joined));
            Some(change.joined)
        };
        let prefix = store_key(n, INDEX, &[&sized(&encoded)]);
        for (k, _) in store
            .range(&prefix, &prefix_end(&prefix))
            .map_err(store_err)?
        {
            let pk = &k[prefix.len()..];
            let Some(left) = self.load(store, &store_key(n, LEFT, &[pk]))? else {
                continue;
            };
            let old = self.result(n, Some(&left), old_right.as_ref());
            let new = self.result(n, Some(&left), new_right.as_ref());
            emit_table(Value::Null, old, new, left.ts.max(trigger), out);
        }
        Ok(())
    }

    fn times(&self, store: &Store, n: usize) -> Result<StepTime, String> {
        match store.get(&store_key(n, META, &[])).map_err(store_err)? {
            Some(b) => decode(&b),
            None => Ok(StepTime::default()),
        }
    }

    /// A stream-stream join: the record joins the other side's records within the
    /// window, and waits in its own side's buffer for records still to come.
    fn stream_side(
        &self,
        n: usize,
        left: bool,
        joined: Joined,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let step = &self.plan.steps[n];
        let Some(within) = step.within else {
            return Ok(());
        };
        let key = self.key_of(n, &joined, left);
        if key.is_null() {
            return Ok(());
        }
        let grace = within.grace.unwrap_or(DEFAULT_GRACE_MS);
        // The other side's records that join this one: the right may be `before` earlier
        // and `after` later than the left.
        let (back, ahead) = if left {
            (within.before, within.after)
        } else {
            (within.after, within.before)
        };
        let retention = buffer_retention(within);
        let mut time = self.times(store, n)?;
        let t = joined.ts;
        let stream_time = time.stream_time.map_or(t, |s| s.max(t));
        time.stream_time = Some(stream_time);
        let side = usize::from(!left);
        let observed = time.observed[side].map_or(t, |o| o.max(t));
        time.observed[side] = Some(observed);
        time.sequence += 1;
        let sequence = time.sequence;
        store.put(&store_key(n, META, &[]), &encode(&time));

        let outer_here = match step.kind {
            JoinKind::Inner => false,
            JoinKind::Left => left,
            JoinKind::Right => !left,
            JoinKind::Outer => true,
        };
        let spurious_fix = within.grace.is_some();
        if spurious_fix && t == stream_time {
            self.release_closed(n, within, grace, stream_time, store, out)?;
        }
        let encoded = self.stored(n, &joined, left, &key);
        let (mine, theirs) = if left { (LEFT, RIGHT) } else { (RIGHT, LEFT) };
        if t > observed - retention {
            let (held, at, seq) = (sized(&encoded), time_bytes(t), sequence.to_be_bytes());
            store.put(&store_key(n, mine, &[&held, &at, &seq]), &encode(&joined));
            store.put(
                &store_key(n, BUFFER_TIME, &[&[mine], &at, &held, &seq]),
                &[],
            );
        }
        let other_observed = time.observed[1 - side].unwrap_or(i64::MIN);
        let from = (t - back)
            .max(0)
            .max(other_observed.saturating_sub(retention) + 1);
        let to = (t + ahead).max(0);
        let prefix = store_key(n, theirs, &[&sized(&encoded)]);
        let mut matched = false;
        if from <= to {
            let start = [prefix.clone(), time_bytes(from).to_vec()].concat();
            let end = [prefix.clone(), time_bytes(to.saturating_add(1)).to_vec()].concat();
            for (k, v) in store.range(&start, &end).map_err(store_err)? {
                let other: Joined = decode(&v)?;
                matched = true;
                if spurious_fix {
                    let other_seq = &k[k.len() - 8..];
                    store.delete(&store_key(
                        n,
                        PENDING,
                        &[
                            &time_bytes(other.ts),
                            &[1 - side as u8],
                            &sized(&encoded),
                            other_seq,
                        ],
                    ));
                }
                let (l, r) = if left {
                    (&joined, &other)
                } else {
                    (&other, &joined)
                };
                let mut rows = l.rows.clone();
                rows[n + 1] = r.rows[n + 1].clone();
                out.push(Change {
                    key: key.clone(),
                    joined: Joined {
                        rows,
                        ts: t.max(other.ts),
                    },
                    deleted: false,
                    old: None,
                });
            }
        }
        if !matched && outer_here {
            if !spurious_fix || t + ahead < stream_time {
                out.push(self.unmatched(n, left, key, joined));
            } else {
                store.put(
                    &store_key(
                        n,
                        PENDING,
                        &[
                            &time_bytes(t),
                            &[side as u8],
                            &sized(&encoded),
                            &sequence.to_be_bytes(),
                        ],
                    ),
                    &encode(&joined),
                );
            }
        }
        Ok(())
    }

    fn unmatched(&self, n: usize, left: bool, key: Value, joined: Joined) -> Change {
        let mut rows = vec![None; self.plan.inputs.len()];
        if left {
            for (i, r) in joined.rows.iter().enumerate().take(n + 1) {
                rows[i] = r.clone();
            }
        } else {
            rows[n + 1] = joined.rows[n + 1].clone();
        }
        Change {
            key,
            joined: Joined {
                rows,
                ts: joined.ts,
            },
            deleted: false,
            old: None,
        }
    }

    /// Emits the unmatched outer records whose window has closed, oldest first.
    fn release_closed(
        &self,
        n: usize,
        within: brook_sql::ast::JoinWithin,
        grace: i64,
        stream_time: i64,
        store: &mut Store,
        out: &mut Vec<Change>,
    ) -> Result<(), String> {
        let prefix = store_key(n, PENDING, &[]);
        for (k, v) in store
            .range(&prefix, &prefix_end(&prefix))
            .map_err(store_err)?
        {
            let joined: Joined = decode(&v)?;
            let side = k[prefix.len() + 8];
            let ahead = if side == 0 {
                within.after
            } else {
                within.before
            };
            if joined.ts + ahead + grace >= stream_time {
                break;
            }
            store.delete(&k);
            let key = self.key_of(n, &joined, side == 0);
            out.push(self.unmatched(n, side == 0, key, joined));
        }
        Ok(())
    }

    /// Joined rows through WHERE and the projection. A table result that stops matching
    /// WHERE becomes a tombstone only if its previous value matched.
    fn project(&self, changes: Vec<Change>) -> Result<Output, String> {
        let rows: Vec<Vec<Value>> = changes
            .iter()
            .map(|c| self.post_row(&c.key, &c.joined, c.deleted))
            .collect();
        let output = self.post.evaluate_rows(&rows)?;
        crate::eval::log_failed_calls(&format!("join of {}", self.plan.inputs[0].pre.source.name));
        if self.plan.output_kind() == SourceKind::Stream {
            return Ok(output);
        }
        let old_rows: Vec<Vec<Value>> = changes
            .iter()
            .map(|c| match &c.old {
                Some(old) => self.post_row(&c.key, old, false),
                None => self.post_row(&c.key, &c.joined, true),
            })
            .collect();
        let old_matched = self.matches(&old_rows)?;
        let keep: BooleanArray = (0..output.len)
            .map(|i| Some(!output.tombstone[i] || changes[i].old.is_some() && old_matched[i]))
            .collect();
        filter_output(output, &keep)
    }

    /// Whether rows pass WHERE (tombstones never do).
    fn matches(&self, rows: &[Vec<Value>]) -> Result<Vec<bool>, String> {
        let tombstone_index = self.plan.post.row.len();
        let live: Vec<bool> = rows
            .iter()
            .map(|r| !matches!(r.get(tombstone_index), Some(Value::Boolean(true))))
            .collect();
        let Some(f) = &self.plan.post.filter else {
            return Ok(live);
        };
        let columns = self.post.columns(rows)?;
        let mask = evaluate(f, &columns, rows.len())?;
        Ok(null_as_false(mask.as_boolean())
            .iter()
            .zip(live)
            .map(|(m, l)| m == Some(true) && l)
            .collect())
    }

    fn post_row(&self, key: &Value, joined: &Joined, deleted: bool) -> Vec<Value> {
        let mut row = Vec::with_capacity(self.plan.post.row.len() + 1);
        row.push(key.clone());
        for (input, r) in self.plan.inputs.iter().zip(&joined.rows) {
            match r {
                // A row short of columns (checked where rows come in) is padded, never
                // sliced past its end.
                Some(values) => {
                    let taken = values.len().min(input.width);
                    row.extend(values[..taken].iter().cloned());
                    row.extend(std::iter::repeat_n(Value::Null, input.width - taken));
                }
                None => row.extend(std::iter::repeat_n(Value::Null, input.width)),
            }
        }
        row.push(Value::BigInt(joined.ts));
        row.push(Value::Null);
        row.push(Value::Null);
        if self.plan.post.source.window.is_some() {
            // The result's window: the first joined row's.
            let (start, end) = (0..self.plan.inputs.len())
                .find_map(|i| self.window_of(i, joined))
                .unwrap_or((0, 0));
            row.push(Value::BigInt(start));
            row.push(Value::BigInt(end));
        }
        row.push(Value::Boolean(deleted));
        row
    }
}

/// A table key's result went from `old` to `new`: an upsert, a tombstone, or nothing.
/// Its time is the later of the changed row's and the other side's row's.
fn emit_table(
    key: Value,
    old: Option<Joined>,
    new: Option<Joined>,
    ts: i64,
    out: &mut Vec<Change>,
) {
    match (old, new) {
        (None, None) => {}
        (old, Some(new)) => out.push(Change {
            key,
            joined: Joined { ts, ..new },
            deleted: false,
            old,
        }),
        (Some(old), None) => out.push(Change {
            key,
            joined: Joined {
                ts,
                rows: old.rows.clone(),
            },
            deleted: true,
            old: Some(old),
        }),
    }
}

fn filter_output(output: Output, keep: &BooleanArray) -> Result<Output, String> {
    let columns = output
        .columns
        .iter()
        .map(|c| arrow::compute::filter(c, keep).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let pick = |i: usize| keep.value(i);
    Ok(Output {
        columns,
        rowtime: (0..output.len)
            .filter(|i| pick(*i))
            .map(|i| output.rowtime[i])
            .collect(),
        tombstone: (0..output.len)
            .filter(|i| pick(*i))
            .map(|i| output.tombstone[i])
            .collect(),
        windows: vec![],
        len: keep.true_count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_planner::catalog::Catalog;
    use brook_planner::plan::Dataflow;
    use brook_sql::ast::StatementKind;

    fn join(sql: &str) -> Join {
        let statements =
            brook_sql::parse_statements(sql, &mut Default::default()).expect("statements");
        let mut catalog = Catalog::default();
        for s in &statements[..statements.len() - 1] {
            let StatementKind::CreateSource(create) = &s.kind else {
                panic!("CREATE STREAMs first")
            };
            let source = catalog.source_from_create(create, &s.text).expect("source");
            catalog.sources.insert(source.name.clone(), source);
        }
        let last = &statements[statements.len() - 1];
        let StatementKind::CreateAsSelect(csas) = &last.kind else {
            panic!("a CREATE STREAM AS SELECT last")
        };
        let (flow, _) = catalog.plan_create_as(csas, &last.text).expect("plan");
        let Dataflow::Join(plan) = flow else {
            panic!("a join")
        };
        Join::new(plan, &FormatContext::default())
    }

    fn record(topic: &str, offset: i64, key: &str, timestamp: i64) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: topic.into(),
            partition: 0,
            offset,
            timestamp,
            key: Some(key.as_bytes().to_vec()),
            value: Some(format!("{{\"V\": {offset}}}").into_bytes()),
        }
    }

    /// Buffer records of one side (kind LEFT or RIGHT) of step 0, and their time index.
    fn buffered(store: &Store) -> (usize, usize) {
        let all = store.range(&[], &[0xff; 4]).expect("range");
        let kind = |k: &[u8], kind: u8| k.len() > 2 && k[2] == kind;
        let buffers = all
            .iter()
            .filter(|(k, _)| kind(k, LEFT) || kind(k, RIGHT))
            .count();
        let index = all.iter().filter(|(k, _)| kind(k, BUFFER_TIME)).count();
        (buffers, index)
    }

    #[test]
    fn stream_stream_buffers_forget_what_no_record_can_join() {
        let j = join(
            "CREATE STREAM l (k STRING KEY, v BIGINT) WITH (kafka_topic='l', value_format='JSON');
             CREATE STREAM r (k STRING KEY, v BIGINT) WITH (kafka_topic='r', value_format='JSON');
             CREATE STREAM j AS SELECT l.k, l.v AS lv, r.v AS rv FROM l
               JOIN r WITHIN 10 MILLISECONDS GRACE PERIOD 5 MILLISECONDS ON l.k = r.k;",
        );
        let mut store = Store::memory();
        let mut errors = Vec::new();
        let mut joined = 0;
        // A thousand pairs, 100 ms apart: each left record meets the right one of its time.
        for i in 0..1000 {
            let t = i * 100;
            let batch = [record("l", i, "a", t), record("r", i, "a", t)];
            let out = j.process(&batch, &mut store, &mut errors).expect("process");
            joined += out.len;
            store.flush(None).expect("flush");
        }
        assert!(errors.is_empty());
        assert_eq!(joined, 1000, "every pair joins once");
        // Retention is 10 + 10 + 5 ms: only the latest pair can still be joined.
        assert_eq!(buffered(&store), (2, 2));
    }
}
