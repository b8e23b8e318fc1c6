//! Salt's `_auth` decision table (SALT-COMPAT §3.3): given a validated hello, which key file
//! moves where, which `salt/auth` event fires, and what the minion is told.

use crate::keystore::KeyStore;
use halite_common::control::KeyStatus;
use halite_common::crypto::PublicKey;
use halite_common::event::object;
use halite_common::glob::{anchored_regex, fnmatch};
use halite_common::proto::AuthStatus;
use serde_json::{Map, Value};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What the master's config says about unknown keys.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub auto_accept: bool,
    pub autosign_file: Option<PathBuf>,
    pub autoreject_file: Option<PathBuf>,
    /// 0 = unlimited.
    pub max_minions: usize,
}

/// The outcome of one hello.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: AuthStatus,
    /// Data of the `salt/auth` event to fire.
    pub event: Map<String, Value>,
}

/// Applies the decision table for `id` presenting `key`. `connected` is how many minions hold a
/// session and `is_connected` whether `id` is one of them (for `max_minions`).
pub fn decide(
    store: &KeyStore,
    policy: &Policy,
    id: &str,
    key: &PublicKey,
    connected: usize,
    is_connected: bool,
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
    let same = |stored: &str| PublicKey::from_pem(stored).is_ok_and(|k| &k == key);

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
    let autoreject = listed(policy.autoreject_file.as_deref(), id);
    let autosign = policy.auto_accept || listed(policy.autosign_file.as_deref(), id);
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
                store.write(KeyStatus::Accepted, id, key)?;
                store.remove(KeyStatus::Pending, id)?;
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
            store.write(KeyStatus::Pending, id, key)?;
            outcome(AuthStatus::Pending, true, Some("pend"))
        }
    }
}

/// Whether `id` is listed in an autosign/autoreject file: one entry per line, exact, glob or
/// anchored regex, `#` comments. A world-writable file is ignored (anyone could add to it).
pub fn listed(file: Option<&Path>, id: &str) -> bool {
    let Some(file) = file else { return false };
    let Ok(meta) = std::fs::metadata(file) else {
        return false;
    };
    if meta.permissions().mode() & 0o002 != 0 {
        log::warn!("{} is world-writable; ignoring it", file.display());
        return false;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).any(|line| {
        line == id || fnmatch(id, line) || anchored_regex(line).is_some_and(|re| re.is_match(id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::crypto::{init, KeyPair};

    struct Fixture {
        dir: PathBuf,
        store: KeyStore,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(name: &str) -> Fixture {
        init();
        let dir = std::env::temp_dir().join(format!("halite-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = KeyStore::open(&dir).unwrap();
        Fixture { dir, store }
    }

    #[track_caller]
    fn check(
        f: &Fixture,
        policy: &Policy,
        id: &str,
        key: &PublicKey,
        status: AuthStatus,
        act: Option<&str>,
    ) {
        let out = decide(&f.store, policy, id, key, 0, false).unwrap();
        assert_eq!(out.status, status);
        assert_eq!(out.event.get("act").and_then(Value::as_str), act);
        assert_eq!(
            out.event["result"],
            Value::Bool(status == AuthStatus::Accepted || status == AuthStatus::Pending)
        );
    }

    #[test]
    fn new_pending_accepted_denied_rejected() {
        let f = fixture("table");
        let policy = Policy::default();
        let key = KeyPair::generate().public;
        let other = KeyPair::generate().public;
        check(&f, &policy, "m1", &key, AuthStatus::Pending, Some("pend"));
        check(&f, &policy, "m1", &key, AuthStatus::Pending, Some("pend"));
        check(&f, &policy, "m1", &other, AuthStatus::Denied, Some("denied"));
        assert!(f.store.read(KeyStatus::Denied, "m1").unwrap().is_some());
        f.store.moved(KeyStatus::Pending, KeyStatus::Accepted, "m1").unwrap();
        check(&f, &policy, "m1", &key, AuthStatus::Accepted, Some("accept"));
        check(&f, &policy, "m1", &other, AuthStatus::Denied, Some("denied"));
        f.store.moved(KeyStatus::Accepted, KeyStatus::Rejected, "m1").unwrap();
        check(&f, &policy, "m1", &key, AuthStatus::Rejected, None);
        let full = Policy { max_minions: 1, ..Policy::default() };
        let out = decide(&f.store, &full, "m2", &key, 1, false).unwrap();
        assert_eq!(out.status, AuthStatus::Full);
        assert_eq!(out.event["act"], "full");
    }

    #[test]
    fn auto_accept_autosign_and_autoreject_files() {
        let f = fixture("sign");
        let key = KeyPair::generate().public;
        let auto = Policy { auto_accept: true, ..Policy::default() };
        check(&f, &auto, "any", &key, AuthStatus::Accepted, Some("accept"));
        let sign = f.dir.join("autosign.conf");
        std::fs::write(&sign, "# comment\nweb*\nexact1\ndb[0-9]+\n").unwrap();
        std::fs::set_permissions(&sign, std::fs::Permissions::from_mode(0o644)).unwrap();
        let policy = Policy { autosign_file: Some(sign.clone()), ..Policy::default() };
        check(&f, &policy, "web7", &key, AuthStatus::Accepted, Some("accept"));
        check(&f, &policy, "exact1", &key, AuthStatus::Accepted, Some("accept"));
        check(&f, &policy, "db12", &key, AuthStatus::Accepted, Some("accept"));
        check(&f, &policy, "other", &key, AuthStatus::Pending, Some("pend"));
        // A pending key becomes accepted once the autosign file lists it.
        std::fs::write(&sign, "other\n").unwrap();
        check(&f, &policy, "other", &key, AuthStatus::Accepted, Some("accept"));
        assert!(f.store.read(KeyStatus::Pending, "other").unwrap().is_none());
        // World-writable autosign files are ignored.
        std::fs::write(&sign, "*\n").unwrap();
        std::fs::set_permissions(&sign, std::fs::Permissions::from_mode(0o666)).unwrap();
        check(&f, &policy, "someone", &key, AuthStatus::Pending, Some("pend"));
        let reject = f.dir.join("autoreject.conf");
        std::fs::write(&reject, "bad*\n").unwrap();
        let policy =
            Policy { autoreject_file: Some(reject), auto_accept: true, ..Policy::default() };
        check(&f, &policy, "bad1", &key, AuthStatus::Rejected, Some("reject"));
        check(&f, &policy, "bad1", &key, AuthStatus::Rejected, None);
        check(&f, &policy, "someone", &key, AuthStatus::Accepted, Some("accept"));
    }
}
