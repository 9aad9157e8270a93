//! Turning a query's output rows into the records its sink topic receives.

use crate::arrays::value_at;
use crate::formats::{FormatContext, RecordCodec};
use crate::pipeline::{InputRecord, Output, RecordError};
use crate::runtime::OutputRecord;
use brook_planner::catalog::{SourceDef, WindowType};
use brook_planner::plan::Projection;
use brook_planner::value::Value;

pub struct SinkWriter {
    pub topic: String,
    codec: RecordCodec,
    key_columns: Vec<usize>,
    value_columns: Vec<usize>,
    /// The value column (index in `value_columns`) holding the record time, if any.
    timestamp_column: Option<usize>,
    timestamp_format: Option<String>,
    window: Option<WindowType>,
}

/// A windowed key as ksqlDB writes it: the key, then the window start for time windows, or
/// the end and the start for session windows (8 bytes each, big-endian).
pub fn windowed_key(key: Option<Vec<u8>>, kind: WindowType, w: brook_state::WindowKey) -> Vec<u8> {
    let mut out = key.unwrap_or_default();
    if kind == WindowType::Session {
        out.extend_from_slice(&w.end.to_be_bytes());
    }
    out.extend_from_slice(&w.start.to_be_bytes());
    out
}

impl SinkWriter {
    /// What a row that could not be written is reported as: its sink topic, as it has no
    /// input record of its own here.
    fn failed(&self, timestamp: i64) -> Box<InputRecord> {
        Box::new(InputRecord {
            headers: vec![],
            topic: self.topic.clone(),
            partition: -1,
            offset: -1,
            timestamp,
            key: None,
            value: None,
        })
    }

    pub fn new(projection: &[Projection], sink: &SourceDef, formats: &FormatContext) -> Self {
        let n = projection.len();
        let key_columns: Vec<usize> = (0..n).filter(|i| projection[*i].key).collect();
        let value_columns: Vec<usize> = (0..n).filter(|i| !projection[*i].key).collect();
        let timestamp_column = sink.timestamp_column.as_ref().and_then(|ts| {
            value_columns
                .iter()
                .position(|i| &projection[*i].name == ts)
        });
        Self {
            topic: sink.topic.clone(),
            codec: RecordCodec::for_source(sink, formats),
            key_columns,
            value_columns,
            timestamp_column,
            timestamp_format: sink.timestamp_format.clone(),
            window: sink.window.map(|w| w.kind),
        }
    }

    /// Encodes each output row; rows that cannot be written are reported instead.
    pub fn encode(
        &self,
        projection: &[Projection],
        output: &Output,
        errors: &mut Vec<RecordError>,
    ) -> Vec<OutputRecord> {
        let mut out = Vec::with_capacity(output.len);
        let value_arrays: Vec<&dyn arrow::array::Array> = self
            .value_columns
            .iter()
            .map(|i| output.columns[*i].as_ref())
            .collect();
        let writer = self.codec.value.array_writer(&value_arrays);
        let cell =
            |i: usize, row: usize| value_at(&output.columns[i], &projection[i].expr.data_type, row);
        for row in 0..output.len {
            let keys: Vec<Value> = self.key_columns.iter().map(|i| cell(*i, row)).collect();
            let timestamp = match self
                .timestamp_column
                .map(|i| cell(self.value_columns[i], row))
            {
                Some(Value::BigInt(t)) | Some(Value::Timestamp(t)) => t,
                Some(Value::String(text)) => match &self.timestamp_format {
                    Some(pattern) => match brook_planner::functions::temporal::parse_millis(
                        &Value::String(text),
                        &Value::String(pattern.clone()),
                        None,
                    ) {
                        Ok(t) => t,
                        Err(message) => {
                            errors.push(RecordError::Processing {
                                message,
                                record: self.failed(output.rowtime[row]),
                            });
                            continue;
                        }
                    },
                    None => output.rowtime[row],
                },
                _ => output.rowtime[row],
            };
            if timestamp < 0 {
                errors.push(RecordError::Processing {
                    message: format!(
                        "Error writing to topic {}: timestamp {timestamp} is negative",
                        self.topic
                    ),
                    record: self.failed(timestamp),
                });
                continue;
            }
            let window = output.windows.get(row).copied().flatten();
            let encoded = self.codec.key.encode(&keys).and_then(|k| {
                let k = match (self.window, window) {
                    (Some(kind), Some(w)) => Some(windowed_key(k, kind, w)),
                    _ => k,
                };
                if output.tombstone[row] {
                    return Ok((k, None));
                }
                let value = match &writer {
                    Some(writer) => writer.write(row),
                    None => {
                        let vals: Vec<Value> =
                            self.value_columns.iter().map(|i| cell(*i, row)).collect();
                        self.codec.value.encode(&vals)?
                    }
                };
                Ok((k, value))
            });
            match encoded {
                Ok((key, value)) => out.push(OutputRecord {
                    headers: vec![],
                    key,
                    value,
                    timestamp,
                }),
                Err(message) => errors.push(RecordError::Processing {
                    message: format!(
                        "Error serializing message to topic: {}. {message}",
                        self.topic
                    ),
                    record: self.failed(timestamp),
                }),
            }
        }
        out
    }
}
