//! Date, time and timestamp functions. Patterns are Java's DateTimeFormatter patterns, as
//! ksqlDB takes them; times are in UTC unless a zone offset is given.

use super::{exactly, first_of, strict, ScalarFunction, Signature};
use crate::value::Value;
use brook_sql::ast::DataType;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use DataType::{BigInt, Date, Int, String as Str, Time, Timestamp};

const MS_PER_DAY: i64 = 86_400_000;

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction {
            name: "CONVERT_TZ",
            resolve: |a| first_of("CONVERT_TZ", a, &[(&[Timestamp, Str, Str], Timestamp)]),
            eval: |v, _| strict(v, |v| convert_tz(millis(&v[0]), &v[1], &v[2])),
        },
        ScalarFunction {
            name: "FORMAT_TIMESTAMP",
            resolve: |a| {
                first_of(
                    "FORMAT_TIMESTAMP",
                    a,
                    &[(&[Timestamp, Str], Str), (&[Timestamp, Str, Str], Str)],
                )
            },
            eval: |v, _| strict(v, |v| format_millis(millis(&v[0]), &v[1], v.get(2))),
        },
        ScalarFunction {
            name: "TIMESTAMPTOSTRING",
            resolve: |a| {
                first_of(
                    "TIMESTAMPTOSTRING",
                    a,
                    &[(&[BigInt, Str], Str), (&[BigInt, Str, Str], Str)],
                )
            },
            eval: |v, _| strict(v, |v| format_millis(millis(&v[0]), &v[1], v.get(2))),
        },
        ScalarFunction {
            name: "PARSE_TIMESTAMP",
            resolve: |a| {
                first_of(
                    "PARSE_TIMESTAMP",
                    a,
                    &[(&[Str, Str], Timestamp), (&[Str, Str, Str], Timestamp)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    parse_millis(&v[0], &v[1], v.get(2)).map(Value::Timestamp)
                })
            },
        },
        ScalarFunction {
            name: "STRINGTOTIMESTAMP",
            resolve: |a| {
                first_of(
                    "STRINGTOTIMESTAMP",
                    a,
                    &[(&[Str, Str], BigInt), (&[Str, Str, Str], BigInt)],
                )
            },
            eval: |v, _| {
                strict(v, |v| {
                    parse_millis(&v[0], &v[1], v.get(2)).map(Value::BigInt)
                })
            },
        },
        ScalarFunction {
            name: "FORMAT_DATE",
            resolve: |a| first_of("FORMAT_DATE", a, &[(&[Date, Str], Str)]),
            eval: |v, _| {
                strict(v, |v| {
                    format_millis(millis(&v[0]) * MS_PER_DAY, &v[1], None)
                })
            },
        },
        ScalarFunction {
            name: "DATETOSTRING",
            resolve: |a| first_of("DATETOSTRING", a, &[(&[Int, Str], Str)]),
            eval: |v, _| {
                strict(v, |v| {
                    format_millis(millis(&v[0]) * MS_PER_DAY, &v[1], None)
                })
            },
        },
        ScalarFunction {
            name: "PARSE_DATE",
            resolve: |a| first_of("PARSE_DATE", a, &[(&[Str, Str], Date)]),
            eval: |v, _| {
                strict(v, |v| {
                    parse_millis(&v[0], &v[1], None)
                        .map(|ms| Value::Date(ms.div_euclid(MS_PER_DAY) as i32))
                        .or_else(|e| date_prefix(&v[0], &v[1]).ok_or(e))
                })
            },
        },
        ScalarFunction {
            name: "STRINGTODATE",
            resolve: |a| first_of("STRINGTODATE", a, &[(&[Str, Str], Int)]),
            eval: |v, _| {
                strict(v, |v| {
                    parse_millis(&v[0], &v[1], None)
                        .map(|ms| Value::Int(ms.div_euclid(MS_PER_DAY) as i32))
                })
            },
        },
        ScalarFunction {
            name: "FORMAT_TIME",
            resolve: |a| first_of("FORMAT_TIME", a, &[(&[Time, Str], Str)]),
            eval: |v, _| strict(v, |v| format_millis(millis(&v[0]), &v[1], None)),
        },
        ScalarFunction {
            name: "PARSE_TIME",
            resolve: |a| first_of("PARSE_TIME", a, &[(&[Str, Str], Time)]),
            eval: |v, _| {
                strict(v, |v| {
                    let (Value::String(text), Value::String(pattern)) = (&v[0], &v[1]) else {
                        return Ok(Value::Null);
                    };
                    let t = NaiveTime::parse_from_str(text, &parsing_pattern(pattern)).map_err(
                        |e| {
                            format!("Failed to parse time '{text}' with formatter '{pattern}': {e}")
                        },
                    )?;
                    Ok(Value::Time(
                        (t.signed_duration_since(NaiveTime::MIN).num_milliseconds()) as i32,
                    ))
                })
            },
        },
        ScalarFunction {
            name: "UNIX_TIMESTAMP",
            resolve: |a| match a {
                [] => Ok(Signature {
                    params: vec![],
                    returns: BigInt,
                }),
                _ => first_of("UNIX_TIMESTAMP", a, &[(&[Timestamp], BigInt)]),
            },
            eval: |v, _| {
                Ok(match v.first() {
                    None => Value::BigInt(Utc::now().timestamp_millis()),
                    Some(Value::Timestamp(t)) => Value::BigInt(*t),
                    Some(_) => Value::Null,
                })
            },
        },
        ScalarFunction {
            name: "UNIX_DATE",
            resolve: |a| match a {
                [] => Ok(Signature {
                    params: vec![],
                    returns: Int,
                }),
                _ => first_of("UNIX_DATE", a, &[(&[Date], Int)]),
            },
            eval: |v, _| {
                Ok(match v.first() {
                    None => Value::Int(Utc::now().timestamp_millis().div_euclid(MS_PER_DAY) as i32),
                    Some(Value::Date(d)) => Value::Int(*d),
                    Some(_) => Value::Null,
                })
            },
        },
        ScalarFunction {
            name: "FROM_UNIXTIME",
            resolve: |a| first_of("FROM_UNIXTIME", a, &[(&[BigInt], Timestamp)]),
            eval: |v, _| strict(v, |v| Ok(Value::Timestamp(millis(&v[0])))),
        },
        ScalarFunction {
            name: "TIMEADD",
            resolve: |a| exactly("TIMEADD", a, &[Str, Int, Time], Time),
            eval: |v, _| strict(v, |v| shift(v, 1)),
        },
        ScalarFunction {
            name: "TIMESUB",
            resolve: |a| exactly("TIMESUB", a, &[Str, Int, Time], Time),
            eval: |v, _| strict(v, |v| shift(v, -1)),
        },
        ScalarFunction {
            name: "TIMESTAMPADD",
            resolve: |a| exactly("TIMESTAMPADD", a, &[Str, BigInt, Timestamp], Timestamp),
            eval: |v, _| strict(v, |v| shift(v, 1)),
        },
        ScalarFunction {
            name: "TIMESTAMPSUB",
            resolve: |a| exactly("TIMESTAMPSUB", a, &[Str, BigInt, Timestamp], Timestamp),
            eval: |v, _| strict(v, |v| shift(v, -1)),
        },
        ScalarFunction {
            name: "DATEADD",
            resolve: |a| exactly("DATEADD", a, &[Str, Int, Date], Date),
            eval: |v, _| strict(v, |v| shift(v, 1)),
        },
        ScalarFunction {
            name: "DATESUB",
            resolve: |a| exactly("DATESUB", a, &[Str, Int, Date], Date),
            eval: |v, _| strict(v, |v| shift(v, -1)),
        },
        ScalarFunction {
            name: "FROM_DAYS",
            resolve: |a| first_of("FROM_DAYS", a, &[(&[Int], Date)]),
            eval: |v, _| strict(v, |v| Ok(Value::Date(millis(&v[0]) as i32))),
        },
    ]
}

