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
