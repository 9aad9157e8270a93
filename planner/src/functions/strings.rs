//! String and bytes functions.

use super::{
    exactly, first_of, fits, int_arg, no_match, strict, ArgTypes, ScalarFunction, Signature,
};
use crate::value::Value;
use brook_sql::ast::DataType;

use DataType::{Bytes, Int, String as Str};

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "UCASE",
            resolve: |a| exactly("UCASE", a, &[Str], Str),
            eval: |v, _| strict(v, |v| Ok(text(v[0].clone(), |s| s.to_uppercase()))),
        },
        ScalarFunction {
            name: "LCASE",
            resolve: |a| exactly("LCASE", a, &[Str], Str),
            eval: |v, _| strict(v, |v| Ok(text(v[0].clone(), |s| s.to_lowercase()))),
        },
        ScalarFunction {
            name: "TRIM",
            resolve: |a| exactly("TRIM", a, &[Str], Str),
            eval: |v, _| strict(v, |v| Ok(text(v[0].clone(), |s| s.trim().to_string()))),
        },
        ScalarFunction {
            name: "LTRIM",
            resolve: |a| exactly("LTRIM", a, &[Str], Str),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(text(v[0].clone(), |s| s.trim_start().to_string()))
                })
            },
        },
        ScalarFunction {
            name: "RTRIM",
            resolve: |a| exactly("RTRIM", a, &[Str], Str),
            eval: |v, _| strict(v, |v| Ok(text(v[0].clone(), |s| s.trim_end().to_string()))),
        },
        ScalarFunction {
            name: "INITCAP",
            resolve: |a| exactly("INITCAP", a, &[Str], Str),
            eval: |v, _| strict(v, |v| Ok(text(v[0].clone(), initcap))),
        },
        ScalarFunction {
            name: "LEN",
            resolve: |a| first_of("LEN", a, &[(&[Str], Int), (&[Bytes], Int)]),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(Value::Int(match &v[0] {
                        Value::String(s) => s.chars().count() as i32,
                        Value::Bytes(b) => b.len() as i32,
                        _ => return Err("LEN takes STRING or BYTES".into()),
                    }))
                })
            },
        },
        ScalarFunction {
            name: "CONCAT",
            resolve: |a| same_kind("CONCAT", a, a.len()),
            // NULL arguments are skipped.
            eval: |v, t| Ok(join(v, t, &[])),
        },
        ScalarFunction {
            name: "CONCAT_WS",
            resolve: |a| same_kind("CONCAT_WS", a, a.len()),
            eval: |v, t| {
                let sep = match &v[0] {
                    Value::Null => return Ok(Value::Null),
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Bytes(b) => b.clone(),
                    _ => vec![],
                };
                Ok(join(&v[1..], t, &sep))
            },
        },
        ScalarFunction {
            name: "ELT",
            resolve: |a| variadic_strings("ELT", a, Int, Str),
            eval: |v, _| {
                // 1-indexed; NULL when n is NULL or out of range.
                Ok(match &v[0] {
                    Value::Int(n) if *n >= 1 => v.get(*n as usize).cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                })
            },
        },
        ScalarFunction {
            name: "FIELD",
            resolve: |a| variadic_strings("FIELD", a, Str, Int),
            eval: |v, _| {
                // The 1-indexed position of the first equal string; 0 when there is none,
                // and for NULL, which equals nothing.
                let position = match &v[0] {
                    Value::Null => None,
                    s => v[1..].iter().position(|a| a == s),
                };
                Ok(Value::Int(position.map_or(0, |p| p as i32 + 1)))
            },
        },
        ScalarFunction {
            name: "MASK",
            resolve: |a| {
                first_of(
                    "MASK",
                    a,
                    &[(&[Str], Str), (&[Str, Str, Str, Str, Str], Str)],
                )
            },
            eval: |v, _| mask(v, Mask::All, "mask"),
        },
        ScalarFunction {
            name: "MASK_KEEP_LEFT",
            resolve: |a| {
                first_of(
                    "MASK_KEEP_LEFT",
                    a,
                    &[(&[Str, Int], Str), (&[Str, Int, Str, Str, Str, Str], Str)],
                )
            },
            eval: |v, _| mask(v, Mask::KeepLeft, "mask_keep_left"),
        },
        ScalarFunction {
            name: "MASK_KEEP_RIGHT",
            resolve: |a| {
                first_of(
                    "MASK_KEEP_RIGHT",
                    a,
                    &[(&[Str, Int], Str), (&[Str, Int, Str, Str, Str, Str], Str)],
                )
            },
            eval: |v, _| mask(v, Mask::KeepRight, "mask_keep_right"),
        },
        ScalarFunction {
            name: "MASK_LEFT",
            resolve: |a| {
                first_of(
                    "MASK_LEFT",
                    a,
                    &[(&[Str, Int], Str), (&[Str, Int, Str, Str, Str, Str], Str)],
                )
            },
            eval: |v, _| mask(v, Mask::Left, "mask_left"),
        },
        ScalarFunction {
            name: "MASK_RIGHT",
            resolve: |a| {
                first_of(
                    "MASK_RIGHT",
                    a,
                    &[(&[Str, Int], Str), (&[Str, Int, Str, Str, Str, Str], Str)],
                )
            },
            eval: |v, _| mask(v, Mask::Right, "mask_right"),
        },
        ScalarFunction {
            name: "SUBSTRING",
            resolve: |a| {
                first_of(
                    "SUBSTRING",
                    a,
                    &[
                        (&[Str, Int], Str),
                        (&[Str, Int, Int], Str),
                        (&[Bytes, Int], Bytes),
                        (&[Bytes, Int, Int], Bytes),
                    ],
                )
            },
            eval: |v, _| strict(v, substring),
        },
        ScalarFunction {
            name: "REPLACE",
            resolve: |a| exactly("REPLACE", a, &[Str, Str, Str], Str),
            eval: |v, _| {
                strict(v, |v| match (&v[0], &v[1], &v[2]) {
                    (Value::String(s), Value::String(from), Value::String(to)) => {
                        Ok(Value::String(s.replace(from.as_str(), to)))
                    }
                    _ => Err("REPLACE takes strings".into()),
                })
            },
        },
        ScalarFunction {
            name: "INSTR",
            resolve: |a| {
                first_of(
                    "INSTR",
                    a,
                    &[
                        (&[Str, Str], Int),
                        (&[Str, Str, Int], Int),
                        (&[Str, Str, Int, Int], Int),
                    ],
                )
            },
            eval: |v, _| strict(v, instr),
        },
        ScalarFunction {
            name: "LPAD",
            resolve: |a| {
                first_of(
                    "LPAD",
                    a,
                    &[(&[Str, Int, Str], Str), (&[Bytes, Int, Bytes], Bytes)],
                )
            },
            eval: |v, _| strict(v, |v| pad(v, true)),
        },
        ScalarFunction {
            name: "RPAD",
            resolve: |a| {
                first_of(
                    "RPAD",
                    a,
                    &[(&[Str, Int, Str], Str), (&[Bytes, Int, Bytes], Bytes)],
                )
            },
            eval: |v, _| strict(v, |v| pad(v, false)),
        },
        ScalarFunction {
            name: "SPLIT",
            resolve: |a| {
                first_of(
                    "SPLIT",
                    a,
                    &[
                        (&[Str, Str], DataType::Array(Box::new(Str))),
                        (&[Bytes, Bytes], DataType::Array(Box::new(Bytes))),
                    ],
                )
            },
            eval: |v, _| strict(v, split),
        },
        ScalarFunction {
            name: "CHR",
            resolve: |a| first_of("CHR", a, &[(&[Int], Str), (&[Str], Str)]),
            eval: |v, _| {
                strict(v, |v| {
                    let code = match &v[0] {
                        Value::Int(i) => Some(*i as u32),
                        Value::String(s) => {
                            // One code unit, or a surrogate pair, as Java writes them.
                            let units: Option<Vec<u16>> = s
                                .split("\\u")
                                .skip(1)
                                .map(|h| u16::from_str_radix(h, 16).ok())
                                .collect();
                            match units.as_deref() {
                                Some([_]) | Some([_, _]) if s.starts_with("\\u") => {
                                    char::decode_utf16(units.unwrap_or_default())
                                        .next()
                                        .and_then(|c| c.ok())
                                        .map(u32::from)
                                }
                                _ => s
                                    .strip_prefix("U+")
                                    .and_then(|h| u32::from_str_radix(h, 16).ok()),
                            }
                        }
                        _ => None,
                    };
                    Ok(code
                        .and_then(char::from_u32)
                        .map(|c| Value::String(c.to_string()))
                        .unwrap_or(Value::Null))
                })
            },
        },
        ScalarFunction {
            name: "REVERSE",
            resolve: |a| first_of("REVERSE", a, &[(&[Str], Str), (&[Bytes], Bytes)]),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match &v[0] {
                        Value::String(s) => Value::String(s.chars().rev().collect()),
                        Value::Bytes(b) => Value::Bytes(b.iter().rev().copied().collect()),
                        _ => Value::Null,
                    })
                })
            },
        },
    ]
}

