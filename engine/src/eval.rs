//! Vectorized evaluation of typed expressions over a batch of rows, with ksqlDB's
//! semantics: integer arithmetic wraps, division by zero and failed conversions give NULL,
//! and a function call that fails is NULL for its row (reported, the row kept).

use crate::arrays::{build_array, repeat, value_at};
use arrow::array::*;
use arrow::buffer::NullBuffer;
use arrow::compute::kernels::{boolean, cmp, comparison, numeric};
use arrow::compute::{cast_with_options, nullif, prep_null_mask_filter, take, CastOptions};

/// A boolean mask with NULL read as false.
pub fn null_as_false(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        mask.clone()
    } else {
        prep_null_mask_filter(mask)
    }
}
use arrow::datatypes::Int32Type;
use arrow::error::ArrowError;
use brook_planner::types::arrow_type;
use brook_planner::typing::{ArithOp, CmpOp, ExprKind, TypedExpr};
use brook_planner::value::{format_decimal, format_double, Value};
use brook_sql::ast::DataType;
use std::sync::Arc;

pub type EvalResult<T> = Result<T, String>;

thread_local! {
    /// Why function calls failed on this thread since last taken: ksqlDB makes a failed call
    /// NULL and reports it to the processing log, so evaluation goes on and the operator
    /// that evaluated reports these.
    static FAILED_CALLS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The failures of function calls since last taken (see `FAILED_CALLS`).
pub fn take_failed_calls() -> Vec<String> {
    FAILED_CALLS.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

/// Reports failed calls that no record can be named for (aggregate and join results):
/// once per batch in the log, with their number and the first reason.
pub fn log_failed_calls(operator: &str) {
    let failed = take_failed_calls();
    if let Some(first) = failed.first() {
        tracing::warn!(
            "{operator}: {} function calls failed and were NULL, the first: {first}",
            failed.len()
        );
    }
}

fn arrow_err(e: ArrowError) -> String {
    e.to_string()
}

/// Evaluates `expr` over `columns` (the row's columns, all of length `len`).
pub fn evaluate(expr: &TypedExpr, columns: &[ArrayRef], len: usize) -> EvalResult<ArrayRef> {
    let eval = |e: &TypedExpr| evaluate(e, columns, len);
    Ok(match &expr.kind {
        ExprKind::Column(i) => columns[*i].clone(),
        ExprKind::Literal(v) => repeat(&expr.data_type, v, len)?,
        ExprKind::Arithmetic { op, left, right } => {
            let (l, r) = (eval(left)?, eval(right)?);
            arithmetic(
                *op,
                &l,
                &left.data_type,
                &r,
                &right.data_type,
                &expr.data_type,
            )?
        }
        ExprKind::Concat(left, right) => {
            let (l, r) = (eval(left)?, eval(right)?);
            Arc::new(
                arrow::compute::kernels::concat_elements::concat_elements_utf8(
                    l.as_string::<i32>(),
                    r.as_string::<i32>(),
                )
                .map_err(arrow_err)?,
            )
        }
        ExprKind::Compare { op, left, right } => {
            let (l, r) = (eval(left)?, eval(right)?);
            // In ksqlDB a comparison with NULL is false, not NULL.
            Arc::new(null_as_false(&compare(*op, &l, &r, &left.data_type)?))
        }
        ExprKind::And(left, right) => Arc::new(
            boolean::and_kleene(eval(left)?.as_boolean(), eval(right)?.as_boolean())
                .map_err(arrow_err)?,
        ),
        ExprKind::Or(left, right) => Arc::new(
            boolean::or_kleene(eval(left)?.as_boolean(), eval(right)?.as_boolean())
                .map_err(arrow_err)?,
        ),
        ExprKind::Not(inner) => {
            Arc::new(boolean::not(eval(inner)?.as_boolean()).map_err(arrow_err)?)
        }
        ExprKind::Negate(inner) => numeric::neg_wrapping(&eval(inner)?).map_err(arrow_err)?,
        ExprKind::IsNull { expr, negated } => {
            let v = eval(expr)?;
            Arc::new(
                if *negated {
                    boolean::is_not_null(&v)
                } else {
                    boolean::is_null(&v)
                }
                .map_err(arrow_err)?,
            )
        }
        ExprKind::Like {
            expr,
            pattern,
            escape,
            negated,
        } => {
            let v = eval(expr)?;
            let p = eval(pattern)?;
            let p: StringArray = p
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(|s| like_pattern(s, *escape)))
                .collect();
            Arc::new(
                if *negated {
                    comparison::nlike(&v, &p)
                } else {
                    comparison::like(&v, &p)
                }
                .map_err(arrow_err)?,
            )
        }
        ExprKind::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr)?;
            let mut result = BooleanArray::from(vec![false; len]);
            for item in list {
                let eq = compare(CmpOp::Eq, &v, &eval(item)?, &expr.data_type)?;
                result = boolean::or_kleene(&result, &eq).map_err(arrow_err)?;
            }
            if *negated {
                result = boolean::not(&result).map_err(arrow_err)?;
            }
            Arc::new(result)
        }
        ExprKind::Cast(inner) => cast(&eval(inner)?, &inner.data_type, &expr.data_type)?,
        ExprKind::Case { whens, otherwise } => {
            let mut result = match otherwise {
                Some(o) => eval(o)?,
                None => new_null_array(&arrow_type(&expr.data_type), len),
            };
            for (cond, then) in whens.iter().rev() {
                let mask = null_as_false(eval(cond)?.as_boolean());
                result = arrow::compute::kernels::zip::zip(&mask, &eval(then)?, &result)
                    .map_err(arrow_err)?;
            }
            result
        }
        ExprKind::StructField { expr, index } => {
            let s = eval(expr)?;
            let s = s.as_struct();
            let child = s.column(*index).clone();
            with_extra_nulls(&child, s.nulls())?
        }
        ExprKind::ArrayIndex { expr, index } => {
            let list = eval(expr)?;
            let list = list.as_list::<i32>();
            let idx = eval(index)?;
            let idx = idx.as_primitive::<Int32Type>();
            let offsets = list.value_offsets();
            let positions: UInt32Array = (0..len)
                .map(|row| {
                    if list.is_null(row) || idx.is_null(row) {
                        return None;
                    }
                    let (start, end) = (offsets[row] as i64, offsets[row + 1] as i64);
                    let i = idx.value(row) as i64;
                    let at = if i > 0 { start + i - 1 } else { end + i };
                    (i != 0 && at >= start && at < end).then_some(at as u32)
                })
                .collect();
            take(list.values(), &positions, None).map_err(arrow_err)?
        }
        ExprKind::MapLookup { expr, key } => {
            let map = eval(expr)?;
            let keys = eval(key)?;
            let (DataType::Map(kt, vt), kdt) = (&expr.data_type, &key.data_type) else {
                return Err("map lookup on a non-map".into());
            };
            let _ = kdt;
            let values: Vec<Value> = (0..len)
                .map(|row| {
                    let wanted = value_at(&keys, kt, row);
                    match value_at(&map, &expr.data_type, row) {
                        Value::Map(entries) if !wanted.is_null() => entries
                            .into_iter()
                            .find(|(k, _)| *k == wanted)
                            .map(|(_, v)| v)
                            .unwrap_or(Value::Null),
                        _ => Value::Null,
                    }
                })
                .collect();
            build_array(vt, &values.iter().collect::<Vec<_>>())?
        }
        ExprKind::MakeArray(items) => {
            let arrays = items.iter().map(eval).collect::<EvalResult<Vec<_>>>()?;
            let DataType::Array(element) = &expr.data_type else {
                return Err("array constructor without array type".into());
            };
            let rows: Vec<Value> = (0..len)
                .map(|row| Value::Array(arrays.iter().map(|a| value_at(a, element, row)).collect()))
                .collect();
            build_array(&expr.data_type, &rows.iter().collect::<Vec<_>>())?
        }
        ExprKind::MakeMap(entries) => {
            let DataType::Map(kt, vt) = &expr.data_type else {
                return Err("map constructor without map type".into());
            };
            let arrays = entries
                .iter()
                .map(|(k, v)| Ok((eval(k)?, eval(v)?)))
                .collect::<EvalResult<Vec<_>>>()?;
            let rows: Vec<Value> = (0..len)
                .map(|row| {
                    Value::Map(
                        arrays
                            .iter()
                            .map(|(k, v)| {
                                // A NULL key is written as ksqlDB's JSON writes it.
                                let key = match value_at(k, kt, row) {
                                    Value::Null if **kt == DataType::String => {
                                        Value::String("null".into())
                                    }
                                    key => key,
                                };
                                (key, value_at(v, vt, row))
                            })
                            .collect(),
                    )
                })
                .collect();
            build_array(&expr.data_type, &rows.iter().collect::<Vec<_>>())?
        }
        ExprKind::Lambda {
            op,
            input,
            init,
            bodies,
        } => crate::lambdas::evaluate_lambda(
            *op,
            input,
            init.as_deref(),
            bodies,
            &expr.data_type,
            columns,
            len,
        )?,
        ExprKind::Explode(_) => {
            return Err("a table function can only be a select item of its own".into())
        }
        ExprKind::Function { function, args } => {
            let arrays = args.iter().map(eval).collect::<EvalResult<Vec<_>>>()?;
            let mut out = Vec::with_capacity(len);
            let mut row_args = Vec::with_capacity(args.len());
            for row in 0..len {
                row_args.clear();
                row_args.extend(
                    arrays
                        .iter()
                        .zip(args)
                        .map(|(a, e)| value_at(a, &e.data_type, row)),
                );
                out.push(match (function.0.eval)(&row_args, &expr.data_type) {
                    Ok(v) => v,
                    Err(message) => {
                        let name = function.0.name;
                        FAILED_CALLS.with(|f| f.borrow_mut().push(format!("{name}: {message}")));
                        Value::Null
                    }
                });
            }
            build_array(&expr.data_type, &out.iter().collect::<Vec<_>>())?
        }
        ExprKind::MakeStruct(items) => {
            let DataType::Struct(fields) = &expr.data_type else {
                return Err("struct constructor without struct type".into());
            };
            let arrays = items.iter().map(eval).collect::<EvalResult<Vec<_>>>()?;
            Arc::new(
                StructArray::try_new_with_length(
                    brook_planner::types::struct_fields(fields),
                    arrays,
                    None,
                    len,
                )
                .map_err(arrow_err)?,
            )
        }
    })
}

