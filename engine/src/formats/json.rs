//! The JSON format, read leniently as ksqlDB does: field names match case-insensitively,
//! numbers and strings convert into each other where the column type asks for it.

use super::{check_precision, parse_text, scalar_text};
use crate::arrays::value_at;
use crate::batch::Cell;
use arrow::array::*;
use brook_planner::value::{parse_decimal, Value};
use brook_sql::ast::DataType;
use serde::de::{self, Deserializer as _};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value as Json};
use std::borrow::Cow;

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

/// One column's field of a JSON object, as found by [`raw_fields`].
#[derive(Clone, Copy, Default)]
pub(crate) struct RawField<'a> {
    raw: Option<&'a RawValue>,
    /// The key's spelling when it matched the column's name case-insensitively only: a
    /// later key of the same spelling replaces the value, another spelling does not.
    loose: Option<&'a str>,
}

/// Reads a JSON object's fields into one raw value per column, matched as [`field`] does
/// (the exact name, else the first key equal to it ignoring case; the last of duplicate
/// keys), without building the object. `None` for what the lenient path must read:
/// anything but an object, escaped keys, invalid JSON.
pub(super) fn raw_fields<'a>(
    bytes: &'a [u8],
    columns: &[(String, DataType)],
    distinct: bool,
    fields: &mut Vec<RawField<'a>>,
) -> Option<()> {
    fields.clear();
    fields.resize(columns.len(), RawField::default());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_map(FieldsVisitor {
        columns,
        distinct,
        fields,
    })
    .ok()?;
    de.end().ok()
}

struct FieldsVisitor<'s, 'a> {
    columns: &'s [(String, DataType)],
    /// Whether no two names are equal ignoring case, so a key matches one column at most.
    distinct: bool,
    fields: &'s mut [RawField<'a>],
}