fn text(v: Value, f: impl FnOnce(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(&s)),
        other => other,
    }
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            start = true;
            out.push(c);
        } else if start {
            out.extend(c.to_uppercase());
            start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// All arguments STRING, or all BYTES (NULLs fit either); at least `min` of them.
fn same_kind(name: &str, args: ArgTypes, min: usize) -> Result<Signature, String> {
    let kind = args.iter().flatten().next().cloned().unwrap_or(Str);
    if args.len() < min.max(1)
        || !matches!(kind, Str | Bytes)
        || args.iter().flatten().any(|a| *a != kind)
    {
        return Err(no_match(name, args));
    }
    Ok(Signature {
        params: vec![kind.clone(); args.len()],
        returns: kind,
    })
}

fn join(values: &[Value], t: &DataType, sep: &[u8]) -> Value {
    let mut out: Vec<u8> = Vec::new();
    let mut first = true;
    for v in values {
        let part: &[u8] = match v {
            Value::String(s) => s.as_bytes(),
            Value::Bytes(b) => b,
            _ => continue,
        };
        if !first {
            out.extend_from_slice(sep);
        }
        first = false;
        out.extend_from_slice(part);
    }
    match t {
        DataType::Bytes => Value::Bytes(out),
        _ => Value::String(String::from_utf8_lossy(&out).into_owned()),
    }
}

/// ksqlDB's one-based positions, negative from the end.
fn substring(v: &[Value]) -> Result<Value, String> {
    let pos = int_arg(&v[1]).unwrap_or(1);
    let len = v.get(2).and_then(int_arg);
    let slice = |n: usize| -> (usize, usize) {
        let start = if pos > 0 {
            (pos - 1) as usize
        } else if pos < 0 {
            n.saturating_sub((-pos) as usize)
        } else {
            0
        };
        let start = start.min(n);
        let end = match len {
            Some(l) if l >= 0 => (start + l as usize).min(n),
            Some(_) => start,
            None => n,
        };
        (start, end)
    };
    Ok(match &v[0] {
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            let (a, b) = slice(chars.len());
            Value::String(chars[a..b].iter().collect())
        }
        Value::Bytes(bytes) => {
            let (a, b) = slice(bytes.len());
            Value::Bytes(bytes[a..b].to_vec())
        }
        _ => Value::Null,
    })
}

