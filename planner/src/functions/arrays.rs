//! Array functions.

use super::{int_arg, no_match, strict, ArgTypes, ScalarFunction, Signature};
use crate::value::{compare_values, Value};
use brook_sql::ast::DataType;

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "ARRAY_LENGTH",
            resolve: |a| match a {
                [Some(t @ DataType::Array(_))] => Ok(Signature {
                    params: vec![t.clone()],
                    returns: DataType::Int,
                }),
                _ => Err(no_match("ARRAY_LENGTH", a)),
            },
            eval: |v, _| strict(v, |v| Ok(Value::Int(items(&v[0]).len() as i32))),
        },
        ScalarFunction {
            name: "ARRAY_CONTAINS",
            resolve: |a| match a {
                [Some(t @ DataType::Array(e)), _] => Ok(Signature {
                    params: vec![t.clone(), (**e).clone()],
                    returns: DataType::Boolean,
                }),
                _ => Err(no_match("ARRAY_CONTAINS", a)),
            },
            eval: |v, _| {
                Ok(if v[0].is_null() {
                    Value::Boolean(false)
                } else {
                    Value::Boolean(items(&v[0]).contains(&v[1]))
                })
            },
        },
        ScalarFunction {
            name: "ARRAY_DISTINCT",
            resolve: |a| same_array("ARRAY_DISTINCT", a, 1),
            eval: |v, _| strict(v, |v| Ok(Value::Array(distinct(items(&v[0]).iter())))),
        },
        ScalarFunction {
            name: "ARRAY_EXCEPT",
            resolve: |a| same_array("ARRAY_EXCEPT", a, 2),
            eval: |v, _| {
                strict(v, |v| {
                    let remove = items(&v[1]);
                    Ok(Value::Array(distinct(
                        items(&v[0]).iter().filter(|x| !remove.contains(x)),
                    )))
                })
            },
        },
        ScalarFunction {
            name: "ARRAY_INTERSECT",
            resolve: |a| same_array("ARRAY_INTERSECT", a, 2),
            eval: |v, _| {
                strict(v, |v| {
                    let keep = items(&v[1]);
                    Ok(Value::Array(distinct(
                        items(&v[0]).iter().filter(|x| keep.contains(x)),
                    )))
                })
            },
        },
        ScalarFunction {
            name: "ARRAY_UNION",
            resolve: |a| same_array("ARRAY_UNION", a, 2),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(Value::Array(distinct(
                        items(&v[0]).iter().chain(items(&v[1]).iter()),
                    )))
                })
            },
        },
        ScalarFunction {
            name: "ARRAY_CONCAT",
            resolve: |a| same_array("ARRAY_CONCAT", a, 2),
            eval: |v, _| {
                if v.iter().all(Value::is_null) {
                    return Ok(Value::Null);
                }
                Ok(Value::Array(
                    items(&v[0])
                        .iter()
                        .chain(items(&v[1]).iter())
                        .cloned()
                        .collect(),
                ))
            },
        },
        ScalarFunction {
            name: "ARRAY_REMOVE",
            resolve: |a| match a {
                [Some(t @ DataType::Array(e)), _] => Ok(Signature {
                    params: vec![t.clone(), (**e).clone()],
                    returns: t.clone(),
                }),
                _ => Err(no_match("ARRAY_REMOVE", a)),
            },
            eval: |v, _| {
                if v[0].is_null() {
                    return Ok(Value::Null);
                }
                Ok(Value::Array(
                    items(&v[0])
                        .iter()
                        .filter(|x| **x != v[1])
                        .cloned()
                        .collect(),
                ))
            },
        },
        ScalarFunction {
            name: "ARRAY_MAX",
            resolve: |a| element_of("ARRAY_MAX", a),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(super::pick(items(&v[0]), std::cmp::Ordering::Greater))
                })
            },
        },
        ScalarFunction {
            name: "ARRAY_MIN",
            resolve: |a| element_of("ARRAY_MIN", a),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(super::pick(items(&v[0]), std::cmp::Ordering::Less))
                })
            },
        },
        ScalarFunction {
            name: "ARRAY_SORT",
            resolve: |a| match a {
                [Some(t @ DataType::Array(_))] => Ok(Signature {
                    params: vec![t.clone()],
                    returns: t.clone(),
                }),
                [Some(t @ DataType::Array(_)), Some(DataType::String)] => Ok(Signature {
                    params: vec![t.clone(), DataType::String],
                    returns: t.clone(),
                }),
                _ => Err(no_match("ARRAY_SORT", a)),
            },
            eval: |v, _| {
                if v[0].is_null() {
                    return Ok(Value::Null);
                }
                let descending =
                    matches!(v.get(1), Some(Value::String(s)) if s.eq_ignore_ascii_case("DESC"));
                let mut values: Vec<Value> = items(&v[0]).to_vec();
                // NULLs go last either way.
                values.sort_by(|a, b| match (a.is_null(), b.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ => {
                        let o = compare_values(a, b).unwrap_or(std::cmp::Ordering::Equal);
                        if descending {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                });
                Ok(Value::Array(values))
            },
        },
        ScalarFunction {
            name: "ARRAY_JOIN",
            resolve: |a| match a {
                [Some(t @ DataType::Array(_))] => Ok(Signature {
                    params: vec![t.clone()],
                    returns: DataType::String,
                }),
                [Some(t @ DataType::Array(_)), d] if super::fits(d, &DataType::String) => {
                    Ok(Signature {
                        params: vec![t.clone(), DataType::String],
                        returns: DataType::String,
                    })
                }
                _ => Err(no_match("ARRAY_JOIN", a)),
            },
            eval: |v, _| {
                if v[0].is_null() {
                    return Ok(Value::Null);
                }
                let sep = match v.get(1) {
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => String::new(),
                    None => ",".into(),
                };
                let parts: Vec<String> = items(&v[0])
                    .iter()
                    .map(|x| crate::value::display(x).unwrap_or_else(|| "null".into()))
                    .collect();
                Ok(Value::String(parts.join(&sep)))
            },
        },
        ScalarFunction {
            name: "SLICE",
            resolve: |a| match a {
                [Some(t @ DataType::Array(_)), f, to]
                    if super::fits(f, &DataType::Int) && super::fits(to, &DataType::Int) =>
                {
                    Ok(Signature {
                        params: vec![t.clone(), DataType::Int, DataType::Int],
                        returns: t.clone(),
                    })
                }
                _ => Err(no_match("SLICE", a)),
            },
            eval: |v, _| {
                strict(v, |v| {
                    let list = items(&v[0]);
                    let (from, to) = (int_arg(&v[1]).unwrap_or(1), int_arg(&v[2]).unwrap_or(0));
                    let start = (from.max(1) - 1) as usize;
                    let end = (to.max(0) as usize).min(list.len());
                    Ok(Value::Array(if start < end {
                        list[start..end].to_vec()
                    } else {
                        vec![]
                    }))
                })
            },
        },
        ScalarFunction {
            name: "GENERATE_SERIES",
            resolve: |a| {
                use DataType::{BigInt, Int};
                let ints = DataType::Array(Box::new(Int));
                let bigints = DataType::Array(Box::new(BigInt));
                super::first_of(
                    "GENERATE_SERIES",
                    a,
                    &[
                        (&[Int, Int], ints.clone()),
                        (&[Int, Int, Int], ints),
                        (&[BigInt, BigInt], bigints.clone()),
                        (&[BigInt, BigInt, Int], bigints),
                    ],
                )
            },
            eval: |v, t| strict(v, |v| generate_series(v, t)),
        },
    ]
}

