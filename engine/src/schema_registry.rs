//! Schema registries: where schema-registry formats (AVRO) register the schemas they write
//! and find the schemas of what they read, by Confluent's subject and id conventions.

use std::collections::BTreeMap;
use std::sync::Mutex;

pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` under `subject` (idempotently) and returns its id.
    fn register(&self, subject: &str, schema: &str) -> Result<u32, String>;
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
    fn register(&self, subject: &str, schema: &str) -> Result<u32, String> {
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
    id: Mutex<Option<u32>>,
}

impl RegisteredSchema {
    pub fn new(
        registry: std::sync::Arc<dyn SchemaRegistry>,
        subject: String,
        text: String,
    ) -> Self {
        Self {
            registry,
            subject,
            text,
            id: Mutex::new(None),
        }
    }

    pub fn id(&self) -> Result<u32, String> {
        let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = *id {
            return Ok(i);
        }
        let i = self.registry.register(&self.subject, &self.text)?;
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
