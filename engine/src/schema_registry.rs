//! Schema registries: where schema-registry formats (AVRO) register the schemas they write
//! and find the schemas of what they read, by Confluent's subject and id conventions.

use std::collections::BTreeMap;
use std::sync::Mutex;

pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` (of `schema_type`: AVRO, JSON or PROTOBUF) under `subject`,
    /// idempotently, and returns its id.
    fn register(&self, subject: &str, schema: &str, schema_type: &str) -> Result<u32, String>;
    /// The schema with this id.
    fn schema(&self, id: u32) -> Result<String, String>;
    /// The latest schema of a subject, with its id.
    fn latest(&self, subject: &str) -> Result<Option<(u32, String)>, String>;
}

/// A registry in memory, for the in-process driver and tests.
#[derive(Default)]
pub struct MemoryRegistry {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    schemas: BTreeMap<u32, String>,
    subjects: BTreeMap<String, Vec<u32>>,
}

impl MemoryRegistry {
    /// Registers a schema under a chosen id, as a test declares it.
    pub fn register_with_id(&self, subject: &str, id: u32, schema: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.schemas.insert(id, schema.to_string());
        s.subjects.entry(subject.to_string()).or_default().push(id);
    }
}

impl SchemaRegistry for MemoryRegistry {
    fn register(&self, subject: &str, schema: &str, _schema_type: &str) -> Result<u32, String> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = s
            .schemas
            .iter()
            .find(|(_, v)| v.as_str() == schema)
            .map(|(k, _)| *k)
        {
            let ids = s.subjects.entry(subject.to_string()).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
            return Ok(id);
        }
        let id = s.schemas.keys().next_back().map(|k| k + 1).unwrap_or(1);
        s.schemas.insert(id, schema.to_string());
        s.subjects.entry(subject.to_string()).or_default().push(id);
        Ok(id)
    }

    fn schema(&self, id: u32) -> Result<String, String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("Schema {id} not found"))
    }

    fn latest(&self, subject: &str) -> Result<Option<(u32, String)>, String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(s.subjects
            .get(subject)
            .and_then(|ids| ids.last())
            .and_then(|id| s.schemas.get(id).map(|schema| (*id, schema.clone()))))
    }
}

/// A schema a writer registers on first use, to frame records with its id.
pub struct RegisteredSchema {
    registry: std::sync::Arc<dyn SchemaRegistry>,
    subject: String,
    pub text: String,
    schema_type: &'static str,
    id: Mutex<Option<u32>>,
}

impl RegisteredSchema {
    pub fn new(
        registry: std::sync::Arc<dyn SchemaRegistry>,
        subject: String,
        text: String,
        schema_type: &'static str,
    ) -> Self {
        Self {
            registry,
            subject,
            text,
            schema_type,
            id: Mutex::new(None),
        }
    }

    pub fn id(&self) -> Result<u32, String> {
        let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = *id {
            return Ok(i);
        }
        let i = self
            .registry
            .register(&self.subject, &self.text, self.schema_type)?;
        *id = Some(i);
        Ok(i)
    }

    /// Confluent's wire format: a zero byte, the schema id (four bytes, big-endian), the body.
    pub fn frame(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(0);
        out.extend_from_slice(&self.id()?.to_be_bytes());
        out.extend_from_slice(body);
        Ok(out)
    }

    pub fn registry(&self) -> &std::sync::Arc<dyn SchemaRegistry> {
        &self.registry
    }
}

/// The schema id and body of a framed record.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err("Unknown magic byte!".into());
    }
    Ok((
        u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        &bytes[5..],
    ))
}

impl std::fmt::Debug for RegisteredSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegisteredSchema({}: {})", self.subject, self.text)
    }
}

/// A Confluent-compatible schema registry reached over HTTP, with the schemas it has
/// answered kept in memory.
pub struct HttpRegistry {
    url: String,
    agent: ureq::Agent,
    cache: Mutex<BTreeMap<u32, String>>,
    /// The largest answer read: a schema is kilobytes; a registry (or something else at
    /// its address) that answers with more is refused, not buffered.
    max_answer_bytes: u64,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The setting that bounds the registry's answers, and its default.
pub const MAX_ANSWER_SETTING: &str = "brook.schema.registry.response.max.bytes";
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 8 * 1024 * 1024;

impl HttpRegistry {
    pub fn new(url: &str) -> Self {
        Self::with_limit(url, DEFAULT_MAX_ANSWER_BYTES)
    }

    /// A registry whose answers are read up to `max_answer_bytes`.
    pub fn with_limit(url: &str, max_answer_bytes: u64) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .http_status_as_error(false)
            .build();
        Self {
            url: url.trim_end_matches('/').to_string(),
            agent: config.into(),
            cache: Mutex::new(BTreeMap::new()),
            max_answer_bytes,
        }
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        what: &str,
    ) -> Result<Option<serde_json::Value>, String> {
        let mut response =
            response.map_err(|e| format!("schema registry at {}: {what}: {e}", self.url))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_answer_bytes)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(limit) => format!(
                    "schema registry at {}: {what}: the answer is larger than {limit} bytes",
                    self.url
                ),
                e => format!("schema registry at {}: {what}: {e}", self.url),
            })?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(format!(
                "schema registry at {}: {what}: HTTP {status}: {body}",
                self.url
            ));
        }
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| format!("schema registry at {}: {what}: not JSON: {e}", self.url))
    }
}

impl SchemaRegistry for HttpRegistry {
    fn register(&self, subject: &str, schema: &str, schema_type: &str) -> Result<u32, String> {
        let mut body = serde_json::json!({"schema": schema});
        if schema_type != "AVRO" {
            body["schemaType"] = serde_json::json!(schema_type);
        }
        let response = self
            .agent
            .post(&format!("{}/subjects/{subject}/versions", self.url))
            .header("Content-Type", CONTENT_TYPE)
            .send(body.to_string());
        let answer = self
            .answer(response, &format!("registering a schema under {subject}"))?
            .ok_or_else(|| format!("schema registry at {}: no such subject {subject}", self.url))?;
        let id = answer["id"]
            .as_u64()
            .ok_or_else(|| format!("schema registry at {}: no id in {answer}", self.url))?
            as u32;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.to_string());
        Ok(id)
    }

    fn schema(&self, id: u32) -> Result<String, String> {
        if let Some(s) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let response = self
            .agent
            .get(&format!("{}/schemas/ids/{id}", self.url))
            .call();
        let answer = self
            .answer(response, &format!("reading schema {id}"))?
            .ok_or_else(|| format!("Schema {id} not found"))?;
        let schema = answer["schema"]
            .as_str()
            .ok_or_else(|| format!("schema registry at {}: no schema in {answer}", self.url))?
            .to_string();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }

    fn latest(&self, subject: &str) -> Result<Option<(u32, String)>, String> {
        let response = self
            .agent
            .get(&format!("{}/subjects/{subject}/versions/latest", self.url))
            .call();
        let Some(answer) =
            self.answer(response, &format!("reading the latest schema of {subject}"))?
        else {
            return Ok(None);
        };
        match (answer["id"].as_u64(), answer["schema"].as_str()) {
            (Some(id), Some(schema)) => Ok(Some((id as u32, schema.to_string()))),
            _ => Err(format!(
                "schema registry at {}: unexpected answer {answer}",
                self.url
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A registry speaking the REST API over a real socket, backed by a MemoryRegistry.
    fn serve() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let backing = MemoryRegistry::default();
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let parts: Vec<&str> = request_line.split_whitespace().collect();
                let path: Vec<&str> = parts.get(1).unwrap_or(&"").split('/').collect();
                let (status, answer) = match (parts.first().copied(), path.as_slice()) {
                    (Some("POST"), ["", "subjects", subject, "versions"]) => {
                        let req: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let schema = req["schema"].as_str().unwrap_or_default();
                        let id = backing.register(subject, schema, "AVRO").unwrap_or(0);
                        (200, serde_json::json!({"id": id}))
                    }
                    (Some("GET"), ["", "schemas", "ids", id]) => {
                        match backing.schema(id.parse().unwrap_or(0)) {
                            Ok(s) => (200, serde_json::json!({"schema": s})),
                            Err(_) => (404, serde_json::json!({"error_code": 40403})),
                        }
                    }
                    (Some("GET"), ["", "subjects", subject, "versions", "latest"]) => {
                        match backing.latest(subject) {
                            Ok(Some((id, s))) => (
                                200,
                                serde_json::json!({"id": id, "schema": s, "version": 1}),
                            ),
                            _ => (404, serde_json::json!({"error_code": 40401})),
                        }
                    }
                    _ => (404, serde_json::json!({})),
                };
                let text = answer.to_string();
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        url
    }

    #[test]
    fn http_registry_registers_and_reads_schemas() {
        let registry = HttpRegistry::new(&serve());
        assert_eq!(registry.latest("t-value").unwrap(), None);
        let id = registry.register("t-value", "\"long\"", "AVRO").unwrap();
        assert_eq!(
            registry.latest("t-value").unwrap(),
            Some((id, "\"long\"".to_string()))
        );
        let fresh = HttpRegistry::new(&registry.url);
        assert_eq!(fresh.schema(id).unwrap(), "\"long\"");
        assert!(fresh.schema(999).unwrap_err().contains("999"));
        let unreachable = HttpRegistry::new("http://127.0.0.1:1");
        assert!(unreachable
            .schema(1)
            .unwrap_err()
            .contains("schema registry at"));
    }
}
