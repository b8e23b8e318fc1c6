//! Salt's `_auth` decision table (SALT-COMPAT §3.3): given a validated hello, which key file
//! moves where, which `salt/auth` event fires, and what the minion is told.

use crate::keystore::KeyStore;
use halite_common::control::KeyStatus;
use halite_common::crypto::PublicKey;
use halite_common::event::object;
use halite_common::event::TagFilter;
use halite_common::proto::AuthStatus;
use serde_json::{Map, Value};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What the master's config says about unknown keys.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub auto_accept: bool,
    /// `autosign_file` as last read (off the loop: [`AutoList::refreshed`]).
    pub autosign: AutoList,
    /// `autoreject_file` as last read.
    pub autoreject: AutoList,
    /// 0 = unlimited.
    pub max_minions: usize,
    /// Keys allowed in `minions_pre`; 0 = unlimited.
    pub max_pending_keys: usize,
}

/// The outcome of one hello.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: AuthStatus,
    /// Data of the `salt/auth` event to fire.
    pub event: Map<String, Value>,
}

/// Applies the decision table for `id` presenting `key`. `connected` is how many minions hold a
/// session and `is_connected` whether `id` is one of them (for `max_minions`). A new pending
/// key needs room under `max_pending_keys` and `rate_ok()` (the caller's per-address rate,
/// asked only then); without either the minion hears `full`, as past `max_minions`.
pub fn decide(
    store: &mut KeyStore,
    policy: &Policy,
    id: &str,
    key: &PublicKey,
    connected: usize,
    is_connected: bool,
    rate_ok: impl FnOnce() -> bool,
) -> io::Result<Outcome> {
    let pem = key.to_pem();
    let outcome = |status, result: bool, act: Option<&str>| {
        let mut event = object([("result", result.into())]);
        if let Some(act) = act {
            event.insert("act".into(), act.into());
        }
        event.insert("id".into(), id.into());
        event.insert("pub".into(), pem.trim_end().into());
        Ok(Outcome { status, event })
    };
    let same = |stored: &str| same_key(stored, key);

    if policy.max_minions > 0 && connected >= policy.max_minions && !is_connected {
        return outcome(AuthStatus::Full, false, Some("full"));
    }
    if store.read(KeyStatus::Rejected, id)?.is_some() {
        return outcome(AuthStatus::Rejected, false, None);
    }
    if let Some(stored) = store.read(KeyStatus::Accepted, id)? {
        if same(&stored) {
            return outcome(AuthStatus::Accepted, true, Some("accept"));
        }
        store.write(KeyStatus::Denied, id, key)?;
        return outcome(AuthStatus::Denied, false, Some("denied"));
    }
    let autoreject = policy.autoreject.contains(id);
    let autosign = policy.auto_accept || policy.autosign.contains(id);
    match store.read(KeyStatus::Pending, id) {
        Ok(Some(stored)) => {
            if autoreject {
                store.moved(KeyStatus::Pending, KeyStatus::Rejected, id)?;
                return outcome(AuthStatus::Rejected, false, Some("reject"));
            }
            if !same(&stored) {
                store.write(KeyStatus::Denied, id, key)?;
                let act = (!autosign).then_some("denied");
                return outcome(AuthStatus::Denied, false, act);
            }
            if autosign {
                // The stored key is the presented one: one move, which keeps it if it fails.
                store.moved(KeyStatus::Pending, KeyStatus::Accepted, id)?;
                return outcome(AuthStatus::Accepted, true, Some("accept"));
            }
            outcome(AuthStatus::Pending, true, Some("pend"))
        }
        // `minions_pre/<id>` is a directory or unreadable: refuse, as Salt does.
        Err(_) => outcome(AuthStatus::Rejected, false, None),
        Ok(None) if autoreject => {
            store.write(KeyStatus::Rejected, id, key)?;
            outcome(AuthStatus::Rejected, false, Some("reject"))
        }
        Ok(None) if autosign => {
            store.write(KeyStatus::Accepted, id, key)?;
            outcome(AuthStatus::Accepted, true, Some("accept"))
        }
        Ok(None) => {
            let room = policy.max_pending_keys == 0
                || store.count(KeyStatus::Pending) < policy.max_pending_keys;
            if !room {
                log::warn!("refused new pending key {id}: max_pending_keys reached");
                return outcome(AuthStatus::Full, false, Some("full"));
            }
            if !rate_ok() {
                log::warn!("refused new pending key {id}: pending_key_rate reached");
                return outcome(AuthStatus::Full, false, Some("full"));
            }
            store.write(KeyStatus::Pending, id, key)?;
            outcome(AuthStatus::Pending, true, Some("pend"))
        }
    }
}

