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
        ScalarFunction {
            name: "ENTRIES",
            resolve: |a| match a {
                [Some(t @ DataType::Map(k, v)), sorted]
                    if **k == DataType::String && super::fits(sorted, &DataType::Boolean) =>
                {
                    Ok(Signature {
                        params: vec![t.clone(), DataType::Boolean],
                        returns: DataType::Array(Box::new(DataType::Struct(vec![
                            ("K".into(), DataType::String),
                            ("V".into(), (**v).clone()),
                        ]))),
                    })
                }
                _ => Err(no_match("ENTRIES", a)),
            },
            eval: |v, _| {
                let Value::Map(entries) = &v[0] else {
                    return Ok(Value::Null);
                };
                let mut entries: Vec<&(Value, Value)> = entries.iter().collect();
                if v[1] == Value::Boolean(true) {
                    entries.sort_by(|a, b| {
                        crate::value::compare_values(&a.0, &b.0)
                            .unwrap_or(std::cmp::Ordering::Equal)
                    });
                }
                Ok(Value::Array(
                    entries
                        .into_iter()
                        .map(|(k, v)| {
                            Value::Struct(vec![("K".into(), k.clone()), ("V".into(), v.clone())])
                        })
                        .collect(),
                ))
            },
        },
        ScalarFunction {
            name: "SPLIT_TO_MAP",
            resolve: |a| {
                use DataType::String as Str;
                super::exactly(
                    "SPLIT_TO_MAP",
                    a,
                    &[Str, Str, Str],
                    DataType::Map(Box::new(Str), Box::new(Str)),
                )
            },
            eval: |v, _| strict(v, split_to_map),
        },
    ]
}

/// SPLIT_TO_MAP: entries split by the first delimiter (empty ones skipped), each split by
/// the second into a key and a value (text after a second `kv` is dropped, an entry
/// without one is skipped); a later key replaces an earlier one. Delimiters that are
/// empty or the same give NULL.
fn split_to_map(v: &[Value]) -> Result<Value, String> {
    let (Value::String(text), Value::String(entry), Value::String(kv)) = (&v[0], &v[1], &v[2])
    else {
        return Ok(Value::Null);
    };
    if entry.is_empty() || kv.is_empty() || entry == kv {
        return Ok(Value::Null);
    }
    let mut entries: Vec<(Value, Value)> = Vec::new();
    for pair in text.split(entry.as_str()).filter(|e| !e.is_empty()) {
        let mut parts = pair.split(kv.as_str());
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (key, value) = (Value::String(key.into()), Value::String(value.into()));
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => entries.push((key, value)),
        }
    }
    Ok(Value::Map(entries))
}

#[cfg(test)]
mod tests {
    use super::split_to_map;
    use crate::value::Value;

    fn map(text: &str, entry: &str, kv: &str) -> Value {
        let s = |t: &str| Value::String(t.into());
        split_to_map(&[s(text), s(entry), s(kv)]).unwrap()
    }

    fn entries(pairs: &[(&str, &str)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::String((*k).into()), Value::String((*v).into())))
                .collect(),
        )
    }

    #[test]
    fn text_splits_into_a_map() {
        assert_eq!(
            map("apple:=green/cherry:=red/apple:=red", "/", ":="),
            entries(&[("apple", "red"), ("cherry", "red")])
        );
        assert_eq!(
            map("a:1//b:2/", "/", ":"),
            entries(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(map("a:1:x/b", "/", ":"), entries(&[("a", "1")]));
        assert_eq!(map("a:1", "", ":"), Value::Null);
        assert_eq!(map("a:1", ":", ":"), Value::Null);
    }
}
