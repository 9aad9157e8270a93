//! Brook's own records: the values of state stores (and so of their changelog topics) and
//! the records of repartition topics. Each starts with a marker and a format version, so
//! that a later Brook can read an older format or refuse it by name, and bytes that are
//! not Brook's (a record someone else wrote to an internal topic) are refused as such
//! rather than misread. The rest is postcard, which checks every length against the bytes
//! it has before allocating.

/// The first byte of every internal record.
const MARKER: u8 = 0xB7;
/// The format this Brook writes and reads.
pub const VERSION: u8 = 1;

/// Encodes a value as an internal record.
pub fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let out = vec![MARKER, VERSION];
    // Writing into a Vec only fails for types serde cannot describe, which these are not.
    match postcard::to_extend(value, out) {
        Ok(bytes) => bytes,
        Err(_) => vec![MARKER, VERSION],
    }
}

/// Decodes an internal record; `what` names it in the error (e.g. "join state").
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    match bytes {
        [MARKER, VERSION, rest @ ..] => postcard::from_bytes(rest)
            .map_err(|e| format!("corrupt {what} ({} bytes): {e}", bytes.len())),
        [MARKER, version, ..] => Err(format!(
            "the {what} was written in version {version} of Brook's internal format; this Brook reads version {VERSION}"
        )),
        _ => Err(format!(
            "the {what} is not in Brook's internal format ({} bytes without its marker)",
            bytes.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_others_are_refused_by_name() {
        let value = (vec![1i64, 2, 3], "text".to_string());
        let bytes = encode(&value);
        assert_eq!(&bytes[..2], &[MARKER, VERSION]);
        assert_eq!(decode::<(Vec<i64>, String)>(&bytes, "state"), Ok(value));

        let newer = [&[MARKER, VERSION + 1][..], &bytes[2..]].concat();
        let error = decode::<(Vec<i64>, String)>(&newer, "state").expect_err("newer");
        assert!(error.contains("version 2"), "{error}");
        let error = decode::<(Vec<i64>, String)>(b"{\"json\": 1}", "state").expect_err("json");
        assert!(error.contains("not in Brook's internal format"), "{error}");
        let error = decode::<(Vec<i64>, String)>(&bytes[..4], "state").expect_err("short");
        assert!(error.starts_with("corrupt state"), "{error}");
        // A length field claiming far more than the bytes hold is an error, not an
        // allocation.
        let huge = [MARKER, VERSION, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
        assert!(decode::<Vec<u64>>(&huge, "state").is_err());
    }
}
