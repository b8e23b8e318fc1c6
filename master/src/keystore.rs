//! The master's key store: `master.key`/`master.pub` and one file per minion id in
//! `minions/`, `minions_pre/`, `minions_rejected/`, `minions_denied/` (Salt's layout), read
//! once into an in-memory index and written through by the disk worker.
//!
//! Invariant: every id reaching this module has passed `validate_id`, and every path is built
//! as `pki_dir/<status dir>/<id>`, so no file is ever touched outside the pki dir.

use crate::diskworker::{DiskOp, DiskWorker, Done};
use halite_common::control::{KeyEntry, KeyStatus};
use halite_common::crypto::{KeyPair, PublicKey};
use halite_common::files::{create_private_dir, load_or_create_pair};
use halite_common::id::validate_id;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Minion keys by status: an index in memory (loaded once at start, changed by every move),
/// written through to disk by the [`DiskWorker`]. Reads never touch the disk.
#[derive(Debug)]
pub struct KeyStore {
    pki: PathBuf,
    /// A write failed: reload the index once the worker is idle.
    dirty: bool,
    /// Per status (in `KeyStatus::ALL` order): id → PEM.
    index: [BTreeMap<String, String>; 4],
    disk: DiskWorker,
}

fn slot(status: KeyStatus) -> usize {
    KeyStatus::ALL.iter().position(|s| *s == status).expect("every status is in ALL")
}

impl KeyStore {
    /// Opens (creating, 0700) the pki dir and its four status dirs, reads every key file once
    /// into the index, and starts the disk worker (`wake` is called when a write finishes).
    pub fn open(pki: &Path, wake: impl Fn() + Send + 'static) -> io::Result<KeyStore> {
        create_private_dir(pki)?;
        let mut index: [BTreeMap<String, String>; 4] = Default::default();
        let mut stale = Vec::new();
        for status in KeyStatus::ALL {
            create_private_dir(&pki.join(status.dir()))?;
            index[slot(status)] = read_status(pki, status, &mut stale)?;
        }
        let disk = DiskWorker::spawn(wake)?;
        let mut store = KeyStore { pki: pki.to_path_buf(), dirty: false, index, disk };
        store.remove_stale(stale);
        Ok(store)
    }

    /// Has the pending files [`read_status`] left out removed.
    fn remove_stale(&mut self, stale: Vec<PathBuf>) {
        for path in stale {
            log::warn!(
                "removing {}: it holds no key (a crash while it was written)",
                path.display()
            );
            self.disk.submit(DiskOp::Remove { path });
        }
    }

