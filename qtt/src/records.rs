//! Test records to and from bytes, in the formats of the source that reads or writes the
//! topic, as ksqlDB's runner serializes them.

use brook_engine::formats::{json_to_value, value_to_json, ColumnsCodec};
use brook_planner::formats::FormatKind;
use serde_json::Value as Json;

/// Bytes for a test record's key or value. JSON and DELIMITED data is written as given,
/// so that tests can feed malformed records; KAFKA data is written for the column's type.
pub fn serialize(
    codec: Option<&ColumnsCodec>,
    kind: Option<FormatKind>,
    data: &Json,
) -> Result<Option<Vec<u8>>, String> {
    if data.is_null() {
        return Ok(None);
    }
    let as_text = || match data {
        Json::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    match (kind, codec) {
        (Some(FormatKind::Kafka), Some(codec)) if !codec.columns().is_empty() => {
            let t = &codec.columns()[0].1;
            match json_to_value(data, t) {
                Ok(v) => codec.encode(&[v]),
                Err(_) => Ok(Some(as_text())),
            }
        }
        (
            Some(
                FormatKind::Avro
                | FormatKind::JsonSr
                | FormatKind::Protobuf
                | FormatKind::ProtobufNoSr,
            ),
            Some(codec),
        ) => {
            // A single column written alone is the data itself (PROTOBUF always writes a
            // message of the columns).
            let alone = codec.is_unwrapped()
                && !matches!(kind, Some(FormatKind::Protobuf | FormatKind::ProtobufNoSr));
            if codec.columns().len() == 1 && (alone || !data.is_object()) {
                return codec.encode(&[json_to_value(data, &codec.columns()[0].1)?]);
            }
            // An object is a record even when all its fields are NULL.
            let values: Vec<_> = {
                codec
                    .columns()
                    .iter()
                    .map(|(name, t)| {
                        let field = data.as_object().and_then(|o| {
                            o.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v)
                        });
                        field
                            .map(|f| json_to_value(f, t))
                            .unwrap_or(Ok(brook_planner::value::Value::Null))
                    })
                    .collect::<Result<_, _>>()?
            };
            codec.encode_record(&values)
        }
        (Some(FormatKind::Json), _) | (None, _) => Ok(Some(data.to_string().into_bytes())),
        (Some(FormatKind::Delimited), _) | (Some(FormatKind::Kafka), _) => Ok(Some(as_text())),
        (Some(FormatKind::None), _) => Ok(None),
        (Some(other), _) => Err(format!("the {other} format is not supported yet")),
    }
}

/// A written key or value as the test files spell it.
pub fn deserialize(
    codec: &ColumnsCodec,
    kind: FormatKind,
    bytes: Option<&[u8]>,
) -> Result<Json, String> {
    let Some(bytes) = bytes else {
        return Ok(Json::Null);
    };
    match kind {
        FormatKind::Json => {
            serde_json::from_slice(bytes).map_err(|e| format!("output is not JSON: {e}"))
        }
        FormatKind::Delimited => Ok(Json::String(String::from_utf8_lossy(bytes).into_owned())),
        FormatKind::Kafka => {
            let values = codec.decode(Some(bytes))?;
            Ok(values.first().map(value_to_json).unwrap_or(Json::Null))
        }
        FormatKind::None => Ok(Json::Null),
        FormatKind::Avro | FormatKind::JsonSr | FormatKind::Protobuf | FormatKind::ProtobufNoSr => {
            let values = codec.decode(Some(bytes))?;
            // Protobuf records are always messages; the others may hold one bare value.
            let message = matches!(kind, FormatKind::Protobuf | FormatKind::ProtobufNoSr);
            if !message && codec.columns().len() == 1 && codec.is_unwrapped() {
                return Ok(values.first().map(value_to_json).unwrap_or(Json::Null));
            }
            Ok(Json::Object(
                codec
                    .columns()
                    .iter()
                    .zip(&values)
                    .map(|((n, _), v)| (n.clone(), value_to_json(v)))
                    .collect(),
            ))
        }
    }
}
