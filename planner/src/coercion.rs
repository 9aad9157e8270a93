//! ksqlDB's coercion of a list of expressions to one type, as its IN predicates and ARRAY
//! and MAP constructors do it: the list's common type is found element by element (the
//! widest number, the union of struct fields, a string literal read as the type so far),
//! then literals are converted to it and other expressions cast. The messages are ksqlDB's.

use crate::error::{PlanError, Result};
use crate::types::{common_numeric, is_numeric};
use crate::typing::{ExprKind, TypedExpr};
use crate::value::{decimal_literal_type, display, parse_decimal, Value};
use brook_sql::ast::DataType;

/// Why an element does not fit the type so far: a type that does not go with it (reported
/// for the list's element as a whole), or a message that stands as it is.
enum Failure {
    Mismatch,
    Fatal(PlanError),
}

/// The common type of `items` (`None` when all are NULL literals) and the items converted
/// to it. `written` is each item as the statement writes it, for the messages.
pub fn coerce_list(
    items: Vec<TypedExpr>,
    written: &[String],
) -> Result<(Option<DataType>, Vec<TypedExpr>)> {
    let mut common: Option<DataType> = None;
    for (item, text) in items.iter().zip(written) {
        common = Some(match common {
            None if item.is_null_literal() => continue,
            None => item.data_type.clone(),
            Some(target) => match common_with(&target, item) {
                Ok(t) => t,
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Mismatch) => {
                    return Err(PlanError::new(format!(
                        "operator does not exist: {target} = {} ({text})\nHint: You might need to add explicit type casts.",
                        item.data_type
                    )))
                }
            },
        });
    }
    let Some(common) = common else {
        return Ok((None, items));
    };
    let converted = items
        .into_iter()
        .map(|i| convert(i, &common))
        .collect::<Result<_>>()?;
    Ok((Some(common), converted))
}

/// The type the list's type so far and `item` have in common.
fn common_with(target: &DataType, item: &TypedExpr) -> std::result::Result<DataType, Failure> {
    if item.is_null_literal() || item.data_type == *target {
        return Ok(target.clone());
    }
    match (&item.kind, target) {
        (ExprKind::MakeArray(elements), DataType::Array(element)) => {
            let mut t = (**element).clone();
            for e in elements {
                t = common_with(&t, e)?;
            }
            Ok(DataType::Array(Box::new(t)))
        }
        (ExprKind::MakeMap(entries), DataType::Map(key, value)) => {
            let (mut k, mut v) = ((**key).clone(), (**value).clone());
            for (ek, ev) in entries {
                k = common_with(&k, ek)?;
                v = common_with(&v, ev)?;
            }
            Ok(DataType::Map(Box::new(k), Box::new(v)))
        }
        (ExprKind::MakeStruct(values), DataType::Struct(target_fields)) => {
            let DataType::Struct(source_fields) = &item.data_type else {
                return Err(Failure::Mismatch);
            };
            // The constructor's fields first, then the others of the type so far; names
            // match exactly, as ksqlDB's do.
            let mut fields = Vec::new();
            for ((name, _), value) in source_fields.iter().zip(values) {
                let t = match target_fields.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => common_with(t, value)?,
                    None => value.data_type.clone(),
                };
                fields.push((name.clone(), t));
            }
            for (name, t) in target_fields {
                if !source_fields.iter().any(|(n, _)| n == name) {
                    fields.push((name.clone(), t.clone()));
                }
            }
            Ok(DataType::Struct(fields))
        }
        (ExprKind::MakeArray(_) | ExprKind::MakeMap(_) | ExprKind::MakeStruct(_), _) => {
            Err(Failure::Mismatch)
        }
        (ExprKind::Literal(Value::String(s)), t) if is_numeric(t) => numeric_from_string(s, t),
        (ExprKind::Literal(Value::String(s)), DataType::Boolean) => match parse_boolean(s) {
            Some(_) => Ok(DataType::Boolean),
            None => Err(invalid_syntax(s, target)),
        },
        _ => simple(target, item).ok_or(Failure::Mismatch),
    }
}

