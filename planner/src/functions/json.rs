//! Functions over JSON text.

use super::{exactly, first_of, strict, ScalarFunction};
use crate::value::Value;
use brook_sql::ast::DataType;
use serde_json::Value as Json;

use DataType::{BigInt, Boolean, Double, Int, String as Str};

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
        ScalarFunction {
            name: "JSON_ARRAY_CONTAINS",
            resolve: |a| {
                let options: Vec<(&[DataType], DataType)> = vec![
                    (&[Str, Boolean], Boolean),
                    (&[Str, Int], Boolean),
                    (&[Str, BigInt], Boolean),
                    (&[Str, Double], Boolean),
                    (&[Str, Str], Boolean),
                ];
                first_of("JSON_ARRAY_CONTAINS", a, &options)
            },
            eval: |v, _| Ok(Value::Boolean(array_contains(&v[0], &v[1]))),
        },
        ScalarFunction {
            name: "TO_JSON_STRING",
            resolve: |a| match a {
                [t] => Ok(super::Signature {
                    // A NULL literal is written as `null`.
                    params: vec![t.clone().unwrap_or(Str)],
                    returns: Str,
                }),
                _ => Err(super::no_match("TO_JSON_STRING", a)),
            },
            eval: |v, _| {
                let mut text = String::new();
                write_json(&v[0], &mut text);
                Ok(Value::String(text))
            },
        },
    ]
}

/// Whether a JSON array's elements (not those of arrays within it) include `wanted`, as
/// ksqlDB's JSON_ARRAY_CONTAINS compares them: a number only with a number of the same
/// kind (whole or not), NULL with `null`. Text that is not a JSON array holds nothing.
fn array_contains(text: &Value, wanted: &Value) -> bool {
    let Some(Json::Array(items)) = parse(text) else {
        return false;
    };
    items.iter().any(|item| match (item, wanted) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(b), Value::Boolean(w)) => b == w,
        (Json::String(s), Value::String(w)) => s == w,
        (Json::Number(n), Value::Int(w)) => !n.is_f64() && n.as_i64() == Some(*w as i64),
        (Json::Number(n), Value::BigInt(w)) => !n.is_f64() && n.as_i64() == Some(*w),
        (Json::Number(n), Value::Double(w)) => n.is_f64() && n.as_f64() == Some(*w),
        _ => false,
    })
}

/// A value as JSON text, as ksqlDB's TO_JSON_STRING writes it (Jackson's compact form):
/// struct fields by name, map keys as text, dates, times and timestamps in ISO-8601,
/// bytes in base64, doubles as Java prints them.
fn write_json(v: &Value, out: &mut String) {
    use std::fmt::Write;
    let quoted = |text: &str, out: &mut String| {
        out.push_str(&Json::String(text.to_string()).to_string());
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Double(d) if d.is_finite() => out.push_str(&crate::value::format_double(*d)),
        Value::Double(d) => quoted(&crate::value::format_double(*d), out),
        Value::Decimal(u, s) => out.push_str(&crate::value::format_decimal(*u, *s)),
        Value::String(s) => quoted(s, out),
        Value::Bytes(b) => {
            use base64::Engine;
            quoted(&base64::engine::general_purpose::STANDARD.encode(b), out)
        }
        Value::Date(days) => {
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| epoch.checked_add_signed(chrono::TimeDelta::days(*days as i64)));
            match date {
                Some(d) => quoted(&d.format("%Y-%m-%d").to_string(), out),
                None => out.push_str("null"),
            }
        }
        Value::Time(ms) => {
            let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (*ms / 1000) as u32,
                (*ms % 1000) as u32 * 1_000_000,
            );
            match time {
                Some(t) => quoted(&java_time(&t), out),
                None => out.push_str("null"),
            }
        }
        // Timestamps keep their milliseconds, as ksqlDB's timestamp format writes them.
        Value::Timestamp(ms) => match chrono::DateTime::from_timestamp_millis(*ms) {
            Some(t) => quoted(
                &t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                out,
            ),
            None => out.push_str("null"),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => write_object(
            entries
                .iter()
                .map(|(k, v)| (crate::value::display(k).unwrap_or_default(), v)),
            out,
        ),
        Value::Struct(fields) => write_object(fields.iter().map(|(k, v)| (k.clone(), v)), out),
    }
}

