//! Salt's `manage.versions` runner (salt/runners/manage.py `versions`): `test.version` to
//! every accepted minion, as a CLI would (`orchestrate::remote`), on a thread of its own so
//! the loop never waits; each minion's version compared with the master's. A leaf: it knows
//! nothing of `core`.

use crate::orchestrate::remote::{Gathered, Remote};
use crate::orchestrate::Settings;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

/// `manage.versions` runs allowed at once; past it a new one is refused at once (a reactor
/// calling it on every event must not pile up threads).
pub const MAX_RUNNING: usize = 4;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Salt's labels, by the comparison of a minion's version with the master's.
const OFFLINE: &str = "Minion offline";
const OLDER: &str = "Minion requires update";
const SAME: &str = "Up to date";
const NEWER: &str = "Minion newer than master";
const MASTER: &str = "Master";

/// Starts the run on its own thread; `done` gets Salt's return there.
pub fn spawn(
    settings: Settings,
    done: impl FnOnce(Result<Value, String>) + Send + 'static,
) -> Result<(), String> {
    let slot = Slot::take()?;
    std::thread::Builder::new()
        .name(format!("versions-{}", settings.jid))
        .spawn(move || {
            let _slot = slot;
            let remote = Remote::new(&settings);
            log::info!("manage.versions {}: test.version to every minion", settings.jid);
            let gathered =
                remote.cmd("*".into(), "glob", "test.version", Vec::new(), settings.timeout);
            if let Ok(g) = &gathered {
                let (asked, answered) = (g.minions.len(), g.returns.len());
                log::info!("manage.versions {}: {answered} of {asked} answered", settings.jid);
            }
            done(gathered.map(|g| versions(&g, env!("CARGO_PKG_VERSION"))));
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start manage.versions: {e}"))
}

/// Salt's return: `{"Master": "<version>", "<label>": {"<id>": "<version>" | false}}`, the
/// labels and each label's ids sorted (Salt sorts the ids; its nested outputter the labels).
/// A minion that did not return or returned a non-zero retcode is offline (`false`); one
/// whose answer is no version (Salt's parser would raise) is listed as needing an update,
/// with what it answered.
pub fn versions(gathered: &Gathered, master: &str) -> Value {
    let mut by_label: Vec<(&str, String, Value)> = Vec::new();
    for id in &gathered.minions {
        let data = gathered.returns.iter().find(|(rid, _)| rid == id).map(|(_, data)| data);
        let retcode = data.and_then(|d| d.get("retcode")).and_then(Value::as_i64).unwrap_or(0);
        let answer = data.and_then(|d| d.get("return")).filter(|_| retcode == 0);
        let (label, value) = match answer {
            None | Some(Value::Null) => (OFFLINE, Value::Bool(false)),
            Some(answer) => {
                let label = match answer.as_str().and_then(|v| compare(v, master)) {
                    Some(Ordering::Less) | None => OLDER,
                    Some(Ordering::Equal) => SAME,
                    Some(Ordering::Greater) => NEWER,
                };
                (label, answer.clone())
            }
        };
        by_label.push((label, id.clone(), value));
    }
    by_label.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut ret = Map::new();
    ret.insert(MASTER.into(), master.into());
    for (label, id, value) in by_label {
        let entry = ret.entry(label).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ids) = entry {
            ids.insert(id, value);
        }
    }
    // Labels in order, as the nested outputter prints them.
    let mut sorted: Vec<(String, Value)> = ret.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}

/// A version: dot-separated numbers, then an optional `-pre-release` and `+build` (build
/// ignored, as in semver).
fn parse(version: &str) -> Option<(Vec<u64>, Option<&str>)> {
    let version = version.trim();
    let version = version.split_once('+').map_or(version, |(v, _)| v);
    let (numbers, pre) = match version.split_once('-') {
        Some((numbers, pre)) if !pre.is_empty() => (numbers, Some(pre)),
        Some(_) => return None,
        None => (version, None),
    };
    let parts: Option<Vec<u64>> = numbers.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty() && p.len() <= 8).map(|p| (p, pre))
}

