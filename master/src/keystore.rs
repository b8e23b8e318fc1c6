//! The master's key store on disk: `master.key`/`master.pub` and one file per minion id in
//! `minions/`, `minions_pre/`, `minions_rejected/`, `minions_denied/` (Salt's layout).
//!
//! Invariant: every id reaching this module has passed `validate_id`, and every path is built
//! as `pki_dir/<status dir>/<id>`, so no file is ever touched outside the pki dir.

use halite_common::control::{KeyEntry, KeyStatus};
use halite_common::crypto::{KeyPair, PublicKey};
use halite_common::files::{create_private_dir, load_or_create_pair, write_atomic};
use halite_common::id::validate_id;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Minion keys by status, on disk.
#[derive(Debug)]
pub struct KeyStore {
    pki: PathBuf,
}

impl KeyStore {
    /// Opens (creating, 0700) the pki dir and its four status dirs.
    pub fn open(pki: &Path) -> io::Result<KeyStore> {
        create_private_dir(pki)?;
        for status in KeyStatus::ALL {
            create_private_dir(&pki.join(status.dir()))?;
        }
        Ok(KeyStore { pki: pki.to_path_buf() })
    }

    fn path(&self, status: KeyStatus, id: &str) -> io::Result<PathBuf> {
        validate_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(self.pki.join(status.dir()).join(id))
    }

    /// The PEM stored for `id` under `status`, if any. A directory or unreadable entry is
    /// reported as an error so that the caller refuses rather than guesses.
    pub fn read(&self, status: KeyStatus, id: &str) -> io::Result<Option<String>> {
        match fs::read_to_string(self.path(status, id)?) {
            Ok(pem) => Ok(Some(pem)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `key` for `id` under `status`, atomically (temp file, then rename).
    pub fn write(&self, status: KeyStatus, id: &str, key: &PublicKey) -> io::Result<()> {
        let path = self.path(status, id)?;
        write_atomic(&path, key.to_pem().as_bytes(), 0o644)
    }

    /// Removes `id` from `status`; `Ok(false)` if it was not there.
    pub fn remove(&self, status: KeyStatus, id: &str) -> io::Result<bool> {
        match fs::remove_file(self.path(status, id)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves `id` from one status to another, keeping its key.
    pub fn moved(&self, from: KeyStatus, to: KeyStatus, id: &str) -> io::Result<Option<String>> {
        let Some(pem) = self.read(from, id)? else {
            return Ok(None);
        };
        write_atomic(&self.path(to, id)?, pem.as_bytes(), 0o644)?;
        self.remove(from, id)?;
        Ok(Some(pem))
    }

    /// The ids under `status`, sorted, without reading the key files.
    pub fn ids(&self, status: KeyStatus) -> io::Result<Vec<String>> {
        Ok(self.entries(status)?.0)
    }

    /// The valid ids under `status`, sorted, and the other file names (lossy UTF-8).
    fn entries(&self, status: KeyStatus) -> io::Result<(Vec<String>, Vec<String>)> {
        let (mut ids, mut invalid) = (Vec::new(), Vec::new());
        let files = fs::read_dir(self.pki.join(status.dir()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()));
        for file in files {
            match file.file_name().into_string() {
                Ok(id) if validate_id(&id).is_ok() => ids.push(id),
                Ok(name) => invalid.push(name),
                Err(name) => invalid.push(name.to_string_lossy().into_owned()),
            }
        }
        ids.sort();
        Ok((ids, invalid))
    }

    /// Every key in every status, sorted by status then id. Files whose names are not valid
    /// ids are skipped: quietly for hidden and temp files, with a warning otherwise (a key
    /// file named to disguise itself in `halite-key -L`, or left from an older master).
    pub fn list(&self) -> io::Result<Vec<KeyEntry>> {
        let mut keys = Vec::new();
        for status in KeyStatus::ALL {
            let (ids, invalid) = self.entries(status)?;
            for name in invalid.iter().filter(|n| !n.starts_with('.')) {
                let why = validate_id(name).err().map_or("not UTF-8".into(), |e| e.to_string());
                log::warn!("key store: ignoring {}/{name:?}: {why}", status.dir());
            }
            for id in ids {
                let Some(public) = self.read(status, &id)? else {
                    continue;
                };
                let finger = PublicKey::from_pem(&public)
                    .map(|k| k.fingerprint())
                    .unwrap_or_else(|_| "(unreadable key)".into());
                keys.push(KeyEntry { id, status, public, finger });
            }
        }
        Ok(keys)
    }
}

/// Loads `master.key`, or creates the pair (`master.key` 0600, `master.pub` 0644) on first start.
pub fn load_or_create_master_key(pki: &Path) -> io::Result<KeyPair> {
    create_private_dir(pki)?;
    load_or_create_pair(&pki.join("master.key"), &pki.join("master.pub"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("halite-ks-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_move_between_statuses_and_list_in_order() {
        halite_common::crypto::init();
        let dir = temp("move");
        let store = KeyStore::open(&dir).unwrap();
        let key = KeyPair::generate().public;
        store.write(KeyStatus::Pending, "b", &key).unwrap();
        store.write(KeyStatus::Pending, "a", &key).unwrap();
        store.write(KeyStatus::Accepted, "c", &key).unwrap();
        assert!(store.moved(KeyStatus::Pending, KeyStatus::Accepted, "b").unwrap().is_some());
        assert!(store.moved(KeyStatus::Pending, KeyStatus::Accepted, "zz").unwrap().is_none());
        let listed: Vec<(String, KeyStatus)> =
            store.list().unwrap().into_iter().map(|k| (k.id, k.status)).collect();
        assert_eq!(
            listed,
            [
                ("b".into(), KeyStatus::Accepted),
                ("c".into(), KeyStatus::Accepted),
                ("a".into(), KeyStatus::Pending)
            ]
        );
        assert!(store.remove(KeyStatus::Accepted, "c").unwrap());
        assert!(!store.remove(KeyStatus::Accepted, "c").unwrap());
        assert!(store.write(KeyStatus::Pending, "../escape", &key).is_err());
        assert!(store.read(KeyStatus::Pending, "..").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn master_key_is_created_private_and_reloaded() {
        halite_common::crypto::init();
        let dir = temp("mkey");
        let first = load_or_create_master_key(&dir).unwrap();
        let mode = fs::metadata(dir.join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create_master_key(&dir).unwrap();
        assert_eq!(first.public, again.public);
        fs::write(dir.join("master.key"), "junk").unwrap();
        assert!(load_or_create_master_key(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
