//! The AVRO format with Confluent's wire format: a zero byte, the writer schema's id in the
//! registry (four bytes, big-endian), then the Avro binary datum. Schemas follow ksqlDB's
//! conventions: a record `KsqlDataSourceSchema` whose fields are nullable unions.

use super::{decimal_bytes, decimal_from_bytes as from_be_bytes};
use crate::schema_registry::{unframe, RegisteredSchema, SchemaRegistry};
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct AvroCodec {
    schema: Schema,
    registered: RegisteredSchema,
    /// Writer schemas read so far, by id.
    writers: Mutex<HashMap<u32, Schema>>,
    columns: Vec<(String, DataType)>,
    unwrapped: bool,
}

impl std::fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AvroCodec({})", self.registered.text)
    }
}

impl AvroCodec {
    pub fn new(
        registry: Arc<dyn SchemaRegistry>,
        subject: String,
        columns: Vec<(String, DataType)>,
        unwrapped: bool,
        full_name: Option<&str>,
    ) -> Result<Self, String> {
        // `com.mycompany.MySchema` names the record MySchema in namespace com.mycompany.
        let (namespace, name) = match full_name {
            Some(full) => match full.rsplit_once('.') {
                Some((namespace, name)) => (Some(namespace), name),
                None => (None, full),
            },
            None => (Some(NAMESPACE), "KsqlDataSourceSchema"),
        };
        let json = if unwrapped {
            nullable(avro_type(&columns[0].1, name))
        } else {
            record(name, namespace, &columns)
        };
        let schema_text = json.to_string();
        let schema =
            Schema::parse_str(&schema_text).map_err(|e| format!("invalid Avro schema: {e}"))?;
        Ok(Self {
            schema,
            registered: RegisteredSchema::new(registry, subject, schema_text, "AVRO"),
            writers: Mutex::new(HashMap::new()),
            columns,
            unwrapped,
        })
    }

    pub fn encode(&self, values: &[Value]) -> Result<Vec<u8>, String> {
        let datum = if self.unwrapped {
            to_avro(&values[0], &self.columns[0].1)
        } else {
            Avro::Record(
                self.columns
                    .iter()
                    .zip(values)
                    .map(|((name, t), v)| (name.clone(), to_avro(v, t)))
                    .collect(),
            )
        };
        let body = apache_avro::to_avro_datum(&self.schema, datum)
            .map_err(|e| format!("cannot write Avro: {e}"))?;
        self.registered.frame(&body)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>, String> {
        let (id, body) = unframe(bytes)?;
        let writer = {
            let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            match writers.get(&id) {
                Some(s) => s.clone(),
                None => {
                    let text = self.registered.registry().schema(id)?;
                    let s = Schema::parse_str(&text)
                        .map_err(|e| format!("invalid Avro schema {id}: {e}"))?;
                    writers.insert(id, s.clone());
                    s
                }
            }
        };
        let mut reader = body;
        let datum = apache_avro::from_avro_datum(&writer, &mut reader, None)
            .map_err(|e| format!("cannot read Avro: {e}"))?;
        if self.unwrapped {
            return Ok(vec![from_avro(&datum, &self.columns[0].1)?]);
        }
        let Avro::Record(fields) = unwrap_union(&datum) else {
            return Err(format!("expected an Avro record, got {datum:?}"));
        };
        self.columns
            .iter()
            .map(|(name, t)| match field(fields, name) {
                Some(v) => from_avro(v, t),
                None => Ok(Value::Null),
            })
            .collect()
    }
}

fn field<'a>(fields: &'a [(String, Avro)], name: &str) -> Option<&'a Avro> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
}

fn nullable(t: Json) -> Json {
    json!(["null", t])
}

/// The namespace of the records ksqlDB registers.
const NAMESPACE: &str = "io.confluent.ksql.avro_schemas";

fn record(name: &str, namespace: Option<&str>, columns: &[(String, DataType)]) -> Json {
    let fields: Vec<Json> = columns
        .iter()
        .map(|(n, t)| json!({"name": n, "type": nullable(avro_type(t, &format!("{name}_{n}"))), "default": null}))
        .collect();
    match namespace {
        Some(namespace) => {
            json!({"type": "record", "name": name, "namespace": namespace, "fields": fields})
        }
        None => json!({"type": "record", "name": name, "fields": fields}),
    }
}