/// How version `a` compares with `b` (`None` if either is no version): numbers first, missing
/// ones as 0, then a pre-release before its release.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let ((a_nums, a_pre), (b_nums, b_pre)) = (parse(a)?, parse(b)?);
    let len = a_nums.len().max(b_nums.len());
    let at = |nums: &[u64], i: usize| nums.get(i).copied().unwrap_or(0);
    let numbers = (0..len).map(|i| at(&a_nums, i).cmp(&at(&b_nums, i))).find(|o| o.is_ne());
    Some(numbers.unwrap_or(match (a_pre, b_pre) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(b),
    }))
}

/// One of the [`MAX_RUNNING`] places, given back when dropped.
struct Slot;

impl Slot {
    fn take() -> Result<Slot, String> {
        if RUNNING.fetch_add(1, AtomicOrdering::SeqCst) >= MAX_RUNNING {
            RUNNING.fetch_sub(1, AtomicOrdering::SeqCst);
            return Err(format!(
                "manage.versions is already running {MAX_RUNNING} times; try again later"
            ));
        }
        Ok(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, AtomicOrdering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_compare_by_number_then_pre_release() {
        use Ordering::*;
        for (a, b, want) in [
            ("0.1.0", "0.1.0", Some(Equal)),
            ("0.1", "0.1.0", Some(Equal)),
            ("0.2.0", "0.10.0", Some(Less)),
            ("1.0.0", "0.9.9", Some(Greater)),
            ("0.1.0-rc1", "0.1.0", Some(Less)),
            ("0.1.0-rc2", "0.1.0-rc1", Some(Greater)),
            ("0.1.0+abc", "0.1.0", Some(Equal)),
            ("3008.1", "0.1.0", Some(Greater)),
            ("", "0.1.0", None),
            ("x.y", "0.1.0", None),
            ("1..2", "0.1.0", None),
            ("1.0-", "0.1.0", None),
            ("99999999999999999999999", "0.1.0", None),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn runs_past_the_cap_are_refused_until_one_ends() {
        let held: Vec<Slot> = (0..MAX_RUNNING).map(|_| Slot::take().unwrap()).collect();
        let refused = Slot::take().err().unwrap();
        assert!(refused.contains("already running 4 times"), "{refused}");
        drop(held);
        assert!(Slot::take().is_ok());
    }

    #[test]
    fn the_return_is_salts() {
        let ret = |version: Value, retcode: i64| {
            let mut data = Map::new();
            data.insert("return".into(), version);
            data.insert("retcode".into(), retcode.into());
            data
        };
        let gathered = Gathered {
            minions: ["b", "a", "old", "new", "down", "failed", "odd"].map(String::from).to_vec(),
            returns: vec![
                ("b".into(), ret(json!("0.1.0"), 0)),
                ("a".into(), ret(json!("0.1.0"), 0)),
                ("old".into(), ret(json!("0.0.9"), 0)),
                ("new".into(), ret(json!("0.2.0"), 0)),
                ("failed".into(), ret(json!("0.1.0"), 1)),
                ("odd".into(), ret(json!({"not": "a version"}), 0)),
            ],
        };
        let value = versions(&gathered, "0.1.0");
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string(&json!({
                "Master": "0.1.0",
                "Minion newer than master": {"new": "0.2.0"},
                "Minion offline": {"down": false, "failed": false},
                "Minion requires update": {"odd": {"not": "a version"}, "old": "0.0.9"},
                "Up to date": {"a": "0.1.0", "b": "0.1.0"},
            }))
            .unwrap()
        );
        assert_eq!(versions(&Gathered::default(), "0.1.0"), json!({"Master": "0.1.0"}));
    }
}
