//! JSON schemas for the JSON_SR format, in the shape Kafka Connect's JSON schema converter
//! (which ksqlDB uses) writes: `connect.type` says which integer or number type is meant.

use brook_sql::ast::DataType;
use serde_json::{json, Map, Value as Json};

fn nullable(t: Json) -> Json {
    json!({"oneOf": [{"type": "null"}, t]})
}

pub fn schema_for(columns: &[(String, DataType)], unwrapped: bool) -> Json {
    if unwrapped {
        return nullable(type_schema(&columns[0].1));
    }
    object(columns)
}

fn object(columns: &[(String, DataType)]) -> Json {
    let properties: Map<String, Json> = columns
        .iter()
        .enumerate()
        .map(|(i, (n, t))| {
            let mut schema = nullable(type_schema(t));
            schema["connect.index"] = json!(i);
            (n.clone(), schema)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

fn type_schema(t: &DataType) -> Json {
    match t {
        DataType::Boolean => json!({"type": "boolean"}),
        DataType::Int => json!({"type": "integer", "connect.type": "int32"}),
        DataType::BigInt => json!({"type": "integer", "connect.type": "int64"}),
        DataType::Double => json!({"type": "number", "connect.type": "float64"}),
        DataType::Decimal { precision, scale } => json!({
            "type": "number",
            "title": "org.apache.kafka.connect.data.Decimal",
            "connect.type": "bytes",
            "connect.parameters": {"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()}
        }),
        DataType::String => json!({"type": "string"}),
        DataType::Bytes => json!({"type": "string", "connect.type": "bytes"}),
        DataType::Date => {
            json!({"type": "integer", "title": "org.apache.kafka.connect.data.Date", "connect.type": "int32"})
        }
        DataType::Time => {
            json!({"type": "integer", "title": "org.apache.kafka.connect.data.Time", "connect.type": "int32"})
        }
        DataType::Timestamp => {
            json!({"type": "integer", "title": "org.apache.kafka.connect.data.Timestamp", "connect.type": "int64"})
        }
        DataType::Array(inner) => json!({"type": "array", "items": nullable(type_schema(inner))}),
        DataType::Map(_, v) => {
            json!({"type": "object", "connect.type": "map", "additionalProperties": nullable(type_schema(v))})
        }
        DataType::Struct(fields) => object(fields),
        DataType::Named(_) => json!({}),
    }
}

/// The columns a JSON schema describes: an object's properties, or one column (`single`).
pub fn columns_of(schema: &str, single: &str) -> Result<Vec<(String, DataType)>, String> {
    let json: Json =
        serde_json::from_str(schema).map_err(|e| format!("invalid JSON schema: {e}"))?;
    let json = non_null(&json);
    match json.get("properties").and_then(|p| p.as_object()) {
        Some(props) => properties(props, json),
        None => Ok(vec![(single.to_string(), data_type(json)?)]),
    }
}

/// A key's column: JSON_SR keys are read unwrapped, so the whole schema (an object too)
/// is the type of one column (`single`).
pub fn key_column_of(schema: &str, single: &str) -> Result<Vec<(String, DataType)>, String> {
    let json: Json =
        serde_json::from_str(schema).map_err(|e| format!("invalid JSON schema: {e}"))?;
    Ok(vec![(single.to_string(), data_type(non_null(&json))?)])
}

fn properties(
    props: &Map<String, Json>,
    _parent: &Json,
) -> Result<Vec<(String, DataType)>, String> {
    let mut fields: Vec<(i64, String, DataType)> = props
        .iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let index = s
                .get("connect.index")
                .and_then(|x| x.as_i64())
                .unwrap_or(i as i64);
            Ok((index, n.clone(), data_type(s)?))
        })
        .collect::<Result<_, String>>()?;
    fields.sort_by_key(|f| f.0);
    Ok(fields.into_iter().map(|(_, n, t)| (n, t)).collect())
}

fn non_null(s: &Json) -> &Json {
    let branches = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(|b| b.as_array());
    match branches {
        Some(b) => {
            let others: Vec<&Json> = b
                .iter()
                .filter(|x| x.get("type").and_then(|t| t.as_str()) != Some("null"))
                .collect();
            match others.as_slice() {
                [one] => non_null(one),
                _ => s,
            }
        }
        None => s,
    }
}

fn data_type(s: &Json) -> Result<DataType, String> {
    let s = non_null(s);
    let kind = s.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let connect = s.get("connect.type").and_then(|t| t.as_str());
    let title = s.get("title").and_then(|t| t.as_str()).unwrap_or("");
    Ok(match (kind, connect) {
        ("boolean", _) => DataType::Boolean,
        ("integer", _) if title.ends_with("Date") => DataType::Date,
        ("integer", _) if title.ends_with("Time") => DataType::Time,
        ("integer", _) if title.ends_with("Timestamp") => DataType::Timestamp,
        ("integer", Some("int8" | "int16" | "int32")) => DataType::Int,
        ("integer", _) => DataType::BigInt,
        ("number", _) if title.ends_with("Decimal") => {
            let param = |k: &str| {
                s["connect.parameters"][k]
                    .as_str()
                    .and_then(|v| v.parse::<i64>().ok())
            };
            DataType::Decimal {
                precision: param("connect.decimal.precision").unwrap_or(38) as u8,
                scale: param("scale").unwrap_or(0) as i8,
            }
        }
        ("number", _) => DataType::Double,
        ("string", Some("bytes")) => DataType::Bytes,
        ("string", _) => DataType::String,
        ("array", _) => DataType::Array(Box::new(data_type(&s["items"])?)),
        ("object", _) => match s.get("properties").and_then(|p| p.as_object()) {
            Some(props) => DataType::Struct(properties(props, s)?),
            None => DataType::Map(
                Box::new(DataType::String),
                Box::new(match s.get("additionalProperties") {
                    Some(v) if v.is_object() => data_type(v)?,
                    _ => DataType::String,
                }),
            ),
        },
        _ => return Err(format!("unsupported JSON schema type {s}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_schemas_read_back_as_the_same_columns() {
        let columns = vec![
            ("A".to_string(), DataType::Int),
            (
                "B".to_string(),
                DataType::Decimal {
                    precision: 4,
                    scale: 2,
                },
            ),
            (
                "C".to_string(),
                DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt)),
            ),
            (
                "D".to_string(),
                DataType::Struct(vec![("X".into(), DataType::Bytes)]),
            ),
        ];
        let schema = schema_for(&columns, false).to_string();
        assert_eq!(columns_of(&schema, "ROWVAL").unwrap(), columns);
    }
}
