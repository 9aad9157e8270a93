//! Serialization formats: a source's key or value bytes to and from column values.

mod avro;
mod delimited;
pub mod inference;
pub(crate) mod json;
pub mod json_schema;
pub mod protobuf;

pub(crate) use json::RawField;
pub use json::{from_json as json_to_value, to_json as value_to_json};
mod kafka;

use crate::batch::Cell;
use crate::schema_registry::{unframe, RegisteredSchema, SchemaRegistry};
use arrow::array::Array;
use avro::AvroCodec;
use brook_planner::catalog::{ColumnRole, SourceDef};
use std::borrow::Cow;
use std::sync::Arc;

/// What codecs need beyond a source's definition.
#[derive(Clone, Default)]
pub struct FormatContext {
    /// For schema-registry formats; without one they cannot be read or written.
    pub registry: Option<Arc<dyn SchemaRegistry>>,
}
use brook_planner::formats::{Format, FormatKind};
use brook_planner::value::Value;
use brook_sql::ast::DataType;

/// Reads and writes the columns one side (key or value) of a record holds.
#[derive(Debug, Clone)]
pub struct ColumnsCodec {
    format: Format,
    columns: Vec<(String, DataType)>,
    /// A single column written on its own rather than inside a record/object.
    unwrapped: bool,
    is_key: bool,
    /// The AVRO codec, or why there is none.
    avro: Option<Result<Arc<AvroCodec>, String>>,
    /// JSON_SR's registered schema, or why there is none.
    json_schema: Option<Result<Arc<RegisteredSchema>, String>>,
    /// The PROTOBUF or PROTOBUF_NOSR codec, or why there is none.
    protobuf: Option<Result<Arc<protobuf::ProtobufCodec>, String>>,
    /// Whether no two column names are equal ignoring case.
    distinct_names: bool,
}

impl ColumnsCodec {
    /// `subject` is the schema-registry subject (`<topic>-key` or `<topic>-value`).
    pub fn new(
        format: Format,
        columns: Vec<(String, DataType)>,
        is_key: bool,
        subject: String,
        context: &FormatContext,
    ) -> Self {
        let unwrapped = columns.len() == 1 && (is_key || !format.wrap_single_value);
        let no_registry = || {
            format!(
                "the {} format needs a schema registry (ksql.schema.registry.url)",
                format.kind
            )
        };
        let registry = context.registry.as_ref().ok_or_else(no_registry);
        let avro = (format.kind == FormatKind::Avro && !columns.is_empty()).then(|| {
            registry.clone().and_then(|r| {
                AvroCodec::new(
                    r.clone(),
                    subject.clone(),
                    columns.clone(),
                    unwrapped,
                    format.avro_full_name.as_deref(),
                )
                .map(Arc::new)
            })
        });
        let json_schema = (format.kind == FormatKind::JsonSr && !columns.is_empty()).then(|| {
            registry.clone().map(|r| {
                let text = json_schema::schema_for(&columns, unwrapped).to_string();
                Arc::new(RegisteredSchema::new(
                    r.clone(),
                    subject.clone(),
                    text,
                    "JSON",
                ))
            })
        });
        let protobuf = match format.kind {
            FormatKind::Protobuf if !columns.is_empty() => Some(registry.clone().and_then(|r| {
                protobuf::ProtobufCodec::new(Some(r.clone()), subject.clone(), columns.clone())
                    .map(Arc::new)
            })),
            FormatKind::ProtobufNoSr if !columns.is_empty() => Some(
                protobuf::ProtobufCodec::new(None, subject.clone(), columns.clone()).map(Arc::new),
            ),
            _ => None,
        };
        let distinct_names = {
            let mut lower: Vec<String> = columns
                .iter()
                .map(|(n, _)| n.to_ascii_lowercase())
                .collect();
            lower.sort();
            lower.windows(2).all(|w| w[0] != w[1])
        };
        Self {
            format,
            columns,
            unwrapped,
            distinct_names,
            is_key,
            avro,
            json_schema,
            protobuf,
        }
    }

    fn protobuf(&self) -> Result<&protobuf::ProtobufCodec, String> {
        match &self.protobuf {
            Some(Ok(codec)) => Ok(codec),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no PROTOBUF codec".into()),
        }
    }

    fn avro(&self) -> Result<&AvroCodec, String> {
        match &self.avro {
            Some(Ok(codec)) => Ok(codec),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no AVRO codec".into()),
        }
    }

    pub fn columns(&self) -> &[(String, DataType)] {
        &self.columns
    }

    /// Whether a single column is written on its own rather than as a record.
    pub fn is_unwrapped(&self) -> bool {
        self.unwrapped
    }

