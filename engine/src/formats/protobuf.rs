//! PROTOBUF (Confluent's wire format: magic byte, schema id, message indexes, payload) and
//! PROTOBUF_NOSR (the payload alone). Schemas follow Kafka Connect's conventions, which
//! ksqlDB uses: a proto3 message per record, `confluent.type.Decimal`, `google.type.Date`,
//! `google.type.TimeOfDay` and `google.protobuf.Timestamp` for those types. proto3 has no
//! NULL for scalars: they are written as their default and read back as it.

use super::{decimal_bytes, decimal_from_bytes};
use crate::schema_registry::{unframe, RegisteredSchema, SchemaRegistry};
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as Pb,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const RECORD: &str = "ConnectDefault1";

const DECIMAL_PROTO: &str = "syntax = \"proto3\"; package confluent.type; message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }";
const DATE_PROTO: &str = "syntax = \"proto3\"; package google.type; message Date { int32 year = 1; int32 month = 2; int32 day = 3; }";
const TIME_PROTO: &str = "syntax = \"proto3\"; package google.type; message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; int32 nanos = 4; }";

/// Resolves the imports ksqlDB's schemas use, from memory.
struct Imports {
    schema: String,
}

impl protox::file::FileResolver for Imports {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        let source = match name {
            "schema.proto" => self.schema.as_str(),
            "confluent/type/decimal.proto" => DECIMAL_PROTO,
            "google/type/date.proto" => DATE_PROTO,
            "google/type/timeofday.proto" => TIME_PROTO,
            other => return protox::file::GoogleFileResolver::new().open_file(other),
        };
        protox::file::File::from_source(name, source)
    }
}

/// Compiles a schema's text; returns its top-level messages in order.
pub fn compile(schema: &str) -> Result<Vec<MessageDescriptor>, String> {
    let mut compiler = protox::Compiler::with_file_resolver(Imports {
        schema: schema.to_string(),
    });
    compiler
        .open_file("schema.proto")
        .map_err(|e| format!("invalid protobuf schema: {e}"))?;
    let pool: DescriptorPool = compiler.descriptor_pool();
    let file = pool
        .files()
        .find(|f| f.name() == "schema.proto")
        .ok_or("invalid protobuf schema: no file")?;
    Ok(file.messages().collect())
}

/// The proto3 text for these columns, as one message.
pub fn schema_text(columns: &[(String, DataType)]) -> String {
    let mut imports = std::collections::BTreeSet::new();
    let body = message(RECORD, columns, &mut imports, 1);
    // Laid out as Confluent's schema printer lays it out (what ksqlDB clients see).
    let imports: String = imports
        .iter()
        .map(|i| format!("import \"{i}\";\n"))
        .chain((!imports.is_empty()).then(|| "\n".to_string()))
        .collect();
    format!("syntax = \"proto3\";\n\n{imports}{body}")
}

fn message(
    name: &str,
    fields: &[(String, DataType)],
    imports: &mut std::collections::BTreeSet<&'static str>,
    depth: usize,
) -> String {
    let mut nested = String::new();
    let mut lines = String::new();
    for (i, (field, t)) in fields.iter().enumerate() {
        let (label, type_name) = match t {
            DataType::Array(inner) => (
                "repeated ",
                field_type(inner, field, imports, &mut nested, depth),
            ),
            other => ("", field_type(other, field, imports, &mut nested, depth)),
        };
        lines.push_str(&format!("  {label}{type_name} {field} = {};\n", i + 1));
    }
    format!("message {name} {{\n{nested}{lines}}}\n")
}

fn field_type(
    t: &DataType,
    field: &str,
    imports: &mut std::collections::BTreeSet<&'static str>,
    nested: &mut String,
    depth: usize,
) -> String {
    match t {
        DataType::Boolean => "bool".into(),
        DataType::Int => "int32".into(),
        DataType::BigInt => "int64".into(),
        DataType::Double => "double".into(),
        DataType::String => "string".into(),
        DataType::Bytes => "bytes".into(),
        DataType::Decimal { .. } => {
            imports.insert("confluent/type/decimal.proto");
            "confluent.type.Decimal".into()
        }
        DataType::Date => {
            imports.insert("google/type/date.proto");
            "google.type.Date".into()
        }
        DataType::Time => {
            imports.insert("google/type/timeofday.proto");
            "google.type.TimeOfDay".into()
        }
        DataType::Timestamp => {
            imports.insert("google/protobuf/timestamp.proto");
            "google.protobuf.Timestamp".into()
        }
        DataType::Map(_, v) => format!(
            "map<string, {}>",
            field_type(v, field, imports, nested, depth)
        ),
        DataType::Struct(fields) => {
            let name = format!(
                "ConnectDefault{}{}",
                depth + 1,
                field.replace(|c: char| !c.is_alphanumeric(), "")
            );
            nested.push_str(&message(&name, fields, imports, depth + 1));
            name
        }
        // Arrays inside arrays or maps have no proto3 form.
        DataType::Array(inner) => field_type(inner, field, imports, nested, depth),
        DataType::Named(n) => n.clone(),
    }
}

