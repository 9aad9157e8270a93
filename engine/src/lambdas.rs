//! TRANSFORM, FILTER and REDUCE. Lambda bodies see the row's columns followed by their
//! parameters. TRANSFORM and FILTER evaluate a body once over every element of the batch
//! (the row's columns repeated per element); REDUCE folds element by element.

use crate::arrays::{build_array, repeat, value_at};
use crate::eval::{evaluate, null_as_false, EvalResult};
use arrow::array::*;
use arrow::buffer::OffsetBuffer;
use arrow::compute::{filter, take};
use arrow::datatypes::Field;
use brook_planner::types::arrow_type;
use brook_planner::typing::{LambdaOp, TypedExpr};
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use std::sync::Arc;

fn err(e: arrow::error::ArrowError) -> String {
    e.to_string()
}

/// The elements of a list or map column: its offsets made relative, its element arrays,
/// and for each element the row it belongs to.
struct Elements {
    offsets: Vec<i32>,
    /// One array (list) or two (map keys and values).
    arrays: Vec<ArrayRef>,
    rows: UInt32Array,
}

fn elements(input: &ArrayRef, op: LambdaOp) -> EvalResult<Elements> {
    let (offsets, arrays): (&[i32], Vec<ArrayRef>) = match op {
        LambdaOp::TransformArray | LambdaOp::FilterArray | LambdaOp::ReduceArray => {
            let list = input.as_list::<i32>();
            (list.value_offsets(), vec![list.values().clone()])
        }
        _ => {
            let map = input.as_map();
            (
                map.value_offsets(),
                vec![map.keys().clone(), map.values().clone()],
            )
        }
    };
    let start = offsets[0];
    let end = offsets[offsets.len() - 1];
    let arrays = arrays
        .iter()
        .map(|a| a.slice(start as usize, (end - start) as usize))
        .collect();
    let offsets: Vec<i32> = offsets.iter().map(|o| o - start).collect();
    let rows: UInt32Array = offsets
        .windows(2)
        .enumerate()
        .flat_map(|(row, w)| std::iter::repeat_n(row as u32, (w[1] - w[0]) as usize))
        .collect();
    Ok(Elements {
        offsets,
        arrays,
        rows,
    })
}

/// The row's columns repeated once per element, followed by the element arrays.
fn element_columns(columns: &[ArrayRef], e: &Elements) -> EvalResult<Vec<ArrayRef>> {
    let mut out = columns
        .iter()
        .map(|c| take(c, &e.rows, None).map_err(err))
        .collect::<EvalResult<Vec<_>>>()?;
    out.extend(e.arrays.iter().cloned());
    Ok(out)
}

/// The operands of the arithmetic in a lambda body, outside CASE branches: where one is
/// NULL, ksqlDB's Java lambda throws (unboxing NULL), and the function's result is NULL.
fn arithmetic_operands<'a>(e: &'a TypedExpr, out: &mut Vec<&'a TypedExpr>) {
    use brook_planner::typing::ExprKind as K;
    match &e.kind {
        K::Arithmetic { left, right, .. } => {
            out.push(left);
            out.push(right);
            arithmetic_operands(left, out);
            arithmetic_operands(right, out);
        }
        K::Compare { left, right, .. } | K::And(left, right) | K::Or(left, right) => {
            arithmetic_operands(left, out);
            arithmetic_operands(right, out);
        }
        K::Not(x) | K::Negate(x) | K::Cast(x) => arithmetic_operands(x, out),
        K::Function { args, .. } => args.iter().for_each(|a| arithmetic_operands(a, out)),
        _ => {}
    }
}

/// For each row, whether evaluating `bodies` over its elements throws in ksqlDB.
fn throwing_rows(
    bodies: &[TypedExpr],
    cols: &[ArrayRef],
    e: &Elements,
    len: usize,
) -> EvalResult<Vec<bool>> {
    let mut operands = Vec::new();
    for b in bodies {
        arithmetic_operands(b, &mut operands);
    }
    let mut rows = vec![false; len];
    let total = e.rows.len();
    for operand in operands {
        let values = evaluate(operand, cols, total)?;
        for i in 0..total {
            if values.is_null(i) {
                rows[e.rows.value(i) as usize] = true;
            }
        }
    }
    Ok(rows)
}