    /// Decodes bytes into one value per column. Absent bytes are all NULLs.
    pub fn decode(&self, bytes: Option<&[u8]>) -> Result<Vec<Value>, String> {
        if self.columns.is_empty() {
            return Ok(vec![]);
        }
        let Some(bytes) = bytes else {
            return Ok(vec![Value::Null; self.columns.len()]);
        };
        match self.format.kind {
            FormatKind::Json => json::decode(bytes, &self.columns, self.unwrapped),
            FormatKind::Delimited => delimited::decode(bytes, &self.columns, self.format.delimiter),
            FormatKind::Kafka => Ok(vec![kafka::decode(bytes, &self.columns[0].1)?]),
            FormatKind::None => Ok(vec![]),
            FormatKind::Avro => self.avro()?.decode(bytes),
            FormatKind::JsonSr => json::decode(unframe(bytes)?.1, &self.columns, self.unwrapped),
            FormatKind::Protobuf | FormatKind::ProtobufNoSr => self.protobuf()?.decode(bytes),
        }
    }

    /// Decodes bytes straight into one cell per column, borrowing text from them, where
    /// the format has such a path (JSON objects, KAFKA strings); `None` means the record needs
    /// [`Self::decode`], which reads it or says why it cannot.
    pub(crate) fn decode_cells<'a>(
        &self,
        bytes: Option<&'a [u8]>,
        scratch: &mut Vec<json::RawField<'a>>,
        cells: &mut Vec<Cell<'a>>,
    ) -> Option<()> {
        cells.clear();
        let json = match self.format.kind {
            FormatKind::Json => true,
            FormatKind::JsonSr => false,
            // Text is borrowed as it is.
            FormatKind::Kafka
                if self.columns.len() == 1 && self.columns[0].1 == DataType::String =>
            {
                cells.push(match bytes {
                    Some(b) => Cell::Str(Cow::Borrowed(std::str::from_utf8(b).ok()?)),
                    None => Cell::Null,
                });
                return Some(());
            }
            _ => return None,
        };
        if self.unwrapped || self.columns.is_empty() {
            return None;
        }
        let Some(bytes) = bytes else {
            cells.resize(self.columns.len(), Cell::Null);
            return Some(());
        };
        let bytes = if json { bytes } else { unframe(bytes).ok()?.1 };
        json::raw_fields(bytes, &self.columns, self.distinct_names, scratch)?;
        for (field, (_, t)) in scratch.iter().zip(&self.columns) {
            cells.push(json::raw_cell(field, t)?);
        }
        Some(())
    }

    /// A writer of rows straight from a batch's arrays (one per column), where the format
    /// has one (JSON); `None` means [`Self::encode`] per row.
    pub fn array_writer<'a>(&'a self, arrays: &[&'a dyn Array]) -> Option<json::ArrayWriter<'a>> {
        (self.format.kind == FormatKind::Json && !self.columns.is_empty())
            .then(|| json::ArrayWriter::new(&self.columns, arrays, self.unwrapped))
    }

    /// Encodes one value per column; no columns (or all-NULL single columns) give no bytes.
    pub fn encode(&self, values: &[Value]) -> Result<Option<Vec<u8>>, String> {
        if self.columns.is_empty() {
            return Ok(None);
        }
        if self.unwrapped && values[0].is_null() && self.format.kind != FormatKind::Delimited {
            return Ok(None);
        }
        // DELIMITED has no way to write a key of NULLs but to write no key; a PROTOBUF key
        // of NULLs comes from a record without a key (proto3 reads absent fields as their
        // defaults, never as NULL), and goes on without one.
        if self.is_key
            && matches!(
                self.format.kind,
                FormatKind::Delimited | FormatKind::Protobuf | FormatKind::ProtobufNoSr
            )
            && values.iter().all(Value::is_null)
        {
            return Ok(None);
        }
        self.encode_record(values)
    }

    /// Encodes values as a record of the format even when they are all NULL: a record
    /// whose fields are NULL, not an absent key or value.
    pub fn encode_record(&self, values: &[Value]) -> Result<Option<Vec<u8>>, String> {
        if self.columns.is_empty() {
            return Ok(None);
        }
        match self.format.kind {
            FormatKind::Json => json::encode(values, &self.columns, self.unwrapped).map(Some),
            FormatKind::Delimited => delimited::encode(values, self.format.delimiter).map(Some),
            FormatKind::Kafka => kafka::encode(&values[0]),
            FormatKind::None => Ok(None),
            FormatKind::Avro => self.avro()?.encode(values).map(Some),
            FormatKind::Protobuf | FormatKind::ProtobufNoSr => {
                self.protobuf()?.encode(values).map(Some)
            }
            FormatKind::JsonSr => {
                let body = json::encode(values, &self.columns, self.unwrapped)?;
                match &self.json_schema {
                    Some(Ok(schema)) => schema.frame(&body).map(Some),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("no JSON schema".into()),
                }
            }
        }
    }
}

/// The key and value codecs of a source.
#[derive(Debug, Clone)]
pub struct RecordCodec {
    pub key: ColumnsCodec,
    pub value: ColumnsCodec,
}