/// The common type of an expression that is not a constructor: numbers widen, structs
/// take the union of their fields, a literal may become a string, a string literal any
/// temporal type, and a DATE compares with a TIMESTAMP as its first instant.
fn simple(target: &DataType, item: &TypedExpr) -> Option<DataType> {
    let literal = matches!(item.kind, ExprKind::Literal(_));
    match (target, &item.data_type) {
        (DataType::String, _) if literal => Some(DataType::String),
        (DataType::Date | DataType::Time | DataType::Timestamp, DataType::String) if literal => {
            Some(target.clone())
        }
        (DataType::Date, DataType::Timestamp) | (DataType::Timestamp, DataType::Date) => {
            Some(DataType::Timestamp)
        }
        (a, b) => widen(a, b),
    }
}

/// Types that both convert to a wider one: numbers, and arrays, maps and structs member
/// by member (structs to the union of their fields).
fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (DataType::Array(x), DataType::Array(y)) => Some(DataType::Array(Box::new(widen(x, y)?))),
        (DataType::Map(k1, v1), DataType::Map(k2, v2)) => Some(DataType::Map(
            Box::new(widen(k1, k2)?),
            Box::new(widen(v1, v2)?),
        )),
        (DataType::Struct(target), DataType::Struct(source)) => {
            let mut fields = Vec::new();
            for (name, t) in source {
                let t = match target.iter().find(|(n, _)| n == name) {
                    Some((_, other)) => widen(other, t)?,
                    None => t.clone(),
                };
                fields.push((name.clone(), t));
            }
            for (name, t) in target {
                if !source.iter().any(|(n, _)| n == name) {
                    fields.push((name.clone(), t.clone()));
                }
            }
            Some(DataType::Struct(fields))
        }
        _ => common_numeric(a, b),
    }
}

/// A string literal in a numeric list: the number it holds (INTEGER, BIGINT, or a
/// DECIMAL of its digits) widened with the type so far.
fn numeric_from_string(s: &str, target: &DataType) -> std::result::Result<DataType, Failure> {
    let source = string_number_type(s).ok_or_else(|| invalid_syntax(s, target))?;
    Ok(match (&source, target) {
        (_, DataType::Double) => DataType::Double,
        (DataType::Decimal { .. }, _) | (_, DataType::Decimal { .. }) => {
            common_numeric(&source, target).ok_or(Failure::Mismatch)?
        }
        // INTEGER goes into BIGINT; a BIGINT string widens an INTEGER list.
        (DataType::Int, _) => target.clone(),
        _ => source,
    })
}

/// The type of the number in `s`: INTEGER or BIGINT for whole numbers written without a
/// point or exponent that fit, else a DECIMAL of its digits.
fn string_number_type(s: &str) -> Option<DataType> {
    let text = s.trim();
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(n) = text.parse::<i128>() {
            if n > i32::MIN as i128 && n < i32::MAX as i128 {
                return Some(DataType::Int);
            }
            if n > i64::MIN as i128 && n < i64::MAX as i128 {
                return Some(DataType::BigInt);
            }
        }
    }
    let plain = plain_decimal(text)?;
    let (precision, scale) = decimal_literal_type(&plain);
    Some(DataType::Decimal { precision, scale })
}

/// Decimal text with its exponent applied (`2e1` is `20`, `1.5E-2` is `0.015`), or `None`
/// when it is not a number.
fn plain_decimal(text: &str) -> Option<String> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, body) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || exponent.unsigned_abs() > 100
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    // Where the point goes among the digits.
    let point = int.len() as i32 + exponent;
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (i, f) = digits.split_at(point as usize);
        format!("{i}.{f}")
    };
    Some(if negative { format!("-{text}") } else { text })
}

/// ksqlDB's booleans as text: any beginning of `true`, `yes`, `false` or `no`, in any case.
pub fn parse_boolean(s: &str) -> Option<bool> {
    let lower = s.to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if "true".starts_with(&lower) || "yes".starts_with(&lower) {
        Some(true)
    } else if "false".starts_with(&lower) || "no".starts_with(&lower) {
        Some(false)
    } else {
        None
    }
}

/// The name of a type's kind, as ksqlDB's messages give it (`DECIMAL`, not `DECIMAL(4, 2)`).
fn base_name(t: &DataType) -> String {
    match t {
        DataType::Decimal { .. } => "DECIMAL".into(),
        DataType::Array(_) => "ARRAY".into(),
        DataType::Map(..) => "MAP".into(),
        DataType::Struct(_) => "STRUCT".into(),
        other => other.to_string(),
    }
}