pub struct ProtobufCodec {
    descriptor: MessageDescriptor,
    /// `None` for PROTOBUF_NOSR, which writes no framing.
    registered: Option<RegisteredSchema>,
    writers: Mutex<HashMap<u32, MessageDescriptor>>,
    columns: Vec<(String, DataType)>,
}

impl std::fmt::Debug for ProtobufCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProtobufCodec({})", self.descriptor.full_name())
    }
}

impl ProtobufCodec {
    pub fn new(
        registry: Option<Arc<dyn SchemaRegistry>>,
        subject: String,
        columns: Vec<(String, DataType)>,
    ) -> Result<Self, String> {
        let text = schema_text(&columns);
        let descriptor = compile(&text)?
            .into_iter()
            .next()
            .ok_or("no message in the generated schema")?;
        Ok(Self {
            descriptor,
            registered: registry.map(|r| RegisteredSchema::new(r, subject, text, "PROTOBUF")),
            writers: Mutex::new(HashMap::new()),
            columns,
        })
    }

    pub fn encode(&self, values: &[Value]) -> Result<Vec<u8>, String> {
        let mut message = DynamicMessage::new(self.descriptor.clone());
        for ((name, t), v) in self.columns.iter().zip(values) {
            let field = self
                .descriptor
                .get_field_by_name(name)
                .ok_or_else(|| format!("no field {name}"))?;
            if let Some(pb) = to_pb(v, t, &field.kind())? {
                message.set_field(&field, pb);
            }
        }
        let body = message.encode_to_vec();
        match &self.registered {
            // The record is the schema's first message: index list [0], written as one 0.
            Some(schema) => schema.frame(&[&[0u8][..], &body].concat()),
            None => Ok(body),
        }
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>, String> {
        let (descriptor, body) = match &self.registered {
            None => (self.descriptor.clone(), bytes),
            Some(schema) => {
                let (id, rest) = unframe(bytes)?;
                let (indexes, body) = message_indexes(rest)?;
                (self.writer(schema, id, &indexes)?, body)
            }
        };
        let message = DynamicMessage::decode(descriptor.clone(), body)
            .map_err(|e| format!("cannot read protobuf: {e}"))?;
        self.columns
            .iter()
            .map(|(name, t)| {
                let field = descriptor.get_field_by_name(name).or_else(|| {
                    descriptor
                        .fields()
                        .find(|f| f.name().eq_ignore_ascii_case(name))
                });
                match field {
                    Some(f)
                        if matches!(f.kind(), Kind::Message(_))
                            && !f.is_list()
                            && !f.is_map()
                            && !message.has_field(&f) =>
                    {
                        Ok(Value::Null)
                    }
                    Some(f) => from_pb(&message.get_field(&f), t),
                    None => Ok(Value::Null),
                }
            })
            .collect()
    }

    fn writer(
        &self,
        schema: &RegisteredSchema,
        id: u32,
        indexes: &[usize],
    ) -> Result<MessageDescriptor, String> {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = writers.get(&id) {
            return Ok(d.clone());
        }
        let text = schema.registry().schema(id)?;
        let messages = compile(&text)?;
        let mut d = messages
            .get(indexes.first().copied().unwrap_or(0))
            .cloned()
            .ok_or_else(|| format!("schema {id} has no message {indexes:?}"))?;
        for i in indexes.iter().skip(1) {
            let child = d.child_messages().nth(*i);
            d = child.ok_or_else(|| format!("schema {id} has no message {indexes:?}"))?;
        }
        writers.insert(id, d.clone());
        Ok(d)
    }
}

/// Confluent's message-index list: a zigzag varint count, then that many indexes; a count
/// of zero means the first message.
fn message_indexes(bytes: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    // A zigzag varint and how many bytes it took; prost refuses one longer than ten bytes.
    fn varint(b: &[u8]) -> Result<(i64, usize), String> {
        let mut rest = b;
        let v = prost::encoding::decode_varint(&mut rest)
            .map_err(|e| format!("bad message indexes: {e}"))?;
        Ok((((v >> 1) as i64) ^ -((v & 1) as i64), b.len() - rest.len()))
    }
    let (count, mut at) = varint(bytes)?;
    if count == 0 {
        return Ok((vec![0], &bytes[at..]));
    }
    if count < 0 {
        return Err(format!("bad message indexes: a count of {count}"));
    }
    // Every index takes a byte at least, so the count cannot ask for more than the bytes
    // hold.
    let mut out = Vec::new();
    for _ in 0..count {
        let (i, n) = varint(&bytes[at..])?;
        let index = usize::try_from(i).map_err(|_| format!("bad message index {i}"))?;
        out.push(index);
        at += n;
    }
    Ok((out, &bytes[at..]))
}

fn to_pb(v: &Value, t: &DataType, kind: &Kind) -> Result<Option<Pb>, String> {
    Ok(Some(match (v, t) {
        (Value::Null, _) => return Ok(None),
        (Value::Boolean(b), _) => Pb::Bool(*b),
        (Value::Int(i), _) => Pb::I32(*i),
        (Value::BigInt(i), _) => Pb::I64(*i),
        (Value::Double(d), _) => Pb::F64(*d),
        (Value::String(s), _) => Pb::String(s.clone()),
        (Value::Bytes(b), _) => Pb::Bytes(bytes::Bytes::from(b.clone())),
        (Value::Decimal(u, s), DataType::Decimal { precision, .. }) => {
            let Kind::Message(d) = kind else {
                return Err("DECIMAL needs a message field".into());
            };
            let mut m = DynamicMessage::new(d.clone());
            m.set_field_by_name("value", Pb::Bytes(bytes::Bytes::from(decimal_bytes(*u))));
            m.set_field_by_name("precision", Pb::U32(*precision as u32));
            m.set_field_by_name("scale", Pb::I32(*s as i32));
            Pb::Message(m)
        }
        (Value::Date(days), _) => {
            let Kind::Message(d) = kind else {
                return Err("DATE needs a message field".into());
            };
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::Duration::days(*days as i64)))
                .ok_or("date out of range")?;
            let mut m = DynamicMessage::new(d.clone());
            use chrono::Datelike;
            m.set_field_by_name("year", Pb::I32(date.year()));
            m.set_field_by_name("month", Pb::I32(date.month() as i32));
            m.set_field_by_name("day", Pb::I32(date.day() as i32));
            Pb::Message(m)
        }
        (Value::Time(ms), _) => {
            let Kind::Message(d) = kind else {
                return Err("TIME needs a message field".into());
            };
            let mut m = DynamicMessage::new(d.clone());
            m.set_field_by_name("hours", Pb::I32(ms / 3_600_000));
            m.set_field_by_name("minutes", Pb::I32(ms / 60_000 % 60));
            m.set_field_by_name("seconds", Pb::I32(ms / 1000 % 60));
            m.set_field_by_name("nanos", Pb::I32(ms % 1000 * 1_000_000));
            Pb::Message(m)
        }
        (Value::Timestamp(ms), _) => {
            let Kind::Message(d) = kind else {
                return Err("TIMESTAMP needs a message field".into());
            };
            let mut m = DynamicMessage::new(d.clone());
            m.set_field_by_name("seconds", Pb::I64(ms.div_euclid(1000)));
            m.set_field_by_name("nanos", Pb::I32((ms.rem_euclid(1000) * 1_000_000) as i32));
            Pb::Message(m)
        }
        (Value::Array(items), DataType::Array(inner)) => Pb::List(
            items
                .iter()
                .map(|i| Ok(to_pb(i, inner, kind)?.unwrap_or_else(|| default_of(kind))))
                .collect::<Result<_, String>>()?,
        ),
        (Value::Map(entries), DataType::Map(_, vt)) => {
            let Kind::Message(entry) = kind else {
                return Err("MAP needs a map field".into());
            };
            let value_kind = entry.map_entry_value_field().kind();
            Pb::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key =
                            MapKey::String(brook_planner::value::display(k).unwrap_or_default());
                        Ok((
                            key,
                            to_pb(v, vt, &value_kind)?.unwrap_or_else(|| default_of(&value_kind)),
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        (Value::Struct(fields), DataType::Struct(types)) => {
            let Kind::Message(d) = kind else {
                return Err("STRUCT needs a message field".into());
            };
            let mut m = DynamicMessage::new(d.clone());
            for ((name, v), (_, ft)) in fields.iter().zip(types) {
                if let Some(f) = d.get_field_by_name(name) {
                    if let Some(pb) = to_pb(v, ft, &f.kind())? {
                        m.set_field(&f, pb);
                    }
                }
            }
            Pb::Message(m)
        }
        (other, t) => return Err(format!("cannot write {other:?} as {t} in protobuf")),
    }))
}

fn default_of(kind: &Kind) -> Pb {
    Pb::default_value(kind)
}

fn from_pb(v: &Pb, t: &DataType) -> Result<Value, String> {
    let mismatch = || format!("cannot read protobuf {v:?} as {t}");
    let int = |v: &Pb| -> Option<i64> {
        Some(match v {
            Pb::I32(i) => *i as i64,
            Pb::I64(i) => *i,
            Pb::U32(i) => *i as i64,
            Pb::U64(i) => *i as i64,
            Pb::EnumNumber(i) => *i as i64,
            _ => return None,
        })
    };
    let field = |m: &DynamicMessage, name: &str| {
        m.get_field_by_name(name).and_then(|v| int(&v)).unwrap_or(0)
    };
    Ok(match (t, v) {
        (DataType::Boolean, Pb::Bool(b)) => Value::Boolean(*b),
        (DataType::Int, v) => Value::Int(int(v).ok_or_else(mismatch)? as i32),
        (DataType::BigInt, v) => Value::BigInt(int(v).ok_or_else(mismatch)?),
        (DataType::Double, Pb::F64(d)) => Value::Double(*d),
        (DataType::Double, Pb::F32(d)) => Value::Double(*d as f64),
        (DataType::String, Pb::String(s)) => Value::String(s.clone()),
        (DataType::String, Pb::EnumNumber(n)) => Value::String(n.to_string()),
        (DataType::Bytes, Pb::Bytes(b)) => Value::Bytes(b.to_vec()),
        (DataType::Decimal { scale, .. }, Pb::Message(m)) => {
            let bytes = match m.get_field_by_name("value").as_deref() {
                Some(Pb::Bytes(b)) => b.to_vec(),
                _ => vec![],
            };
            Value::Decimal(decimal_from_bytes(&bytes), *scale)
        }
        (DataType::Date, Pb::Message(m)) => {
            let date = chrono::NaiveDate::from_ymd_opt(
                field(m, "year") as i32,
                field(m, "month") as u32,
                field(m, "day") as u32,
            )
            .ok_or("invalid date")?;
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("no epoch")?;
            Value::Date((date - epoch).num_days() as i32)
        }
        (DataType::Time, Pb::Message(m)) => Value::Time(
            (field(m, "hours") * 3_600_000
                + field(m, "minutes") * 60_000
                + field(m, "seconds") * 1000
                + field(m, "nanos") / 1_000_000) as i32,
        ),
        (DataType::Timestamp, Pb::Message(m)) => {
            Value::Timestamp(field(m, "seconds") * 1000 + field(m, "nanos") / 1_000_000)
        }
        (DataType::Array(inner), Pb::List(items)) => Value::Array(
            items
                .iter()
                .map(|i| from_pb(i, inner))
                .collect::<Result<_, _>>()?,
        ),
        (DataType::Map(k, vt), Pb::Map(entries)) => {
            let mut out: Vec<(Value, Value)> = entries
                .iter()
                .map(|(key, val)| {
                    let key = match key {
                        MapKey::String(s) => s.clone(),
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(i) => i.to_string(),
                        MapKey::I64(i) => i.to_string(),
                        MapKey::U32(i) => i.to_string(),
                        MapKey::U64(i) => i.to_string(),
                    };
                    Ok((crate::formats::parse_text(&key, k)?, from_pb(val, vt)?))
                })
                .collect::<Result<_, String>>()?;
            out.sort_by(|a, b| {
                brook_planner::value::compare_values(&a.0, &b.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            Value::Map(out)
        }
        (DataType::Struct(types), Pb::Message(m)) => Value::Struct(
            types
                .iter()
                .map(|(n, ft)| {
                    let d = m.descriptor();
                    let f = d
                        .get_field_by_name(n)
                        .or_else(|| d.fields().find(|f| f.name().eq_ignore_ascii_case(n)));
                    let v = match f {
                        Some(f)
                            if matches!(f.kind(), Kind::Message(_))
                                && !f.is_list()
                                && !f.is_map()
                                && !m.has_field(&f) =>
                        {
                            Value::Null
                        }
                        Some(f) => from_pb(&m.get_field(&f), ft)?,
                        None => Value::Null,
                    };
                    Ok((n.clone(), v))
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(mismatch()),
    })
}

/// The columns of a schema's first message, for schema inference.
pub fn columns_of(schema: &str) -> Result<Vec<(String, DataType)>, String> {
    let message = compile(schema)?
        .into_iter()
        .next()
        .ok_or("the schema has no message")?;
    message
        .fields()
        .map(|f| Ok((f.name().to_string(), field_data_type(&f)?)))
        .collect()
}

fn field_data_type(f: &prost_reflect::FieldDescriptor) -> Result<DataType, String> {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            return Err("bad map".into());
        };
        return Ok(DataType::Map(
            Box::new(DataType::String),
            Box::new(kind_type(&entry.map_entry_value_field().kind())?),
        ));
    }
    let t = kind_type(&f.kind())?;
    Ok(if f.is_list() {
        DataType::Array(Box::new(t))
    } else {
        t
    })
}

fn kind_type(kind: &Kind) -> Result<DataType, String> {
    Ok(match kind {
        Kind::Bool => DataType::Boolean,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => DataType::Int,
        Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => DataType::BigInt,
        Kind::Double | Kind::Float => DataType::Double,
        Kind::String | Kind::Enum(_) => DataType::String,
        Kind::Bytes => DataType::Bytes,
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => DataType::Timestamp,
            "google.type.Date" => DataType::Date,
            "google.type.TimeOfDay" => DataType::Time,
            "confluent.type.Decimal" => DataType::Decimal {
                precision: 38,
                scale: 0,
            },
            _ => DataType::Struct(
                m.fields()
                    .map(|f| Ok((f.name().to_string(), field_data_type(&f)?)))
                    .collect::<Result<_, String>>()?,
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_indexes_past_ten_bytes_or_negative_are_errors() {
        // Found by fuzz_avro_and_protobuf_decoders: a varint of 11 bytes shifted past 64
        // bits and panicked.
        let long = [
            0x80u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ];
        assert!(super::message_indexes(&long).is_err());
        assert!(super::message_indexes(&[0x01]).is_err(), "a count of -1");
        assert!(
            super::message_indexes(&[0x02, 0x01]).is_err(),
            "an index of -1"
        );
        assert_eq!(
            super::message_indexes(&[0x02, 0x04, 9]),
            Ok((vec![2], &[9u8][..]))
        );
        assert_eq!(super::message_indexes(&[0x00]), Ok((vec![0], &[][..])));
    }

    use super::*;
    use crate::schema_registry::MemoryRegistry;

    #[test]
    fn records_round_trip_with_and_without_the_registry() {
        let columns = vec![
            ("ID".to_string(), DataType::BigInt),
            ("NAME".to_string(), DataType::String),
            (
                "PRICE".to_string(),
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            ("TAGS".to_string(), DataType::Array(Box::new(DataType::Int))),
            (
                "M".to_string(),
                DataType::Map(Box::new(DataType::String), Box::new(DataType::Double)),
            ),
            (
                "ADDR".to_string(),
                DataType::Struct(vec![("CITY".into(), DataType::String)]),
            ),
            ("TS".to_string(), DataType::Timestamp),
            ("D".to_string(), DataType::Date),
        ];
        let row = vec![
            Value::BigInt(7),
            Value::String("x".into()),
            Value::Decimal(-12345, 2),
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Map(vec![(Value::String("k".into()), Value::Double(1.5))]),
            Value::Struct(vec![("CITY".into(), Value::String("Oslo".into()))]),
            Value::Timestamp(1_526_075_913_123),
            Value::Date(17662),
        ];
        let registry: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let framed = ProtobufCodec::new(Some(registry), "t-value".into(), columns.clone()).unwrap();
        let bytes = framed.encode(&row).unwrap();
        assert_eq!(&bytes[..6], &[0, 0, 0, 0, 1, 0]);
        assert_eq!(framed.decode(&bytes).unwrap(), row);
        let bare = ProtobufCodec::new(None, "t-value".into(), columns.clone()).unwrap();
        assert_eq!(bare.decode(&bare.encode(&row).unwrap()).unwrap(), row);
        // proto3 scalars have no NULL: they read back as their defaults.
        let nulls = vec![Value::Null; columns.len()];
        let read = bare.decode(&bare.encode(&nulls).unwrap()).unwrap();
        assert_eq!(read[0], Value::BigInt(0));
        assert_eq!(read[5], Value::Null);
        assert_eq!(
            columns_of(&schema_text(&columns)).unwrap()[..2],
            columns[..2]
        );
    }
}
