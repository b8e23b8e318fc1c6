//! `MemFs`: a [`Fileserver`] over files held in memory, for tests of the engine and of the
//! hosts that use it.

use super::Fileserver;
use halite_common::crypto::sha256_hex;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The master's file roots, in memory.
#[derive(Default)]
pub struct MemFs {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemFs {
    /// `(path, text)` pairs, paths as `salt://` names them without the prefix.
    pub fn new(files: &[(&str, &str)]) -> Arc<MemFs> {
        let fs = MemFs::default();
        for (path, text) in files {
            fs.put(path, text);
        }
        Arc::new(fs)
    }

    /// Adds or replaces one file.
    pub fn put(&self, path: &str, text: &str) {
        self.lock().insert(path.to_string(), text.as_bytes().to_vec());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A test that panicked holding the lock left the map whole.
        self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Fileserver for MemFs {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.lock().get(path).cloned().ok_or_else(|| format!("salt://{path}: no such file"))
    }

    fn hash(&self, path: &str) -> Result<String, String> {
        self.read(path).map(|data| sha256_hex(&data))
    }

    fn list(&self) -> Result<Vec<String>, String> {
        Ok(self.lock().keys().cloned().collect())
    }
}
