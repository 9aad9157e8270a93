//! Moving between per-row [`Value`]s and Arrow arrays of a ksqlDB type.

use arrow::array::*;
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::Field;
use brook_planner::types::{arrow_type, map_entry_fields, struct_fields};
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use std::sync::Arc;

/// Builds an array of type `t` from values of that type (or NULL).
pub fn build_array(t: &DataType, values: &[&Value]) -> Result<ArrayRef, String> {
    macro_rules! primitive {
        ($array:ty, $variant:ident) => {{
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                out.push(match v {
                    Value::Null => None,
                    Value::$variant(x) => Some(x.clone()),
                    other => return Err(mismatch(t, other)),
                });
            }
            Arc::new(<$array>::from(out)) as ArrayRef
        }};
    }
    Ok(match t {
        DataType::Boolean => primitive!(BooleanArray, Boolean),
        DataType::Int => primitive!(Int32Array, Int),
        DataType::BigInt => primitive!(Int64Array, BigInt),
        DataType::Double => primitive!(Float64Array, Double),
        DataType::Date => primitive!(Date32Array, Date),
        DataType::Time => primitive!(Time32MillisecondArray, Time),
        DataType::Timestamp => primitive!(TimestampMillisecondArray, Timestamp),
        DataType::String => primitive!(StringArray, String),
        DataType::Bytes => {
            let out: Vec<Option<&[u8]>> = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Bytes(b) => Ok(Some(b.as_slice())),
                    other => Err(mismatch(t, other)),
                })
                .collect::<Result<_, _>>()?;
            Arc::new(BinaryArray::from(out))
        }
        DataType::Decimal { precision, scale } => {
            let out: Vec<Option<i128>> = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Decimal(u, s) if s == scale => Ok(Some(*u)),
                    other => Err(mismatch(t, other)),
                })
                .collect::<Result<_, _>>()?;
            Arc::new(
                Decimal128Array::from(out)
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Array(inner) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            let mut children: Vec<&Value> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            offsets.push(0i32);
            for v in values {
                match v {
                    Value::Null => valid.push(false),
                    Value::Array(items) => {
                        valid.push(true);
                        children.extend(items.iter());
                    }
                    other => return Err(mismatch(t, other)),
                }
                offsets.push(children.len() as i32);
            }
            let child = build_array(inner, &children)?;
            Arc::new(
                ListArray::try_new(
                    Arc::new(Field::new("item", arrow_type(inner), true)),
                    OffsetBuffer::new(offsets.into()),
                    child,
                    nulls(valid),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Map(k, v) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            let (mut keys, mut vals): (Vec<&Value>, Vec<&Value>) = (Vec::new(), Vec::new());
            let mut valid = Vec::with_capacity(values.len());
            offsets.push(0i32);
            for value in values {
                match value {
                    Value::Null => valid.push(false),
                    Value::Map(entries) => {
                        valid.push(true);
                        // Arrow maps cannot hold NULL keys; such entries are dropped.
                        for (key, val) in entries.iter().filter(|(key, _)| !key.is_null()) {
                            keys.push(key);
                            vals.push(val);
                        }
                    }
                    other => return Err(mismatch(t, other)),
                }
                offsets.push(keys.len() as i32);
            }
            let entries = StructArray::try_new(
                map_entry_fields(k, v),
                vec![build_array(k, &keys)?, build_array(v, &vals)?],
                None,
            )
            .map_err(|e| e.to_string())?;
            let arrow::datatypes::DataType::Map(field, _) = arrow_type(t) else {
                return Err("map type without entries".into());
            };
            Arc::new(
                MapArray::try_new(
                    field,
                    OffsetBuffer::new(offsets.into()),
                    entries,
                    nulls(valid),
                    false,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Struct(fields) => {
            let mut columns: Vec<Vec<&Value>> =
                vec![Vec::with_capacity(values.len()); fields.len()];
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Value::Null => {
                        valid.push(false);
                        columns.iter_mut().for_each(|c| c.push(&Value::Null));
                    }
                    Value::Struct(items) if items.len() == fields.len() => {
                        valid.push(true);
                        for (c, (_, item)) in columns.iter_mut().zip(items) {
                            c.push(item);
                        }
                    }
                    other => return Err(mismatch(t, other)),
                }
            }
            let arrays = fields
                .iter()
                .zip(&columns)
                .map(|((_, ft), c)| build_array(ft, c))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(
                StructArray::try_new_with_length(
                    struct_fields(fields),
                    arrays,
                    nulls(valid),
                    values.len(),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Named(name) => return Err(format!("unresolved type {name}")),
    })
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

pub(crate) fn mismatch(t: &DataType, v: &Value) -> String {
    format!("value {v:?} is not of type {t}")
}

/// An array holding `value` `len` times.
pub fn repeat(t: &DataType, value: &Value, len: usize) -> Result<ArrayRef, String> {
    // Literals are repeated for every batch: the common ones without a value per row.
    Ok(match (t, value) {
        (_, Value::Null) => new_null_array(&arrow_type(t), len),
        (DataType::Boolean, Value::Boolean(b)) => Arc::new(BooleanArray::from(vec![*b; len])),
        (DataType::Int, Value::Int(i)) => Arc::new(Int32Array::from_value(*i, len)),
        (DataType::BigInt, Value::BigInt(i)) => Arc::new(Int64Array::from_value(*i, len)),
        (DataType::Double, Value::Double(d)) => Arc::new(Float64Array::from_value(*d, len)),
        (DataType::String, Value::String(s)) => Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(s.as_str(), len),
        )),
        _ => build_array(t, &vec![value; len])?,
    })
}

/// The value at `row` of an array of type `t`.
pub fn value_at(array: &dyn Array, t: &DataType, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match t {
        DataType::Boolean => Value::Boolean(array.as_boolean().value(row)),
        DataType::Int => Value::Int(
            array
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(row),
        ),
        DataType::BigInt => Value::BigInt(
            array
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(row),
        ),
        DataType::Double => Value::Double(
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(row),
        ),
        DataType::Decimal { scale, .. } => Value::Decimal(
            array
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(row),
            *scale,
        ),
        DataType::String => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::Bytes => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::Date => Value::Date(
            array
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(row),
        ),
        DataType::Time => Value::Time(
            array
                .as_primitive::<arrow::datatypes::Time32MillisecondType>()
                .value(row),
        ),
        DataType::Timestamp => Value::Timestamp(
            array
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .value(row),
        ),
        DataType::Array(inner) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| value_at(&items, inner, i))
                    .collect(),
            )
        }
        DataType::Map(k, v) => {
            let map = array.as_map();
            let entries = map.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Map(
                (0..entries.len())
                    .map(|i| (value_at(keys, k, i), value_at(values, v, i)))
                    .collect(),
            )
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Struct(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, (name, ft))| (name.clone(), value_at(s.column(i), ft, row)))
                    .collect(),
            )
        }
        DataType::Named(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_literals_are_the_arrays_their_values_build() {
        for (t, v) in [
            (DataType::Boolean, Value::Boolean(true)),
            (DataType::Int, Value::Int(-3)),
            (DataType::BigInt, Value::BigInt(1 << 40)),
            (DataType::Double, Value::Double(2.5)),
            (DataType::String, Value::String("gold".into())),
            (DataType::String, Value::Null),
            (
                DataType::Decimal {
                    precision: 3,
                    scale: 1,
                },
                Value::Decimal(15, 1),
            ),
        ] {
            let fast = repeat(&t, &v, 3).unwrap();
            let slow = build_array(&t, &[&v, &v, &v]).unwrap();
            assert_eq!(fast.as_ref(), slow.as_ref(), "{t} {v:?}");
        }
    }

    #[test]
    fn nested_values_round_trip() {
        let t = DataType::Struct(vec![
            ("A".into(), DataType::Array(Box::new(DataType::Int))),
            (
                "M".into(),
                DataType::Map(
                    Box::new(DataType::String),
                    Box::new(DataType::Decimal {
                        precision: 4,
                        scale: 2,
                    }),
                ),
            ),
        ]);
        let rows = [
            Value::Struct(vec![
                ("A".into(), Value::Array(vec![Value::Int(1), Value::Null])),
                (
                    "M".into(),
                    Value::Map(vec![(Value::String("x".into()), Value::Decimal(125, 2))]),
                ),
            ]),
            Value::Null,
            Value::Struct(vec![
                ("A".into(), Value::Null),
                ("M".into(), Value::Map(vec![])),
            ]),
        ];
        let refs: Vec<&Value> = rows.iter().collect();
        let array = build_array(&t, &refs).unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(&value_at(&array, &t, i), row);
        }
    }
}
