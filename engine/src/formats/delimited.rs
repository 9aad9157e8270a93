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
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter as u8)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let fields: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
                Err("The 'DELIMITED' format does not support nested types".to_string())
            }
            other => Ok(scalar_text(other).unwrap_or_default()),
        })
        .collect::<Result<_, _>>()?;
    writer.write_record(&fields).map_err(|e| e.to_string())?;
    let mut out = writer.into_inner().map_err(|e| e.to_string())?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(out)
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
        assert!(decode(b"1,2", &cols, ',')
            .unwrap_err()
            .contains("csvFields:2 schemaFields:3"));
        assert!(decode(b"a,b,1.0", &cols, ',').is_err());
    }
}