/// `child` with the rows that are NULL in its parent made NULL too.
fn with_extra_nulls(child: &ArrayRef, parent: Option<&NullBuffer>) -> EvalResult<ArrayRef> {
    let Some(parent) = parent else {
        return Ok(child.clone());
    };
    let nulls = NullBuffer::union(Some(parent), child.nulls());
    let data = child
        .to_data()
        .into_builder()
        .nulls(nulls)
        .build()
        .map_err(arrow_err)?;
    Ok(make_array(data))
}

/// ksqlDB's LIKE pattern in Arrow's syntax, where backslash is the escape.
fn like_pattern(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(next);
                }
                Some('\\') => out.push_str("\\\\"),
                Some(next) => out.push(next),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

fn compare(op: CmpOp, l: &ArrayRef, r: &ArrayRef, t: &DataType) -> EvalResult<BooleanArray> {
    if matches!(
        t,
        DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
    ) {
        // Nested values compare by value, row by row.
        return Ok((0..l.len())
            .map(|row| {
                let (a, b) = (value_at(l, t, row), value_at(r, t, row));
                if a.is_null() || b.is_null() {
                    return None;
                }
                Some(match op {
                    CmpOp::Eq => a == b,
                    _ => a != b,
                })
            })
            .collect());
    }
    match op {
        CmpOp::Eq => cmp::eq(l, r),
        CmpOp::NotEq => cmp::neq(l, r),
        CmpOp::Lt => cmp::lt(l, r),
        CmpOp::LtEq => cmp::lt_eq(l, r),
        CmpOp::Gt => cmp::gt(l, r),
        CmpOp::GtEq => cmp::gt_eq(l, r),
    }
    .map_err(arrow_err)
}