/// Units of TIMEADD and its kin, in milliseconds.
fn unit_millis(unit: &str) -> Result<i64, String> {
    Ok(match unit.to_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => MS_PER_DAY,
        other => return Err(format!("Unknown time unit: {other}")),
    })
}

/// Moves a TIME (wrapping within the day), TIMESTAMP or DATE by `sign` times an interval.
fn shift(v: &[Value], sign: i64) -> Result<Value, String> {
    let Value::String(unit) = &v[0] else {
        return Ok(Value::Null);
    };
    let by = sign * millis(&v[1]) * unit_millis(unit)?;
    Ok(match &v[2] {
        Value::Time(t) => Value::Time((*t as i64 + by).rem_euclid(MS_PER_DAY) as i32),
        Value::Timestamp(t) => Value::Timestamp(t + by),
        Value::Date(d) => {
            Value::Date(((*d as i64 * MS_PER_DAY + by).div_euclid(MS_PER_DAY)) as i32)
        }
        _ => Value::Null,
    })
}

fn millis(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Date(i) | Value::Time(i) => *i as i64,
        Value::BigInt(i) | Value::Timestamp(i) => *i,
        _ => 0,
    }
}

/// A time zone: a fixed offset, or a region whose offset depends on the date.
#[derive(Clone, Copy)]
enum Zone {
    Fixed(FixedOffset),
    Region(chrono_tz::Tz),
}

