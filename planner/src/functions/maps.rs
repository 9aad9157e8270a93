//! Map functions.

use super::{no_match, strict, ScalarFunction, Signature};
use crate::value::Value;
use brook_sql::ast::DataType;

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "MAP_KEYS",
            resolve: |a| match a {
                [Some(t @ DataType::Map(k, _))] => Ok(Signature {
                    params: vec![t.clone()],
                    returns: DataType::Array(k.clone()),
                }),
                _ => Err(no_match("MAP_KEYS", a)),
            },
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match &v[0] {
                        Value::Map(e) => Value::Array(e.iter().map(|(k, _)| k.clone()).collect()),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "MAP_VALUES",
            resolve: |a| match a {
                [Some(t @ DataType::Map(_, v))] => Ok(Signature {
                    params: vec![t.clone()],
                    returns: DataType::Array(v.clone()),
                }),
                _ => Err(no_match("MAP_VALUES", a)),
            },
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match &v[0] {
                        Value::Map(e) => Value::Array(e.iter().map(|(_, v)| v.clone()).collect()),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "AS_MAP",
            resolve: |a| match a {
                [Some(k @ DataType::Array(kt)), Some(v @ DataType::Array(vt))] => Ok(Signature {
                    params: vec![k.clone(), v.clone()],
                    returns: DataType::Map(kt.clone(), vt.clone()),
                }),
                _ => Err(no_match("AS_MAP", a)),
            },
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match (&v[0], &v[1]) {
                        (Value::Array(ks), Value::Array(vs)) => {
                            let mut entries: Vec<(Value, Value)> = Vec::new();
                            for (k, v) in ks.iter().zip(vs) {
                                match entries.iter_mut().find(|(e, _)| e == k) {
                                    Some(entry) => entry.1 = v.clone(),
                                    None => entries.push((k.clone(), v.clone())),
                                }
                            }
                            Value::Map(entries)
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "MAP_UNION",
            resolve: |a| match a {
                [Some(t @ DataType::Map(..)), o] if super::fits(o, t) => Ok(Signature {
                    params: vec![t.clone(), t.clone()],
                    returns: t.clone(),
                }),
                _ => Err(no_match("MAP_UNION", a)),
            },
            eval: |v, _| {
                let mut entries: Vec<(Value, Value)> = Vec::new();
                for m in v {
                    if let Value::Map(e) = m {
                        for (k, val) in e {
                            match entries.iter_mut().find(|(x, _)| x == k) {
                                Some(entry) => entry.1 = val.clone(),
                                None => entries.push((k.clone(), val.clone())),
                            }
                        }
                    }
                }
                Ok(if v.iter().all(Value::is_null) {
                    Value::Null
                } else {
                    Value::Map(entries)
                })
            },
        },
    ]
}