fn arithmetic(
    op: ArithOp,
    l: &ArrayRef,
    lt: &DataType,
    r: &ArrayRef,
    rt: &DataType,
    result: &DataType,
) -> EvalResult<ArrayRef> {
    if let DataType::Decimal { precision, scale } = result {
        return decimal_arithmetic(op, l, lt, r, rt, *precision, *scale);
    }
    let integer = matches!(result, DataType::Int | DataType::BigInt);
    match op {
        ArithOp::Add => numeric::add_wrapping(l, r),
        ArithOp::Subtract => numeric::sub_wrapping(l, r),
        ArithOp::Multiply => numeric::mul_wrapping(l, r),
        ArithOp::Divide | ArithOp::Modulo if integer => {
            // A zero divisor makes that row NULL instead of failing the batch.
            let zero = repeat(result, &zero_of(result), r.len())?;
            let is_zero = cmp::eq(r, &zero).map_err(arrow_err)?;
            let r = nullif(r, &is_zero).map_err(arrow_err)?;
            if op == ArithOp::Divide {
                numeric::div(l, &r)
            } else {
                numeric::rem(l, &r)
            }
        }
        ArithOp::Divide => numeric::div(l, r),
        ArithOp::Modulo => numeric::rem(l, r),
    }
    .map_err(arrow_err)
}