impl Zone {
    /// The local date-time of an instant.
    fn local(self, ms: i64) -> Result<NaiveDateTime, String> {
        let at = Utc
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| format!("timestamp {ms} is out of range"))?;
        Ok(match self {
            Zone::Fixed(o) => at.with_timezone(&o).naive_local(),
            Zone::Region(tz) => at.with_timezone(&tz).naive_local(),
        })
    }

    /// An instant as text in this zone; a pattern chrono cannot apply is an error.
    fn format(self, ms: i64, pattern: &str) -> Result<String, String> {
        use std::fmt::Write;
        let at = Utc
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| format!("timestamp {ms} is out of range"))?;
        let mut out = String::new();
        let written = match self {
            Zone::Fixed(o) => write!(out, "{}", at.with_timezone(&o).format(pattern)),
            Zone::Region(tz) => write!(out, "{}", at.with_timezone(&tz).format(pattern)),
        };
        written.map_err(|_| format!("cannot format a timestamp with the pattern '{pattern}'"))?;
        Ok(out)
    }

    /// The instant of a local date-time (the earlier one when clocks went back).
    fn instant(self, local: &NaiveDateTime) -> Option<i64> {
        match self {
            Zone::Fixed(o) => o
                .from_local_datetime(local)
                .earliest()
                .map(|t| t.timestamp_millis()),
            Zone::Region(tz) => tz
                .from_local_datetime(local)
                .earliest()
                .map(|t| t.timestamp_millis()),
        }
    }
}

/// A zone given as a region (`America/Los_Angeles`), `UTC`, `GMT`, `Z` or an offset such
/// as `+05:30`.
fn zone(v: Option<&Value>) -> Result<Zone, String> {
    let utc = Zone::Fixed(FixedOffset::east_opt(0).ok_or("no UTC")?);
    let Some(Value::String(name)) = v else {
        return Ok(utc);
    };
    let trimmed = name.trim();
    if let Ok(tz) = trimmed.parse::<chrono_tz::Tz>() {
        return Ok(Zone::Region(tz));
    }
    let offset = trimmed
        .strip_prefix("UTC")
        .or_else(|| trimmed.strip_prefix("GMT"))
        .unwrap_or(trimmed);
    if offset.is_empty() || offset == "Z" {
        return Ok(utc);
    }
    let sign = match offset.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => return Err(format!("Unknown time zone '{name}'")),
    };
    let digits: String = offset[1..].chars().filter(|c| c.is_ascii_digit()).collect();
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().unwrap_or(0), 0),
        4 => (
            digits[..2].parse::<i32>().unwrap_or(0),
            digits[2..].parse::<i32>().unwrap_or(0),
        ),
        _ => return Err(format!("Unknown time zone '{name}'")),
    };
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
        .map(Zone::Fixed)
        .ok_or_else(|| format!("Unknown time zone '{name}'"))
}

