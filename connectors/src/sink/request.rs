//! Records as a sink reads them, and the request bodies the two sink classes make of a
//! batch of them.

use crate::config::Body;
use base64::Engine as _;
use serde_json::Value;

/// A record read from Kafka, as it was read (dead letters are written back unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The key and value rewritten as JSON, when the source's formats are not JSON or
    /// text (see `JsonRewriter`); the request bodies use them, dead letters the originals.
    pub rewritten: Option<KeyValue>,
}

/// A record's key and value bytes, either of which may be absent.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

impl SinkRecord {
    /// The key as the endpoint gets it.
    pub fn sent_key(&self) -> Option<&[u8]> {
        match &self.rewritten {
            Some((key, _)) => key.as_deref(),
            None => self.key.as_deref(),
        }
    }

    /// The value as the endpoint gets it.
    pub fn sent_value(&self) -> Option<&[u8]> {
        match &self.rewritten {
            Some((_, value)) => value.as_deref(),
            None => self.value.as_deref(),
        }
    }
}

/// Bytes as the JSON they hold; else their text as a string; else base64 (a structured
/// value goes to the endpoint as JSON without a schema, bytes as base64).
pub fn bytes_as_json(bytes: Option<&[u8]>) -> Value {
    let Some(bytes) = bytes else {
        return Value::Null;
    };
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return value;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

/// Appends bytes as JSON to `out`, as `bytes_as_json` reads them, without building a tree:
/// JSON text is copied as it is (after checking it is JSON).
fn write_json(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return;
    };
    if let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(bytes) {
        out.extend_from_slice(raw.get().as_bytes());
        return;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
    };
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text.as_ref());
}

/// The record's key as text, for `${key}` in a URL.
pub fn key_text(record: &SinkRecord) -> String {
    match bytes_as_json(record.sent_key()) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The URL of a batch: `${topic}` and `${key}` filled from its first record.
pub fn url_for(template: &str, first: &SinkRecord) -> String {
    let mut url = template.replace("${topic}", &first.topic);
    if url.contains("${key}") {
        url = url.replace("${key}", &key_text(first));
    }
    url
}

/// The request body for a batch.
pub fn body(format: &Body, batch: &[SinkRecord]) -> Vec<u8> {
    match format {
        Body::AzureRecords => {
            let mut out = Vec::with_capacity(batch.len() * 160);
            out.push(b'[');
            for (i, r) in batch.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"key\":");
                write_json(&mut out, r.sent_key());
                out.extend_from_slice(b",\"value\":");
                write_json(&mut out, r.sent_value());
                out.extend_from_slice(b",\"topic\":");
                let _ = serde_json::to_writer(&mut out, &r.topic);
                let timestamp = r.timestamp.map_or("null".to_string(), |t| t.to_string());
                out.extend_from_slice(
                    format!(
                        ",\"partition\":{},\"offset\":{},\"timestamp\":{timestamp}}}",
                        r.partition, r.offset
                    )
                    .as_bytes(),
                );
            }
            out.push(b']');
            out
        }
        Body::JsonArray => {
            let mut out = Vec::with_capacity(batch.len() * 100);
            out.push(b'[');
            for (i, r) in batch.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(&mut out, r.sent_value());
            }
            out.push(b']');
            out
        }
        Body::Joined {
            prefix,
            suffix,
            separator,
        } => {
            let mut out = prefix.as_bytes().to_vec();
            for (i, r) in batch.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(separator.as_bytes());
                }
                out.extend_from_slice(r.sent_value().unwrap_or_default());
            }
            out.extend_from_slice(suffix.as_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(offset: i64, key: &[u8], value: &[u8]) -> SinkRecord {
        SinkRecord {
            topic: "trades".into(),
            partition: 2,
            offset,
            timestamp: Some(1_700_000_000_000),
            key: Some(key.to_vec()),
            value: Some(value.to_vec()),
            headers: vec![],
            rewritten: None,
        }
    }

    #[test]
    fn azure_body_has_each_record_with_its_coordinates() {
        let batch = [
            record(7, b"alice", br#"{"AMOUNT":3}"#),
            record(8, b"\xff\x00", b"plain"),
        ];
        let body: Value = serde_json::from_slice(&body(&Body::AzureRecords, &batch)).unwrap();
        assert_eq!(
            body,
            json!([
                {"key": "alice", "value": {"AMOUNT": 3}, "topic": "trades", "partition": 2, "offset": 7, "timestamp": 1_700_000_000_000i64},
                {"key": "/wA=", "value": "plain", "topic": "trades", "partition": 2, "offset": 8, "timestamp": 1_700_000_000_000i64},
            ])
        );
    }

    #[test]
    fn http_bodies_and_url_templates() {
        let batch = [
            record(1, b"k1", b"{\"a\":1}"),
            record(2, b"k1", b"{\"a\":2}"),
        ];
        assert_eq!(
            body(&Body::JsonArray, &batch),
            br#"[{"a":1},{"a":2}]"#.to_vec()
        );
        let joined = Body::Joined {
            prefix: "<".into(),
            suffix: ">".into(),
            separator: ";".into(),
        };
        assert_eq!(body(&joined, &batch), br#"<{"a":1};{"a":2}>"#.to_vec());
        assert_eq!(
            url_for("http://h/${topic}/${key}", &batch[0]),
            "http://h/trades/k1"
        );
    }
}