impl<'de> de::Visitor<'de> for FieldsVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        // Fields usually come in the columns' order: try the next column first.
        let mut next = 0;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            let raw: &'de RawValue = map.next_value()?;
            let n = self.columns.len();
            for step in 0..n {
                let i = (next + step) % n;
                let name = &self.columns[i].0;
                if name.len() != key.len() || !name.eq_ignore_ascii_case(key) {
                    continue;
                }
                let slot = &mut self.fields[i];
                if name == key {
                    *slot = RawField {
                        raw: Some(raw),
                        loose: None,
                    };
                } else {
                    match (slot.raw, slot.loose) {
                        (None, _) => {
                            *slot = RawField {
                                raw: Some(raw),
                                loose: Some(key),
                            }
                        }
                        (Some(_), Some(spelling)) if spelling == key => slot.raw = Some(raw),
                        _ => {}
                    }
                }
                if self.distinct {
                    next = i + 1;
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A key borrowed from the record's bytes; an escaped key (which cannot be) is an error,
/// and the record goes the lenient way.
struct BorrowedKey;

impl<'de> de::DeserializeSeed<'de> for BorrowedKey {
    type Value = &'de str;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<&'de str, D::Error> {
        struct KeyVisitor;
        impl<'de> de::Visitor<'de> for KeyVisitor {
            type Value = &'de str;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key without escapes")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<&'de str, E> {
                Ok(v)
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A raw field read as a column of type `t`, as [`from_json`] reads it; `None` when it
/// cannot be (the lenient path then says why).
pub(super) fn raw_cell<'a>(field: &RawField<'a>, t: &DataType) -> Option<Cell<'a>> {
    let Some(raw) = field.raw else {
        return Some(Cell::Null);
    };
    let text = raw.get();
    let string = || -> Option<Cow<'a, str>> {
        let inner = &text[1..text.len() - 1];
        if inner.contains('\\') {
            serde_json::from_str::<String>(text).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    };
    let first = *text.as_bytes().first()?;
    let number = first == b'-' || first.is_ascii_digit();
    Some(match (t, first) {
        (_, b'n') => Cell::Null,
        (DataType::String, b'"') => Cell::Str(string()?),
        // A number keeps its text; a boolean is its literal.
        (DataType::String, b't' | b'f') => Cell::Str(Cow::Borrowed(text)),
        (DataType::String, _) if number => Cell::Str(Cow::Borrowed(text)),
        (DataType::Boolean, b't') => Cell::Boolean(true),
        (DataType::Boolean, b'f') => Cell::Boolean(false),
        (DataType::Int | DataType::Date | DataType::Time, _) if number => {
            let i = integral(text)?;
            i32::try_from(i).ok()?;
            Cell::Long(i)
        }
        (DataType::BigInt | DataType::Timestamp, _) if number => Cell::Long(integral(text)?),
        (DataType::Double, _) if number => {
            Cell::Double(text.parse::<f64>().ok().filter(|f| f.is_finite())?)
        }
        (
            DataType::Boolean
            | DataType::Int
            | DataType::BigInt
            | DataType::Double
            | DataType::Date
            | DataType::Time
            | DataType::Timestamp,
            b'"',
        ) => Cell::Value(parse_text(&string()?, t).ok()?),
        _ => {
            let json: Json = serde_json::from_str(text).ok()?;
            Cell::Value(from_json(&json, t).ok()?)
        }
    })
}

/// An integral column's number: the integer, or a finite double cut to one.
fn integral(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
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

/// Writes rows of a batch's arrays as the JSON format writes their values ([`encode`]),
/// straight from the arrays for the scalar types.
pub struct ArrayWriter<'a> {
    /// Each column's name as a JSON key followed by its colon (none when unwrapped).
    keys: Vec<Vec<u8>>,
    columns: Vec<ColumnView<'a>>,
    unwrapped: bool,
}

/// A column downcast once per batch.
enum ColumnView<'a> {
    Boolean(&'a BooleanArray),
    Int(&'a Int32Array),
    BigInt(&'a Int64Array),
    Double(&'a Float64Array),
    String(&'a StringArray),
    Date(&'a Date32Array),
    Time(&'a Time32MillisecondArray),
    Timestamp(&'a TimestampMillisecondArray),
    Other(&'a dyn Array, &'a DataType),
}

impl<'a> ArrayWriter<'a> {
    pub(super) fn new(
        columns: &'a [(String, DataType)],
        arrays: &[&'a dyn Array],
        unwrapped: bool,
    ) -> Self {
        let keys = columns
            .iter()
            .map(|(name, _)| {
                let mut key = serde_json::to_vec(name).unwrap_or_default();
                key.push(b':');
                key
            })
            .collect();
        let columns = arrays
            .iter()
            .zip(columns)
            .map(|(a, (_, t))| match t {
                DataType::Boolean => ColumnView::Boolean(a.as_boolean()),
                DataType::Int => ColumnView::Int(a.as_primitive()),
                DataType::BigInt => ColumnView::BigInt(a.as_primitive()),
                DataType::Double => ColumnView::Double(a.as_primitive()),
                DataType::String => ColumnView::String(a.as_string()),
                DataType::Date => ColumnView::Date(a.as_primitive()),
                DataType::Time => ColumnView::Time(a.as_primitive()),
                DataType::Timestamp => ColumnView::Timestamp(a.as_primitive()),
                t => ColumnView::Other(*a, t),
            })
            .collect();
        Self {
            keys,
            columns,
            unwrapped,
        }
    }

    /// The bytes of one row; none for the NULL of a single unwrapped column.
    pub fn write(&self, row: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(16 * self.columns.len() + 2);
        if self.unwrapped {
            if self.columns[0].is_null(row) {
                return None;
            }
            self.columns[0].write(row, &mut out);
            return Some(out);
        }
        out.push(b'{');
        for (i, (key, column)) in self.keys.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            column.write(row, &mut out);
        }
        out.push(b'}');
        Some(out)
    }
}

impl ColumnView<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Boolean(a) => a.is_null(row),
            Self::Int(a) => a.is_null(row),
            Self::BigInt(a) => a.is_null(row),
            Self::Double(a) => a.is_null(row),
            Self::String(a) => a.is_null(row),
            Self::Date(a) => a.is_null(row),
            Self::Time(a) => a.is_null(row),
            Self::Timestamp(a) => a.is_null(row),
            Self::Other(a, _) => a.is_null(row),
        }
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(b"null");
            return;
        }
        let mut integer = itoa::Buffer::new();
        match self {
            Self::Boolean(a) => {
                out.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
            }
            Self::Int(a) => out.extend_from_slice(integer.format(a.value(row)).as_bytes()),
            Self::BigInt(a) => out.extend_from_slice(integer.format(a.value(row)).as_bytes()),
            Self::Date(a) => out.extend_from_slice(integer.format(a.value(row)).as_bytes()),
            Self::Time(a) => out.extend_from_slice(integer.format(a.value(row)).as_bytes()),
            Self::Timestamp(a) => out.extend_from_slice(integer.format(a.value(row)).as_bytes()),
            Self::Double(a) => write_json(out, &to_json(&Value::Double(a.value(row)))),
            Self::String(a) => write_json(out, a.value(row)),
            Self::Other(a, t) => write_json(out, &to_json(&value_at(*a, t, row))),
        }
    }
}

/// Writes what serde writes; into a `Vec` that cannot fail.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
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

    fn codec(columns: Vec<(String, DataType)>) -> super::super::ColumnsCodec {
        use brook_planner::formats::{Format, FormatKind};
        codec_of(Format::new(FormatKind::Json), columns)
    }

    fn codec_of(
        format: brook_planner::formats::Format,
        columns: Vec<(String, DataType)>,
    ) -> super::super::ColumnsCodec {
        super::super::ColumnsCodec::new(
            format,
            columns,
            false,
            "t-value".into(),
            &super::super::FormatContext::default(),
        )
    }

    /// The values the fast path reads, or `None` when it leaves the record to the lenient
    /// path.
    fn fast(codec: &super::super::ColumnsCodec, bytes: &[u8]) -> Option<Vec<Value>> {
        let (mut fields, mut cells) = (Vec::new(), Vec::new());
        codec.decode_cells(Some(bytes), &mut fields, &mut cells)?;
        Some(
            cells
                .into_iter()
                .zip(codec.columns())
                .map(|(c, (_, t))| c.into_value(t))
                .collect(),
        )
    }

    #[test]
    fn objects_are_read_straight_into_cells_as_the_lenient_path_reads_them() {
        let c = codec(vec![
            ("ID".into(), DataType::BigInt),
            ("NAME".into(), DataType::String),
            ("OK".into(), DataType::Boolean),
            ("N".into(), DataType::Int),
            ("D".into(), DataType::Double),
            ("T".into(), DataType::String),
            (
                "PRICE".into(),
                DataType::Decimal {
                    precision: 5,
                    scale: 2,
                },
            ),
        ]);
        for record in [
            // In order, upper case: the usual record.
            &br#"{"ID":1,"NAME":"a","OK":true,"N":2,"D":2.5,"T":"x","PRICE":1.5}"#[..],
            // Any order and case, strings for numbers, numbers for strings.
            br#"{"price":"3.10","t":1.50,"d":"7","n":3.9,"ok":"TRUE","name":12,"id":"42"}"#,
            // Duplicates: the exact name wins, else the first spelling (its last value).
            br#"{"Name":"first","NAME":"exact","id":1,"Id":2,"id":3,"t":[1, {"a":null}]}"#,
            // Escapes, NULLs, missing fields, fields of no column.
            br#"{"NAME":"tab\t\u00e9","OK":null,"other":{"x":[1,2]},"D":-1e-7}"#,
        ] {
            let lenient = c.decode(Some(record)).unwrap();
            assert_eq!(
                fast(&c, record),
                Some(lenient),
                "{}",
                String::from_utf8_lossy(record)
            );
        }
        // No exact name: the first spelling that matches, with its last value.
        let record = br#"{"Name":"first","name":"second","Name":"last"}"#;
        assert_eq!(fast(&c, record).unwrap()[1], Value::String("last".into()));
        assert_eq!(
            c.decode(Some(record)).unwrap()[1],
            Value::String("last".into())
        );
    }

    #[test]
    fn what_the_fast_path_cannot_read_goes_the_lenient_way() {
        let c = codec(vec![
            ("ID".into(), DataType::Int),
            ("OK".into(), DataType::Boolean),
        ]);
        for record in [
            &b"{not json"[..],
            b"null",
            b"[1]",
            br#"{"ID":2147483648}"#,
            br#"{"ID":"x"}"#,
            br#"{"OK":1}"#,
            br#"{"\u0049D":1}"#,
            br#"{"ID":1} trailing"#,
        ] {
            assert_eq!(
                fast(&c, record),
                None,
                "{}",
                String::from_utf8_lossy(record)
            );
        }
        // The lenient path still answers: NULLs for a JSON null, the error otherwise.
        assert_eq!(c.decode(Some(b"null")).unwrap(), vec![Value::Null; 2]);
        assert_eq!(
            c.decode(Some(br#"{"\u0049D":1}"#)).unwrap(),
            vec![Value::Int(1), Value::Null]
        );
        assert!(c.decode(Some(br#"{"ID":2147483648}"#)).is_err());
    }

    #[test]
    fn rows_are_written_from_arrays_as_values_are() {
        use crate::arrays::build_array;
        let columns = vec![
            ("I".into(), DataType::Int),
            ("D".into(), DataType::Double),
            ("S".into(), DataType::String),
            ("B".into(), DataType::Boolean),
            ("TS".into(), DataType::Timestamp),
            (
                "M".into(),
                DataType::Map(Box::new(DataType::String), Box::new(DataType::Int)),
            ),
        ];
        let c = codec(columns.clone());
        let rows = [
            vec![
                Value::Int(-7),
                Value::Double(0.1),
                Value::String("q\"\n\u{7}".into()),
                Value::Boolean(true),
                Value::Timestamp(1_700_000_000_000),
                Value::Map(vec![(Value::String("k".into()), Value::Int(1))]),
            ],
            vec![
                Value::Null,
                Value::Double(f64::NAN),
                Value::Null,
                Value::Boolean(false),
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::Int(0),
                Value::Double(1e300),
                Value::String(String::new()),
                Value::Null,
                Value::Timestamp(0),
                Value::Map(vec![]),
            ],
            vec![
                Value::Int(1),
                Value::Double(f64::NEG_INFINITY),
                Value::String("é".into()),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ];
        let arrays: Vec<arrow::array::ArrayRef> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, t))| build_array(t, &rows.iter().map(|r| &r[i]).collect::<Vec<_>>()))
            .collect::<Result<_, _>>()
            .unwrap();
        let views: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        let writer = c.array_writer(&views).unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(writer.write(i), c.encode(row).unwrap(), "row {i}");
        }
        // A single unwrapped column: its NULL is no value at all.
        let single = vec![("V".to_string(), DataType::BigInt)];
        let c = codec_of(
            brook_planner::formats::Format {
                wrap_single_value: false,
                ..brook_planner::formats::Format::new(brook_planner::formats::FormatKind::Json)
            },
            single,
        );
        let array = build_array(&DataType::BigInt, &[&Value::BigInt(5), &Value::Null]).unwrap();
        let writer = c.array_writer(&[array.as_ref()]).unwrap();
        assert_eq!(writer.write(0), Some(b"5".to_vec()));
        assert_eq!(writer.write(1), None);
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