    fn path(&self, status: KeyStatus, id: &str) -> io::Result<PathBuf> {
        validate_id(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(self.pki.join(status.dir()).join(id))
    }

    /// The PEM stored for `id` under `status`, if any (from the index).
    pub fn read(&self, status: KeyStatus, id: &str) -> io::Result<Option<String>> {
        self.path(status, id)?;
        Ok(self.index[slot(status)].get(id).cloned())
    }

    /// Stores `key` for `id` under `status`; the file is written (temp file, fsync, rename)
    /// by the disk worker. A pending key is not fsynced (`DiskOp::Unsynced`): a crash that
    /// loses one costs a minion one more hello, and a file it leaves empty is removed when
    /// the store is read ([`read_status`]).
    pub fn write(&mut self, status: KeyStatus, id: &str, key: &PublicKey) -> io::Result<()> {
        self.put(status, id, key.to_pem())
    }

    fn put(&mut self, status: KeyStatus, id: &str, pem: String) -> io::Result<()> {
        let path = self.path(status, id)?;
        let (data, mode) = (pem.clone().into_bytes(), 0o644);
        self.disk.submit(match status {
            KeyStatus::Pending => DiskOp::Unsynced { path, data, mode },
            _ => DiskOp::Write { path, data, mode },
        });
        self.index[slot(status)].insert(id.to_string(), pem);
        Ok(())
    }

    /// Removes `id` from `status`; `Ok(false)` if it was not there.
    pub fn remove(&mut self, status: KeyStatus, id: &str) -> io::Result<bool> {
        let path = self.path(status, id)?;
        if self.index[slot(status)].remove(id).is_none() {
            return Ok(false);
        }
        self.disk.submit(DiskOp::Remove { path });
        Ok(true)
    }

    /// Moves `id` from one status to another, keeping its key.
    pub fn moved(
        &mut self,
        from: KeyStatus,
        to: KeyStatus,
        id: &str,
    ) -> io::Result<Option<String>> {
        let Some(pem) = self.read(from, id)? else {
            return Ok(None);
        };
        if from == to {
            return Ok(Some(pem));
        }
        let (source, path) = (self.path(from, id)?, self.path(to, id)?);
        let data = pem.clone().into_bytes();
        self.disk.submit(DiskOp::Move { from: source, path, data, mode: 0o644 });
        self.index[slot(from)].remove(id);
        self.index[slot(to)].insert(id.to_string(), pem.clone());
        Ok(Some(pem))
    }

    /// The ids under `status`, sorted.
    pub fn ids(&self, status: KeyStatus) -> io::Result<Vec<String>> {
        Ok(self.index[slot(status)].keys().cloned().collect())
    }

    /// The ids `status` holds, sorted, without copying them.
    pub fn ids_iter(&self, status: KeyStatus) -> impl Iterator<Item = &String> {
        self.index[slot(status)].keys()
    }

    /// Whether `id` has a key under `status`.
    pub fn has(&self, status: KeyStatus, id: &str) -> bool {
        self.index[slot(status)].contains_key(id)
    }

    /// The keys in `from` whose id matches one of the comma-separated `globs`, in
    /// [`KeyStore::list`]'s order, from the index: no key is parsed or fingerprinted, and ids
    /// named without glob characters are looked up rather than matched against every key.
    pub fn select(&self, globs: &str, from: &[KeyStatus]) -> Vec<(String, KeyStatus)> {
        let globs = halite_common::control::KeyGlobs::new(globs);
        let exact = globs.exact();
        let mut chosen = Vec::new();
        for status in KeyStatus::ALL.into_iter().filter(|s| from.contains(s)) {
            let index = &self.index[slot(status)];
            match &exact {
                Some(named) => {
                    let mut ids: Vec<&str> =
                        named.iter().copied().filter(|id| index.contains_key(*id)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    chosen.extend(ids.into_iter().map(|id| (id.to_string(), status)));
                }
                None => {
                    let selected = index.keys().filter(|id| globs.matches(id));
                    chosen.extend(selected.map(|id| (id.clone(), status)));
                }
            }
        }
        chosen
    }

    /// How many keys `status` holds.
    pub fn count(&self, status: KeyStatus) -> usize {
        self.index[slot(status)].len()
    }

    /// Every key in every status, sorted by status then id.
    pub fn list(&self) -> io::Result<Vec<KeyEntry>> {
        let mut keys = Vec::new();
        for status in KeyStatus::ALL {
            for (id, public) in &self.index[slot(status)] {
                let finger = PublicKey::from_pem(public)
                    .map(|k| k.fingerprint())
                    .unwrap_or_else(|_| "(unreadable key)".into());
                keys.push(KeyEntry { id: id.clone(), status, public: public.clone(), finger });
            }
        }
        Ok(keys)
    }

    /// The ticket of the last disk op submitted: ops after a given ticket are an action's own.
    pub fn submitted(&self) -> u64 {
        self.disk.submitted()
    }

    /// Whether writes are queued or running.
    pub fn busy(&self) -> bool {
        self.disk.busy()
    }

    /// Disk results that came back (the loop calls this when the worker wakes it). After a
    /// failure, once the worker is idle, the index is read again from disk so that it says
    /// what the files say.
    pub fn finished(&mut self) -> Vec<Done> {
        let done = self.disk.finished();
        if done.iter().any(|d| d.error.is_some()) {
            self.dirty = true;
        }
        if self.dirty && !self.disk.busy() {
            self.dirty = false;
            self.reload();
        }
        done
    }

    /// Waits for every queued write (tests, shutdown).
    pub fn flush(&mut self) -> Vec<Done> {
        let done = self.disk.wait_idle();
        if done.iter().any(|d| d.error.is_some()) {
            self.reload();
        }
        done
    }

    fn reload(&mut self) {
        let mut stale = Vec::new();
        for status in KeyStatus::ALL {
            self.index[slot(status)] =
                read_status(&self.pki, status, &mut stale).unwrap_or_default();
        }
        // Left out, not removed again here: a removal that failed would bring the next
        // reload, and so on.
        log::warn!("key index reloaded from {} after a failed write", self.pki.display());
    }
}

/// The key files of `status`, by id. A pending file that holds no key is left out (pushed on
/// `stale`, to be removed): pending keys are not fsynced, so a crash can leave one empty, and
/// it is no request; kept, it would deny its minion as a key mismatch, or overwrite a good
/// key when `halite-key -A` moved it.
fn read_status(
    pki: &Path,
    status: KeyStatus,
    stale: &mut Vec<PathBuf>,
) -> io::Result<BTreeMap<String, String>> {
    let dir = pki.join(status.dir());
    let mut keys = BTreeMap::new();
    for id in file_ids(&dir)? {
        match fs::read_to_string(dir.join(&id)) {
            Ok(pem) if status == KeyStatus::Pending && PublicKey::from_pem(&pem).is_err() => {
                stale.push(dir.join(&id));
            }
            Ok(pem) => drop(keys.insert(id, pem)),
            Err(e) => log::warn!("ignoring key {}/{id}: {e}", status.dir()),
        }
    }
    Ok(keys)
}

/// The valid ids of the regular files in `dir`. Other names are skipped: quietly for hidden
/// and temp files, with a warning otherwise (a key file named to disguise itself in
/// `halite-key -L`, or left from an older master).
fn file_ids(dir: &Path) -> io::Result<Vec<String>> {
    let mut ids = Vec::new();
    let files = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()));
    for file in files {
        let name = match file.file_name().into_string() {
            Ok(id) if validate_id(&id).is_ok() => {
                ids.push(id);
                continue;
            }
            Ok(name) => name,
            Err(name) => name.to_string_lossy().into_owned(),
        };
        if !name.starts_with('.') {
            let why = validate_id(&name).err().map_or("not UTF-8".into(), |e| e.to_string());
            log::warn!("key store: ignoring {}: {why}", dir.join(format!("{name:?}")).display());
        }
    }
    Ok(ids)
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
        let mut store = KeyStore::open(&dir, || {}).unwrap();
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
        // The files follow the index, and a fresh store reads them back.
        assert!(store.flush().iter().all(|d| d.error.is_none()));
        assert!(dir.join("minions/b").is_file() && !dir.join("minions_pre/b").exists());
        let again = KeyStore::open(&dir, || {}).unwrap();
        assert_eq!(again.ids(KeyStatus::Accepted).unwrap(), ["b"]);
        assert_eq!(again.ids(KeyStatus::Pending).unwrap(), ["a"]);
        assert_eq!(again.count(KeyStatus::Pending), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// `select` is `control::select` over `list`, from the index alone.
    #[test]
    fn select_matches_what_the_listing_selects() {
        halite_common::crypto::init();
        let dir = temp("select");
        let mut store = KeyStore::open(&dir, || {}).unwrap();
        let key = KeyPair::generate().public;
        for (status, id) in [
            (KeyStatus::Pending, "web2"),
            (KeyStatus::Pending, "web1"),
            (KeyStatus::Pending, "db1"),
            (KeyStatus::Rejected, "web3"),
            (KeyStatus::Accepted, "web9"),
        ] {
            store.write(status, id, &key).unwrap();
        }
        let listed = store.list().unwrap();
        let pending_or_rejected = [KeyStatus::Pending, KeyStatus::Rejected];
        for globs in ["web*", "web1", "db1, web2,web1", "nothing", "web[13]", "*", "web1,web1", ""]
        {
            for from in [&[KeyStatus::Pending][..], &pending_or_rejected, &KeyStatus::ALL] {
                let expected: Vec<(String, KeyStatus)> =
                    halite_common::control::select(&listed, globs, from)
                        .into_iter()
                        .map(|k| (k.id.clone(), k.status))
                        .collect();
                assert_eq!(store.select(globs, from), expected, "{globs:?} from {from:?}");
            }
        }
        store.flush();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_is_reported_and_the_index_follows_the_disk_again() {
        halite_common::crypto::init();
        let dir = temp("fail");
        let mut store = KeyStore::open(&dir, || {}).unwrap();
        let key = KeyPair::generate().public;
        store.write(KeyStatus::Pending, "p", &key).unwrap();
        assert!(store.flush().iter().all(|d| d.error.is_none()));
        // A directory where the accepted key would go: the move fails and keeps the source.
        fs::create_dir_all(dir.join("minions/p/blocker")).unwrap();
        store.moved(KeyStatus::Pending, KeyStatus::Accepted, "p").unwrap();
        assert_eq!(store.ids(KeyStatus::Accepted).unwrap(), ["p"], "the index moves at once");
        let done = store.flush();
        assert!(done[0].error.as_deref().is_some_and(|e| e.contains("minions/p")), "{done:?}");
        assert_eq!(store.ids(KeyStatus::Accepted).unwrap(), Vec::<String>::new());
        assert_eq!(store.ids(KeyStatus::Pending).unwrap(), ["p"]);
        assert!(dir.join("minions_pre/p").is_file());
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
