//! A stateless query's work on one batch of input records: decode into Arrow columns,
//! filter, project. Records that fail are reported, not fatal.

use crate::arrays::{build_array, value_at};
use crate::batch::{Cell, RowBuilder};
use crate::eval::evaluate;
use crate::eval::null_as_false;
use crate::formats::{FormatContext, RecordCodec};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::filter;
use arrow::datatypes::Int64Type;
use brook_planner::catalog::ColumnRole;
use brook_planner::plan::{Projection, QueryPlan};
use brook_planner::typing::ExprKind;
use brook_planner::value::Value;
use brook_sql::ast::SourceKind;
use brook_state::WindowKey;

/// A windowed key's own bytes and its window: the start follows the key for time windows
/// (the end is start + size), the end and then the start for session windows.
pub fn split_window(
    key: Option<&[u8]>,
    kind: brook_planner::catalog::WindowType,
    size: Option<i64>,
) -> Option<(Option<&[u8]>, Option<WindowKey>)> {
    use brook_planner::catalog::WindowType;
    let Some(key) = key else {
        return Some((None, None));
    };
    let long = |b: &[u8]| <[u8; 8]>::try_from(b).ok().map(i64::from_be_bytes);
    match kind {
        WindowType::Session => {
            let n = key.len().checked_sub(16)?;
            let end = long(&key[n..n + 8])?;
            let start = long(&key[n + 8..])?;
            Some((Some(&key[..n]), Some(WindowKey { start, end })))
        }
        WindowType::Tumbling | WindowType::Hopping => {
            let n = key.len().checked_sub(8)?;
            let start = long(&key[n..])?;
            let end = start + size.unwrap_or(0);
            Some((Some(&key[..n]), Some(WindowKey { start, end })))
        }
    }
}

/// A record's headers: keys with optional values, in order.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A record as read from a topic.
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub headers: Headers,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Why a record produced no output.
#[derive(Debug, Clone)]
pub enum RecordError {
    Deserialization {
        target: &'static str,
        message: String,
        record: Box<InputRecord>,
    },
    Processing {
        message: String,
        record: Box<InputRecord>,
    },
}

/// The rows a batch produced: projected columns (and the input ROWTIME of each row).
pub struct Output {
    pub columns: Vec<ArrayRef>,
    pub rowtime: Vec<i64>,
    /// Rows that came from a record without a value: their value stays absent.
    pub tombstone: Vec<bool>,
    /// The window of each row, for windowed aggregations (empty otherwise).
    pub windows: Vec<Option<brook_state::WindowKey>>,
    pub len: usize,
}

impl Output {
    pub fn row(&self, projection: &[Projection], row: usize) -> Vec<Value> {
        self.columns
            .iter()
            .zip(projection)
            .map(|(a, p)| value_at(a, &p.expr.data_type, row))
            .collect()
    }
}

pub struct Pipeline {
    pub plan: QueryPlan,
    codec: RecordCodec,
    /// Where each row column comes from: (is key, index in that side), or a header.
    sources: Vec<Slot>,
    timestamp_column: Option<usize>,
    /// Whether a table's row that stops matching the WHERE clause deletes its key
    /// downstream (persistent queries); push queries leave such rows out.
    pub unmatched_delete: bool,
}

#[derive(Clone)]
enum Slot {
    Key(usize),
    Value(usize),
    /// All headers, or the last header with this key.
    Header(Option<String>),
}

impl Pipeline {
    pub fn new(plan: QueryPlan, formats: &FormatContext) -> Self {
        let codec = RecordCodec::for_source(&plan.source, formats);
        let mut sources = Vec::new();
        let (mut k, mut v) = (0, 0);
        for c in plan.source.key_columns() {
            let _ = c;
            sources.push(Slot::Key(k));
            k += 1;
        }
        for c in plan
            .source
            .columns
            .iter()
            .filter(|c| c.role != ColumnRole::Key)
        {
            match &c.role {
                ColumnRole::Header(key) => sources.push(Slot::Header(key.clone())),
                _ => {
                    sources.push(Slot::Value(v));
                    v += 1;
                }
            }
        }
        let timestamp_column = plan
            .source
            .timestamp_column
            .as_ref()
            .and_then(|ts| plan.row.iter().position(|c| &c.name == ts));
        Self {
            plan,
            codec,
            sources,
            timestamp_column,
            unmatched_delete: true,
        }
    }