fn instr(v: &[Value]) -> Result<Value, String> {
    let (Value::String(s), Value::String(sub)) = (&v[0], &v[1]) else {
        return Err("INSTR takes strings".into());
    };
    let position = v.get(2).and_then(int_arg).unwrap_or(1);
    let occurrence = v.get(3).and_then(int_arg).unwrap_or(1).max(1) as usize;
    let chars: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let n = chars.len() as i64;
    let matches_at =
        |i: usize| i + needle.len() <= chars.len() && chars[i..i + needle.len()] == needle[..];
    let mut found = 0;
    if position >= 0 {
        let start = (position.max(1) - 1) as usize;
        for i in start..chars.len() {
            if matches_at(i) {
                found += 1;
                if found == occurrence {
                    return Ok(Value::Int(i as i32 + 1));
                }
            }
        }
    } else {
        let start = n + position;
        let mut i = start;
        while i >= 0 {
            if matches_at(i as usize) {
                found += 1;
                if found == occurrence {
                    return Ok(Value::Int(i as i32 + 1));
                }
            }
            i -= 1;
        }
    }
    Ok(Value::Int(0))
}

fn pad(v: &[Value], left: bool) -> Result<Value, String> {
    let Some(len) = int_arg(&v[1]) else {
        return Ok(Value::Null);
    };
    if len < 0 {
        return Ok(Value::Null);
    }
    let len = len as usize;
    fn build<T: Clone>(input: &[T], fill: &[T], len: usize, left: bool) -> Option<Vec<T>> {
        // ksqlDB gives NULL for an empty padding, whatever the lengths.
        if fill.is_empty() {
            return None;
        }
        if input.len() >= len {
            return Some(input[..len].to_vec());
        }
        let padding: Vec<T> = fill
            .iter()
            .cycle()
            .take(len - input.len())
            .cloned()
            .collect();
        Some(if left {
            [padding, input.to_vec()].concat()
        } else {
            [input.to_vec(), padding].concat()
        })
    }
    Ok(match (&v[0], &v[2]) {
        (Value::String(s), Value::String(f)) => {
            let s: Vec<char> = s.chars().collect();
            let f: Vec<char> = f.chars().collect();
            build(&s, &f, len, left)
                .map(|c| Value::String(c.into_iter().collect()))
                .unwrap_or(Value::Null)
        }
        (Value::Bytes(s), Value::Bytes(f)) => build(s, f, len, left)
            .map(Value::Bytes)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

fn split(v: &[Value]) -> Result<Value, String> {
    Ok(match (&v[0], &v[1]) {
        (Value::String(s), Value::String(d)) => Value::Array(if s.is_empty() {
            vec![Value::String(String::new())]
        } else if d.is_empty() {
            s.chars().map(|c| Value::String(c.to_string())).collect()
        } else {
            s.split(d.as_str())
                .map(|p| Value::String(p.to_string()))
                .collect()
        }),
        (Value::Bytes(s), Value::Bytes(d)) => {
            if s.is_empty() {
                Value::Array(vec![Value::Bytes(vec![])])
            } else if d.is_empty() {
                Value::Array(s.iter().map(|b| Value::Bytes(vec![*b])).collect())
            } else {
                let mut parts = Vec::new();
                let mut start = 0;
                let mut i = 0;
                while i + d.len() <= s.len() {
                    if &s[i..i + d.len()] == d.as_slice() {
                        parts.push(Value::Bytes(s[start..i].to_vec()));
                        i += d.len();
                        start = i;
                    } else {
                        i += 1;
                    }
                }
                parts.push(Value::Bytes(s[start..].to_vec()));
                Value::Array(parts)
            }
        }
        _ => Value::Null,
    })
}

/// Which characters the MASK functions mask.
#[derive(Clone, Copy)]
enum Mask {
    All,
    /// All but the first n.
    KeepLeft,
    /// All but the last n.
    KeepRight,
    /// Only the first n.
    Left,
    /// Only the last n.
    Right,
}

/// ksqlDB's masker: upper-case letters become 'X', lower-case 'x', digits 'n' and the rest
/// '-', or the first character of the given replacements; a NULL replacement leaves that
/// class as it is.
fn mask(v: &[Value], which: Mask, name: &str) -> Result<Value, String> {
    let Value::String(input) = &v[0] else {
        return Ok(Value::Null);
    };
    let (count, replacements) = match which {
        Mask::All => (0, &v[1..]),
        _ => match &v[1] {
            Value::Int(n) if *n >= 0 => (*n as usize, &v[2..]),
            Value::Int(_) => {
                return Err(format!(
                    "function {name} requires a non-negative number of characters to mask or keep"
                ))
            }
            _ => return Ok(Value::Null),
        },
    };
    let replacement = |i: usize, default: char| match replacements.get(i) {
        None => Some(default),
        Some(Value::String(s)) => s.chars().next(),
        Some(_) => None,
    };
    let (upper, lower, digit, other) = (
        replacement(0, 'X'),
        replacement(1, 'x'),
        replacement(2, 'n'),
        replacement(3, '-'),
    );
    let length = input.chars().count();
    let masked = |i: usize| match which {
        Mask::All => true,
        Mask::KeepLeft => i >= count,
        Mask::KeepRight => i + count < length,
        Mask::Left => i < count,
        Mask::Right => i + count >= length,
    };
    Ok(Value::String(
        input
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if !masked(i) {
                    return c;
                }
                let by = if c.is_uppercase() {
                    upper
                } else if c.is_lowercase() {
                    lower
                } else if c.is_numeric() {
                    digit
                } else {
                    other
                };
                by.unwrap_or(c)
            })
            .collect(),
    ))
}

/// A first parameter of type `first`, then any number of strings (ELT, FIELD).
fn variadic_strings(
    name: &str,
    args: ArgTypes,
    first: DataType,
    returns: DataType,
) -> Result<Signature, String> {
    match args.split_first() {
        Some((head, rest)) if fits(head, &first) && rest.iter().all(|a| fits(a, &Str)) => {
            let mut params = vec![first];
            params.extend(rest.iter().map(|_| Str));
            Ok(Signature { params, returns })
        }
        _ => Err(no_match(name, args)),
    }
}

#[cfg(test)]
mod tests {
    use crate::functions::lookup;
    use crate::value::Value;
    use brook_sql::ast::DataType;

    fn call(name: &str, args: &[Value]) -> Value {
        let f = lookup(name).expect("registered");
        (f.0.eval)(args, &DataType::String).expect("evaluates")
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    /// The MASK functions on scalar-functions.md's examples.
    #[test]
    fn masks_follow_the_reference_examples() {
        let text = s("My Test $123");
        assert_eq!(call("MASK", std::slice::from_ref(&text)), s("Xx-Xxxx--nnn"));
        assert_eq!(
            call(
                "MASK",
                &[text.clone(), s("*"), Value::Null, s("1"), Value::Null]
            ),
            s("*y *est $111")
        );
        let n = Value::Int(4);
        assert_eq!(
            call("MASK_KEEP_LEFT", &[text.clone(), n.clone()]),
            s("My Txxx--nnn")
        );
        assert_eq!(
            call("MASK_KEEP_RIGHT", &[text.clone(), n.clone()]),
            s("Xx-Xxxx-$123")
        );
        assert_eq!(
            call("MASK_LEFT", &[text.clone(), n.clone()]),
            s("Xx-Xest $123")
        );
        assert_eq!(call("MASK_RIGHT", &[text.clone(), n]), s("My Test -nnn"));
        assert_eq!(call("MASK", &[Value::Null]), Value::Null);
        let f = lookup("MASK_LEFT").expect("registered");
        assert!((f.0.eval)(&[text, Value::Int(-1)], &DataType::String)
            .unwrap_err()
            .contains("non-negative"));
    }

    /// ELT and FIELD as scalar-functions.md defines them: 1-indexed, complements.
    #[test]
    fn elt_and_field_are_one_indexed_complements() {
        let args = [s("a"), s("b"), s("c")];
        let elt = |n: Value| call("ELT", &[&[n][..], &args[..]].concat());
        assert_eq!(elt(Value::Int(2)), s("b"));
        assert_eq!(elt(Value::Int(0)), Value::Null);
        assert_eq!(elt(Value::Int(4)), Value::Null);
        assert_eq!(elt(Value::Null), Value::Null);
        let field = |x: Value| call("FIELD", &[&[x][..], &args[..]].concat());
        assert_eq!(field(s("c")), Value::Int(3));
        assert_eq!(field(s("z")), Value::Int(0));
        assert_eq!(field(Value::Null), Value::Int(0));
        assert_eq!(call("FIELD", &[Value::Null, Value::Null]), Value::Int(0));
        let f = lookup("ELT").expect("registered");
        assert!((f.0.resolve)(&[Some(DataType::Int), Some(DataType::String)]).is_ok());
        assert!((f.0.resolve)(&[Some(DataType::String), Some(DataType::String)]).is_err());
    }
}
