//! The aggregation operator of one task: each row of the stateless stage updates the state
//! of its grouping key (and window) in the task's store, in record order, and the updated
//! aggregate rows go through HAVING and the projection. Tables are aggregated by taking the
//! previous row of a key away before adding its new one.

use crate::arrays::{build_array, value_at};
use crate::eval::{evaluate, null_as_false};
use crate::formats::FormatContext;
use crate::join::Join;
use crate::pipeline::{InputRecord, Output, Pipeline, RecordError};
use arrow::array::{ArrayRef, AsArray};
use arrow::row::{RowConverter, SortField};
use brook_planner::aggregate::AggregatePlan;
use brook_planner::plan::Projection;
use brook_planner::types::arrow_type;
use brook_planner::value::Value;
use brook_sql::ast::WindowKind;
use brook_state::{window_key, window_range, Store, WindowKey};

/// ksqlDB's grace period when a window names none.
const DEFAULT_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

/// Store key prefixes: aggregate states, a table source's current rows, the results
/// EMIT FINAL holds back until their window closes, the stream time, and the time windows
/// ordered by start, so that those past their retention are found without a scan.
const AGGREGATES: u8 = 0;
const SOURCE_ROWS: u8 = 1;
const SUPPRESSED: u8 = 2;
const STREAM_TIME: &[u8] = &[3];
const EXPIRY: u8 = 4;

/// An aggregate row as stored: the grouping key's values, each aggregate's state, and the
/// time of the record that last changed it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Stored {
    keys: Vec<Value>,
    states: Vec<Value>,
    rowtime: i64,
}

/// What the repartition topic carries to a group: a stream row's arguments, or a table
/// row's old arguments to take away and (or) new ones to add.
#[derive(serde::Serialize, serde::Deserialize)]
struct Repartitioned {
    group: Vec<Value>,
    old: Option<Vec<Vec<Value>>>,
    new: Option<Vec<Vec<Value>>>,
    sequence: i64,
}

/// An aggregate row that changed.
struct Change {
    keys: Vec<Value>,
    results: Vec<Value>,
    rowtime: i64,
    window: Option<WindowKey>,
    /// The key (or window) no longer exists.
    deleted: bool,
    /// The results before this change, if the row existed.
    previous: Option<Vec<Value>>,
}

/// Where an aggregation of a join keeps its keys in a store it shares with the join
/// (apart from the join's own prefixes).
const OVER_JOIN: &[u8] = &[0x80];

pub struct Aggregation {
    pub plan: AggregatePlan,
    /// The join whose rows it aggregates.
    pub join: Option<Join>,
    /// Records dropped because their window had closed, since last asked.
    late: std::sync::atomic::AtomicU64,
    pre: Pipeline,
    converter: Option<RowConverter>,
    /// The aggregate rows the batch at hand changed, decoded: each is read and decoded
    /// once per batch and written back (encoded, into the store and so its changelog)
    /// once at the batch's end, not once per record. Off for session windows and EMIT
    /// FINAL, whose range reads must see each write at once.
    rows: Option<std::sync::Mutex<std::collections::HashMap<Vec<u8>, Stored>>>,
}

use crate::internal_format::encode;

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    crate::internal_format::decode(bytes, "aggregation state")
}

/// Where EMIT FINAL queues a window until it closes: ordered by window end.
fn held_key(store_key: &[u8], w: WindowKey) -> Vec<u8> {
    let mut held = vec![SUPPRESSED];
    held.extend_from_slice(&window_key(&((w.end as u64) ^ (1 << 63)).to_be_bytes(), w));
    held.extend_from_slice(&store_key[1..]);
    held
}

/// How late a record may be for its window. EMIT FINAL closes windows at their end unless
/// a grace period is given, as ksqlDB does.
fn grace(plan: &AggregatePlan) -> i64 {
    let default = if plan.emit_final { 0 } else { DEFAULT_GRACE_MS };
    plan.window
        .as_ref()
        .and_then(|w| w.grace)
        .unwrap_or(default)
}

/// How long a time window is kept after it starts: its RETENTION, or its size plus the
/// grace period. Sessions are kept until they close.
pub fn window_retention(plan: &AggregatePlan) -> Option<i64> {
    let window = plan.window.as_ref()?;
    let size = match window.kind {
        WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => size,
        WindowKind::Session { .. } => return None,
    };
    Some(window.retention.unwrap_or(size + grace(plan)))
}