    /// Processes records in order; the output keeps their order.
    pub fn process(&self, records: &[InputRecord], errors: &mut Vec<RecordError>) -> Output {
        let mut batch = RowBuilder::new(self.plan.row.iter().map(|c| &c.data_type), records.len());
        let mut tombstone = Vec::with_capacity(records.len());
        let mut kept: Vec<&InputRecord> = Vec::with_capacity(records.len());
        let mut scratch = Scratch::default();
        for record in records {
            // A table has no row without a key.
            if self.plan.source.kind == SourceKind::Table && record.key.is_none() {
                continue;
            }
            match self.decode_into(record, &mut batch, &mut scratch) {
                Ok(()) => {
                    tombstone.push(record.value.is_none());
                    kept.push(record);
                }
                Err(e) => errors.push(e),
            }
        }
        let failed = |message: String, kept: &[&InputRecord], errors: &mut Vec<RecordError>| {
            errors.extend(kept.iter().map(|record| RecordError::Processing {
                message: message.clone(),
                record: Box::new((*record).clone()),
            }));
            empty_output(&self.plan)
        };
        let columns = match batch.finish() {
            Ok(columns) => columns,
            Err(message) => return failed(message, &kept, errors),
        };
        // Failed calls of an evaluation that named no record are not this batch's.
        crate::eval::take_failed_calls();
        let whole = self.evaluate(columns.clone(), tombstone.clone());
        let calls_failed = crate::eval::take_failed_calls();
        let failed_call = |calls: Vec<String>, record: &InputRecord| RecordError::Processing {
            message: format!("Error computing expression: {}", calls.join("; ")),
            record: Box::new(record.clone()),
        };
        match whole {
            Ok(out) if calls_failed.is_empty() => out,
            Ok(out) if kept.len() == 1 => {
                errors.push(failed_call(calls_failed, kept[0]));
                out
            }
            Err(message) if kept.len() <= 1 => failed(message, &kept, errors),
            _ => {
                // Something in the batch fails: find the rows that fail, or whose function
                // calls do (those rows stay, with NULLs for the calls).
                let mut parts = Vec::new();
                let mut part_records = Vec::new();
                for (row, record) in kept.into_iter().enumerate() {
                    let one = columns.iter().map(|c| c.slice(row, 1)).collect();
                    let result = self.evaluate(one, vec![tombstone[row]]);
                    let calls = crate::eval::take_failed_calls();
                    match result {
                        Ok(out) => {
                            if !calls.is_empty() {
                                errors.push(failed_call(calls, record));
                            }
                            parts.push(out);
                            part_records.push(record);
                        }
                        Err(message) => errors.push(RecordError::Processing {
                            message,
                            record: Box::new(record.clone()),
                        }),
                    }
                }
                match concat_outputs(parts, &self.plan) {
                    Ok(out) => out,
                    Err(message) => failed(message, &part_records, errors),
                }
            }
        }
    }

