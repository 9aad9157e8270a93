//! One SQL value, used for literals, record decoding and encoding, and rows handed to
//! front ends. Batches hold values as Arrow arrays; this is the per-row form.

/// A value of one of ksqlDB's types. Temporal values use ksqlDB's units: DATE in days since
/// the epoch, TIME in milliseconds of the day, TIMESTAMP in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i32),
    BigInt(i64),
    Double(f64),
    /// An unscaled integer and its scale: `Decimal(1234, 2)` is 12.34.
    Decimal(i128, i8),
    String(String),
    Bytes(Vec<u8>),
    Date(i32),
    Time(i32),
    Timestamp(i64),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Formats a decimal's unscaled value with its scale, as ksqlDB prints it (`12.30`).
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        return (unscaled * 10i128.pow((-scale) as u32)).to_string();
    }
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if negative { "-" } else { "" })
}

/// Parses decimal text (`-12.5`, `3`, `1e2` is not accepted) into an unscaled value at
/// `scale`, rounding half up; `None` when it is not a number or does not fit.
pub fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut unscaled: i128 = 0;
    for c in int.chars() {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add((c as u8 - b'0') as i128)?;
    }
    let frac_digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    for i in 0..scale {
        let d = frac_digits.get(i).copied().unwrap_or(0);
        unscaled = unscaled.checked_mul(10)?.checked_add(d as i128)?;
    }
    if frac_digits.get(scale).is_some_and(|d| *d >= 5) {
        unscaled = unscaled.checked_add(1)?;
    }
    Some(if negative { -unscaled } else { unscaled })
}

/// The precision and scale of decimal literal text such as `10.50` (precision 4, scale 2).
pub fn decimal_literal_type(text: &str) -> (u8, i8) {
    let body = text.trim_start_matches(['-', '+']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int_digits = int.trim_start_matches('0').len();
    let scale = frac.len();
    let precision = (int_digits + scale).max(1);
    (precision.min(38) as u8, scale.min(38) as i8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_through_text() {
        assert_eq!(format_decimal(1230, 2), "12.30");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(parse_decimal("12.3", 2), Some(1230));
        assert_eq!(parse_decimal("-0.055", 2), Some(-6));
        assert_eq!(parse_decimal("abc", 2), None);
        assert_eq!(decimal_literal_type("10.50"), (4, 2));
        assert_eq!(decimal_literal_type("0.5"), (1, 1));
    }
}

/// Formats a DOUBLE as Java's `Double.toString` does, which is how ksqlDB writes doubles
/// as text: `1.0`, `0.001`, `1.0E7`, `1.5E-4`, `NaN`, `Infinity`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = d.abs();
    if abs == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = format!("{d}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{d:e}");
    // Java writes at least two significant digits, the pair nearest the value: the
    // smallest double is 4.9E-324, where the shortest digits would be 5.
    let s = if s.split_once('e').is_some_and(|(m, _)| !m.contains('.')) {
        format!("{d:.1e}")
    } else {
        s
    };
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    format!("{mantissa}E{exponent}")
}

#[cfg(test)]
mod double_tests {
    use super::format_double;

    #[test]
    fn doubles_read_as_java_prints_them() {
        assert_eq!(format_double(1.0), "1.0");
        assert_eq!(format_double(-0.5), "-0.5");
        assert_eq!(format_double(0.0), "0.0");
        assert_eq!(format_double(1e7), "1.0E7");
        assert_eq!(format_double(1.5e-4), "1.5E-4");
        assert_eq!(format_double(123456.789), "123456.789");
        assert_eq!(format_double(f64::from_bits(1)), "4.9E-324");
        assert_eq!(format_double(-f64::from_bits(1)), "-4.9E-324");
        assert_eq!(format_double(2e-5), "2.0E-5");
        assert_eq!(
            format_double(1.7976931348623157e308),
            "1.7976931348623157E308"
        );
    }
}

/// SQL order between two values of the same type; NULL and mixed types have none.
pub fn compare_values(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    use Value::*;
    match (a, b) {
        (Boolean(x), Boolean(y)) => Some(x.cmp(y)),
        (Int(x), Int(y)) | (Date(x), Date(y)) | (Time(x), Time(y)) => Some(x.cmp(y)),
        (BigInt(x), BigInt(y)) | (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        (Double(x), Double(y)) => x.partial_cmp(y),
        (Decimal(x, s1), Decimal(y, s2)) if s1 == s2 => Some(x.cmp(y)),
        (String(x), String(y)) => Some(x.cmp(y)),
        (Bytes(x), Bytes(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A scalar value as text, as ksqlDB's string functions render it.
pub fn display(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Decimal(u, s) => format_decimal(*u, *s),
        Value::String(s) => s.clone(),
        Value::Date(d) => d.to_string(),
        Value::Time(t) => t.to_string(),
        Value::Timestamp(t) => t.to_string(),
        Value::Bytes(_) | Value::Array(_) | Value::Map(_) | Value::Struct(_) => return None,
    })
}