/// CONVERT_TZ: the wall-clock time in `to` of a timestamp read as wall-clock time in
/// `from`.
pub fn convert_tz(ms: i64, from: &Value, to: &Value) -> Result<Value, String> {
    let local = Zone::Fixed(FixedOffset::east_opt(0).ok_or("no UTC")?).local(ms)?;
    let instant = zone(Some(from))?
        .instant(&local)
        .ok_or_else(|| format!("{local} does not exist in {from:?}"))?;
    let converted = zone(Some(to))?.local(instant)?;
    Ok(Value::Timestamp(converted.and_utc().timestamp_millis()))
}

fn format_millis(ms: i64, pattern: &Value, tz: Option<&Value>) -> Result<Value, String> {
    let Value::String(pattern) = pattern else {
        return Ok(Value::Null);
    };
    zone(tz)?
        .format(ms, &chrono_pattern(pattern))
        .map(Value::String)
}

/// Parses text with a Java pattern, as ksqlDB's parsers do: case-insensitively, with what
/// the pattern leaves out defaulted (the first day, month or year 1970, midnight); a zone
/// in the text (an offset, `Z`, a region or its abbreviation such as `PST`) wins over `tz`.
/// The date at the start of `text`, what follows it ignored, as ksqlDB's PARSE_DATE reads
/// (`2003-12-24-01-01` with `yyyy-MM-dd` is 2003-12-24).
fn date_prefix(text: &Value, pattern: &Value) -> Option<Value> {
    let (Value::String(text), Value::String(pattern)) = (text, pattern) else {
        return None;
    };
    let (date, _) = NaiveDate::parse_and_remainder(text, &parsing_pattern(pattern)).ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some(Value::Date(
        date.signed_duration_since(epoch).num_days() as i32
    ))
}

pub fn parse_millis(text: &Value, pattern: &Value, tz: Option<&Value>) -> Result<i64, String> {
    let (Value::String(original), Value::String(pattern)) = (text, pattern) else {
        return Err("expected text and a pattern".into());
    };
    let mut format = parsing_pattern(pattern);
    let bad = |e: chrono::ParseError| {
        format!("Text '{original}' could not be parsed with pattern '{pattern}': {e}")
    };
    let mut text = original.clone();
    // Java's offset patterns read `Z` as UTC; chrono's want digits.
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        if format.contains("%z") {
            text = format!("{rest}+0000");
        } else if format.contains("%:z") {
            text = format!("{rest}+00:00");
        }
    }
    // chrono reads no zone names: the word that names one is taken out and applied.
    let mut offset = zone(tz)?;
    if format.contains("%Z") {
        let named = text
            .split_whitespace()
            .find_map(|w| named_zone(w).map(|z| (w.to_string(), z)));
        if let Some((word, z)) = named {
            text = text.replacen(&word, "", 1);
            format = format.replacen("%Z", "", 1);
            offset = z;
        }
    }
    if let Ok(at) = DateTime::parse_from_str(&text, &format) {
        return Ok(at.timestamp_millis());
    }
    // What the pattern leaves out of the date is defaulted, after a separator of its own.
    let has = |specs: &[&str]| specs.iter().any(|s| format.contains(s));
    let dated = has(&["%Y", "%y", "%m", "%-m", "%b", "%B", "%d", "%-d"]);
    let fields = [
        (has(&["%Y", "%y"]), "%Y", "1970"),
        (has(&["%m", "%-m", "%b", "%B", "%j"]), "%m", "1"),
        (has(&["%d", "%-d", "%j"]), "%d", "1"),
    ];
    for (present, spec, default) in fields {
        if !present && dated {
            format.push_str(&format!("\u{1}{spec}"));
            text.push_str(&format!("\u{1}{default}"));
        }
    }
    let local = match NaiveDateTime::parse_from_str(&text, &format) {
        Ok(dt) => dt,
        Err(e) => match NaiveDate::parse_from_str(&text, &format) {
            Ok(d) => d.and_time(NaiveTime::MIN),
            Err(_) => match NaiveTime::parse_from_str(&text, &format) {
                Ok(t) => NaiveDate::from_ymd_opt(1970, 1, 1)
                    .ok_or("no epoch")?
                    .and_time(t),
                Err(_) => return Err(bad(e)),
            },
        },
    };
    offset
        .instant(&local)
        .ok_or_else(|| format!("Text '{original}' is not a valid time"))
}

