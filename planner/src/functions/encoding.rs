//! Bytes, text encodings, URL parameters, regular expressions and geography.

use super::{exactly, first_of, int_arg, strict, ScalarFunction};
use crate::value::Value;
use base64::Engine;
use brook_sql::ast::DataType;

use DataType::{BigInt, Bytes, Double, Int, String as Str};

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "MD5",
            resolve: |a| exactly("MD5", a, &[DataType::String], DataType::String),
            eval: |v, _| {
                strict(v, |v| {
                    use md5::Digest;
                    Ok(match &v[0] {
                        Value::String(s) => Value::String(
                            md5::Md5::digest(s.as_bytes())
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect(),
                        ),
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "UUID",
            resolve: |a| {
                first_of(
                    "UUID",
                    a,
                    &[
                        (&[], DataType::String),
                        (&[DataType::Bytes], DataType::String),
                    ],
                )
            },
            eval: |v, _| match v.first() {
                // A random (version 4) UUID per call.
                None => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
                Some(Value::Bytes(b)) => uuid::Uuid::from_slice(b)
                    .map(|u| Value::String(u.to_string()))
                    .map_err(|_| format!("UUID needs 16 bytes, not {}", b.len())),
                Some(_) => Ok(Value::Null),
            },
        },
        ScalarFunction {
            name: "TO_BYTES",
            resolve: |a| exactly("TO_BYTES", a, &[Str, Str], Bytes),
            eval: |v, _| {
                strict(v, |v| match (&v[0], &v[1]) {
                    (Value::String(s), Value::String(enc)) => decode_text(s, enc).map(Value::Bytes),
                    _ => Ok(Value::Null),
                })
            },
        },
        ScalarFunction {
            name: "FROM_BYTES",
            resolve: |a| exactly("FROM_BYTES", a, &[Bytes, Str], Str),
            eval: |v, _| {
                strict(v, |v| match (&v[0], &v[1]) {
                    (Value::Bytes(b), Value::String(enc)) if enc.eq_ignore_ascii_case("hex") => Ok(
                        Value::String(b.iter().map(|x| format!("{x:02X}")).collect()),
                    ),
                    (Value::Bytes(b), Value::String(enc)) => encode_text(b, enc).map(Value::String),
                    _ => Ok(Value::Null),
                })
            },
        },
        ScalarFunction {
            name: "ENCODE",
            resolve: |a| exactly("ENCODE", a, &[Str, Str, Str], Str),
            eval: |v, _| {
                strict(v, |v| match (&v[0], &v[1], &v[2]) {
                    (Value::String(s), Value::String(from), Value::String(to)) => {
                        encode_text(&decode_text(s, from)?, to).map(Value::String)
                    }
                    _ => Ok(Value::Null),
                })
            },
        },
        ScalarFunction {
            name: "INT_FROM_BYTES",
            resolve: |a| {
                first_of(
                    "INT_FROM_BYTES",
                    a,
                    &[(&[Bytes], Int), (&[Bytes, Str], Int)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    number_from_bytes(v, 4)
                        .map(|b| Value::Int(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
                })
            },
        },
        ScalarFunction {
            name: "BIGINT_FROM_BYTES",
            resolve: |a| {
                first_of(
                    "BIGINT_FROM_BYTES",
                    a,
                    &[(&[Bytes], BigInt), (&[Bytes, Str], BigInt)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    number_from_bytes(v, 8).map(|b| Value::BigInt(i64::from_be_bytes(eight(&b))))
                })
            },
        },
        ScalarFunction {
            name: "DOUBLE_FROM_BYTES",
            resolve: |a| {
                first_of(
                    "DOUBLE_FROM_BYTES",
                    a,
                    &[(&[Bytes], Double), (&[Bytes, Str], Double)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    number_from_bytes(v, 8).map(|b| Value::Double(f64::from_be_bytes(eight(&b))))
                })
            },
        },
        ScalarFunction {
            name: "URL_ENCODE_PARAM",
            resolve: |a| exactly("URL_ENCODE_PARAM", a, &[Str], Str),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match &v[0] {
                        Value::String(s) => {
                            Value::String(form_urlencoded::byte_serialize(s.as_bytes()).collect())
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "URL_DECODE_PARAM",
            resolve: |a| exactly("URL_DECODE_PARAM", a, &[Str], Str),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match &v[0] {
                        Value::String(s) => {
                            let decoded: String =
                                form_urlencoded::parse(format!("x={s}").as_bytes())
                                    .next()
                                    .map(|(_, v)| v.into_owned())
                                    .unwrap_or_default();
                            Value::String(decoded)
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "REGEXP_EXTRACT",
            resolve: |a| {
                first_of(
                    "REGEXP_EXTRACT",
                    a,
                    &[(&[Str, Str], Str), (&[Str, Str, Int], Str)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    let (re, text) = regex_and_text(v)?;
                    let group = v.get(2).and_then(int_arg).unwrap_or(0) as usize;
                    Ok(re
                        .captures(text)
                        .and_then(|c| c.get(group))
                        .map(|m| Value::String(m.as_str().to_string()))
                        .unwrap_or(Value::Null))
                })
            },
        },
        ScalarFunction {
            name: "REGEXP_EXTRACT_ALL",
            resolve: |a| {
                first_of(
                    "REGEXP_EXTRACT_ALL",
                    a,
                    &[
                        (&[Str, Str], DataType::Array(Box::new(Str))),
                        (&[Str, Str, Int], DataType::Array(Box::new(Str))),
                    ],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    let (re, text) = regex_and_text(v)?;
                    let group = v.get(2).and_then(int_arg).unwrap_or(0) as usize;
                    Ok(Value::Array(
                        re.captures_iter(text)
                            .map(|c| {
                                c.get(group)
                                    .map(|m| Value::String(m.as_str().to_string()))
                                    .unwrap_or(Value::Null)
                            })
                            .collect(),
                    ))
                })
            },
        },
        ScalarFunction {
            name: "REGEXP_REPLACE",
            resolve: |a| exactly("REGEXP_REPLACE", a, &[Str, Str, Str], Str),
            eval: |v, _| {
                strict(v, |v| {
                    let (Value::String(text), Value::String(pattern), Value::String(with)) =
                        (&v[0], &v[1], &v[2])
                    else {
                        return Ok(Value::Null);
                    };
                    let re = regex::Regex::new(pattern)
                        .map_err(|e| format!("invalid regular expression: {e}"))?;
                    Ok(Value::String(
                        re.replace_all(text, java_replacement(with).as_str())
                            .into_owned(),
                    ))
                })
            },
        },
        ScalarFunction {
            name: "REGEXP_SPLIT_TO_ARRAY",
            resolve: |a| {
                exactly(
                    "REGEXP_SPLIT_TO_ARRAY",
                    a,
                    &[Str, Str],
                    DataType::Array(Box::new(Str)),
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    let (Value::String(text), Value::String(pattern)) = (&v[0], &v[1]) else {
                        return Ok(Value::Null);
                    };
                    let re = regex::Regex::new(pattern)
                        .map_err(|e| format!("invalid regular expression: {e}"))?;
                    Ok(Value::Array(
                        re.split(text)
                            .map(|p| Value::String(p.to_string()))
                            .collect(),
                    ))
                })
            },
        },
        ScalarFunction {
            name: "GEO_DISTANCE",
            resolve: |a| {
                first_of(
                    "GEO_DISTANCE",
                    a,
                    &[
                        (&[Double, Double, Double, Double], Double),
                        (&[Double, Double, Double, Double, Str], Double),
                    ],
                )
            },
            eval: |v, _| {
                // Units left NULL are kilometres, as when left out.
                strict(&v[..4], |_| {
                    let f = |x: &Value| match x {
                        Value::Double(d) => *d,
                        _ => 0.0,
                    };
                    let radius = match v.get(4) {
                    None | Some(Value::Null) => 6371.0,
                    Some(Value::String(u)) => match u.to_uppercase().as_str() {
                        "KM" | "KILOMETERS" | "KILOMETRES" => 6371.0,
                        "MI" | "MILES" => 3959.0,
                        other => return Err(format!("GeoDistance function units parameter must be one of MI, MILES, KM or KILOMETERS, got {other}")),
                    },
                    Some(_) => 6371.0,
                };
                    let (lat1, lon1, lat2, lon2) = (f(&v[0]), f(&v[1]), f(&v[2]), f(&v[3]));
                    let (dlat, dlon) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
                    let a = (dlat / 2.0).sin().powi(2)
                        + lat1.to_radians().cos()
                            * lat2.to_radians().cos()
                            * (dlon / 2.0).sin().powi(2);
                    Ok(Value::Double(2.0 * a.sqrt().asin() * radius))
                })
            },
        },
    ]
}

fn regex_and_text(v: &[Value]) -> Result<(regex::Regex, &str), String> {
    let (Value::String(pattern), Value::String(text)) = (&v[0], &v[1]) else {
        return Err("expected a pattern and text".into());
    };
    let re = regex::Regex::new(pattern).map_err(|e| format!("invalid regular expression: {e}"))?;
    Ok((re, text))
}

/// Java's `$1` group references read as the regex crate's `${1}`.
fn java_replacement(with: &str) -> String {
    let mut out = String::new();
    let mut chars = with.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => {
                let digits: String =
                    std::iter::from_fn(|| chars.next_if(|d| d.is_ascii_digit())).collect();
                out.push_str(&format!("${{{digits}}}"));
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn decode_text(s: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding.to_lowercase().as_str() {
        "hex" => {
            // `0x...` may have an odd number of digits; `X'...'` and bare digits may not.
            let digits = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                if rest.len() % 2 == 1 {
                    format!("0{rest}")
                } else {
                    rest.to_string()
                }
            } else if let Some(rest) = s.strip_prefix("X'").or_else(|| s.strip_prefix("x'")) {
                rest.strip_suffix('\'')
                    .ok_or_else(|| format!("'{s}' is not hex"))?
                    .to_string()
            } else {
                s.to_string()
            };
            if digits.len() % 2 == 1 || !digits.is_ascii() {
                return Err(format!("'{s}' is not hex"));
            }
            (0..digits.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&digits[i..i + 2], 16)
                        .map_err(|_| format!("'{s}' is not hex"))
                })
                .collect()
        }
        "utf8" => Ok(s.as_bytes().to_vec()),
        // As Java writes text in US-ASCII: what is not ASCII becomes `?`.
        "ascii" => Ok(s
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| format!("'{s}' is not base64")),
        other => Err(format!(
            "Supported input encodings are: hex, utf8, ascii and base64, got {other}"
        )),
    }
}

fn encode_text(b: &[u8], encoding: &str) -> Result<String, String> {
    match encoding.to_lowercase().as_str() {
        "hex" => Ok(b.iter().map(|x| format!("{x:02x}")).collect()),
        "utf8" => Ok(String::from_utf8_lossy(b).into_owned()),
        // As Java reads US-ASCII: each byte that is not ASCII is a replacement character.
        "ascii" => Ok(b
            .iter()
            .map(|&x| if x.is_ascii() { x as char } else { '\u{FFFD}' })
            .collect()),
        "base64" => Ok(base64::engine::general_purpose::STANDARD.encode(b)),
        other => Err(format!(
            "Supported output encodings are: hex, utf8, ascii and base64, got {other}"
        )),
    }
}

/// The first bytes of a number of `size` bytes, big-endian unless the second argument
/// says LITTLE_ENDIAN.
fn number_from_bytes(v: &[Value], size: usize) -> Result<Vec<u8>, String> {
    let Value::Bytes(b) = &v[0] else {
        return Err("expected BYTES".into());
    };
    if b.len() != size {
        return Err(format!("Number has {} bytes, expected {size}", b.len()));
    }
    let mut bytes = b.clone();
    if matches!(v.get(1), Some(Value::String(o)) if o.eq_ignore_ascii_case("LITTLE_ENDIAN")) {
        bytes.reverse();
    }
    Ok(bytes)
}

fn eight(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[..8]);
    out
}

/// The parts of a URI as java.net.URI splits them, which is what ksqlDB's URL functions
/// read: `scheme://userinfo@host:port/path?query#fragment`.
pub(super) struct UriParts<'a> {
    pub scheme: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<i32>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub fragment: Option<&'a str>,
}

pub(super) fn split_uri(uri: &str) -> UriParts<'_> {
    let (rest, fragment) = match uri.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (uri, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let scheme_end = rest.find(':').filter(|i| {
        let s = &rest[..*i];
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => match r.find('/') {
            Some(i) => (Some(&r[..i]), &r[i..]),
            None => (Some(r), ""),
        },
        None => (None, rest),
    };
    let host_port = authority.map(|a| a.rsplit_once('@').map(|(_, h)| h).unwrap_or(a));
    let (host, port) = match host_port {
        Some(hp) => match hp.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                (Some(h), p.parse().ok())
            }
            _ => (Some(hp), None),
        },
        None => (None, None),
    };
    UriParts {
        scheme,
        host: host.filter(|h| !h.is_empty()),
        port,
        path,
        query,
        fragment,
    }
}

fn url_part(v: &[Value], part: fn(&UriParts) -> Option<String>) -> Result<Value, String> {
    Ok(match &v[0] {
        Value::String(s) => part(&split_uri(s))
            .map(Value::String)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

pub(super) fn url_functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "URL_EXTRACT_PROTOCOL",
            resolve: |a| exactly("URL_EXTRACT_PROTOCOL", a, &[Str], Str),
            eval: |v, _| strict(v, |v| url_part(v, |u| u.scheme.map(str::to_string))),
        },
        ScalarFunction {
            name: "URL_EXTRACT_HOST",
            resolve: |a| exactly("URL_EXTRACT_HOST", a, &[Str], Str),
            eval: |v, _| strict(v, |v| url_part(v, |u| u.host.map(str::to_string))),
        },
        ScalarFunction {
            name: "URL_EXTRACT_PATH",
            resolve: |a| exactly("URL_EXTRACT_PATH", a, &[Str], Str),
            eval: |v, _| strict(v, |v| url_part(v, |u| Some(u.path.to_string()))),
        },
        ScalarFunction {
            name: "URL_EXTRACT_QUERY",
            resolve: |a| exactly("URL_EXTRACT_QUERY", a, &[Str], Str),
            eval: |v, _| strict(v, |v| url_part(v, |u| u.query.map(decode_component))),
        },
        ScalarFunction {
            name: "URL_EXTRACT_FRAGMENT",
            resolve: |a| exactly("URL_EXTRACT_FRAGMENT", a, &[Str], Str),
            eval: |v, _| strict(v, |v| url_part(v, |u| u.fragment.map(decode_component))),
        },
        ScalarFunction {
            name: "URL_EXTRACT_PORT",
            resolve: |a| exactly("URL_EXTRACT_PORT", a, &[Str], Int),
            eval: |v, _| {
                strict(v, |v| {
                    Ok(match &v[0] {
                        Value::String(s) => {
                            split_uri(s).port.map(Value::Int).unwrap_or(Value::Null)
                        }
                        _ => Value::Null,
                    })
                })
            },
        },
        ScalarFunction {
            name: "URL_EXTRACT_PARAMETER",
            resolve: |a| exactly("URL_EXTRACT_PARAMETER", a, &[Str, Str], Str),
            eval: |v, _| {
                strict(v, |v| {
                    let (Value::String(url), Value::String(name)) = (&v[0], &v[1]) else {
                        return Ok(Value::Null);
                    };
                    let query = split_uri(url).query.unwrap_or_default();
                    Ok(query
                        .split('&')
                        .find_map(|pair| match pair.split_once('=') {
                            Some((k, v)) if k == name => Some(Value::String(v.to_string())),
                            None if pair == name => Some(Value::Null),
                            _ => None,
                        })
                        .unwrap_or(Value::Null))
                })
            },
        },
    ]
}

/// Percent-decoding, as java.net.URI decodes a query or fragment ('+' stays '+').
fn decode_component(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::split_uri;
    use crate::functions::lookup;
    use crate::value::Value;
    use brook_sql::ast::DataType;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        (lookup(name).expect("registered").0.eval)(args, &DataType::String)
    }

    /// MD5 is hex-encoded; UUID() is a new random version-4 UUID per call, UUID(bytes)
    /// the UUID of 16 bytes; RANDOM() a new DOUBLE in [0, 1) per call.
    #[test]
    fn md5_uuid_and_random() {
        assert_eq!(
            call("MD5", &[Value::String("hash me".into())]),
            Ok(Value::String("17b31dce96b9d6c6d0a6ba95f47796fb".into()))
        );
        assert_eq!(call("MD5", &[Value::Null]), Ok(Value::Null));
        let uuid = |args: &[Value]| match call("UUID", args) {
            Ok(Value::String(u)) => u,
            other => panic!("not a UUID: {other:?}"),
        };
        let (a, b) = (uuid(&[]), uuid(&[]));
        assert_ne!(a, b);
        assert_eq!((a.len(), &a[14..15], &a[8..9]), (36, "4", "-"));
        assert_eq!(
            uuid(&[Value::Bytes((0..16).collect())]),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
        assert!(call("UUID", &[Value::Bytes(vec![1, 2])]).is_err());
        let draws: Vec<f64> = (0..10)
            .map(|_| match call("RANDOM", &[]) {
                Ok(Value::Double(x)) => x,
                other => panic!("not a double: {other:?}"),
            })
            .collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)), "{draws:?}");
        assert!(draws.windows(2).any(|w| w[0] != w[1]), "{draws:?}");
    }

    #[test]
    fn uris_split_as_java_splits_them() {
        let u = split_uri("https://me@example.com:8080/a/b?x=1&y=%20#frag");
        assert_eq!(u.scheme, Some("https"));
        assert_eq!(u.host, Some("example.com"));
        assert_eq!(u.port, Some(8080));
        assert_eq!(u.path, "/a/b");
        assert_eq!(u.query, Some("x=1&y=%20"));
        assert_eq!(u.fragment, Some("frag"));
        let bare = split_uri("http://www.test.com?query");
        assert_eq!((bare.path, bare.port, bare.fragment), ("", None, None));
        assert_eq!(split_uri("no-scheme/path").scheme, None);
    }
}