/// Whether the stored PEM `stored` holds `key`.
pub(crate) fn same_key(stored: &str, key: &PublicKey) -> bool {
    PublicKey::from_pem(stored).is_ok_and(|k| &k == key)
}

/// An autosign or autoreject file as last read: one entry per line, exact, glob or anchored
/// regex, `#` comments. A world-writable file lists nobody (anyone could add to it), and
/// neither does a missing one. The loop only asks [`AutoList::contains`]; the file is read on
/// the job thread, again whenever its inode, size, mode or mtime change.
#[derive(Debug, Clone, Default)]
pub struct AutoList {
    /// Each line compiled when the file is read (on the job thread) as Salt's `expr_match`
    /// (exact, glob, anchored regex), which is `tagmatch`'s: [`AutoList::contains`] runs on
    /// the loop for every hello of a new id, and compiling each line there cost each hello
    /// ~0.1–2 ms per line.
    entries: Vec<TagFilter>,
    stamp: Option<Stamp>,
    /// Its file was read (not missing, refused or unreadable): [`AutoList::announce`] says so.
    loaded: bool,
}

/// What tells a changed file: (device, inode, size, mode, mtime s, mtime ns).
pub type Stamp = (u64, u64, u64, u32, i64, i64);

impl AutoList {
    /// Whether `id` is listed.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|entry| entry.matches(id))
    }

    /// Reads `file` (at start; afterwards through [`AutoList::refreshed`]).
    pub fn read(file: &Path) -> AutoList {
        let list = AutoList::default().refreshed(file).unwrap_or_default();
        list.announce(file);
        list
    }

    /// Logs what was read from `file`, once the list is in force (the log line is what
    /// operators and tests wait for before they connect a minion it lists).
    pub fn announce(&self, file: &Path) {
        if self.loaded {
            log::info!("read {}: {} entries", file.display(), self.entries.len());
        }
    }

    /// What the list was read from ([`AutoList::changed`] takes it).
    pub fn stamp(&self) -> Option<Stamp> {
        self.stamp
    }

    /// `file` read again if it changed since `self` was read, else `None`.
    pub fn refreshed(&self, file: &Path) -> Option<AutoList> {
        AutoList::changed(file, self.stamp)
    }

    /// `file` read again if it is no longer what `since` stamped, else `None`.
    pub fn changed(file: &Path, since: Option<Stamp>) -> Option<AutoList> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(file) else {
            return since.is_some().then(AutoList::default); // removed: lists nobody
        };
        let stamp =
            (meta.dev(), meta.ino(), meta.len(), meta.mode(), meta.mtime(), meta.mtime_nsec());
        if since == Some(stamp) {
            return None;
        }
        let mut list = AutoList { entries: Vec::new(), stamp: Some(stamp), loaded: false };
        if meta.permissions().mode() & 0o002 != 0 {
            log::warn!("{} is world-writable; ignoring it", file.display());
            return Some(list);
        }
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let lines = text.lines().map(str::trim);
                let entries = lines.filter(|l| !l.is_empty() && !l.starts_with('#'));
                list.entries = entries.map(|line| TagFilter::tagmatch(Some(line))).collect();
                list.loaded = true;
            }
            Err(e) => log::error!("cannot read {}: {e}; it lists nobody", file.display()),
        }
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::crypto::{init, KeyPair};
    use std::path::PathBuf;

    struct Fixture {
        dir: PathBuf,
        store: KeyStore,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.store.flush();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(name: &str) -> Fixture {
        init();
        let dir = std::env::temp_dir().join(format!("halite-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = KeyStore::open(&dir, || {}).unwrap();
        Fixture { dir, store }
    }

    #[track_caller]
    fn check(
        f: &mut Fixture,
        policy: &Policy,
        id: &str,
        key: &PublicKey,
        status: AuthStatus,
        act: Option<&str>,
    ) {
        let out = decide(&mut f.store, policy, id, key, 0, false, || true).unwrap();
        assert_eq!(out.status, status);
        assert_eq!(out.event.get("act").and_then(Value::as_str), act);
        assert_eq!(
            out.event["result"],
            Value::Bool(status == AuthStatus::Accepted || status == AuthStatus::Pending)
        );
    }

    /// Pending keys are not fsynced: a crash can leave `minions_pre/<id>` empty. Such a file
    /// is no request: the store leaves it out and removes it, and the minion's next hello is
    /// a new one (it was Denied as a key mismatch, for good; moved by an accept-all it would
    /// have overwritten the key).
    #[test]
    fn a_pending_file_emptied_by_a_crash_is_no_request() {
        let mut f = fixture("emptied");
        let key = KeyPair::generate().public;
        let pending = |f: &Fixture, id: &str| f.dir.join(KeyStatus::Pending.dir()).join(id);
        for id in ["m1", "m2"] {
            check(&mut f, &Policy::default(), id, &key, AuthStatus::Pending, Some("pend"));
        }
        f.store.flush();
        std::fs::write(pending(&f, "m1"), "").unwrap();
        std::fs::write(pending(&f, "m2"), "-----BEGIN").unwrap();
        f.store.flush();
        f.store = KeyStore::open(&f.dir, || {}).unwrap();
        assert_eq!(f.store.count(KeyStatus::Pending), 0);
        f.store.flush();
        assert!(!pending(&f, "m1").exists() && !pending(&f, "m2").exists());
        check(&mut f, &Policy::default(), "m1", &key, AuthStatus::Pending, Some("pend"));
        assert!(f.store.read(KeyStatus::Denied, "m1").unwrap().is_none());
        let autosign = Policy { auto_accept: true, ..Policy::default() };
        check(&mut f, &autosign, "m2", &key, AuthStatus::Accepted, Some("accept"));
        f.store.flush();
        assert_eq!(std::fs::read_to_string(pending(&f, "m1")).unwrap(), key.to_pem());
        assert!(!pending(&f, "m2").exists());
    }

    #[test]
    fn new_pending_accepted_denied_rejected() {
        let mut f = fixture("table");
        let policy = Policy::default();
        let key = KeyPair::generate().public;
        let other = KeyPair::generate().public;
        check(&mut f, &policy, "m1", &key, AuthStatus::Pending, Some("pend"));
        check(&mut f, &policy, "m1", &key, AuthStatus::Pending, Some("pend"));
        check(&mut f, &policy, "m1", &other, AuthStatus::Denied, Some("denied"));
        assert!(f.store.read(KeyStatus::Denied, "m1").unwrap().is_some());
        f.store.moved(KeyStatus::Pending, KeyStatus::Accepted, "m1").unwrap();
        check(&mut f, &policy, "m1", &key, AuthStatus::Accepted, Some("accept"));
        check(&mut f, &policy, "m1", &other, AuthStatus::Denied, Some("denied"));
        f.store.moved(KeyStatus::Accepted, KeyStatus::Rejected, "m1").unwrap();
        check(&mut f, &policy, "m1", &key, AuthStatus::Rejected, None);
        let full = Policy { max_minions: 1, ..Policy::default() };
        let out = decide(&mut f.store, &full, "m2", &key, 1, false, || true).unwrap();
        assert_eq!(out.status, AuthStatus::Full);
        assert_eq!(out.event["act"], "full");
    }

    #[test]
    fn new_pending_keys_are_capped_and_rate_limited() {
        let mut f = fixture("cap");
        let key = KeyPair::generate().public;
        let policy = Policy { max_pending_keys: 2, ..Policy::default() };
        check(&mut f, &policy, "a", &key, AuthStatus::Pending, Some("pend"));
        let refused = decide(&mut f.store, &policy, "b", &key, 0, false, || false).unwrap();
        assert_eq!((refused.status, &refused.event["act"]), (AuthStatus::Full, &"full".into()));
        assert_eq!(refused.event["result"], false);
        check(&mut f, &policy, "b", &key, AuthStatus::Pending, Some("pend"));
        check(&mut f, &policy, "c", &key, AuthStatus::Full, Some("full"));
        assert!(f.store.read(KeyStatus::Pending, "c").unwrap().is_none());
        // Known ids are not new keys: they pend again, and a full store still accepts.
        check(&mut f, &policy, "a", &key, AuthStatus::Pending, Some("pend"));
        let mut asked = false;
        let out = decide(&mut f.store, &policy, "a", &key, 0, false, || {
            asked = true;
            false
        });
        assert_eq!(out.unwrap().status, AuthStatus::Pending);
        assert!(!asked, "the rate is spent only on new keys");
        f.store.moved(KeyStatus::Pending, KeyStatus::Accepted, "a").unwrap();
        check(&mut f, &policy, "a", &key, AuthStatus::Accepted, Some("accept"));
        assert!(f.store.flush().iter().all(|d| d.error.is_none()));
        assert!(!f.dir.join("minions_pre/c").exists());
    }

    #[test]
    fn auto_accept_autosign_and_autoreject_files() {
        let mut f = fixture("sign");
        let key = KeyPair::generate().public;
        let auto = Policy { auto_accept: true, ..Policy::default() };
        check(&mut f, &auto, "any", &key, AuthStatus::Accepted, Some("accept"));
        let sign = f.dir.join("autosign.conf");
        std::fs::write(&sign, "# comment\nweb*\nexact1\ndb[0-9]+\napp[!x]\n").unwrap();
        std::fs::set_permissions(&sign, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut policy = Policy { autosign: AutoList::read(&sign), ..Policy::default() };
        assert!(policy.autosign.refreshed(&sign).is_none(), "unchanged: not read again");
        check(&mut f, &policy, "web7", &key, AuthStatus::Accepted, Some("accept"));
        check(&mut f, &policy, "exact1", &key, AuthStatus::Accepted, Some("accept"));
        check(&mut f, &policy, "db12", &key, AuthStatus::Accepted, Some("accept"));
        check(&mut f, &policy, "app1", &key, AuthStatus::Accepted, Some("accept"));
        check(&mut f, &policy, "app12", &key, AuthStatus::Pending, Some("pend"));
        check(&mut f, &policy, "other", &key, AuthStatus::Pending, Some("pend"));
        // A pending key becomes accepted once the autosign file lists it.
        std::fs::write(&sign, "other\n").unwrap();
        policy.autosign = policy.autosign.refreshed(&sign).expect("changed");
        check(&mut f, &policy, "other", &key, AuthStatus::Accepted, Some("accept"));
        assert!(f.store.read(KeyStatus::Pending, "other").unwrap().is_none());
        // World-writable autosign files are ignored.
        std::fs::write(&sign, "*\n").unwrap();
        std::fs::set_permissions(&sign, std::fs::Permissions::from_mode(0o666)).unwrap();
        policy.autosign = policy.autosign.refreshed(&sign).expect("changed");
        check(&mut f, &policy, "someone", &key, AuthStatus::Pending, Some("pend"));
        // A removed file lists nobody.
        std::fs::remove_file(&sign).unwrap();
        policy.autosign = policy.autosign.refreshed(&sign).expect("removed");
        assert!(!policy.autosign.contains("web7"));
        let reject = f.dir.join("autoreject.conf");
        std::fs::write(&reject, "bad*\n").unwrap();
        let policy =
            Policy { autoreject: AutoList::read(&reject), auto_accept: true, ..Policy::default() };
        check(&mut f, &policy, "bad1", &key, AuthStatus::Rejected, Some("reject"));
        check(&mut f, &policy, "bad1", &key, AuthStatus::Rejected, None);
        check(&mut f, &policy, "someone", &key, AuthStatus::Accepted, Some("accept"));
    }
}