fn zero_of(t: &DataType) -> Value {
    match t {
        DataType::Int => Value::Int(0),
        _ => Value::BigInt(0),
    }
}

/// Exact decimal arithmetic on unscaled values, rounding half up to the result's scale;
/// results that overflow the precision are NULL.
fn decimal_arithmetic(
    op: ArithOp,
    l: &ArrayRef,
    lt: &DataType,
    r: &ArrayRef,
    rt: &DataType,
    precision: u8,
    scale: i8,
) -> EvalResult<ArrayRef> {
    let (DataType::Decimal { scale: s1, .. }, DataType::Decimal { scale: s2, .. }) = (lt, rt)
    else {
        return Err("decimal arithmetic on non-decimal operands".into());
    };
    let (a, b) = (
        l.as_primitive::<arrow::datatypes::Decimal128Type>(),
        r.as_primitive::<arrow::datatypes::Decimal128Type>(),
    );
    let pow = |n: i32| 10i128.checked_pow(n.max(0) as u32);
    let rescale = |v: i128, from: i8, to: i8| -> Option<i128> {
        if to >= from {
            v.checked_mul(pow((to - from) as i32)?)
        } else {
            div_round(v, pow((from - to) as i32)?)
        }
    };
    let limit = 10i128.pow(precision as u32);
    let out: Decimal128Array = (0..a.len())
        .map(|i| {
            if a.is_null(i) || b.is_null(i) {
                return None;
            }
            let (x, y) = (a.value(i), b.value(i));
            let common = (*s1).max(*s2);
            let v = match op {
                ArithOp::Add => rescale(x, *s1, common)?
                    .checked_add(rescale(y, *s2, common)?)
                    .and_then(|v| rescale(v, common, scale)),
                ArithOp::Subtract => rescale(x, *s1, common)?
                    .checked_sub(rescale(y, *s2, common)?)
                    .and_then(|v| rescale(v, common, scale)),
                ArithOp::Multiply => x.checked_mul(y).and_then(|v| rescale(v, s1 + s2, scale)),
                ArithOp::Divide => {
                    if y == 0 {
                        return None;
                    }
                    let shift = scale as i32 - *s1 as i32 + *s2 as i32;
                    div_round(x.checked_mul(pow(shift)?)?, y)
                }
                ArithOp::Modulo => {
                    let (x, y) = (rescale(x, *s1, common)?, rescale(y, *s2, common)?);
                    if y == 0 {
                        return None;
                    }
                    rescale(x % y, common, scale)
                }
            }?;
            (v.abs() < limit).then_some(v)
        })
        .collect();
    Ok(Arc::new(
        out.with_precision_and_scale(precision, scale)
            .map_err(arrow_err)?,
    ))
}

