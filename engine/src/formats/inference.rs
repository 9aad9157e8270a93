//! Columns read from a registered schema, for `CREATE STREAM|TABLE` statements that leave
//! them out (schema inference).

use brook_sql::ast::DataType;
use serde_json::Value as Json;

/// The columns an Avro schema describes: a record's fields, or one column for anything
/// else (named `single`).
pub fn avro_columns(schema: &str, single: &str) -> Result<Vec<(String, DataType)>, String> {
    let json: Json =
        serde_json::from_str(schema).map_err(|e| format!("invalid Avro schema: {e}"))?;
    let json = non_null(&json);
    match json.get("type").and_then(|t| t.as_str()) {
        Some("record") => fields(json),
        _ => Ok(vec![(single.to_string(), avro_type(json)?)]),
    }
}

/// An Avro schema as the one column `name` (a record becomes a STRUCT).
pub fn avro_single_column(schema: &str, name: &str) -> Result<Vec<(String, DataType)>, String> {
    let json: Json =
        serde_json::from_str(schema).map_err(|e| format!("invalid Avro schema: {e}"))?;
    Ok(vec![(name.to_string(), avro_type(&json)?)])
}

fn fields(record: &Json) -> Result<Vec<(String, DataType)>, String> {
    record["fields"]
        .as_array()
        .ok_or("an Avro record without fields")?
        .iter()
        .map(|f| {
            let name = f["name"].as_str().ok_or("an Avro field without a name")?;
            Ok((name.to_string(), avro_type(&f["type"])?))
        })
        .collect()
}

/// The type of a nullable union is the type of its non-null branch.
fn non_null(t: &Json) -> &Json {
    match t {
        Json::Array(branches) => {
            let others: Vec<&Json> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match others.as_slice() {
                [one] => non_null(one),
                _ => t,
            }
        }
        other => other,
    }
}

fn avro_type(t: &Json) -> Result<DataType, String> {
    let t = non_null(t);
    let (name, logical) = match t {
        Json::String(s) => (s.as_str(), None),
        Json::Object(o) => (
            o.get("type").and_then(|x| x.as_str()).unwrap_or(""),
            o.get("logicalType").and_then(|x| x.as_str()),
        ),
        _ => return Err(format!("unsupported Avro type {t}")),
    };
    Ok(match (name, logical) {
        ("int", Some("date")) => DataType::Date,
        ("int", Some("time-millis")) => DataType::Time,
        ("long", Some("timestamp-millis")) => DataType::Timestamp,
        ("bytes", Some("decimal")) => DataType::Decimal {
            precision: t["precision"].as_u64().unwrap_or(38) as u8,
            scale: t["scale"].as_u64().unwrap_or(0) as i8,
        },
        ("boolean", _) => DataType::Boolean,
        ("int", _) => DataType::Int,
        ("long", _) => DataType::BigInt,
        ("float" | "double", _) => DataType::Double,
        ("string" | "enum", _) => DataType::String,
        ("bytes" | "fixed", _) => DataType::Bytes,
        ("array", _) => DataType::Array(Box::new(avro_type(&t["items"])?)),
        ("map", _) => DataType::Map(
            Box::new(DataType::String),
            Box::new(avro_type(&t["values"])?),
        ),
        ("record", _) => DataType::Struct(fields(t)?),
        _ => return Err(format!("unsupported Avro type {t}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_columns() {
        let schema = r#"{"type":"record","name":"x","fields":[
            {"name":"c1","type":["null","int"]},
            {"name":"when","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"tags","type":{"type":"map","values":"string"}}]}"#;
        assert_eq!(
            avro_columns(schema, "ROWVAL").unwrap(),
            vec![
                ("c1".to_string(), DataType::Int),
                ("when".to_string(), DataType::Timestamp),
                (
                    "tags".to_string(),
                    DataType::Map(Box::new(DataType::String), Box::new(DataType::String))
                ),
            ]
        );
        assert_eq!(
            avro_columns(r#""long""#, "ROWKEY").unwrap(),
            vec![("ROWKEY".to_string(), DataType::BigInt)]
        );
    }
}