/// The most elements GENERATE_SERIES makes: a series past it would take the process's
/// memory for one value.
const MAX_SERIES: i64 = 10_000_000;

/// GENERATE_SERIES: `start` to `end` inclusive by `step` (1 or -1 toward `end` when not
/// given), as ksqlDB makes it, with its errors for a zero step or one of the wrong sign.
fn generate_series(v: &[Value], t: &DataType) -> Result<Value, String> {
    let (Some(start), Some(end)) = (int_arg(&v[0]), int_arg(&v[1])) else {
        return Ok(Value::Null);
    };
    let diff = end as i128 - start as i128;
    let step = match v.get(2) {
        Some(step) => int_arg(step).unwrap_or(1) as i128,
        None if diff >= 0 => 1,
        None => -1,
    };
    if step == 0 {
        return Err("GENERATE_SERIES step cannot be zero".into());
    }
    if (diff > 0 && step < 0) || (diff < 0 && step > 0) {
        return Err("GENERATE_SERIES step has wrong sign".into());
    }
    let size = 1 + diff / step;
    if size > MAX_SERIES as i128 {
        return Err(format!(
            "GENERATE_SERIES would make {size} elements, more than {MAX_SERIES}"
        ));
    }
    let ints = matches!(t, DataType::Array(e) if **e == DataType::Int);
    Ok(Value::Array(
        (0..size)
            .map(|i| {
                let n = start as i128 + i * step;
                if ints {
                    Value::Int(n as i32)
                } else {
                    Value::BigInt(n as i64)
                }
            })
            .collect(),
    ))
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        _ => &[],
    }
}

