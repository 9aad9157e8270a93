//! The DELIMITED format: one line of separated fields, CSV quoting, empty fields as NULL.

use super::{parse_text, scalar_text};
use brook_planner::value::Value;
use brook_sql::ast::DataType;

pub(super) fn decode(
    bytes: &[u8],
    columns: &[(String, DataType)],
    delimiter: char,
) -> Result<Vec<Value>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter as u8)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    let read = reader.read_record(&mut record).map_err(|e| e.to_string())?;
    if !read {
        record = csv::StringRecord::from(vec![""]);
    }
    if record.len() != columns.len() {
        return Err(format!(
            "Unexpected field count, csvFields:{} schemaFields:{}",
            record.len(),
            columns.len()
        ));
    }
    record
        .iter()
        .zip(columns)
        .map(|(field, (_, t))| {
            if field.is_empty() {
                Ok(Value::Null)
            } else {
                parse_text(field, t)
            }
        })
        .collect()
}

pub(super) fn encode(values: &[Value], delimiter: char) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        match v {
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
                return Err("The 'DELIMITED' format does not support nested types".to_string())
            }
            Value::Null => {}
            other => {
                let text = scalar_text(other).unwrap_or_default();
                if needs_quotes(&text, delimiter, i == 0) {
                    out.push('"');
                    out.push_str(&text.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(&text);
                }
            }
        }
    }
    Ok(out.into_bytes())
}

/// Apache Commons CSV's minimal quoting, which ksqlDB writes with: the first field of a line
/// is quoted when it is empty or starts with anything but a letter or digit, any other when
/// it starts with a character up to '#'; any field that ends with white space or holds the
/// delimiter, a quote or a line break.
fn needs_quotes(text: &str, delimiter: char, first_field: bool) -> bool {
    let (Some(first), Some(last)) = (text.chars().next(), text.chars().last()) else {
        return first_field;
    };
    let starts = if first_field {
        !first.is_ascii_alphanumeric()
    } else {
        first <= '#'
    };
    starts
        || last <= ' '
        || text
            .chars()
            .any(|c| c == delimiter || c == '"' || c == '\n' || c == '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_quotes_and_nulls() {
        let cols = vec![
            ("A".to_string(), DataType::Int),
            ("B".to_string(), DataType::String),
            ("C".to_string(), DataType::Double),
        ];
        let values = decode(b"1,\"x,y\",", &cols, ',').unwrap();
        assert_eq!(
            values,
            vec![Value::Int(1), Value::String("x,y".into()), Value::Null]
        );
        assert_eq!(encode(&values, ',').unwrap(), b"1,\"x,y\",");
        let spaced = [Value::String(" a ".into()), Value::String("b\"c".into())];
        assert_eq!(encode(&spaced, ',').unwrap(), b"\" a \",\"b\"\"c\"");
        assert!(decode(b"1,2", &cols, ',')
            .unwrap_err()
            .contains("csvFields:2 schemaFields:3"));
        assert!(decode(b"a,b,1.0", &cols, ',').is_err());
    }
}