/// The Avro schema of a ksqlDB type; `name` names nested records uniquely.
fn avro_type(t: &DataType, name: &str) -> Json {
    match t {
        DataType::Boolean => json!("boolean"),
        DataType::Int => json!("int"),
        DataType::BigInt => json!("long"),
        DataType::Double => json!("double"),
        DataType::String => json!("string"),
        DataType::Bytes => json!("bytes"),
        DataType::Decimal { precision, scale } => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
        }
        DataType::Date => json!({"type": "int", "logicalType": "date"}),
        DataType::Time => json!({"type": "int", "logicalType": "time-millis"}),
        DataType::Timestamp => json!({"type": "long", "logicalType": "timestamp-millis"}),
        DataType::Array(inner) => {
            json!({"type": "array", "items": nullable(avro_type(inner, name))})
        }
        DataType::Map(_, v) => {
            json!({"type": "map", "values": nullable(avro_type(v, &format!("{name}_MapValue")))})
        }
        DataType::Struct(fields) => record(name, Some(NAMESPACE), fields),
        DataType::Named(_) => json!("null"),
    }
}

fn some(v: Avro) -> Avro {
    Avro::Union(1, Box::new(v))
}

fn to_avro(v: &Value, t: &DataType) -> Avro {
    let inner = match (v, t) {
        (Value::Null, _) => return Avro::Union(0, Box::new(Avro::Null)),
        (Value::Boolean(b), _) => Avro::Boolean(*b),
        (Value::Int(i), _) => Avro::Int(*i),
        (Value::BigInt(i), _) => Avro::Long(*i),
        (Value::Double(d), _) => Avro::Double(*d),
        (Value::String(s), _) => Avro::String(s.clone()),
        (Value::Bytes(b), _) => Avro::Bytes(b.clone()),
        (Value::Decimal(u, _), _) => Avro::Decimal(apache_avro::Decimal::from(decimal_bytes(*u))),
        (Value::Date(d), _) => Avro::Date(*d),
        (Value::Time(ms), _) => Avro::TimeMillis(*ms),
        (Value::Timestamp(ms), _) => Avro::TimestampMillis(*ms),
        (Value::Array(items), DataType::Array(inner)) => {
            Avro::Array(items.iter().map(|i| to_avro(i, inner)).collect())
        }
        (Value::Map(entries), DataType::Map(_, vt)) => Avro::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        brook_planner::value::display(k).unwrap_or_default(),
                        to_avro(v, vt),
                    )
                })
                .collect(),
        ),
        (Value::Struct(fields), DataType::Struct(types)) => Avro::Record(
            fields
                .iter()
                .zip(types)
                .map(|((n, v), (_, ft))| (n.clone(), to_avro(v, ft)))
                .collect(),
        ),
        _ => return Avro::Union(0, Box::new(Avro::Null)),
    };
    some(inner)
}

