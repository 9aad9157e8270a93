//! ksqlDB types as Arrow types, and the numeric rules of ksqlDB's arithmetic.

use brook_sql::ast::DataType;
use std::sync::Arc;

use arrow::datatypes::{DataType as ArrowType, Field, Fields, TimeUnit};

/// The Arrow type that holds values of `t`. Named types must be resolved before.
pub fn arrow_type(t: &DataType) -> ArrowType {
    match t {
        DataType::Boolean => ArrowType::Boolean,
        DataType::Int => ArrowType::Int32,
        DataType::BigInt => ArrowType::Int64,
        DataType::Double => ArrowType::Float64,
        DataType::Decimal { precision, scale } => ArrowType::Decimal128(*precision, *scale),
        DataType::String => ArrowType::Utf8,
        DataType::Bytes => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Time => ArrowType::Time32(TimeUnit::Millisecond),
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Array(inner) => {
            ArrowType::List(Arc::new(Field::new("item", arrow_type(inner), true)))
        }
        DataType::Map(k, v) => ArrowType::Map(
            Arc::new(Field::new(
                "entries",
                ArrowType::Struct(map_entry_fields(k, v)),
                false,
            )),
            false,
        ),
        DataType::Struct(fields) => ArrowType::Struct(struct_fields(fields)),
        // Resolved before planning; a placeholder keeps this total.
        DataType::Named(_) => ArrowType::Null,
    }
}

pub fn map_entry_fields(k: &DataType, v: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("key", arrow_type(k), false),
        Field::new("value", arrow_type(v), true),
    ])
}

pub fn struct_fields(fields: &[(String, DataType)]) -> Fields {
    fields
        .iter()
        .map(|(name, t)| Field::new(name, arrow_type(t), true))
        .collect()
}

pub fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int | DataType::BigInt | DataType::Double | DataType::Decimal { .. }
    )
}

/// The decimal type an integer type widens to.
pub fn as_decimal(t: &DataType) -> Option<(u8, i8)> {
    match t {
        DataType::Int => Some((10, 0)),
        DataType::BigInt => Some((19, 0)),
        DataType::Decimal { precision, scale } => Some((*precision, *scale)),
        _ => None,
    }
}

/// The type both numeric operands are brought to before comparing them.
pub fn common_numeric(a: &DataType, b: &DataType) -> Option<DataType> {
    if !is_numeric(a) || !is_numeric(b) {
        return None;
    }
    Some(match (a, b) {
        (DataType::Double, _) | (_, DataType::Double) => DataType::Double,
        (DataType::Decimal { .. }, _) | (_, DataType::Decimal { .. }) => {
            let (p1, s1) = as_decimal(a)?;
            let (p2, s2) = as_decimal(b)?;
            let scale = s1.max(s2);
            let int_digits = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16);
            DataType::Decimal {
                precision: ((int_digits + scale as i16).clamp(1, 38)) as u8,
                scale,
            }
        }
        (DataType::BigInt, _) | (_, DataType::BigInt) => DataType::BigInt,
        _ => DataType::Int,
    })
}

/// The result type of decimal arithmetic, by ksqlDB's (and SQL Server's) rules.
pub fn decimal_result(op: brook_sql::ast::BinaryOp, a: (u8, i8), b: (u8, i8)) -> DataType {
    use brook_sql::ast::BinaryOp::*;
    let (p1, s1) = (a.0 as i32, a.1 as i32);
    let (p2, s2) = (b.0 as i32, b.1 as i32);
    let (precision, scale) = match op {
        Plus | Minus => {
            let scale = s1.max(s2);
            (scale + (p1 - s1).max(p2 - s2) + 1, scale)
        }
        Multiply => (p1 + p2 + 1, s1 + s2),
        Divide => {
            let scale = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + scale, scale)
        }
        _ => {
            let scale = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + scale, scale)
        }
    };
    let precision = precision.clamp(1, 38);
    DataType::Decimal {
        precision: precision as u8,
        scale: scale.min(precision) as i8,
    }
}