fn distinct<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

fn same_array(name: &str, a: ArgTypes, n: usize) -> Result<Signature, String> {
    let t = a.iter().flatten().next().cloned();
    match t {
        Some(t @ DataType::Array(_)) if a.len() == n && a.iter().all(|x| super::fits(x, &t)) => {
            Ok(Signature {
                params: vec![t.clone(); n],
                returns: t,
            })
        }
        _ => Err(no_match(name, a)),
    }
}

fn element_of(name: &str, a: ArgTypes) -> Result<Signature, String> {
    match a {
        [Some(t @ DataType::Array(e))] => Ok(Signature {
            params: vec![t.clone()],
            returns: (**e).clone(),
        }),
        _ => Err(no_match(name, a)),
    }
}

/// The arrays CUBE_EXPLODE emits, as one array of arrays: every combination of the
/// elements kept or replaced by NULL, counting in binary with the first element as the
/// highest bit, without repeats. Not registered: only CUBE_EXPLODE uses it.
pub static CUBE: ScalarFunction = ScalarFunction {
    name: "CUBE_EXPLODE",
    resolve: |a| match a {
        [Some(t @ DataType::Array(_))] => Ok(Signature {
            params: vec![t.clone()],
            returns: DataType::Array(Box::new(t.clone())),
        }),
        _ => Err(no_match("CUBE_EXPLODE", a)),
    },
    eval: |v, _| {
        let elements = items(&v[0]);
        let n = elements.len().min(16);
        let mut out: Vec<Value> = Vec::new();
        for mask in 0u32..(1 << n) {
            let combination = Value::Array(
                elements
                    .iter()
                    .take(n)
                    .enumerate()
                    .map(|(j, e)| {
                        if mask & (1 << (n - 1 - j)) != 0 {
                            e.clone()
                        } else {
                            Value::Null
                        }
                    })
                    .collect(),
            );
            if !out.contains(&combination) {
                out.push(combination);
            }
        }
        Ok(Value::Array(out))
    },
};

#[cfg(test)]
mod tests {
    use super::generate_series;
    use crate::value::Value;
    use brook_sql::ast::DataType;

    #[test]
    fn series_refuse_zero_steps_wrong_signs_and_sizes_past_the_limit() {
        let ints = DataType::Array(Box::new(DataType::Int));
        let series = |args: &[i32]| {
            let args: Vec<Value> = args.iter().map(|i| Value::Int(*i)).collect();
            generate_series(&args, &ints)
        };
        assert_eq!(
            series(&[5, 1]),
            Ok(Value::Array((1..=5).rev().map(Value::Int).collect()))
        );
        assert_eq!(
            series(&[1, 5, 0]),
            Err("GENERATE_SERIES step cannot be zero".into())
        );
        assert_eq!(
            series(&[1, 5, -1]),
            Err("GENERATE_SERIES step has wrong sign".into())
        );
        assert!(series(&[0, i32::MAX]).is_err_and(|e| e.contains("more than 10000000")));
    }
}
