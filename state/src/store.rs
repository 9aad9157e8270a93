//! An ordered key-value store with a write buffer and a recorded changelog offset.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateError(pub String);

type Result<T> = std::result::Result<T, StateError>;

/// A key and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// Where the changelog offset of a RocksDB store is kept, apart from the data.
const META: &str = "brook-meta";
const CHANGELOG_OFFSET: &[u8] = b"changelog-offset";

enum Backend {
    Memory {
        data: BTreeMap<Vec<u8>, Vec<u8>>,
        offset: Option<i64>,
    },
    Rocks(rocksdb::DB),
}

/// One store of one task.
pub struct Store {
    backend: Backend,
    /// Writes since the last flush: a value, or `None` for a delete.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// What the keys of reads and writes start with (see [`Store::in_namespace`]).
    namespace: Vec<u8>,
}

fn rocks_error(e: rocksdb::Error) -> StateError {
    StateError(e.to_string())
}

impl Store {
    pub fn memory() -> Self {
        Self {
            backend: Backend::Memory {
                data: BTreeMap::new(),
                offset: None,
            },
            pending: BTreeMap::new(),
            namespace: Vec::new(),
        }
    }

    /// Runs `f` with every key it reads or writes under `namespace`: two operators of one
    /// task (a join and the aggregation of its rows) share the store without their keys
    /// meeting. Keys `f` sees in ranges are its own, without the namespace.
    pub fn in_namespace<T>(&mut self, namespace: &[u8], f: impl FnOnce(&mut Store) -> T) -> T {
        let outer = std::mem::replace(&mut self.namespace, namespace.to_vec());
        let out = f(self);
        self.namespace = outer;
        out
    }