/// A JSON object of these members, in order.
fn write_object<'a>(members: impl Iterator<Item = (String, &'a Value)>, out: &mut String) {
    out.push('{');
    for (i, (name, item)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Json::String(name).to_string());
        out.push(':');
        write_json(item, out);
    }
    out.push('}');
}

/// A time of day as Java's LocalTime writes it: seconds only when not zero, then
/// milliseconds only when not zero (`13:25`, `13:25:07`, `13:25:07.250`).
fn java_time(t: &chrono::NaiveTime) -> String {
    use chrono::Timelike;
    let millis = t.nanosecond() / 1_000_000;
    match (t.second(), millis) {
        (0, 0) => t.format("%H:%M").to_string(),
        (_, 0) => t.format("%H:%M:%S").to_string(),
        _ => format!("{}.{millis:03}", t.format("%H:%M:%S")),
    }
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
    use super::{array_contains, select, write_json};
    use crate::value::Value;
    use serde_json::json;

    #[test]
    fn json_arrays_hold_values_of_their_kind() {
        let text = |s: &str| Value::String(s.into());
        let list = text(r#"[1, 2.5, "three", true, null, [4]]"#);
        assert!(array_contains(&list, &Value::Int(1)));
        assert!(array_contains(&list, &Value::BigInt(1)));
        assert!(!array_contains(&list, &Value::Double(1.0)));
        assert!(array_contains(&list, &Value::Double(2.5)));
        assert!(array_contains(&list, &text("three")));
        assert!(array_contains(&list, &Value::Boolean(true)));
        assert!(array_contains(&list, &Value::Null));
        // Elements of nested arrays are not the array's.
        assert!(!array_contains(&list, &Value::Int(4)));
        assert!(!array_contains(&text(r#"{"a": 1}"#), &Value::Int(1)));
        assert!(!array_contains(&text("[1, 2"), &Value::Int(1)));
        assert!(!array_contains(&Value::Null, &Value::Int(1)));
    }

    #[test]
    fn values_are_written_as_json_text() {
        let json = |v: &Value| {
            let mut out = String::new();
            write_json(v, &mut out);
            out
        };
        assert_eq!(json(&Value::Int(1)), "1");
        assert_eq!(json(&Value::Double(15.3)), "15.3");
        assert_eq!(json(&Value::String("a\"b".into())), r#""a\"b""#);
        assert_eq!(json(&Value::Null), "null");
        assert_eq!(json(&Value::Decimal(1230, 2)), "12.30");
        assert_eq!(json(&Value::Date(18911)), r#""2021-10-11""#);
        assert_eq!(json(&Value::Time(48_300_000)), r#""13:25""#);
        assert_eq!(
            json(&Value::Timestamp(1_625_055_519_446)),
            r#""2021-06-30T12:18:39.446""#
        );
        assert_eq!(json(&Value::Bytes(vec![1, 2, 3])), r#""AQID""#);
        let nested = Value::Array(vec![Value::Struct(vec![
            ("JSON_KEY".into(), Value::Int(1)),
            (
                "JSON_VALUE".into(),
                Value::Map(vec![
                    (Value::String("c".into()), Value::Int(2)),
                    (Value::String("d".into()), Value::Int(3)),
                ]),
            ),
        ])]);
        assert_eq!(
            json(&nested),
            r#"[{"JSON_KEY":1,"JSON_VALUE":{"c":2,"d":3}}]"#
        );
    }

    #[test]
    fn json_paths() {
        let j = json!({"a": {"b": [1, {"c": "x"}]}, "@type": "UDF"});
        assert_eq!(select(&j, "$.a.b[1].c"), Some(&json!("x")));
        assert_eq!(select(&j, "$['@type']"), Some(&json!("UDF")));
        assert_eq!(select(&j, "$.missing"), None);
    }
}