    /// Appends a record's row to the batch: its value straight from the bytes where the
    /// format can, through the lenient path otherwise.
    fn decode_into<'r>(
        &self,
        record: &'r InputRecord,
        batch: &mut RowBuilder,
        scratch: &mut Scratch<'r>,
    ) -> Result<(), RecordError> {
        let append = |batch: &mut RowBuilder, row: &mut Vec<Cell<'r>>| {
            batch
                .append(row)
                .map_err(|message| RecordError::Processing {
                    message,
                    record: Box::new(record.clone()),
                })
        };
        let Scratch {
            fields,
            cells,
            key_cells,
            row,
        } = scratch;
        if self
            .codec
            .value
            .decode_cells(record.value.as_deref(), fields, cells)
            .is_none()
        {
            row.clear();
            row.extend(self.decode(record)?.into_iter().map(Cell::Value));
            // Past the row's columns: whether the record had no value.
            row.pop();
            return append(batch, row);
        }
        let (key_bytes, window) = self.split_key(record)?;
        if self
            .codec
            .key
            .decode_cells(key_bytes, fields, key_cells)
            .is_none()
        {
            key_cells.clear();
            key_cells.extend(
                self.decode_key(key_bytes, record)?
                    .into_iter()
                    .map(Cell::Value),
            );
        }
        let rowtime = match self.timestamp_column {
            Some(i) => {
                let value = match &self.sources[i] {
                    Slot::Key(k) => key_cells[*k]
                        .clone()
                        .into_value(&self.plan.row[i].data_type),
                    Slot::Value(v) => cells[*v].clone().into_value(&self.plan.row[i].data_type),
                    Slot::Header(h) => header_value(h, record),
                };
                self.rowtime(&value, record)?
            }
            None => record.timestamp,
        };
        row.clear();
        for slot in &self.sources {
            row.push(match slot {
                Slot::Key(i) => std::mem::replace(&mut key_cells[*i], Cell::Null),
                Slot::Value(i) => std::mem::replace(&mut cells[*i], Cell::Null),
                Slot::Header(h) => Cell::Value(header_value(h, record)),
            });
        }
        row.push(Cell::Long(rowtime));
        row.push(Cell::Long(record.partition as i64));
        row.push(Cell::Long(record.offset));
        if self.plan.source.window.is_some() {
            let w = window.unwrap_or(WindowKey { start: 0, end: 0 });
            row.push(Cell::Long(w.start));
            row.push(Cell::Long(w.end));
        }
        append(batch, row)
    }

    /// A record's key bytes without their window and, for a windowed source, its window.
    fn split_key<'r>(
        &self,
        record: &'r InputRecord,
    ) -> Result<(Option<&'r [u8]>, Option<WindowKey>), RecordError> {
        match self.plan.source.window {
            Some(w) => split_window(record.key.as_deref(), w.kind, w.size).ok_or_else(|| {
                key_error("a windowed key is too short for its window".into(), record)
            }),
            None => Ok((record.key.as_deref(), None)),
        }
    }

    /// A record's key columns, through the lenient path of its format.
    fn decode_key(
        &self,
        key_bytes: Option<&[u8]>,
        record: &InputRecord,
    ) -> Result<Vec<Value>, RecordError> {
        self.codec
            .key
            .decode(key_bytes)
            .map_err(|message| key_error(message, record))
    }

    /// A row's ROWTIME from its TIMESTAMP column.
    fn rowtime(&self, value: &Value, record: &InputRecord) -> Result<i64, RecordError> {
        Ok(match value {
            Value::BigInt(t) | Value::Timestamp(t) if *t >= 0 => *t,
            Value::String(text) if self.plan.source.timestamp_format.is_some() => {
                let pattern = Value::String(
                    self.plan
                        .source
                        .timestamp_format
                        .clone()
                        .unwrap_or_default(),
                );
                brook_planner::functions::temporal::parse_millis(
                    &Value::String(text.clone()),
                    &pattern,
                    None,
                )
                .map_err(|message| RecordError::Processing {
                    message: format!("Failed to extract timestamp: {message}"),
                    record: Box::new(record.clone()),
                })?
            }
            other => {
                return Err(RecordError::Processing {
                    message: format!(
                        "Failed to extract timestamp from the TIMESTAMP column: {other:?}"
                    ),
                    record: Box::new(record.clone()),
                })
            }
        })
    }

    /// A record's row as values, through the lenient path of every format, then whether
    /// the record had no value.
    fn decode(&self, record: &InputRecord) -> Result<Vec<Value>, RecordError> {
        let (key_bytes, window) = self.split_key(record)?;
        let key = self.decode_key(key_bytes, record)?;
        let value = self
            .codec
            .value
            .decode(record.value.as_deref())
            .map_err(|message| RecordError::Deserialization {
                target: "value",
                message,
                record: Box::new(record.clone()),
            })?;
        let mut row: Vec<Value> = self
            .sources
            .iter()
            .map(|slot| match slot {
                Slot::Key(i) => key[*i].clone(),
                Slot::Value(i) => value[*i].clone(),
                Slot::Header(h) => header_value(h, record),
            })
            .collect();
        let rowtime = match self.timestamp_column {
            Some(i) => self.rowtime(&row[i], record)?,
            None => record.timestamp,
        };
        row.push(Value::BigInt(rowtime));
        row.push(Value::Int(record.partition));
        row.push(Value::BigInt(record.offset));
        if self.plan.source.window.is_some() {
            let w = window.unwrap_or(WindowKey { start: 0, end: 0 });
            row.push(Value::BigInt(w.start));
            row.push(Value::BigInt(w.end));
        }
        // Past the row's columns: whether the record had no value.
        row.push(Value::Boolean(record.value.is_none()));
        Ok(row)
    }

    /// Rows already made (the plan's row, then whether the row is a tombstone) through
    /// the filter and projection.
    pub(crate) fn evaluate_rows(&self, rows: &[Vec<Value>]) -> Result<Output, String> {
        let tombstone_index = self.plan.row.len();
        let tombstone = rows
            .iter()
            .map(|r| matches!(r.get(tombstone_index), Some(Value::Boolean(true))))
            .collect();
        self.evaluate(self.columns(rows)?, tombstone)
    }

    /// The row columns of rows already made.
    pub(crate) fn columns(&self, rows: &[Vec<Value>]) -> Result<Vec<ArrayRef>, String> {
        self.plan
            .row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let values: Vec<&Value> = rows.iter().map(|r| &r[i]).collect();
                build_array(&c.data_type, &values)
            })
            .collect()
    }

    /// The row's columns (and whether each row is a tombstone) through the filter and
    /// projection.
    fn evaluate(
        &self,
        mut columns: Vec<ArrayRef>,
        mut tombstone: Vec<bool>,
    ) -> Result<Output, String> {
        let mut len = tombstone.len();
        let table = self.plan.source.kind == SourceKind::Table;
        if let (Some(f), true) = (&self.plan.filter, table && self.unmatched_delete) {
            // A table row that stops matching deletes its key downstream: it becomes a
            // tombstone rather than disappearing.
            let mask = null_as_false(evaluate(f, &columns, len)?.as_boolean());
            for (t, keep) in tombstone.iter_mut().zip(mask.iter()) {
                *t = *t || keep != Some(true);
            }
        } else if let Some(f) = &self.plan.filter {
            let mask = evaluate(f, &columns, len)?;
            // A stream record without a value matches no condition; a table's tombstone
            // still deletes its key.
            let mask: BooleanArray = null_as_false(mask.as_boolean())
                .iter()
                .zip(&tombstone)
                .map(|(m, t)| Some(if *t { table } else { m == Some(true) }))
                .collect();
            columns = columns
                .iter()
                .map(|c| filter(c, &mask).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            len = mask.true_count();
            tombstone = tombstone
                .into_iter()
                .zip(mask.iter())
                .filter(|(_, keep)| *keep == Some(true))
                .map(|(t, _)| t)
                .collect();
        }
        // A stream record without a value has no value columns (nor ROWTIME, which ksqlDB
        // reads from the value) to compute a new key from: a PARTITION BY expression that
        // reads them is NULL for it; one of the old key columns only is computed.
        let keys = self.plan.source.key_columns().count();
        let valueless: Option<BooleanArray> = (self.plan.source.kind == SourceKind::Stream
            && tombstone.iter().any(|t| *t))
        .then(|| tombstone.iter().map(|t| Some(*t)).collect());
        let outputs = self
            .plan
            .projection
            .iter()
            .map(|p| {
                let out = match &p.expr.kind {
                    ExprKind::Explode(array) => evaluate(array, &columns, len),
                    _ => evaluate(&p.expr, &columns, len),
                }?;
                match &valueless {
                    Some(mask) if p.key && !p.expr.reads_only_first(keys) => {
                        arrow::compute::nullif(&out, mask).map_err(|e| e.to_string())
                    }
                    _ => Ok(out),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rowtime_index =
            self.plan.row.len() - brook_planner::plan::pseudo_columns(&self.plan.source);
        let windows: Vec<Option<WindowKey>> = match self.plan.source.window {
            Some(_) => {
                let n = self.plan.row.len();
                let starts = columns[n - 2].as_primitive::<Int64Type>();
                let ends = columns[n - 1].as_primitive::<Int64Type>();
                starts
                    .values()
                    .iter()
                    .zip(ends.values().iter())
                    .map(|(s, e)| Some(WindowKey { start: *s, end: *e }))
                    .collect()
            }
            None => Vec::new(),
        };
        let rowtime = columns[rowtime_index]
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        if self
            .plan
            .projection
            .iter()
            .any(|p| matches!(p.expr.kind, ExprKind::Explode(_)))
        {
            return self.explode(outputs, rowtime, tombstone, len);
        }
        Ok(Output {
            columns: outputs,
            rowtime,
            tombstone,
            windows,
            len,
        })
    }
}

fn key_error(message: String, record: &InputRecord) -> RecordError {
    RecordError::Deserialization {
        target: "key",
        message,
        record: Box::new(record.clone()),
    }
}

/// What decoding a batch reuses from one record to the next.
#[derive(Default)]
struct Scratch<'r> {
    fields: Vec<crate::formats::RawField<'r>>,
    cells: Vec<Cell<'r>>,
    key_cells: Vec<Cell<'r>>,
    row: Vec<Cell<'r>>,
}

/// A header column's value: all headers, or the last header with its key.
fn header_value(header: &Option<String>, record: &InputRecord) -> Value {
    match header {
        None => Value::Array(
            record
                .headers
                .iter()
                .map(|(k, v)| {
                    Value::Struct(vec![
                        ("KEY".into(), Value::String(k.clone())),
                        (
                            "VALUE".into(),
                            v.clone().map(Value::Bytes).unwrap_or(Value::Null),
                        ),
                    ])
                })
                .collect(),
        ),
        Some(key) => record
            .headers
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone().map(Value::Bytes))
            .unwrap_or(Value::Null),
    }
}

impl Pipeline {
    /// Expands rows around table functions: a row gives one row per element of its longest
    /// exploded array (shorter ones give NULLs); the other columns repeat.
    fn explode(
        &self,
        outputs: Vec<ArrayRef>,
        rowtime: Vec<i64>,
        tombstone: Vec<bool>,
        len: usize,
    ) -> Result<Output, String> {
        let lists: Vec<Option<&arrow::array::ListArray>> = outputs
            .iter()
            .zip(&self.plan.projection)
            .map(|(a, p)| matches!(p.expr.kind, ExprKind::Explode(_)).then(|| a.as_list::<i32>()))
            .collect();
        let mut rows: Vec<u32> = Vec::new();
        let mut positions: Vec<Vec<Option<u32>>> = vec![Vec::new(); outputs.len()];
        for row in 0..len {
            let count = lists
                .iter()
                .flatten()
                .map(|l| {
                    if l.is_null(row) {
                        0
                    } else {
                        l.value_length(row) as usize
                    }
                })
                .max()
                .unwrap_or(0);
            for j in 0..count {
                rows.push(row as u32);
                for (i, list) in lists.iter().enumerate() {
                    if let Some(l) = list {
                        let start = l.value_offsets()[row] as usize;
                        let n = l.value_length(row) as usize;
                        positions[i].push((!l.is_null(row) && j < n).then_some((start + j) as u32));
                    }
                }
            }
        }
        let row_index = arrow::array::UInt32Array::from(rows.clone());
        let columns = outputs
            .iter()
            .enumerate()
            .map(|(i, a)| match lists[i] {
                Some(l) => {
                    let idx = arrow::array::UInt32Array::from(positions[i].clone());
                    arrow::compute::take(l.values(), &idx, None).map_err(|e| e.to_string())
                }
                None => arrow::compute::take(a, &row_index, None).map_err(|e| e.to_string()),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Output {
            columns,
            rowtime: rows.iter().map(|r| rowtime[*r as usize]).collect(),
            tombstone: rows.iter().map(|r| tombstone[*r as usize]).collect(),
            windows: Vec::new(),
            len: rows.len(),
        })
    }
}

fn empty_output(plan: &QueryPlan) -> Output {
    Output {
        columns: plan
            .projection
            .iter()
            .map(|p| {
                arrow::array::new_empty_array(&brook_planner::types::arrow_type(&p.expr.data_type))
            })
            .collect(),
        rowtime: vec![],
        tombstone: vec![],
        windows: vec![],
        len: 0,
    }
}

fn concat_outputs(parts: Vec<Output>, plan: &QueryPlan) -> Result<Output, String> {
    if parts.is_empty() {
        return Ok(empty_output(plan));
    }
    let columns = (0..plan.projection.len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = parts.iter().map(|p| p.columns[i].as_ref()).collect();
            arrow::compute::concat(&arrays).map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok(Output {
        columns,
        rowtime: parts
            .iter()
            .flat_map(|p| p.rowtime.iter().copied())
            .collect(),
        tombstone: parts
            .iter()
            .flat_map(|p| p.tombstone.iter().copied())
            .collect(),
        windows: Vec::new(),
        len: parts.iter().map(|p| p.len).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_planner::catalog::Catalog;
    use brook_planner::plan::Dataflow;
    use brook_sql::ast::StatementKind;

    fn pipeline(sql: &str) -> Pipeline {
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
        let StatementKind::CreateAsSelect(csas) = &statements[1].kind else {
            panic!("a CREATE STREAM AS SELECT second")
        };
        let (flow, _) = catalog
            .plan_create_as(csas, &statements[1].text)
            .expect("plan");
        let Dataflow::Stateless(plan) = flow else {
            panic!("a stateless query")
        };
        Pipeline::new(plan, &FormatContext::default())
    }

    fn record(offset: i64, value: &str) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value: Some(value.as_bytes().to_vec()),
        }
    }

    /// ksqlDB makes a function call that fails NULL and reports it; the row stays, and
    /// what is around the call still applies (IFNULL here).
    #[test]
    fn a_failed_call_is_null_and_reported_with_its_record() {
        let p = pipeline(
            "CREATE STREAM S (V STRING) WITH (kafka_topic='s', value_format='JSON');
             CREATE STREAM O AS SELECT IFNULL(CAST(PARSE_DATE(V, 'yyyy-MM-dd') AS STRING), 'none') AS D FROM S;",
        );
        for batch in [1, 3] {
            let records: Vec<InputRecord> = [
                r#"{"V":"2022-02-02"}"#,
                r#"{"V":"abcd"}"#,
                r#"{"V":"2020-01-01"}"#,
            ]
            .iter()
            .enumerate()
            .map(|(i, v)| record(i as i64, v))
            .collect();
            let mut errors = Vec::new();
            let mut rows = Vec::new();
            for chunk in records.chunks(batch) {
                let out = p.process(chunk, &mut errors);
                rows.extend((0..out.len).map(|r| out.row(&p.plan.projection, r)));
            }
            assert_eq!(
                rows,
                vec![
                    vec![Value::String("2022-02-02".into())],
                    vec![Value::String("none".into())],
                    vec![Value::String("2020-01-01".into())],
                ],
                "batches of {batch}"
            );
            assert_eq!(errors.len(), 1, "batches of {batch}");
            let RecordError::Processing { message, record } = &errors[0] else {
                panic!("a processing error")
            };
            assert_eq!(record.offset, 1);
            assert!(message.contains("PARSE_DATE"), "{message}");
        }
    }
}