fn invalid_syntax(s: &str, target: &DataType) -> Failure {
    Failure::Fatal(PlanError::new(format!(
        "invalid input syntax for type {}: \"{s}\".",
        base_name(target)
    )))
}

/// `item` as an expression of type `to`: literals converted now, constructors member by
/// member, other expressions cast.
fn convert(item: TypedExpr, to: &DataType) -> Result<TypedExpr> {
    if item.data_type == *to || item.is_null_literal() {
        return Ok(item.coerce(to));
    }
    let kind = match (item.kind, to) {
        (ExprKind::Literal(Value::String(s)), t) if is_numeric(t) || *t == DataType::Boolean => {
            let bad = || {
                PlanError::new(format!(
                    "invalid input syntax for type {}: \"{s}\".",
                    base_name(t)
                ))
            };
            let text = s.trim();
            let value = match t {
                DataType::Boolean => Value::Boolean(parse_boolean(&s).ok_or_else(bad)?),
                DataType::Int => Value::Int(text.parse().map_err(|_| bad())?),
                DataType::BigInt => Value::BigInt(text.parse().map_err(|_| bad())?),
                DataType::Double => Value::Double(text.parse().map_err(|_| bad())?),
                DataType::Decimal { scale, .. } => {
                    let plain = plain_decimal(text).ok_or_else(bad)?;
                    Value::Decimal(parse_decimal(&plain, *scale).ok_or_else(bad)?, *scale)
                }
                _ => unreachable!("guarded: numbers and booleans"),
            };
            ExprKind::Literal(value)
        }
        (ExprKind::Literal(v), DataType::String) if display(&v).is_some() => {
            ExprKind::Literal(Value::String(display(&v).unwrap_or_default()))
        }
        (ExprKind::MakeArray(elements), DataType::Array(element)) => ExprKind::MakeArray(
            elements
                .into_iter()
                .map(|e| convert(e, element))
                .collect::<Result<_>>()?,
        ),
        (ExprKind::MakeMap(entries), DataType::Map(key, value)) => ExprKind::MakeMap(
            entries
                .into_iter()
                .map(|(k, v)| Ok((convert(k, key)?, convert(v, value)?)))
                .collect::<Result<_>>()?,
        ),
        (ExprKind::MakeStruct(values), DataType::Struct(fields)) => {
            let DataType::Struct(names) = &item.data_type else {
                unreachable!("a struct constructor has a struct type")
            };
            let mut values: Vec<Option<TypedExpr>> = values.into_iter().map(Some).collect();
            ExprKind::MakeStruct(
                fields
                    .iter()
                    .map(
                        |(name, t)| match names.iter().position(|(n, _)| n == name) {
                            Some(i) => convert(values[i].take().expect("fields are distinct"), t),
                            None => Ok(TypedExpr::new(ExprKind::Literal(Value::Null), t.clone())),
                        },
                    )
                    .collect::<Result<_>>()?,
            )
        }
        (kind, _) => return Ok(TypedExpr::new(kind, item.data_type).coerce(to)),
    };
    Ok(TypedExpr::new(kind, to.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_read_as_numbers_take_their_own_type() {
        assert_eq!(string_number_type("12"), Some(DataType::Int));
        assert_eq!(string_number_type("2147483648"), Some(DataType::BigInt));
        assert_eq!(
            string_number_type("2e1"),
            Some(DataType::Decimal {
                precision: 2,
                scale: 0
            })
        );
        assert_eq!(
            string_number_type("4.000"),
            Some(DataType::Decimal {
                precision: 4,
                scale: 3
            })
        );
        assert_eq!(string_number_type("ten"), None);
        assert_eq!(plain_decimal("1.5E-2").as_deref(), Some("0.015"));
        assert_eq!(plain_decimal("-12.5e1").as_deref(), Some("-125"));
    }

    #[test]
    fn booleans_are_read_from_any_beginning_of_their_words() {
        for t in ["TrUe", "tr", "Y", "yes"] {
            assert_eq!(parse_boolean(t), Some(true), "{t}");
        }
        for f in ["f", "FALSE", "no", "N"] {
            assert_eq!(parse_boolean(f), Some(false), "{f}");
        }
        assert_eq!(parse_boolean("Not a boolean"), None);
        assert_eq!(parse_boolean(""), None);
    }
}