/// The zone a word of a timestamp names: a region (`Europe/Oslo`), `UTC`/`GMT`, or one of
/// the abbreviations Java reads for its regions.
fn named_zone(word: &str) -> Option<Zone> {
    let region = match word.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "UT" => return zone(None).ok(),
        "PST" | "PDT" | "PT" => "America/Los_Angeles",
        "MST" | "MDT" | "MT" => "America/Denver",
        "CST" | "CDT" | "CT" => "America/Chicago",
        "EST" | "EDT" | "ET" => "America/New_York",
        "AKST" | "AKDT" => "America/Anchorage",
        "HST" => "Pacific/Honolulu",
        "BST" => "Europe/London",
        "CET" | "CEST" => "Europe/Paris",
        "EET" | "EEST" => "Europe/Athens",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "AEST" | "AEDT" => "Australia/Sydney",
        _ => return word.parse::<chrono_tz::Tz>().ok().map(Zone::Region),
    };
    region.parse::<chrono_tz::Tz>().ok().map(Zone::Region)
}

/// A Java DateTimeFormatter pattern in chrono's strftime syntax, for formatting.
pub fn chrono_pattern(java: &str) -> String {
    convert_pattern(java, false)
}

/// The same for parsing: a fraction of any length after a dot is accepted, as Java does.
fn parsing_pattern(java: &str) -> String {
    convert_pattern(java, true)
}

fn convert_pattern(java: &str, parsing: bool) -> String {
    let mut out = String::new();
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal text; '' is a quote.
            i += 1;
            if i < chars.len() && chars[i] == '\'' {
                out.push('\'');
                i += 1;
                continue;
            }
            while i < chars.len() && chars[i] != '\'' {
                literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if parsing && c == '.' && chars.get(i + 1) == Some(&'S') {
            out.push_str("%.f");
            i += 1;
            while i < chars.len() && chars[i] == 'S' {
                i += 1;
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        i += n;
        out.push_str(match (c, n) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 1) => "%1f",
            ('S', 2) => "%2f",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', _) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('X' | 'x' | 'Z', 1 | 2) => "%z",
            ('X' | 'x' | 'Z', _) => "%:z",
            ('z', _) => "%Z",
            _ => "",
        });
    }
    out
}

fn literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_format_and_parse() {
        assert_eq!(
            chrono_pattern("yyyy-MM-dd'T'HH:mm:ss.SSSX"),
            "%Y-%m-%dT%H:%M:%S.%3f%z"
        );
        let s = |x: &str| Value::String(x.into());
        assert_eq!(
            format_millis(1_526_075_913_000, &s("yyyy-MM-dd HH:mm:ss"), None).unwrap(),
            s("2018-05-11 21:58:33")
        );
        assert_eq!(
            parse_millis(&s("2018-05-11 21:58:33"), &s("yyyy-MM-dd HH:mm:ss"), None).unwrap(),
            1_526_075_913_000
        );
        assert_eq!(
            parse_millis(&s("2018-05-11"), &s("yyyy-MM-dd"), None).unwrap(),
            1_525_996_800_000
        );
        assert_eq!(
            parse_millis(
                &s("2018-05-11 23:58:33"),
                &s("yyyy-MM-dd HH:mm:ss"),
                Some(&s("+02:00"))
            )
            .unwrap(),
            1_526_075_913_000
        );
        assert!(parse_millis(&s("nope"), &s("yyyy"), None).is_err());
        let zoned = s("yyyy-MM-dd'T'HH:mm:ssX");
        assert_eq!(
            parse_millis(&s("2018-05-11T21:58:33Z"), &zoned, None).unwrap(),
            1_526_075_913_000
        );
        let fraction = s("yyyy-MM-dd'T'HH:mm:ss.SX");
        assert_eq!(
            parse_millis(&s("2019-08-27T13:31:09.2+0000"), &fraction, None).unwrap(),
            1_566_912_669_200
        );
    }
}