impl RecordCodec {
    pub fn for_source(source: &SourceDef, context: &FormatContext) -> Self {
        let cols = |role: ColumnRole| {
            source
                .columns
                .iter()
                .filter(|c| c.role == role)
                .map(|c| (c.name.clone(), c.data_type.clone()))
                .collect::<Vec<_>>()
        };
        Self {
            key: ColumnsCodec::new(
                source.key_format.clone(),
                cols(ColumnRole::Key),
                true,
                format!("{}-key", source.topic),
                context,
            ),
            value: ColumnsCodec::new(
                source.value_format.clone(),
                cols(ColumnRole::Value),
                false,
                format!("{}-value", source.topic),
                context,
            ),
        }
    }
}

/// Rewrites the records of a source as JSON, for what reads them outside SQL (a sink
/// connector's request bodies): a side in AVRO, PROTOBUF, JSON_SR, DELIMITED or a binary
/// KAFKA type is decoded with the source's codec and written with a JSON one of the same
/// columns; a JSON side, or a single KAFKA STRING, is JSON or text already and is left as
/// it is.
#[derive(Debug, Clone)]
pub struct JsonRewriter {
    key: Option<(ColumnsCodec, ColumnsCodec)>,
    value: Option<(ColumnsCodec, ColumnsCodec)>,
}

impl JsonRewriter {
    pub fn for_source(source: &SourceDef, context: &FormatContext) -> Self {
        let codec = RecordCodec::for_source(source, context);
        let side = |codec: ColumnsCodec, is_key: bool| {
            let text = match codec.format.kind {
                FormatKind::Json | FormatKind::None => true,
                FormatKind::Kafka => {
                    codec.columns.len() == 1 && codec.columns[0].1 == DataType::String
                }
                _ => false,
            };
            if text {
                return None;
            }
            let json = ColumnsCodec::new(
                Format {
                    wrap_single_value: codec.format.wrap_single_value,
                    ..Format::new(FormatKind::Json)
                },
                codec.columns.clone(),
                is_key,
                String::new(),
                &FormatContext::default(),
            );
            Some((codec, json))
        };
        Self {
            key: side(codec.key, true),
            value: side(codec.value, false),
        }
    }

    /// Whether it changes anything.
    pub fn rewrites(&self) -> bool {
        self.key.is_some() || self.value.is_some()
    }

    pub fn key(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        Self::rewrite(&self.key, bytes)
    }

    pub fn value(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        Self::rewrite(&self.value, bytes)
    }

    fn rewrite(
        side: &Option<(ColumnsCodec, ColumnsCodec)>,
        bytes: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, String> {
        match (side, bytes) {
            (Some((source, json)), Some(bytes)) => json.encode(&source.decode(Some(bytes))?),
            (_, bytes) => Ok(bytes.map(<[u8]>::to_vec)),
        }
    }
}

/// Reads text as a value of a scalar type, as the text formats do.
pub(crate) fn parse_text(text: &str, t: &DataType) -> Result<Value, String> {
    let bad = || format!("cannot read '{text}' as {t}");
    let trimmed = text.trim();
    Ok(match t {
        DataType::String => Value::String(text.to_string()),
        DataType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(bad()),
        },
        DataType::Int => Value::Int(trimmed.parse().map_err(|_| bad())?),
        DataType::BigInt => Value::BigInt(trimmed.parse().map_err(|_| bad())?),
        DataType::Double => Value::Double(trimmed.parse().map_err(|_| bad())?),
        DataType::Decimal { precision, scale } => {
            let unscaled = brook_planner::value::parse_decimal(trimmed, *scale).ok_or_else(bad)?;
            check_precision(unscaled, *precision)?;
            Value::Decimal(unscaled, *scale)
        }
        DataType::Bytes => {
            use base64::Engine;
            Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(trimmed)
                    .map_err(|_| bad())?,
            )
        }
        DataType::Date => Value::Date(trimmed.parse().map_err(|_| bad())?),
        DataType::Time => Value::Time(trimmed.parse().map_err(|_| bad())?),
        DataType::Timestamp => Value::Timestamp(trimmed.parse().map_err(|_| bad())?),
        _ => return Err(format!("type {t} cannot be read from text")),
    })
}

pub(crate) fn check_precision(unscaled: i128, precision: u8) -> Result<(), String> {
    if unscaled.unsigned_abs() >= 10u128.pow(precision as u32) {
        return Err(format!("decimal value does not fit precision {precision}"));
    }
    Ok(())
}

/// Writes a scalar value as the text formats do.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    use base64::Engine;
    Some(match v {
        Value::Null => return None,
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Double(d) => brook_planner::value::format_double(*d),
        Value::Decimal(u, s) => brook_planner::value::format_decimal(*u, *s),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::Date(d) => d.to_string(),
        Value::Time(t) => t.to_string(),
        Value::Timestamp(t) => t.to_string(),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => return None,
    })
}

/// A decimal's unscaled value as the shortest big-endian two's complement bytes, as Avro's
/// and Connect's decimals hold it.
pub(crate) fn decimal_bytes(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// The unscaled value big-endian two's complement bytes hold.
pub(crate) fn decimal_from_bytes(b: &[u8]) -> i128 {
    let negative = b.first().is_some_and(|x| x & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 16];
    let n = b.len().min(16);
    full[16 - n..].copy_from_slice(&b[b.len() - n..]);
    i128::from_be_bytes(full)
}