pub(crate) fn evaluate_lambda(
    op: LambdaOp,
    input: &TypedExpr,
    init: Option<&TypedExpr>,
    bodies: &[TypedExpr],
    result: &DataType,
    columns: &[ArrayRef],
    len: usize,
) -> EvalResult<ArrayRef> {
    let values = evaluate(input, columns, len)?;
    let e = elements(&values, op)?;
    let total = e.rows.len();
    match op {
        LambdaOp::TransformArray => {
            let cols = element_columns(columns, &e)?;
            let mapped = evaluate(&bodies[0], &cols, total)?;
            let throwing = throwing_rows(bodies, &cols, &e, len)?;
            let field = Arc::new(Field::new("item", mapped.data_type().clone(), true));
            let list = ListArray::try_new(
                field,
                OffsetBuffer::new(e.offsets.into()),
                mapped,
                without(values.nulls(), &throwing),
            )
            .map_err(err)?;
            Ok(Arc::new(list))
        }
        LambdaOp::FilterArray => {
            let cols = element_columns(columns, &e)?;
            let mask = null_as_false(evaluate(&bodies[0], &cols, total)?.as_boolean());
            let throwing = throwing_rows(bodies, &cols, &e, len)?;
            let kept = filter(&e.arrays[0], &mask).map_err(err)?;
            let mut offsets = Vec::with_capacity(len + 1);
            offsets.push(0i32);
            for w in e.offsets.windows(2) {
                let n = (w[0]..w[1]).filter(|i| mask.value(*i as usize)).count() as i32;
                offsets.push(offsets[offsets.len() - 1] + n);
            }
            let DataType::Array(inner) = result else {
                return Err("FILTER of an array gives an array".into());
            };
            let field = Arc::new(Field::new("item", arrow_type(inner), true));
            Ok(Arc::new(
                ListArray::try_new(
                    field,
                    OffsetBuffer::new(offsets.into()),
                    kept,
                    without(values.nulls(), &throwing),
                )
                .map_err(err)?,
            ))
        }
        LambdaOp::TransformMap | LambdaOp::FilterMap => {
            let cols = element_columns(columns, &e)?;
            let DataType::Map(kt, vt) = result else {
                return Err("TRANSFORM or FILTER of a map gives a map".into());
            };
            let (keys, vals, mask) = if op == LambdaOp::TransformMap {
                (
                    evaluate(&bodies[0], &cols, total)?,
                    evaluate(&bodies[1], &cols, total)?,
                    None,
                )
            } else {
                let m = null_as_false(evaluate(&bodies[0], &cols, total)?.as_boolean());
                (e.arrays[0].clone(), e.arrays[1].clone(), Some(m))
            };
            let throwing = throwing_rows(bodies, &cols, &e, len)?;
            let rows: Vec<Value> = (0..len)
                .map(|row| {
                    if values.is_null(row) || throwing[row] {
                        return Value::Null;
                    }
                    let mut entries: Vec<(Value, Value)> = Vec::new();
                    for i in e.offsets[row] as usize..e.offsets[row + 1] as usize {
                        if mask.as_ref().is_some_and(|m| !m.value(i)) {
                            continue;
                        }
                        let (k, v) = (value_at(&keys, kt, i), value_at(&vals, vt, i));
                        if entries.iter().any(|(x, _)| *x == k) {
                            // ksqlDB's TRANSFORM fails on a duplicate key: NULL.
                            return Value::Null;
                        }
                        entries.push((k, v));
                    }
                    Value::Map(entries)
                })
                .collect();
            build_array(result, &rows.iter().collect::<Vec<_>>())
        }
        LambdaOp::ReduceArray | LambdaOp::ReduceMap => {
            let init = init.ok_or("REDUCE needs an initial state")?;
            let states = evaluate(init, columns, len)?;
            let mut out = Vec::with_capacity(len);
            for row in 0..len {
                let mut state = value_at(&states, result, row);
                if values.is_null(row) || state.is_null() {
                    out.push(if values.is_null(row) {
                        state
                    } else {
                        Value::Null
                    });
                    continue;
                }
                for i in e.offsets[row] as usize..e.offsets[row + 1] as usize {
                    let mut cols: Vec<ArrayRef> = columns.iter().map(|c| c.slice(row, 1)).collect();
                    cols.push(repeat(result, &state, 1)?);
                    cols.extend(e.arrays.iter().map(|a| a.slice(i, 1)));
                    let next = evaluate(&bodies[0], &cols, 1)?;
                    state = value_at(&next, result, 0);
                }
                out.push(state);
            }
            build_array(result, &out.iter().collect::<Vec<_>>())
        }
    }
}

/// `nulls` with the rows where `throwing` is set made NULL too.
fn without(
    nulls: Option<&arrow::buffer::NullBuffer>,
    throwing: &[bool],
) -> Option<arrow::buffer::NullBuffer> {
    if !throwing.iter().any(|t| *t) {
        return nulls.cloned();
    }
    let valid: Vec<bool> = throwing
        .iter()
        .enumerate()
        .map(|(i, t)| !t && nulls.is_none_or(|n| n.is_valid(i)))
        .collect();
    Some(arrow::buffer::NullBuffer::from(valid))
}