fn unwrap_union(v: &Avro) -> &Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn from_avro(v: &Avro, t: &DataType) -> Result<Value, String> {
    let v = unwrap_union(v);
    let mismatch = || format!("cannot read Avro {v:?} as {t}");
    Ok(match (v, t) {
        (Avro::Null, _) => Value::Null,
        (Avro::Boolean(b), DataType::Boolean) => Value::Boolean(*b),
        (Avro::Int(i), DataType::Int) => Value::Int(*i),
        (Avro::Int(i), DataType::BigInt) => Value::BigInt(*i as i64),
        (Avro::Long(i), DataType::BigInt) => Value::BigInt(*i),
        (Avro::Long(i), DataType::Int) => Value::Int(i32::try_from(*i).map_err(|_| mismatch())?),
        (Avro::Float(f), DataType::Double) => Value::Double(*f as f64),
        (Avro::Double(d), DataType::Double) => Value::Double(*d),
        (Avro::String(s), DataType::String) | (Avro::Enum(_, s), DataType::String) => {
            Value::String(s.clone())
        }
        (Avro::Bytes(b), DataType::Bytes) | (Avro::Fixed(_, b), DataType::Bytes) => {
            Value::Bytes(b.clone())
        }
        (Avro::Decimal(d), DataType::Decimal { scale, .. }) => {
            let bytes: Vec<u8> = Vec::try_from(d).map_err(|e| e.to_string())?;
            Value::Decimal(from_be_bytes(&bytes), *scale)
        }
        (Avro::Bytes(b), DataType::Decimal { scale, .. }) => {
            Value::Decimal(from_be_bytes(b), *scale)
        }
        (Avro::Date(d), DataType::Date) | (Avro::Int(d), DataType::Date) => Value::Date(*d),
        (Avro::TimeMillis(ms), DataType::Time) | (Avro::Int(ms), DataType::Time) => {
            Value::Time(*ms)
        }
        (Avro::TimestampMillis(ms), DataType::Timestamp)
        | (Avro::Long(ms), DataType::Timestamp) => Value::Timestamp(*ms),
        (Avro::TimestampMicros(us), DataType::Timestamp) => Value::Timestamp(us / 1000),
        (Avro::Array(items), DataType::Array(inner)) => Value::Array(
            items
                .iter()
                .map(|i| from_avro(i, inner))
                .collect::<Result<_, _>>()?,
        ),
        (Avro::Map(entries), DataType::Map(k, vt)) => {
            let mut out: Vec<(Value, Value)> = entries
                .iter()
                .map(|(key, val)| Ok((crate::formats::parse_text(key, k)?, from_avro(val, vt)?)))
                .collect::<Result<_, String>>()?;
            // HashMap order is arbitrary; keep maps in key order.
            out.sort_by(|a, b| {
                brook_planner::value::compare_values(&a.0, &b.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            Value::Map(out)
        }
        (Avro::Record(fields), DataType::Struct(types)) => Value::Struct(
            types
                .iter()
                .map(|(n, ft)| {
                    let v = match field(fields, n) {
                        Some(v) => from_avro(v, ft)?,
                        None => Value::Null,
                    };
                    Ok((n.clone(), v))
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_registry::MemoryRegistry;

    #[test]
    fn records_round_trip_through_the_registry() {
        let registry: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let columns = vec![
            ("ID".to_string(), DataType::BigInt),
            (
                "PRICE".to_string(),
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            (
                "TAGS".to_string(),
                DataType::Array(Box::new(DataType::String)),
            ),
            (
                "ADDR".to_string(),
                DataType::Struct(vec![("CITY".into(), DataType::String)]),
            ),
            (
                "M".to_string(),
                DataType::Map(Box::new(DataType::String), Box::new(DataType::Int)),
            ),
        ];
        let codec =
            AvroCodec::new(registry.clone(), "t-value".into(), columns, false, None).unwrap();
        let row = vec![
            Value::BigInt(7),
            Value::Decimal(-12345, 2),
            Value::Array(vec![Value::String("a".into()), Value::Null]),
            Value::Struct(vec![("CITY".into(), Value::String("Oslo".into()))]),
            Value::Map(vec![(Value::String("k".into()), Value::Int(1))]),
        ];
        let bytes = codec.encode(&row).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
        assert_eq!(codec.decode(&bytes).unwrap(), row);
        assert!(codec.decode(b"\x01garbage").is_err());
        assert_eq!(
            registry.latest("t-value").unwrap().map(|(id, _)| id),
            Some(1)
        );
    }

    #[test]
    fn a_full_schema_name_names_the_registered_record() {
        let registry: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let columns = vec![("V".to_string(), DataType::Int)];
        let named = Some("com.acme.Reading");
        let codec = AvroCodec::new(registry.clone(), "r-value".into(), columns, false, named)
            .expect("a codec");
        codec.encode(&[Value::Int(3)]).expect("encodes");
        let (_, text) = registry.latest("r-value").unwrap().expect("registered");
        let schema: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(schema["name"], json!("Reading"));
        assert_eq!(schema["namespace"], json!("com.acme"));
    }
}
