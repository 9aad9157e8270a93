//! Numeric functions.

use super::{
    common_type, exactly, first_of, no_match, strict, ArgTypes, ScalarFunction, Signature,
};
use crate::types::is_numeric;
use crate::value::Value;
use brook_sql::ast::DataType;

use DataType::{BigInt, Double, Int};

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "ABS",
            resolve: |a| same_numeric("ABS", a),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(unary(&v[0], |i| i.wrapping_abs(), f64::abs, |d| d.abs()))
                })
            },
        },
        ScalarFunction {
            name: "CEIL",
            resolve: |a| rounded("CEIL", a),
            eval: |v, t| strict(v, |v| Ok(round_to(&v[0], t, f64::ceil, Rounding::Ceil))),
        },
        ScalarFunction {
            name: "FLOOR",
            resolve: |a| rounded("FLOOR", a),
            eval: |v, t| strict(v, |v| Ok(round_to(&v[0], t, f64::floor, Rounding::Floor))),
        },
        ScalarFunction {
            name: "ROUND",
            resolve: |a| {
                if a.len() == 2 {
                    return match &a[0] {
                        Some(DataType::Decimal { precision, scale }) => exactly(
                            "ROUND",
                            a,
                            &[
                                DataType::Decimal {
                                    precision: *precision,
                                    scale: *scale,
                                },
                                Int,
                            ],
                            DataType::Decimal {
                                precision: *precision,
                                scale: *scale,
                            },
                        ),
                        _ => exactly("ROUND", a, &[Double, Int], Double),
                    };
                }
                match &a.first() {
                    Some(Some(Double)) => exactly("ROUND", a, &[Double], BigInt),
                    // ksqlDB keeps a rounded decimal's integer digits: DECIMAL(p - s, 0).
                    Some(Some(DataType::Decimal { precision, scale })) => exactly(
                        "ROUND",
                        a,
                        &[DataType::Decimal {
                            precision: *precision,
                            scale: *scale,
                        }],
                        DataType::Decimal {
                            precision: (*precision as i16 - *scale as i16).clamp(1, 38) as u8,
                            scale: 0,
                        },
                    ),
                    _ => rounded("ROUND", a),
                }
            },
            eval: |v, t| strict(v, |v| Ok(round(v, t))),
        },
        ScalarFunction {
            name: "TRUNC",
            // The signatures of ROUND; the value goes toward zero instead.
            resolve: |a| {
                if a.len() == 2 {
                    return match &a[0] {
                        Some(t @ DataType::Decimal { .. }) => {
                            exactly("TRUNC", a, &[t.clone(), Int], t.clone())
                        }
                        _ => exactly("TRUNC", a, &[Double, Int], Double),
                    };
                }
                match &a.first() {
                    Some(Some(Double)) => exactly("TRUNC", a, &[Double], BigInt),
                    _ => rounded("TRUNC", a),
                }
            },
            eval: |v, t| strict(v, |v| Ok(trunc(v, t))),
        },
        ScalarFunction {
            name: "SQRT",
            resolve: |a| exactly("SQRT", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::sqrt))),
        },
        ScalarFunction {
            name: "SIN",
            resolve: |a| exactly("SIN", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::sin))),
        },
        ScalarFunction {
            name: "COS",
            resolve: |a| exactly("COS", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::cos))),
        },
        ScalarFunction {
            name: "TAN",
            resolve: |a| exactly("TAN", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::tan))),
        },
        ScalarFunction {
            name: "COT",
            resolve: |a| exactly("COT", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], cot))),
        },
        ScalarFunction {
            name: "ASIN",
            resolve: |a| exactly("ASIN", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::asin))),
        },
        ScalarFunction {
            name: "ACOS",
            resolve: |a| exactly("ACOS", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::acos))),
        },
        ScalarFunction {
            name: "ATAN",
            resolve: |a| exactly("ATAN", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::atan))),
        },
        ScalarFunction {
            name: "SINH",
            resolve: |a| exactly("SINH", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::sinh))),
        },
        ScalarFunction {
            name: "COSH",
            resolve: |a| exactly("COSH", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::cosh))),
        },
        ScalarFunction {
            name: "TANH",
            resolve: |a| exactly("TANH", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::tanh))),
        },
        ScalarFunction {
            name: "DEGREES",
            resolve: |a| exactly("DEGREES", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::to_degrees))),
        },
        ScalarFunction {
            name: "RADIANS",
            resolve: |a| exactly("RADIANS", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::to_radians))),
        },
        ScalarFunction {
            name: "CBRT",
            resolve: |a| exactly("CBRT", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::cbrt))),
        },
        ScalarFunction {
            name: "ATAN2",
            resolve: |a| exactly("ATAN2", a, &[Double, Double], Double),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match (&v[0], &v[1]) {
                        (Value::Double(y), Value::Double(x)) => Value::Double(y.atan2(*x)),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "RANDOM",
            resolve: |a| exactly("RANDOM", a, &[], Double),
            // A new value per call, in [0, 1).
            eval: |_, _| Ok(Value::Double(fastrand::f64())),
        },
        ScalarFunction {
            name: "PI",
            resolve: |a| exactly("PI", a, &[], Double),
            eval: |_, _| Ok(Value::Double(std::f64::consts::PI)),
        },
        ScalarFunction {
            name: "EXP",
            resolve: |a| exactly("EXP", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::exp))),
        },
        ScalarFunction {
            name: "LN",
            resolve: |a| exactly("LN", a, &[Double], Double),
            eval: |v, _| strict(v, |v| Ok(float(&v[0], f64::ln))),
        },
        ScalarFunction {
            name: "LOG",
            resolve: |a| {
                first_of(
                    "LOG",
                    a,
                    &[(&[Double], Double), (&[Double, Double], Double)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match (v.first(), v.get(1)) {
                        (Some(Value::Double(x)), None) => Value::Double(x.ln()),
                        // As ksqlDB: no logarithm to a base that is not positive or is 1.
                        (Some(Value::Double(b)), Some(_)) if *b <= 0.0 || *b == 1.0 => {
                            Value::Double(f64::NAN)
                        }
                        (Some(Value::Double(b)), Some(Value::Double(x))) => {
                            Value::Double(x.ln() / b.ln())
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "POWER",
            resolve: |a| exactly("POWER", a, &[Double, Double], Double),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match (&v[0], &v[1]) {
                        (Value::Double(b), Value::Double(e)) => Value::Double(b.powf(*e)),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "SIGN",
            resolve: |a| match a.first() {
                Some(Some(t)) if a.len() == 1 && is_numeric(t) => Ok(Signature {
                    params: vec![t.clone()],
                    returns: Int,
                }),
                _ => Err(no_match("SIGN", a)),
            },
            eval: |v, _| {
                strict(v, |v| {
                    Ok(Value::Int(match &v[0] {
                        Value::Int(i) => i.signum(),
                        Value::BigInt(i) => i.signum() as i32,
                        Value::Double(d) => {
                            if *d > 0.0 {
                                1
                            } else if *d < 0.0 {
                                -1
                            } else {
                                0
                            }
                        }
                        Value::Decimal(u, _) => u.signum() as i32,
                        _ => 0,
                    }))
                })
            },
        },
        ScalarFunction {
            name: "GREATEST",
            resolve: |a| extreme("GREATEST", a),
            eval: |v, _| Ok(super::pick(v, std::cmp::Ordering::Greater)),
        },
        ScalarFunction {
            name: "LEAST",
            resolve: |a| extreme("LEAST", a),
            eval: |v, _| Ok(super::pick(v, std::cmp::Ordering::Less)),
        },
    ]
}

fn same_numeric(name: &str, a: ArgTypes) -> Result<Signature, String> {
    match a {
        [Some(t)] if is_numeric(t) => Ok(Signature {
            params: vec![t.clone()],
            returns: t.clone(),
        }),
        _ => Err(no_match(name, a)),
    }
}

/// CEIL, FLOOR and ROUND keep integer types and give DECIMALs a scale of zero.
fn rounded(name: &str, a: ArgTypes) -> Result<Signature, String> {
    match a {
        [Some(DataType::Decimal { precision, scale })] => Ok(Signature {
            params: vec![DataType::Decimal {
                precision: *precision,
                scale: *scale,
            }],
            returns: DataType::Decimal {
                precision: (*precision as i16 - *scale as i16 + 1).clamp(1, 38) as u8,
                scale: 0,
            },
        }),
        _ => same_numeric(name, a),
    }
}

fn unary(v: &Value, i: fn(i64) -> i64, f: fn(f64) -> f64, d: fn(i128) -> i128) -> Value {
    match v {
        Value::Int(x) => Value::Int(i(*x as i64) as i32),
        Value::BigInt(x) => Value::BigInt(i(*x)),
        Value::Double(x) => Value::Double(f(*x)),
        Value::Decimal(x, s) => Value::Decimal(d(*x), *s),
        _ => Value::Null,
    }
}

/// The cotangent, as ksqlDB computes it: 1 / tan(x).
fn cot(x: f64) -> f64 {
    1.0 / x.tan()
}

fn float(v: &Value, f: fn(f64) -> f64) -> Value {
    match v {
        Value::Double(x) => Value::Double(f(*x)),
        _ => Value::Null,
    }
}

#[derive(Clone, Copy)]
enum Rounding {
    Ceil,
    Floor,
    HalfUp,
    /// Toward zero.
    Down,
}

fn round_decimal(u: i128, from: i8, to: i8, mode: Rounding) -> i128 {
    if to >= from {
        return u * 10i128.pow((to - from) as u32);
    }
    let div = 10i128.pow((from - to) as u32);
    let (q, r) = (u / div, u % div);
    match mode {
        Rounding::Ceil => {
            if r > 0 {
                q + 1
            } else {
                q
            }
        }
        Rounding::Floor => {
            if r < 0 {
                q - 1
            } else {
                q
            }
        }
        Rounding::Down => q,
        Rounding::HalfUp => {
            if r.abs() * 2 >= div {
                q + u.signum()
            } else {
                q
            }
        }
    }
}

fn round_to(v: &Value, t: &DataType, f: fn(f64) -> f64, mode: Rounding) -> Value {
    match (v, t) {
        (Value::Decimal(u, s), DataType::Decimal { scale, .. }) => {
            Value::Decimal(round_decimal(*u, *s, *scale, mode), *scale)
        }
        (Value::Double(d), _) => Value::Double(f(*d)),
        (other, _) => other.clone(),
    }
}

/// Java's Math.round: half up, toward positive infinity.
fn java_round(d: f64) -> f64 {
    (d + 0.5).floor()
}

fn round(v: &[Value], t: &DataType) -> Value {
    match (&v[0], v.get(1)) {
        (Value::Double(d), None) => Value::BigInt(java_round(*d) as i64),
        (Value::Double(d), Some(Value::Int(places))) => {
            let factor = 10f64.powi(*places);
            Value::Double(java_round(d * factor) / factor)
        }
        (Value::Decimal(u, s), None) => {
            round_to(&Value::Decimal(*u, *s), t, f64::round, Rounding::HalfUp)
        }
        (Value::Decimal(u, s), Some(Value::Int(places))) => {
            let places = (*places).clamp(-38, 38) as i8;
            let rounded = round_decimal(*u, *s, places.min(*s), Rounding::HalfUp);
            Value::Decimal(
                round_decimal(rounded, places.min(*s), *s, Rounding::HalfUp),
                *s,
            )
        }
        (other, _) => other.clone(),
    }
}

/// TRUNC: toward zero, to `places` decimal places (0 when not given; negative ones are
/// left of the point).
fn trunc(v: &[Value], t: &DataType) -> Value {
    let places = match v.get(1) {
        Some(Value::Int(p)) => (*p).clamp(-38, 38),
        _ => 0,
    };
    match (&v[0], v.get(1)) {
        (Value::Double(d), None) => Value::BigInt(d.trunc() as i64),
        (Value::Double(d), Some(_)) => {
            let factor = 10f64.powi(places);
            Value::Double((d * factor).trunc() / factor)
        }
        (Value::Decimal(u, s), None) => {
            round_to(&Value::Decimal(*u, *s), t, f64::trunc, Rounding::Down)
        }
        (Value::Decimal(u, s), Some(_)) => {
            let places = (places as i8).min(*s);
            let cut = round_decimal(*u, *s, places, Rounding::Down);
            Value::Decimal(round_decimal(cut, places, *s, Rounding::Down), *s)
        }
        (other, _) => other.clone(),
    }
}

fn extreme(name: &str, a: ArgTypes) -> Result<Signature, String> {
    if !a.is_empty() && a.iter().all(Option::is_none) {
        return Err(format!(
            "Function '{}' cannot be resolved due to ambiguous method parameters ({}).",
            name.to_lowercase(),
            vec!["null"; a.len()].join(", ")
        ));
    }
    // Strings among dates, times or timestamps are read as such.
    let temporal = a
        .iter()
        .flatten()
        .find(|t| matches!(t, DataType::Date | DataType::Time | DataType::Timestamp));
    if let Some(t) = temporal {
        if a.iter().flatten().all(|x| x == t || *x == DataType::String) {
            return Ok(Signature {
                params: vec![t.clone(); a.len()],
                returns: t.clone(),
            });
        }
    }
    // Java overloads for INT, BIGINT, DECIMAL and DOUBLE: mixed kinds of number resolve
    // only when a DOUBLE is among them.
    let kinds: std::collections::BTreeSet<u8> = a
        .iter()
        .flatten()
        .filter_map(|t| match t {
            DataType::Int => Some(0),
            DataType::BigInt => Some(1),
            DataType::Decimal { .. } => Some(2),
            DataType::Double => Some(3),
            _ => None,
        })
        .collect();
    if kinds.len() > 1 && !kinds.contains(&3) {
        return Err(format!(
            "Function '{}' cannot be resolved due to ambiguous method parameters ({}).",
            name.to_lowercase(),
            a.iter()
                .map(|t| t.as_ref().map_or("null".to_string(), |t| t.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let t = common_type(name, a)?;
    Ok(Signature {
        params: vec![t.clone(); a.len()],
        returns: t,
    })
}

#[cfg(test)]
mod tests {
    use crate::functions::lookup;
    use crate::value::Value;
    use brook_sql::ast::DataType;

    fn call(name: &str, args: &[Value]) -> Value {
        let f = lookup(name).expect("registered");
        (f.0.eval)(args, &DataType::Double).expect("evaluates")
    }

    /// The trigonometric and angle functions of ksqlDB's reference (Since 0.28), with
    /// Java's Math results, NULL in NULL out, and NaN outside a domain.
    #[test]
    fn trigonometric_and_angle_functions_follow_java_math() {
        let d = Value::Double;
        assert_eq!(call("SIN", &[d(0.0)]), d(0.0));
        assert_eq!(call("COS", &[d(0.0)]), d(1.0));
        assert_eq!(call("TAN", &[d(0.0)]), d(0.0));
        assert_eq!(call("COT", &[d(1.0)]), d(1.0 / 1f64.tan()));
        assert_eq!(call("ASIN", &[d(1.0)]), d(std::f64::consts::FRAC_PI_2));
        assert!(matches!(call("ACOS", &[d(2.0)]), Value::Double(x) if x.is_nan()));
        assert_eq!(call("ATAN", &[d(1.0)]), d(std::f64::consts::FRAC_PI_4));
        assert_eq!(
            call("ATAN2", &[d(1.0), d(0.0)]),
            d(std::f64::consts::FRAC_PI_2)
        );
        assert_eq!(call("SINH", &[d(0.0)]), d(0.0));
        assert_eq!(call("COSH", &[d(0.0)]), d(1.0));
        assert_eq!(call("TANH", &[d(0.0)]), d(0.0));
        // Java's toDegrees/toRadians multiply by the same constants as Rust's.
        assert_eq!(call("DEGREES", &[d(std::f64::consts::PI)]), d(180.0));
        assert_eq!(call("RADIANS", &[d(180.0)]), d(std::f64::consts::PI));
        assert_eq!(call("CBRT", &[d(27.0)]), d(3.0));
        assert_eq!(call("PI", &[]), d(std::f64::consts::PI));
        assert_eq!(call("SIN", &[Value::Null]), Value::Null);
        assert_eq!(call("ATAN2", &[d(1.0), Value::Null]), Value::Null);
        // Integers widen to DOUBLE, as for the other math functions.
        let f = lookup("SIN").expect("registered");
        assert!((f.0.resolve)(&[Some(DataType::Int)]).is_ok());
        assert!((f.0.resolve)(&[Some(DataType::Int), Some(DataType::Int)]).is_err());
    }
}
