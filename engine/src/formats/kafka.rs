//! The KAFKA format: Kafka's own serializers for one primitive column (big-endian integers
//! and doubles, UTF-8 strings, raw bytes).

use brook_planner::value::Value;
use brook_sql::ast::DataType;

pub(super) fn decode(bytes: &[u8], t: &DataType) -> Result<Value, String> {
    let fixed = |n: usize, what: &str| -> Result<(), String> {
        if bytes.len() == n {
            Ok(())
        } else {
            Err(format!(
                "Size of data received by {what} is not {n}, got {}",
                bytes.len()
            ))
        }
    };
    Ok(match t {
        DataType::Int => {
            fixed(4, "IntegerDeserializer")?;
            Value::Int(i32::from_be_bytes(bytes.try_into().map_err(|_| "bad INT")?))
        }
        DataType::BigInt => {
            fixed(8, "LongDeserializer")?;
            Value::BigInt(i64::from_be_bytes(
                bytes.try_into().map_err(|_| "bad BIGINT")?,
            ))
        }
        DataType::Double => {
            fixed(8, "DoubleDeserializer")?;
            Value::Double(f64::from_be_bytes(
                bytes.try_into().map_err(|_| "bad DOUBLE")?,
            ))
        }
        DataType::String => Value::String(
            String::from_utf8(bytes.to_vec())
                .map_err(|_| "value is not valid UTF-8".to_string())?,
        ),
        DataType::Bytes => Value::Bytes(bytes.to_vec()),
        other => {
            return Err(format!(
                "The 'KAFKA' format does not support type '{other}'"
            ))
        }
    })
}

pub(super) fn encode(v: &Value) -> Result<Option<Vec<u8>>, String> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Int(i) => i.to_be_bytes().to_vec(),
        Value::BigInt(i) => i.to_be_bytes().to_vec(),
        Value::Double(d) => d.to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => return Err(format!("The 'KAFKA' format does not support {other:?}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_round_trip_and_size_errors() {
        let bytes = encode(&Value::BigInt(-42)).unwrap().unwrap();
        assert_eq!(bytes, (-42i64).to_be_bytes());
        assert_eq!(
            decode(&bytes, &DataType::BigInt).unwrap(),
            Value::BigInt(-42)
        );
        let err = decode(&[1, 2], &DataType::Int).unwrap_err();
        assert!(err.contains("is not 4"), "{err}");
    }
}