    /// A key as stored: under the namespace.
    fn full<'k>(&self, key: &'k [u8]) -> std::borrow::Cow<'k, [u8]> {
        if self.namespace.is_empty() {
            std::borrow::Cow::Borrowed(key)
        } else {
            std::borrow::Cow::Owned([self.namespace.as_slice(), key].concat())
        }
    }

    /// Opens (or creates) the RocksDB store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir, [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, META])
            .map_err(rocks_error)?;
        Ok(Self {
            backend: Backend::Rocks(db),
            pending: BTreeMap::new(),
            namespace: Vec::new(),
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = self.full(key);
        let key = key.as_ref();
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        match &self.backend {
            Backend::Memory { data, .. } => Ok(data.get(key).cloned()),
            Backend::Rocks(db) => db.get(key).map_err(rocks_error),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let key = self.full(key).into_owned();
        self.pending.insert(key, Some(value.to_vec()));
    }

    /// `put` of a key and value the caller gives away: no copies outside a namespace.
    pub fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let key = match self.namespace.is_empty() {
            true => key,
            false => [self.namespace.as_slice(), &key].concat(),
        };
        self.pending.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: &[u8]) {
        let key = self.full(key).into_owned();
        self.pending.insert(key, None);
    }

    /// Stored entries with the namespace taken off their keys.
    fn unscoped(&self, entries: Vec<Entry>) -> Vec<Entry> {
        if self.namespace.is_empty() {
            return entries;
        }
        let n = self.namespace.len();
        entries
            .into_iter()
            .map(|(mut k, v)| {
                k.drain(..n);
                (k, v)
            })
            .collect()
    }

    /// The entries with `from <= key < to`, in key order.
    pub fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (from, to) = (self.full(from), self.full(to));
        let (from, to) = (from.as_ref(), to.as_ref());
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        match &self.backend {
            Backend::Memory { data, .. } => {
                for (k, v) in data.range(from.to_vec()..to.to_vec()) {
                    merged.insert(k.clone(), v.clone());
                }
            }
            Backend::Rocks(db) => {
                let mut options = rocksdb::ReadOptions::default();
                options.set_iterate_upper_bound(to.to_vec());
                let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
                for item in db.iterator_opt(mode, options) {
                    let (k, v) = item.map_err(rocks_error)?;
                    merged.insert(k.to_vec(), v.to_vec());
                }
            }
        }
        for (k, v) in self.pending.range(from.to_vec()..to.to_vec()) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(self.unscoped(merged.into_iter().collect()))
    }

    /// The entries with keys in `[from, to)`, from the last backwards, for as long as
    /// `more` says to go on with the entry at hand (the one it refuses is left out): a
    /// lookup near the end of a range reads only what it needs.
    pub fn range_back(
        &self,
        from: &[u8],
        to: &[u8],
        mut more: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (from, to) = (self.full(from), self.full(to));
        let (from, to) = (from.as_ref(), to.as_ref());
        let n = self.namespace.len();
        let mut stored: Box<dyn Iterator<Item = Result<Entry>> + '_> = match &self.backend {
            Backend::Memory { data, .. } => Box::new(
                data.range(from.to_vec()..to.to_vec())
                    .rev()
                    .map(|(k, v)| Ok((k.clone(), v.clone()))),
            ),
            Backend::Rocks(db) => {
                let mut options = rocksdb::ReadOptions::default();
                options.set_iterate_lower_bound(from.to_vec());
                options.set_iterate_upper_bound(to.to_vec());
                Box::new(
                    db.iterator_opt(rocksdb::IteratorMode::End, options)
                        .map(|item| {
                            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                                .map_err(rocks_error)
                        }),
                )
            }
        };
        let mut pending = self
            .pending
            .range(from.to_vec()..to.to_vec())
            .rev()
            .peekable();
        let mut next_stored = stored.next().transpose()?;
        let mut out = Vec::new();
        loop {
            // The greater key of the two comes first; a pending write wins over the store.
            let take_pending = match (pending.peek(), &next_stored) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((pk, _)), Some((sk, _))) => pk.as_slice() >= sk.as_slice(),
            };
            let (key, value) = if take_pending {
                let Some((k, v)) = pending.next() else { break };
                if next_stored.as_ref().is_some_and(|(sk, _)| sk == k) {
                    next_stored = stored.next().transpose()?;
                }
                match v {
                    Some(v) => (k.clone(), v.clone()),
                    None => continue,
                }
            } else {
                let Some(entry) = next_stored.take() else {
                    break;
                };
                next_stored = stored.next().transpose()?;
                entry
            };
            if !more(&key[n..], &value) {
                break;
            }
            out.push((key, value));
        }
        Ok(self.unscoped(out))
    }

    /// The writes since the last flush, in key order: what the changelog must receive.
    pub fn pending(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.pending
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Makes the pending writes durable together with the changelog offset they reach, in
    /// one atomic write.
    pub fn flush(&mut self, changelog_offset: Option<i64>) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        match &mut self.backend {
            Backend::Memory { data, offset } => {
                for (k, v) in pending {
                    match v {
                        Some(v) => data.insert(k, v),
                        None => data.remove(&k),
                    };
                }
                if changelog_offset.is_some() {
                    *offset = changelog_offset;
                }
            }
            Backend::Rocks(db) => {
                let mut batch = rocksdb::WriteBatch::default();
                for (k, v) in pending {
                    match v {
                        Some(v) => batch.put(k, v),
                        None => batch.delete(k),
                    }
                }
                if let Some(o) = changelog_offset {
                    let meta = db
                        .cf_handle(META)
                        .ok_or_else(|| StateError("missing metadata column family".into()))?;
                    batch.put_cf(&meta, CHANGELOG_OFFSET, o.to_be_bytes());
                }
                db.write(batch).map_err(rocks_error)?;
            }
        }
        Ok(())
    }

    /// About how many keys and bytes the store holds (RocksDB's estimates of its live data
    /// and memtables; exact in memory), what a task's state costs to keep.
    pub fn estimated_size(&self) -> (u64, u64) {
        let pending: u64 = self
            .pending
            .iter()
            .map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len)) as u64)
            .sum();
        match &self.backend {
            Backend::Memory { data, .. } => {
                let bytes: u64 = data.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
                (data.len() as u64, bytes + pending)
            }
            Backend::Rocks(db) => {
                let property = |name: &str| db.property_int_value(name).ok().flatten().unwrap_or(0);
                let keys = property("rocksdb.estimate-num-keys");
                let bytes = property("rocksdb.estimate-live-data-size")
                    + property("rocksdb.cur-size-all-mem-tables");
                (keys, bytes + pending)
            }
        }
    }

    /// The changelog offset the stored data reaches: restore reads the changelog after it.
    pub fn changelog_offset(&self) -> Result<Option<i64>> {
        match &self.backend {
            Backend::Memory { offset, .. } => Ok(*offset),
            Backend::Rocks(db) => {
                let meta = db
                    .cf_handle(META)
                    .ok_or_else(|| StateError("missing metadata column family".into()))?;
                let bytes = db.get_cf(&meta, CHANGELOG_OFFSET).map_err(rocks_error)?;
                Ok(bytes.and_then(|b| {
                    <[u8; 8]>::try_from(b.as_slice())
                        .ok()
                        .map(i64::from_be_bytes)
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_what_is_held() {
        let dir = std::env::temp_dir().join(format!("brook-size-{}", std::process::id()));
        let mut rocks = Store::open(&dir).expect("open");
        let mut memory = Store::memory();
        for store in [&mut rocks, &mut memory] {
            // An empty memtable holds an arena block at most.
            assert!(store.estimated_size().1 < 4096);
            for i in 0..100u32 {
                store.put(&i.to_be_bytes(), &[7u8; 96]);
            }
            store.flush(Some(1)).expect("flush");
            let (keys, bytes) = store.estimated_size();
            assert!(keys >= 50, "{keys}");
            assert!(bytes >= 100 * 100, "{bytes}");
        }
        drop(rocks);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Backwards over stored and pending entries alike, pending writes and deletes
    /// winning, stopping where asked.
    #[test]
    fn ranges_read_backwards_until_told_to_stop() {
        let dir = std::env::temp_dir().join(format!("brook-store-back-{}", std::process::id()));
        for mut store in [Store::memory(), Store::open(&dir).unwrap()] {
            for k in [b"a1", b"a3", b"a5", b"a7"] {
                store.put(k, b"old");
            }
            store.flush(None).unwrap();
            store.put(b"a3", b"new");
            store.put(b"a6", b"six");
            store.delete(b"a5");
            let all = store.range_back(b"a0", b"a7", |_, _| true).unwrap();
            let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
            assert_eq!(keys, [&b"a6"[..], b"a3", b"a1"]);
            assert_eq!(all[1].1, b"new");
            let some = store
                .range_back(b"a0", b"a9", |k, _| k > b"a3".as_slice())
                .unwrap();
            let keys: Vec<&[u8]> = some.iter().map(|(k, _)| k.as_slice()).collect();
            assert_eq!(keys, [&b"a7"[..], b"a6"]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn exercise(mut store: Store) {
        store.put(b"b", b"2");
        store.put(b"a", b"1");
        store.put(b"c", b"3");
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        store.flush(Some(7)).unwrap();
        store.delete(b"b");
        assert_eq!(store.get(b"b").unwrap(), None);
        let keys: Vec<Vec<u8>> = store
            .range(b"a", b"c")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a".to_vec()]);
        assert_eq!(store.pending().count(), 1);
        store.flush(Some(8)).unwrap();
        assert_eq!(store.changelog_offset().unwrap(), Some(8));
        assert_eq!(store.pending().count(), 0);
    }

    #[test]
    fn namespaces_keep_keys_apart() {
        let mut store = Store::memory();
        store.put(&[1, 1], b"outer");
        store.in_namespace(&[9], |s| {
            s.put(&[1, 1], b"inner");
            s.put(&[1, 2], b"inner 2");
            assert_eq!(s.get(&[1, 1]).unwrap().as_deref(), Some(&b"inner"[..]));
            let keys: Vec<Vec<u8>> = s
                .range(&[1], &[2])
                .unwrap()
                .into_iter()
                .map(|e| e.0)
                .collect();
            assert_eq!(keys, vec![vec![1, 1], vec![1, 2]]);
            let back = s.range_back(&[1], &[2], |k, _| k == [1, 2]).unwrap();
            assert_eq!(back, vec![(vec![1, 2], b"inner 2".to_vec())]);
        });
        store.flush(None).unwrap();
        assert_eq!(store.get(&[1, 1]).unwrap().as_deref(), Some(&b"outer"[..]));
        assert_eq!(store.range(&[1], &[2]).unwrap().len(), 1);
        let inner = store.in_namespace(&[9], |s| s.get(&[1, 2]).unwrap());
        assert_eq!(inner.as_deref(), Some(&b"inner 2"[..]));
    }

    #[test]
    fn memory_store_reads_its_writes() {
        exercise(Store::memory());
    }

    #[test]
    fn rocksdb_store_reads_its_writes_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("brook-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        exercise(Store::open(&dir).unwrap());
        let reopened = Store::open(&dir).unwrap();
        assert_eq!(reopened.get(b"c").unwrap(), Some(b"3".to_vec()));
        assert_eq!(reopened.get(b"b").unwrap(), None);
        assert_eq!(reopened.changelog_offset().unwrap(), Some(8));
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