/// `n / d` rounded half away from zero.
fn div_round(n: i128, d: i128) -> Option<i128> {
    let q = n.checked_div(d)?;
    let rem = n.checked_rem(d)?;
    if rem.checked_mul(2)?.abs() >= d.abs() {
        Some(if (n < 0) != (d < 0) { q - 1 } else { q + 1 })
    } else {
        Some(q)
    }
}

/// Casts with ksqlDB's rules: text forms follow Java's, failures give NULL.
fn java_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(java_string).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}={}", java_string(k), java_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Struct(fields) => format!(
            "Struct{{{}}}",
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(n, v)| format!("{n}={}", java_string(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => brook_planner::value::display(other).unwrap_or_default(),
    }
}

pub fn cast(array: &ArrayRef, from: &DataType, to: &DataType) -> EvalResult<ArrayRef> {
    if from == to {
        return Ok(array.clone());
    }
    let per_row = |f: &dyn Fn(Value) -> Value| -> EvalResult<ArrayRef> {
        let values: Vec<Value> = (0..array.len())
            .map(|i| f(value_at(array, from, i)))
            .collect();
        build_array(to, &values.iter().collect::<Vec<_>>())
    };
    match (from, to) {
        (DataType::Double, DataType::String) => per_row(&|v| match v {
            Value::Double(d) => Value::String(format_double(d)),
            _ => Value::Null,
        }),
        (DataType::Decimal { .. }, DataType::String) => per_row(&|v| match v {
            Value::Decimal(u, s) => Value::String(format_decimal(u, s)),
            _ => Value::Null,
        }),
        // ksqlDB reads a partial date as its first day: `2020-05` is 2020-05-01.
        (DataType::String, DataType::Date) => per_row(&|v| match v {
            Value::String(s) => {
                let s = s.trim();
                let full = match s.matches('-').count() {
                    0 => format!("{s}-01-01"),
                    1 => format!("{s}-01"),
                    _ => s.to_string(),
                };
                chrono::NaiveDate::parse_from_str(&full, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| {
                        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
                        Some(Value::Date((d - epoch).num_days() as i32))
                    })
                    .unwrap_or(Value::Null)
            }
            _ => Value::Null,
        }),
        (DataType::Date, DataType::Timestamp) => per_row(&|v| match v {
            Value::Date(d) => Value::Timestamp(d as i64 * 86_400_000),
            _ => Value::Null,
        }),
        (DataType::String, DataType::Boolean) => per_row(&|v| match v {
            Value::String(s) => Value::Boolean(s.trim().eq_ignore_ascii_case("true")),
            _ => Value::Null,
        }),
        (DataType::Decimal { .. }, DataType::Int | DataType::BigInt) => {
            // Java truncates toward zero; Arrow's decimal cast rounds.
            per_row(&|v| match v {
                Value::Decimal(u, s) => {
                    let t = u / 10i128.pow(s.max(0) as u32);
                    match to {
                        DataType::Int => Value::Int(t as i32),
                        _ => Value::BigInt(t as i64),
                    }
                }
                _ => Value::Null,
            })
        }
        // As Java's toString writes them: `[1, 3]`, `{k=1}`, `Struct{A=1,B=x}`.
        (DataType::Array(_) | DataType::Map(..) | DataType::Struct(_), DataType::String) => {
            per_row(&|v| match v {
                Value::Null => Value::Null,
                other => Value::String(java_string(&other)),
            })
        }
        // Java narrows by wrapping.
        (DataType::BigInt, DataType::Int) => per_row(&|v| match v {
            Value::BigInt(n) => Value::Int(n as i32),
            _ => Value::Null,
        }),
        (DataType::Array(from_element), DataType::Array(to_element)) => {
            let list = array.as_list::<i32>();
            let values = cast(list.values(), from_element, to_element)?;
            let field = Arc::new(arrow::datatypes::Field::new(
                "item",
                arrow_type(to_element),
                true,
            ));
            Ok(Arc::new(
                ListArray::try_new(field, list.offsets().clone(), values, list.nulls().cloned())
                    .map_err(arrow_err)?,
            ))
        }
        (DataType::Map(from_key, from_value), DataType::Map(to_key, to_value)) => {
            let map = array.as_map();
            let keys = cast(map.keys(), from_key, to_key)?;
            let values = cast(map.values(), from_value, to_value)?;
            let fields = brook_planner::types::map_entry_fields(to_key, to_value);
            let entries = StructArray::try_new(fields.clone(), vec![keys, values], None)
                .map_err(arrow_err)?;
            let field = Arc::new(arrow::datatypes::Field::new(
                "entries",
                arrow::datatypes::DataType::Struct(fields),
                false,
            ));
            Ok(Arc::new(
                MapArray::try_new(
                    field,
                    map.offsets().clone(),
                    entries,
                    map.nulls().cloned(),
                    false,
                )
                .map_err(arrow_err)?,
            ))
        }
        // Fields are matched by name, exactly, else in any case when no other field has
        // the source's name; a field the source lacks is NULL.
        (DataType::Struct(from_fields), DataType::Struct(to_fields)) => {
            let source = array.as_struct();
            let columns = to_fields
                .iter()
                .map(|(name, t)| {
                    let exact = from_fields.iter().position(|(n, _)| n == name);
                    let loose = || {
                        from_fields.iter().position(|(n, _)| {
                            n.eq_ignore_ascii_case(name) && !to_fields.iter().any(|(o, _)| o == n)
                        })
                    };
                    match exact.or_else(loose) {
                        Some(i) => cast(source.column(i), &from_fields[i].1, t),
                        None => Ok(new_null_array(&arrow_type(t), array.len())),
                    }
                })
                .collect::<EvalResult<Vec<_>>>()?;
            Ok(Arc::new(
                StructArray::try_new(
                    brook_planner::types::struct_fields(to_fields),
                    columns,
                    source.nulls().cloned(),
                )
                .map_err(arrow_err)?,
            ))
        }
        (DataType::Double, DataType::Int | DataType::BigInt) => per_row(&|v| match v {
            Value::Double(d) => match to {
                DataType::Int => Value::Int(d as i32),
                _ => Value::BigInt(d as i64),
            },
            _ => Value::Null,
        }),
        _ => cast_with_options(
            array,
            &arrow_type(to),
            &CastOptions {
                safe: true,
                ..Default::default()
            },
        )
        .map_err(arrow_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_planner::typing::{type_expr, RowColumn, Scope};

    fn run(sql_expr: &str, columns: Vec<(&str, DataType, ArrayRef)>) -> Vec<Value> {
        let row: Vec<RowColumn> = columns
            .iter()
            .map(|(n, t, _)| RowColumn {
                name: n.to_string(),
                data_type: t.clone(),
            })
            .collect();
        let arrays: Vec<ArrayRef> = columns.iter().map(|(_, _, a)| a.clone()).collect();
        let len = arrays[0].len();
        let stmt =
            brook_sql::parse_statement(&format!("SELECT {sql_expr} FROM s"), Default::default())
                .unwrap();
        let brook_sql::ast::StatementKind::Query(q) = stmt.kind else {
            panic!()
        };
        let brook_sql::ast::SelectItem::Expr { expr, .. } = &q.select[0] else {
            panic!()
        };
        let typed = type_expr(
            expr,
            &Scope {
                columns: &row,
                qualifiers: vec!["S".into()],
            },
        )
        .unwrap();
        let out = evaluate(&typed, &arrays, len).unwrap();
        (0..len)
            .map(|i| value_at(&out, &typed.data_type, i))
            .collect()
    }

    fn ints(v: &[Option<i32>]) -> ArrayRef {
        Arc::new(Int32Array::from(v.to_vec()))
    }

    #[test]
    fn integer_division_by_zero_is_null() {
        let out = run(
            "A / B",
            vec![
                ("A", DataType::Int, ints(&[Some(7), Some(1)])),
                ("B", DataType::Int, ints(&[Some(2), Some(0)])),
            ],
        );
        assert_eq!(out, vec![Value::Int(3), Value::Null]);
    }

    #[test]
    fn decimal_arithmetic_follows_ksql_types() {
        let out = run(
            "A * 1.5 + 0.25",
            vec![("A", DataType::Int, ints(&[Some(3), None]))],
        );
        assert_eq!(out, vec![Value::Decimal(475, 2), Value::Null]);
        let out = run("A / 3.0", vec![("A", DataType::Int, ints(&[Some(1)]))]);
        assert_eq!(out, vec![Value::Decimal(333333, 6)]);
    }

    #[test]
    fn case_like_in_between_and_casts() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("apple"), Some("b%x"), None]));
        let a = ints(&[Some(1), Some(5), Some(10)]);
        let cols = || {
            vec![
                ("S", DataType::String, s.clone()),
                ("A", DataType::Int, a.clone()),
            ]
        };
        assert_eq!(
            run(
                "CASE WHEN A < 2 THEN 'low' WHEN A < 6 THEN 'mid' ELSE 'high' END",
                cols()
            ),
            vec![
                Value::String("low".into()),
                Value::String("mid".into()),
                Value::String("high".into())
            ]
        );
        assert_eq!(
            run("S LIKE 'a%'", cols()),
            vec![Value::Boolean(true), Value::Boolean(false), Value::Null]
        );
        assert_eq!(
            run("S LIKE 'b!%%' ESCAPE '!'", cols()),
            vec![Value::Boolean(false), Value::Boolean(true), Value::Null]
        );
        assert_eq!(
            run("A IN (5, 10)", cols()),
            vec![
                Value::Boolean(false),
                Value::Boolean(true),
                Value::Boolean(true)
            ]
        );
        assert_eq!(
            run("A BETWEEN 2 AND 5", cols()),
            vec![
                Value::Boolean(false),
                Value::Boolean(true),
                Value::Boolean(false)
            ]
        );
        assert_eq!(
            run("CAST(A AS DOUBLE) / 4", cols())
                .into_iter()
                .map(|v| match v {
                    Value::Double(d) => d,
                    _ => f64::NAN,
                })
                .collect::<Vec<_>>(),
            vec![0.25, 1.25, 2.5]
        );
        assert_eq!(
            run("CAST(A * 1.0E7 AS STRING)", cols())[0],
            Value::String("1.0E7".into())
        );
        assert_eq!(run("S + '!'", cols())[0], Value::String("apple!".into()));
        assert_eq!(
            run("S IS NULL", cols()),
            vec![
                Value::Boolean(false),
                Value::Boolean(false),
                Value::Boolean(true)
            ]
        );
    }

    #[test]
    fn struct_fields_and_subscripts() {
        let t = DataType::Struct(vec![
            ("X".into(), DataType::Int),
            ("L".into(), DataType::Array(Box::new(DataType::String))),
        ]);
        let rows = [
            Value::Struct(vec![
                ("X".into(), Value::Int(4)),
                (
                    "L".into(),
                    Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
                ),
            ]),
            Value::Null,
        ];
        let arr = build_array(&t, &rows.iter().collect::<Vec<_>>()).unwrap();
        let cols = || vec![("S", t.clone(), arr.clone())];
        assert_eq!(run("S->X + 1", cols()), vec![Value::Int(5), Value::Null]);
        assert_eq!(
            run("S->L[1]", cols()),
            vec![Value::String("a".into()), Value::Null]
        );
        assert_eq!(
            run("S->L[-1]", cols()),
            vec![Value::String("b".into()), Value::Null]
        );
        assert_eq!(run("S->L[3]", cols()), vec![Value::Null, Value::Null]);
    }
}
