//! Functions over JSON text.

use super::{exactly, first_of, strict, ScalarFunction};
use crate::value::Value;
use brook_sql::ast::DataType;
use serde_json::Value as Json;

use DataType::{Boolean, Int, String as Str};

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "EXTRACTJSONFIELD",
            resolve: |a| exactly("EXTRACTJSONFIELD", a, &[Str, Str], Str),
            eval: |v, _| {
                strict(v, |v| {
                    let (Value::String(text), Value::String(path)) = (&v[0], &v[1]) else {
                        return Ok(Value::Null);
                    };
                    // Jackson reads the first JSON value and ignores what follows.
                    let first = serde_json::Deserializer::from_str(text)
                        .into_iter::<Json>()
                        .next();
                    let Some(Ok(json)) = first else {
                        return Ok(Value::Null);
                    };
                    Ok(match select(&json, path) {
                        Some(Json::String(s)) => Value::String(s.clone()),
                        Some(Json::Null) | None => Value::Null,
                        Some(other) => Value::String(other.to_string()),
                    })
                })
            },
        },
        ScalarFunction {
            name: "IS_JSON_STRING",
            resolve: |a| exactly("IS_JSON_STRING", a, &[Str], Boolean),
            eval: |v, _| {
                Ok(Value::Boolean(
                    matches!(&v[0], Value::String(s) if serde_json::from_str::<Json>(s).is_ok()),
                ))
            },
        },
        ScalarFunction {
            name: "JSON_ARRAY_LENGTH",
            resolve: |a| exactly("JSON_ARRAY_LENGTH", a, &[Str], Int),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match parse(&v[0]) {
                        Some(Json::Array(items)) => Value::Int(items.len() as i32),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "JSON_KEYS",
            resolve: |a| exactly("JSON_KEYS", a, &[Str], DataType::Array(Box::new(Str))),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match parse(&v[0]) {
                        Some(Json::Object(o)) => {
                            Value::Array(o.keys().map(|k| Value::String(k.clone())).collect())
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "JSON_ITEMS",
            resolve: |a| exactly("JSON_ITEMS", a, &[Str], DataType::Array(Box::new(Str))),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match parse(&v[0]) {
                        Some(Json::Array(items)) => Value::Array(
                            items.iter().map(|i| Value::String(i.to_string())).collect(),
                        ),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "JSON_RECORDS",
            resolve: |a| {
                exactly(
                    "JSON_RECORDS",
                    a,
                    &[Str],
                    DataType::Map(Box::new(Str), Box::new(Str)),
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match parse(&v[0]) {
                        Some(Json::Object(o)) => Value::Map(
                            o.iter()
                                .map(|(k, v)| {
                                    let text = match v {
                                        Json::String(s) => s.clone(),
                                        other => other.to_string(),
                                    };
                                    (Value::String(k.clone()), Value::String(text))
                                })
                                .collect(),
                        ),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "JSON_CONCAT",
            resolve: |a| first_of("JSON_CONCAT", a, &[(&[Str, Str], Str)]),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match (parse(&v[0]), parse(&v[1])) {
                        (Some(Json::Object(mut a)), Some(Json::Object(b))) => {
                            a.extend(b);
                            Value::String(Json::Object(a).to_string())
                        }
                        (Some(Json::Array(mut a)), Some(Json::Array(b))) => {
                            a.extend(b);
                            Value::String(Json::Array(a).to_string())
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
    ]
}

fn parse(v: &Value) -> Option<Json> {
    match v {
        Value::String(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

/// A node by a simple JSONPath: `$.a.b`, `$.list[0]`, `$['odd key']`.
fn select<'a>(json: &'a Json, path: &str) -> Option<&'a Json> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut node = json;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            node = node.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            node = match inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
                Some(key) => node.get(key)?,
                None => node.get(inner.parse::<usize>().ok()?)?,
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::select;
    use serde_json::json;

    #[test]
    fn json_paths() {
        let j = json!({"a": {"b": [1, {"c": "x"}]}, "@type": "UDF"});
        assert_eq!(select(&j, "$.a.b[1].c"), Some(&json!("x")));
        assert_eq!(select(&j, "$['@type']"), Some(&json!("UDF")));
        assert_eq!(select(&j, "$.missing"), None);
    }
}
