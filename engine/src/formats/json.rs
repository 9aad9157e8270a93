//! The JSON format, read leniently as ksqlDB does: field names match case-insensitively,
//! numbers and strings convert into each other where the column type asks for it.

use super::{check_precision, parse_text, scalar_text};
use brook_planner::value::{parse_decimal, Value};
use brook_sql::ast::DataType;
use serde_json::{Map, Number, Value as Json};

pub(super) fn decode(
    bytes: &[u8],
    columns: &[(String, DataType)],
    unwrapped: bool,
) -> Result<Vec<Value>, String> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| format!("Invalid JSON: {e}"))?;
    if unwrapped {
        return Ok(vec![from_json(&json, &columns[0].1)?]);
    }
    let Json::Object(object) = &json else {
        if json.is_null() {
            return Ok(vec![Value::Null; columns.len()]);
        }
        return Err(format!(
            "Can't convert type. sourceType: {}, requiredType: STRUCT",
            json_type(&json)
        ));
    };
    columns
        .iter()
        .map(|(name, t)| match field(object, name) {
            Some(v) => from_json(v, t).map_err(|e| format!("{e} (field {name})")),
            None => Ok(Value::Null),
        })
        .collect()
}

fn field<'a>(object: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn json_type(j: &Json) -> &'static str {
    match j {
        Json::Null => "NULL",
        Json::Bool(_) => "BOOLEAN",
        Json::Number(_) => "NUMBER",
        Json::String(_) => "STRING",
        Json::Array(_) => "ARRAY",
        Json::Object(_) => "OBJECT",
    }
}

/// Reads a JSON value as a value of type `t`, as the JSON format does.
pub fn from_json(j: &Json, t: &DataType) -> Result<Value, String> {
    let mismatch = || {
        format!(
            "Can't convert type. sourceType: {}, requiredType: {t}",
            json_type(j)
        )
    };
    Ok(match (t, j) {
        (_, Json::Null) => Value::Null,
        (DataType::String, Json::String(s)) => Value::String(s.clone()),
        (DataType::String, Json::Number(n)) => Value::String(n.to_string()),
        (DataType::String, Json::Bool(b)) => Value::String(b.to_string()),
        (DataType::String, other) => Value::String(other.to_string()),
        (DataType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (
            DataType::Int
            | DataType::BigInt
            | DataType::Date
            | DataType::Time
            | DataType::Timestamp,
            Json::Number(n),
        ) => {
            let i = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .ok_or_else(mismatch)?;
            match t {
                DataType::Int => Value::Int(i32::try_from(i).map_err(|_| mismatch())?),
                DataType::Date => Value::Date(i32::try_from(i).map_err(|_| mismatch())?),
                DataType::Time => Value::Time(i32::try_from(i).map_err(|_| mismatch())?),
                DataType::Timestamp => Value::Timestamp(i),
                _ => Value::BigInt(i),
            }
        }
        (DataType::Double, Json::Number(n)) => Value::Double(n.as_f64().ok_or_else(mismatch)?),
        (DataType::Decimal { precision, scale }, Json::Number(n)) => {
            let text = n.to_string();
            let unscaled = parse_decimal(&text, *scale)
                .or_else(|| {
                    // Exponent notation: go through the double.
                    let f: f64 = text.parse().ok()?;
                    parse_decimal(&format!("{f:.*}", (*scale).max(0) as usize), *scale)
                })
                .ok_or_else(mismatch)?;
            check_precision(unscaled, *precision)?;
            Value::Decimal(unscaled, *scale)
        }
        (_, Json::String(s))
            if !matches!(
                t,
                DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
            ) =>
        {
            parse_text(s, t)?
        }
        (DataType::Array(inner), Json::Array(items)) => Value::Array(
            items
                .iter()
                .map(|i| from_json(i, inner))
                .collect::<Result<_, _>>()?,
        ),
        (DataType::Map(k, v), Json::Object(object)) => Value::Map(
            object
                .iter()
                .map(|(key, value)| Ok((parse_text(key, k)?, from_json(value, v)?)))
                .collect::<Result<_, String>>()?,
        ),
        (DataType::Struct(fields), Json::Object(object)) => Value::Struct(
            fields
                .iter()
                .map(|(name, ft)| {
                    let v = match field(object, name) {
                        Some(v) => from_json(v, ft)?,
                        None => Value::Null,
                    };
                    Ok((name.clone(), v))
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(mismatch()),
    })
}

pub(super) fn encode(
    values: &[Value],
    columns: &[(String, DataType)],
    unwrapped: bool,
) -> Result<Vec<u8>, String> {
    let json = if unwrapped {
        to_json(&values[0])
    } else {
        Json::Object(
            columns
                .iter()
                .zip(values)
                .map(|((name, _), v)| (name.clone(), to_json(v)))
                .collect(),
        )
    };
    serde_json::to_vec(&json).map_err(|e| e.to_string())
}

/// Writes a value as the JSON format does.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::BigInt(i) => Json::from(*i),
        Value::Date(i) => Json::from(*i),
        Value::Time(i) => Json::from(*i),
        Value::Timestamp(i) => Json::from(*i),
        // As Jackson writes them: non-finite numbers as strings.
        Value::Double(d) if d.is_nan() => Json::String("NaN".into()),
        Value::Double(d) if d.is_infinite() => {
            Json::String(if *d > 0.0 { "Infinity" } else { "-Infinity" }.into())
        }
        Value::Double(d) => Number::from_f64(*d).map(Json::Number).unwrap_or(Json::Null),
        Value::Decimal(..) => {
            let text = scalar_text(v).unwrap_or_default();
            text.parse::<Number>()
                .map(Json::Number)
                .unwrap_or(Json::String(text))
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(_) => Json::String(scalar_text(v).unwrap_or_default()),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (scalar_text(k).unwrap_or_default(), to_json(v)))
                .collect(),
        ),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<(String, DataType)> {
        vec![
            ("ID".into(), DataType::BigInt),
            ("NAME".into(), DataType::String),
            (
                "PRICE".into(),
                DataType::Decimal {
                    precision: 5,
                    scale: 2,
                },
            ),
            (
                "TAGS".into(),
                DataType::Map(Box::new(DataType::String), Box::new(DataType::String)),
            ),
        ]
    }

    #[test]
    fn reads_leniently_and_writes_upper_case_names() {
        let values = decode(
            br#"{"id": "7", "Name": 12, "price": 1.5, "tags": {"a": false}}"#,
            &cols(),
            false,
        )
        .unwrap();
        assert_eq!(
            values,
            vec![
                Value::BigInt(7),
                Value::String("12".into()),
                Value::Decimal(150, 2),
                Value::Map(vec![(
                    Value::String("a".into()),
                    Value::String("false".into())
                )]),
            ]
        );
        let out = encode(&values, &cols(), false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"ID":7,"NAME":"12","PRICE":1.50,"TAGS":{"a":"false"}}"#
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(decode(b"{not json", &cols(), false).is_err());
        assert!(decode(br#"{"id": "x"}"#, &cols(), false).is_err());
        assert!(decode(br#"[1]"#, &cols(), false).is_err());
        assert!(decode(br#"{"price": 12345.6}"#, &cols(), false).is_err());
    }

    #[test]
    fn unwrapped_single_values() {
        let c = vec![("K".to_string(), DataType::Int)];
        assert_eq!(decode(b"12", &c, true).unwrap(), vec![Value::Int(12)]);
        assert_eq!(encode(&[Value::Int(12)], &c, true).unwrap(), b"12");
    }
}