/// How long a session is kept after it ends: its RETENTION, but at least until it has
/// closed (no record within its gap can come in time any more), as Kafka Streams' session
/// stores keep them.
fn session_retention(plan: &AggregatePlan) -> Option<i64> {
    let window = plan.window.as_ref()?;
    let WindowKind::Session { gap } = window.kind else {
        return None;
    };
    let closed = gap.saturating_add(grace(plan));
    Some(window.retention.map_or(closed, |r| r.max(closed)))
}

/// Where a window waits for its expiry: the time its retention counts from (a time
/// window's start, a session's end) first, then its store key.
fn expiry_key(store_key: &[u8], from: i64) -> Vec<u8> {
    let mut key = vec![EXPIRY];
    key.extend_from_slice(&((from as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(store_key);
    key
}

fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(prefix);
    out.extend_from_slice(key);
    out
}

impl Aggregation {
    pub fn new(plan: AggregatePlan, formats: &FormatContext) -> Self {
        let pre = Pipeline::new(plan.pre.clone(), formats);
        let fields: Vec<SortField> = plan.pre.projection[..plan.keys]
            .iter()
            .map(|p| SortField::new(arrow_type(&p.expr.data_type)))
            .collect();
        let converter = RowConverter::new(fields).ok();
        let sessions = matches!(
            plan.window.as_ref().map(|w| w.kind),
            Some(WindowKind::Session { .. })
        );
        Self {
            rows: (!plan.emit_final && !sessions).then(Default::default),
            join: plan
                .join
                .as_ref()
                .map(|j| Join::new((**j).clone(), formats)),
            plan,
            late: Default::default(),
            pre,
            converter,
        }
    }

    fn count_late(&self) {
        self.late.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many records came too late for their window since the last call.
    pub fn take_late(&self) -> u64 {
        self.late.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn projection(&self) -> &[Projection] {
        &self.plan.projection
    }

    fn grace(&self) -> i64 {
        grace(&self.plan)
    }

    fn retention(&self) -> Option<i64> {
        window_retention(&self.plan)
    }

    /// Group keys as bytes whose order is the keys' order (or a plain encoding for types
    /// without an order-preserving one).
    fn key_bytes(&self, output: &Output) -> Result<Vec<Vec<u8>>, String> {
        let columns: Vec<ArrayRef> = output.columns[..self.plan.keys].to_vec();
        if let Some(converter) = &self.converter {
            if let Ok(rows) = converter.convert_columns(&columns) {
                return Ok((0..output.len)
                    .map(|i| rows.row(i).as_ref().to_vec())
                    .collect());
            }
        }
        Ok((0..output.len)
            .map(|i| {
                let values: Vec<Value> = self.plan.pre.projection[..self.plan.keys]
                    .iter()
                    .zip(&columns)
                    .map(|(p, a)| value_at(a.as_ref(), &p.expr.data_type, i))
                    .collect();
                encode(&values)
            })
            .collect())
    }

    /// Runs records through the aggregation; the output is the projected changes.
    pub fn process(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Output, String> {
        let pre = self.stateless(records, store, errors)?;
        self.own_keys(store, |store| {
            let changes = self.group_changes(&pre, store)?;
            self.apply(changes, store, errors)
        })
    }

    /// The stateless stage's rows of records: decoded, or joined first for a join.
    fn stateless(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Output, String> {
        match &self.join {
            Some(join) => {
                let rows = join.joined_rows(records, store, errors)?;
                self.pre.evaluate_rows(&rows)
            }
            None => Ok(self.pre.process(records, errors)),
        }
    }

    /// Runs `f` on the aggregation's part of a store it may share with its join.
    fn own_keys<T>(&self, store: &mut Store, f: impl FnOnce(&mut Store) -> T) -> T {
        match self.join {
            Some(_) => store.in_namespace(OVER_JOIN, f),
            None => f(store),
        }
    }

    /// Whether rows must move between partitions before they are aggregated: their group
    /// is not their source key, so one group's rows may be in several partitions (a
    /// join's rows always move: its tasks keep the join's state).
    pub fn needs_repartition(&self) -> bool {
        self.join.is_some() || !self.plan.groups_by_source_key()
    }

    /// The topics the aggregation reads from its sources.
    pub fn topics(&self) -> Vec<String> {
        match &self.join {
            Some(join) => join.topics(),
            None => vec![self.plan.pre.source.topic.clone()],
        }
    }

    /// The stateless stage's rows as records of the repartition topic: keyed by their
    /// group, so that each group's rows meet in one partition. A table row that changes
    /// also sends its old values to their group, to be taken away; `store` is the source
    /// partition's task store, which remembers each table row's last values.
    pub fn repartition_records(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Vec<crate::runtime::OutputRecord>, String> {
        let pre = self.stateless(records, store, errors)?;
        Ok(self
            .own_keys(store, |store| self.group_changes(&pre, store))?
            .into_iter()
            .map(|(change, timestamp)| crate::runtime::OutputRecord {
                headers: vec![],
                key: Some(encode(&change.group)),
                value: Some(encode(&change)),
                timestamp,
            })
            .collect())
    }

    /// What the stateless stage's rows change, group by group: a stream row adds its
    /// arguments; a table row takes its last values (which `store` remembers) out of their
    /// group and adds its new ones.
    fn group_changes(
        &self,
        pre: &Output,
        store: &mut Store,
    ) -> Result<Vec<(Repartitioned, i64)>, String> {
        let value = |column: usize, row: usize| {
            value_at(
                pre.columns[column].as_ref(),
                &self.plan.pre.projection[column].expr.data_type,
                row,
            )
        };
        let mut out = Vec::new();
        let mut send = |change: Repartitioned, timestamp: i64| out.push((change, timestamp));
        for row in 0..pre.len {
            let group: Vec<Value> = (0..self.plan.keys).map(|c| value(c, row)).collect();
            let args: Vec<Vec<Value>> = self
                .plan
                .aggregates
                .iter()
                .map(|a| a.args.iter().map(|c| value(*c, row)).collect())
                .collect();
            let sequence = match value(self.plan.offset_column, row) {
                Value::BigInt(o) => o,
                _ => 0,
            };
            let timestamp = pre.rowtime[row];
            let keyless = group.iter().any(Value::is_null);
            if self.plan.source_keys.is_empty() {
                if !pre.tombstone[row] && !keyless {
                    send(
                        Repartitioned {
                            group,
                            old: None,
                            new: Some(args),
                            sequence,
                        },
                        timestamp,
                    );
                }
                continue;
            }
            let source_key: Vec<Value> = self
                .plan
                .source_keys
                .iter()
                .map(|c| value(*c, row))
                .collect();
            let row_key = prefixed(SOURCE_ROWS, &encode(&source_key));
            let previous: Option<(Vec<Value>, Vec<Vec<Value>>)> =
                match store.get(&row_key).map_err(|e| e.to_string())? {
                    Some(bytes) => Some(decode(&bytes)?),
                    None => None,
                };
            let deleted = pre.tombstone[row] || keyless;
            match previous {
                Some((old_group, old_args)) if !deleted && old_group == group => send(
                    Repartitioned {
                        group: group.clone(),
                        old: Some(old_args),
                        new: Some(args.clone()),
                        sequence,
                    },
                    timestamp,
                ),
                previous => {
                    if let Some((old_group, old_args)) = previous {
                        send(
                            Repartitioned {
                                group: old_group,
                                old: Some(old_args),
                                new: None,
                                sequence,
                            },
                            timestamp,
                        );
                    }
                    if !deleted {
                        send(
                            Repartitioned {
                                group: group.clone(),
                                old: None,
                                new: Some(args.clone()),
                                sequence,
                            },
                            timestamp,
                        );
                    }
                }
            }
            if deleted {
                store.delete(&row_key);
            } else {
                store.put(&row_key, &encode(&(group, args)));
            }
        }
        Ok(out)
    }

    /// Aggregates the changes read back from the repartition topic.
    pub fn process_repartitioned(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Output, String> {
        let mut changes_in = Vec::with_capacity(records.len());
        for r in records {
            match decode::<Repartitioned>(r.value.as_deref().unwrap_or_default()) {
                Ok(change) if change.group.len() == self.plan.keys => {
                    changes_in.push((change, r.timestamp))
                }
                _ => errors.push(RecordError::Deserialization {
                    target: "value",
                    message: "not a row of this query's repartition topic".into(),
                    record: Box::new(r.clone()),
                }),
            }
        }
        self.apply(changes_in, store, errors)
    }

    /// Applies group changes in order, then writes the aggregate rows they changed back
    /// to the store (whether or not they all applied, as each write used to go).
    fn apply(
        &self,
        changes_in: Vec<(Repartitioned, i64)>,
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Output, String> {
        let applied = self.apply_changes(changes_in, store, errors);
        self.write_back(store);
        let changes = applied?;
        if let Some(stream_time) = changes.1 {
            store.put(STREAM_TIME, &encode(&stream_time));
            self.expire(store, stream_time)?;
        }
        self.project(changes.0)
    }

    /// Applies group changes in order: streams through their windows, tables by taking
    /// old values away and adding new ones. Returns the changes and the stream time.
    fn apply_changes(
        &self,
        changes_in: Vec<(Repartitioned, i64)>,
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<(Vec<Change>, Option<i64>), String> {
        let groups: Vec<&Vec<Value>> = changes_in.iter().map(|(c, _)| &c.group).collect();
        let keys = self.group_bytes(&groups)?;
        let mut stream_time: i64 = match store.get(STREAM_TIME).map_err(|e| e.to_string())? {
            Some(b) => decode(&b)?,
            None => i64::MIN,
        };
        let mut changes = Vec::new();
        for ((change, rowtime), key) in changes_in.into_iter().zip(&keys) {
            let result = match (&change.old, &change.new) {
                (None, Some(args)) if self.plan.source_keys.is_empty() => {
                    stream_time = stream_time.max(rowtime);
                    self.add_row(
                        store,
                        key,
                        change.group.clone(),
                        args,
                        change.sequence,
                        rowtime,
                        stream_time,
                        &mut changes,
                    )
                }
                (old, new) => self.change_group(
                    store,
                    key,
                    &change.group,
                    old.as_deref(),
                    new.as_deref(),
                    rowtime,
                    &mut changes,
                ),
            };
            if let Err(message) = result {
                errors.push(RecordError::Processing {
                    message,
                    record: Box::new(InputRecord {
                        headers: vec![],
                        topic: self.plan.pre.source.topic.clone(),
                        partition: -1,
                        offset: change.sequence,
                        timestamp: rowtime,
                        key: None,
                        value: None,
                    }),
                });
            }
            if self.plan.emit_final {
                self.release_closed(store, stream_time, &mut changes)?;
            }
        }
        Ok((changes, (stream_time != i64::MIN).then_some(stream_time)))
    }

    /// An aggregate row: the batch's copy if it changed it, else the store's.
    fn stored(&self, store: &Store, store_key: &[u8]) -> Result<Option<Stored>, String> {
        if let Some(rows) = &self.rows {
            let rows = rows.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(row) = rows.get(store_key) {
                return Ok(Some(row.clone()));
            }
        }
        match store.get(store_key).map_err(|e| e.to_string())? {
            Some(bytes) => Ok(Some(decode::<Stored>(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Keeps an aggregate row's new value: in the batch's rows, or in the store.
    fn keep(&self, store: &mut Store, store_key: &[u8], row: Stored) {
        match &self.rows {
            Some(rows) => {
                rows.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(store_key.to_vec(), row);
            }
            None => store.put_owned(store_key.to_vec(), encode(&row)),
        }
    }

    /// Writes the rows the batch changed to the store.
    fn write_back(&self, store: &mut Store) {
        if let Some(rows) = &self.rows {
            let rows = std::mem::take(&mut *rows.lock().unwrap_or_else(|p| p.into_inner()));
            for (key, row) in rows {
                store.put_owned(key, encode(&row));
            }
        }
    }

    /// A table row's old values leave a group and (or) its new ones join it: one change.
    #[allow(clippy::too_many_arguments)]
    fn change_group(
        &self,
        store: &mut Store,
        key: &[u8],
        group: &[Value],
        old: Option<&[Vec<Value>]>,
        new: Option<&[Vec<Value>]>,
        rowtime: i64,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let store_key = prefixed(AGGREGATES, key);
        let mut states = self.load(store, &store_key)?;
        if let Some(old) = old {
            states = self
                .plan
                .aggregates
                .iter()
                .zip(states.into_iter().zip(old))
                .map(|(a, (s, args))| a.aggregate.undo(s, args))
                .collect::<Result<Vec<_>, _>>()?;
        }
        if let Some(new) = new {
            states = self.add(states, new, 0)?;
        }
        self.save(store, &store_key, group, &states, rowtime, None, changes);
        Ok(())
    }

    /// Group keys as store keys, as `key_bytes` makes them from columns.
    fn group_bytes(&self, groups: &[&Vec<Value>]) -> Result<Vec<Vec<u8>>, String> {
        let columns = self.plan.pre.projection[..self.plan.keys]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let values: Vec<&Value> = groups.iter().map(|g| &g[i]).collect();
                build_array(&p.expr.data_type, &values)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = Output {
            columns,
            rowtime: vec![],
            tombstone: vec![],
            windows: vec![],
            len: groups.len(),
        };
        self.key_bytes(&output)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_row(
        &self,
        store: &mut Store,
        key: &[u8],
        group: Vec<Value>,
        args: &[Vec<Value>],
        sequence: i64,
        rowtime: i64,
        stream_time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let Some(window) = &self.plan.window else {
            let store_key = prefixed(AGGREGATES, key);
            let states = self.load(store, &store_key)?;
            let states = self.add(states, args, sequence)?;
            self.save(store, &store_key, &group, &states, rowtime, None, changes);
            return Ok(());
        };
        let close = stream_time.saturating_sub(self.grace());
        let windows: Vec<WindowKey> = match window.kind {
            WindowKind::Tumbling { size } => {
                let start = rowtime - rowtime.rem_euclid(size.max(1));
                vec![WindowKey {
                    start,
                    end: start + size,
                }]
            }
            WindowKind::Hopping { size, advance } => {
                let advance = advance.max(1);
                let last = rowtime - rowtime.rem_euclid(advance);
                let mut start = (last - size + advance).max(0);
                start += (advance - start.rem_euclid(advance)) % advance;
                let mut out = Vec::new();
                while start <= last {
                    out.push(WindowKey {
                        start,
                        end: start + size,
                    });
                    start += advance;
                }
                out
            }
            WindowKind::Session { gap } => {
                // A session closes once no record within its gap can still come in time.
                let close = close.saturating_sub(gap);
                return self.add_to_session(
                    store, key, group, args, sequence, rowtime, gap, close, changes,
                );
            }
        };
        for w in windows {
            if w.end <= close {
                // The window has closed: a late record.
                self.count_late();
                continue;
            }
            let store_key = prefixed(AGGREGATES, &window_key(key, w));
            // A window's time is the latest of its records'.
            let (states, latest) = match self.stored(store, &store_key)? {
                Some(stored) => (stored.states, stored.rowtime.max(rowtime)),
                None => {
                    // A new window: it is deleted once past its retention.
                    store.put(&expiry_key(&store_key, w.start), &[]);
                    (self.initial(), rowtime)
                }
            };
            let states = self.add(states, args, sequence)?;
            self.save(store, &store_key, &group, &states, latest, Some(w), changes);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn add_to_session(
        &self,
        store: &mut Store,
        key: &[u8],
        group: Vec<Value>,
        args: &[Vec<Value>],
        sequence: i64,
        rowtime: i64,
        gap: i64,
        close: i64,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let prefix = prefixed(AGGREGATES, key);
        let (low, high) = window_range(&prefix, i64::MIN, rowtime.saturating_add(gap));
        // A key's sessions never overlap: by start they are also by end. Read back from
        // the last that starts in reach, and stop at the first that ends out of reach, so
        // the cost does not grow with the key's history.
        let reach = rowtime.saturating_sub(gap).max(close);
        let candidates = store
            .range_back(&low, &high, |store_key, _| {
                WindowKey::of(store_key).is_some_and(|(_, w)| w.end >= reach)
            })
            .map_err(|e| e.to_string())?;
        let mut merged = WindowKey {
            start: rowtime,
            end: rowtime,
        };
        let mut states = self.initial();
        let mut absorbed = Vec::new();
        // A merged session's time is the latest of its records'.
        let mut latest = rowtime;
        // Oldest first, as the merge order was.
        for (store_key, bytes) in candidates.into_iter().rev() {
            let Some((_, w)) = WindowKey::of(&store_key) else {
                continue;
            };
            let stored: Stored = decode(&bytes)?;
            states = self
                .plan
                .aggregates
                .iter()
                .zip(states.into_iter().zip(stored.states))
                .map(|(a, (s, t))| a.aggregate.merge(s, t))
                .collect::<Result<_, _>>()?;
            merged.start = merged.start.min(w.start);
            merged.end = merged.end.max(w.end);
            latest = latest.max(stored.rowtime);
            absorbed.push((store_key, w, stored.rowtime));
        }
        if merged.end < close {
            self.count_late();
            return Ok(());
        }
        for (store_key, w, old_time) in absorbed {
            store.delete(&store_key);
            store.delete(&expiry_key(&store_key, w.end));
            if self.plan.emit_final {
                // Never shown: only its place in the queue of windows to emit goes.
                store.delete(&held_key(&store_key, w));
                continue;
            }
            changes.push(Change {
                keys: group.clone(),
                results: vec![],
                rowtime: old_time,
                window: Some(w),
                deleted: true,
                previous: None,
            });
        }
        let states = self.add(states, args, sequence)?;
        let store_key = window_key(&prefix, merged);
        // The session is deleted once past its retention, counted from its end.
        store.put(&expiry_key(&store_key, merged.end), &[]);
        self.save(
            store,
            &store_key,
            &group,
            &states,
            latest,
            Some(merged),
            changes,
        );
        Ok(())
    }

    fn initial(&self) -> Vec<Value> {
        self.plan
            .aggregates
            .iter()
            .map(|a| a.aggregate.init())
            .collect()
    }

    fn load(&self, store: &Store, store_key: &[u8]) -> Result<Vec<Value>, String> {
        Ok(self
            .stored(store, store_key)?
            .map_or_else(|| self.initial(), |row| row.states))
    }

    fn add(
        &self,
        states: Vec<Value>,
        args: &[Vec<Value>],
        sequence: i64,
    ) -> Result<Vec<Value>, String> {
        self.plan
            .aggregates
            .iter()
            .zip(states.into_iter().zip(args))
            .map(|(a, (s, args))| a.aggregate.add(s, args, sequence))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn save(
        &self,
        store: &mut Store,
        store_key: &[u8],
        group: &[Value],
        states: &[Value],
        rowtime: i64,
        window: Option<WindowKey>,
        changes: &mut Vec<Change>,
    ) {
        let previous = match &self.plan.having {
            Some(_) => self
                .stored(store, store_key)
                .ok()
                .flatten()
                .map(|old| self.results(&old.states)),
            None => None,
        };
        let stored = Stored {
            keys: group.to_vec(),
            states: states.to_vec(),
            rowtime,
        };
        if let (true, Some(w)) = (self.plan.emit_final, window) {
            // Held back, ordered by window end, until the window closes.
            let bytes = encode(&stored);
            store.put(store_key, &bytes);
            store.put(&held_key(store_key, w), &bytes);
            return;
        }
        self.keep(store, store_key, stored);
        changes.push(Change {
            keys: group.to_vec(),
            results: self.results(states),
            rowtime,
            window,
            deleted: false,
            previous,
        });
    }

    fn results(&self, states: &[Value]) -> Vec<Value> {
        self.plan
            .aggregates
            .iter()
            .zip(states)
            .map(|(a, s)| a.aggregate.result(s))
            .collect()
    }

    /// Deletes the time windows that started before the stream time minus their retention,
    /// and the sessions that ended before it (Kafka Streams drops them from its window and
    /// session stores likewise): the deletes reach the changelog as tombstones, so the
    /// store holds only the windows that can still change or be asked for.
    fn expire(&self, store: &mut Store, stream_time: i64) -> Result<(), String> {
        let Some(retention) = self.retention().or_else(|| session_retention(&self.plan)) else {
            return Ok(());
        };
        let expired = stream_time.saturating_sub(retention);
        let low = vec![EXPIRY];
        let mut high = vec![EXPIRY];
        high.extend_from_slice(&((expired as u64) ^ (1 << 63)).to_be_bytes());
        let due = store.range(&low, &high).map_err(|e| e.to_string())?;
        for (entry, _) in due {
            store.delete(&entry[1 + 8..]);
            store.delete(&entry);
        }
        Ok(())
    }

    /// EMIT FINAL: emits the held-back results of windows that closed.
    fn release_closed(
        &self,
        store: &mut Store,
        stream_time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let mut close = stream_time.saturating_sub(self.grace());
        if let Some(WindowKind::Session { gap }) = self.plan.window.as_ref().map(|w| w.kind) {
            // Sessions close strictly before the stream time minus gap and grace.
            close = close.saturating_sub(gap).saturating_sub(1);
        }
        let low = vec![SUPPRESSED];
        let mut high = vec![SUPPRESSED];
        high.extend_from_slice(&((close as u64) ^ (1 << 63)).to_be_bytes());
        high.push(0xFF);
        let expired = self
            .retention()
            .map(|r| stream_time.saturating_sub(r))
            .unwrap_or(i64::MIN);
        for (held, bytes) in store.range(&low, &high).map_err(|e| e.to_string())? {
            let stored: Stored = decode(&bytes)?;
            let window = WindowKey::of(&held[..1 + 8 + 16]).map(|(_, w)| w);
            if window.is_some_and(|w| w.end > close) {
                continue;
            }
            store.delete(&held);
            if window.is_some_and(|w| w.start < expired) {
                // Past its retention, the window is gone from the store: nothing to emit.
                continue;
            }
            changes.push(Change {
                keys: stored.keys,
                results: self.results(&stored.states),
                rowtime: stored.rowtime,
                window,
                deleted: false,
                previous: None,
            });
        }
        Ok(())
    }

    /// HAVING and the projection over the changed aggregate rows.
    fn project(&self, changes: Vec<Change>) -> Result<Output, String> {
        let mut changes = changes;
        if let Some(having) = &self.plan.having {
            // A group that did not match HAVING before is not deleted downstream either:
            // it was never there.
            let before: Vec<Change> = changes
                .iter()
                .map(|c| Change {
                    keys: c.keys.clone(),
                    results: c.previous.clone().unwrap_or_default(),
                    rowtime: c.rowtime,
                    window: c.window,
                    deleted: c.previous.is_none(),
                    previous: None,
                })
                .collect();
            let matched = self.matches(having, &before)?;
            let now = self.matches(having, &changes)?;
            let mut keep = changes
                .iter()
                .zip(now.iter().zip(&matched))
                .map(|(c, (n, m))| c.deleted || *n || *m)
                .collect::<Vec<_>>()
                .into_iter();
            changes.retain(|_| keep.next().unwrap_or(true));
        }
        let len = changes.len();
        let rows: Vec<Vec<Value>> = self.rows(&changes);
        let mut columns = Vec::with_capacity(self.plan.row.len());
        for (i, c) in self.plan.row.iter().enumerate() {
            let values: Vec<&Value> = rows.iter().map(|r| &r[i]).collect();
            columns.push(build_array(&c.data_type, &values)?);
        }
        let mut tombstone: Vec<bool> = changes.iter().map(|c| c.deleted).collect();
        if let Some(having) = &self.plan.having {
            let mask = self.matches(having, &changes)?;
            for (t, keep) in tombstone.iter_mut().zip(mask) {
                *t = *t || !keep;
            }
        }
        let outputs = self
            .plan
            .projection
            .iter()
            .map(|p| evaluate(&p.expr, &columns, len))
            .collect::<Result<Vec<_>, _>>()?;
        crate::eval::log_failed_calls(&format!("aggregation over {}", self.plan.pre.source.name));
        Ok(Output {
            columns: outputs,
            rowtime: changes.iter().map(|c| c.rowtime).collect(),
            tombstone,
            windows: changes.iter().map(|c| c.window).collect(),
            len,
        })
    }

    /// Whether each changed row matches `having` (deleted rows do not).
    fn matches(
        &self,
        having: &brook_planner::typing::TypedExpr,
        changes: &[Change],
    ) -> Result<Vec<bool>, String> {
        let rows = self.rows(changes);
        let mut columns = Vec::with_capacity(self.plan.row.len());
        for (i, c) in self.plan.row.iter().enumerate() {
            let values: Vec<&Value> = rows.iter().map(|r| &r[i]).collect();
            columns.push(build_array(&c.data_type, &values)?);
        }
        let mask = evaluate(having, &columns, rows.len())?;
        let mask = null_as_false(mask.as_boolean());
        Ok(changes
            .iter()
            .zip(mask.iter())
            .map(|(c, m)| !c.deleted && m == Some(true))
            .collect())
    }

    /// The aggregate rows of changes: keys, results, ROWTIME and the window bounds.
    fn rows(&self, changes: &[Change]) -> Vec<Vec<Value>> {
        let windowed = self.plan.window.is_some();
        changes
            .iter()
            .map(|c| {
                let mut row = c.keys.clone();
                if c.deleted {
                    row.extend(self.plan.aggregates.iter().map(|_| Value::Null));
                } else {
                    row.extend(c.results.iter().cloned());
                }
                row.push(Value::BigInt(c.rowtime));
                if windowed {
                    let w = c.window.unwrap_or(WindowKey { start: 0, end: 0 });
                    row.push(Value::BigInt(w.start));
                    row.push(Value::BigInt(w.end));
                }
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_planner::catalog::Catalog;
    use brook_planner::plan::Dataflow;
    use brook_sql::ast::StatementKind;

    fn aggregation(sql: &str) -> Aggregation {
        let statements =
            brook_sql::parse_statements(sql, &mut Default::default()).expect("statements");
        let mut catalog = Catalog::default();
        let StatementKind::CreateSource(create) = &statements[0].kind else {
            panic!("a CREATE STREAM first")
        };
        let source = catalog
            .source_from_create(create, &statements[0].text)
            .expect("source");
        catalog.sources.insert(source.name.clone(), source);
        let StatementKind::CreateAsSelect(ctas) = &statements[1].kind else {
            panic!("a CREATE TABLE AS SELECT second")
        };
        let (flow, _) = catalog
            .plan_create_as(ctas, &statements[1].text)
            .expect("plan");
        let Dataflow::Aggregate(plan) = flow else {
            panic!("an aggregation")
        };
        Aggregation::new(plan, &FormatContext::default())
    }

    fn record(offset: i64, key: &str, timestamp: i64) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp,
            key: Some(key.as_bytes().to_vec()),
            value: Some(b"{\"V\": 1}".to_vec()),
        }
    }

    #[test]
    fn a_batch_keeps_its_rows_decoded_and_emits_every_update() {
        let a = aggregation(
            "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='t', value_format='JSON');
             CREATE TABLE c AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM s
               WINDOW TUMBLING (SIZE 10 MILLISECONDS) GROUP BY k HAVING COUNT(*) > 1;",
        );
        let mut store = Store::memory();
        let mut errors = Vec::new();
        let records: Vec<InputRecord> = (0..6)
            .map(|i| record(i, if i % 2 == 0 { "a" } else { "b" }, 1))
            .collect();
        let out = a
            .process(&records, &mut store, &mut errors)
            .expect("process");
        // HAVING holds from each key's second record on: four updates, each one shown.
        assert_eq!(out.len, 4);
        // Two rows changed: the store (and so the changelog) has each once.
        let rows = store
            .pending()
            .filter(|(k, _)| k.first() == Some(&AGGREGATES))
            .count();
        assert_eq!(rows, 2);
        // The next batch starts from what the first wrote.
        store.flush(None).unwrap();
        let out = a
            .process(&[record(6, "a", 2)], &mut store, &mut errors)
            .expect("process");
        assert_eq!(out.len, 1);
        let total = crate::arrays::value_at(&out.columns[2], &brook_sql::ast::DataType::BigInt, 0);
        assert_eq!(total, Value::BigInt(4));
        assert!(errors.is_empty());
    }

    #[test]
    fn late_records_are_dropped_and_counted() {
        let a = aggregation(
            "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='t', value_format='JSON');
             CREATE TABLE c AS SELECT k, COUNT(*) AS n FROM s
               WINDOW TUMBLING (SIZE 10 MILLISECONDS, GRACE PERIOD 5 MILLISECONDS) GROUP BY k;",
        );
        let mut store = Store::memory();
        let mut errors = Vec::new();
        let records = [
            record(0, "a", 1),
            record(1, "a", 30),
            // Window [0, 10) closed at stream time 15.
            record(2, "a", 2),
            // Window [20, 30) is still open until 35.
            record(3, "a", 25),
        ];
        let out = a
            .process(&records, &mut store, &mut errors)
            .expect("process");
        assert_eq!(out.len, 3);
        assert_eq!(a.take_late(), 1);
        assert_eq!(a.take_late(), 0);
        let starts: Vec<i64> = out.windows.iter().flatten().map(|w| w.start).collect();
        assert_eq!(starts, vec![0, 30, 20]);
    }

    #[test]
    fn closed_sessions_leave_the_store() {
        let a = aggregation(
            "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='t', value_format='JSON');
             CREATE TABLE c AS SELECT k, COUNT(*) AS n FROM s
               WINDOW SESSION (10 MILLISECONDS, GRACE PERIOD 5 MILLISECONDS) GROUP BY k;",
        );
        let mut store = Store::memory();
        let mut errors = Vec::new();
        // A thousand sessions of one key, each of two records 5 ms apart, 100 ms apart.
        for i in 0..1000 {
            let t = i * 100;
            let batch = [record(2 * i, "a", t), record(2 * i + 1, "a", t + 5)];
            let out = a.process(&batch, &mut store, &mut errors).expect("process");
            assert!(out.len > 0);
            store.flush(None).expect("flush");
        }
        assert!(errors.is_empty());
        let held = |prefix: u8| store.range(&[prefix], &[prefix + 1]).expect("range").len();
        // Sessions close 15 ms after they end: only the last one is still in the store,
        // with its place in the expiry index.
        assert_eq!(held(AGGREGATES), 1);
        assert_eq!(held(EXPIRY), 1);
        let last = store
            .range(&[AGGREGATES], &[AGGREGATES + 1])
            .expect("range");
        let (_, w) = WindowKey::of(&last[0].0).expect("a session key");
        assert_eq!((w.start, w.end), (99_900, 99_905));
    }
}
