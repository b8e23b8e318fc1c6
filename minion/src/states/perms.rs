//! File modes and owners as Salt's `check_perms` sees them: `user`/`group` by name or number
//! from `/etc/passwd` and `/etc/group`, set with `lchown` (which needs root, as in Salt).

use super::safepath::{Pinned, Place};
use halite_states::value::py_str;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

/// Who the minion runs as.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub uid: u32,
    pub gid: u32,
}

/// The minion's user and group (looked up once).
pub(crate) fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        // `/proc/self` belongs to the process's effective user and group.
        let (uid, gid) =
            fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or_else(|_| {
                let probe =
                    std::env::temp_dir().join(format!(".halite-owner-{}", std::process::id()));
                let ids = fs::write(&probe, b"").and_then(|_| fs::metadata(&probe));
                let _ = fs::remove_file(&probe);
                ids.map(|m| (m.uid(), m.gid())).unwrap_or((0, 0))
            });
        Me { uid, gid }
    })
}

/// The `:`-separated records of a `/etc/passwd`-style file (none when it cannot be read).
fn records(file: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines().map(|line| line.split(':').map(str::to_string).collect()).collect()
}

/// The numeric id (third field) of a record.
fn record_id(record: &[String]) -> Option<u32> {
    record.get(2)?.parse().ok()
}

/// The name with numeric id `id` in a `/etc/passwd`-style file.
fn name_of(file: &str, id: u32) -> Option<String> {
    records(file).into_iter().find(|r| record_id(r) == Some(id)).map(|mut r| r.swap_remove(0))
}

/// A user's name, or its number where `/etc/passwd` has none.
pub(crate) fn user_name(uid: u32) -> String {
    name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string())
}

/// A group's name, or its number where `/etc/group` has none.
pub(crate) fn group_name(gid: u32) -> String {
    name_of("/etc/group", gid).unwrap_or_else(|| gid.to_string())
}

/// The primary group of the user with id `uid`.
pub(crate) fn primary_group(uid: u32) -> Option<u32> {
    let record = records("/etc/passwd").into_iter().find(|r| record_id(r) == Some(uid))?;
    record.get(3)?.parse().ok()
}

/// The numeric id of `name` in a `/etc/passwd`-style file.
fn id_of(file: &str, name: &str) -> Option<u32> {
    records(file).iter().find(|r| r.first().is_some_and(|n| n == name)).and_then(|r| record_id(r))
}

/// A user or group given by name or number.
fn resolve(value: &Value, file: &str) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Value::String(s) => id_of(file, s),
        _ => None,
    }
}

/// The owner a state asks for: ids to compare and set, with the names Salt reports.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Owner {
    pub user: Option<(u32, String)>,
    pub group: Option<(u32, String)>,
}

/// Salt's `_check_user`: `user`/`group` by name or number, each known to this host. `Err`
/// is the state's comment.
pub(crate) fn wanted_owner(user: Option<&Value>, group: Option<&Value>) -> Result<Owner, String> {
    let mut unknown = String::new();
    let mut owner = Owner::default();
    if let Some(user) = user {
        match resolve(user, "/etc/passwd") {
            None => unknown.push_str(&format!("User {} is not available ", py_str(user))),
            Some(uid) => {
                let name = name_of("/etc/passwd", uid).unwrap_or_else(|| py_str(user));
                owner.user = Some((uid, name));
            }
        }
    }
    if let Some(group) = group {
        match resolve(group, "/etc/group") {
            None => unknown.push_str(&format!("Group {} is not available", py_str(group))),
            Some(gid) => {
                let name = name_of("/etc/group", gid).unwrap_or_else(|| py_str(group));
                owner.group = Some((gid, name));
            }
        }
    }
    match unknown.is_empty() {
        true => Ok(owner),
        false => Err(unknown),
    }
}

/// What [`apply_owner`] changes: a path, or a [`Place`] held open.
pub(crate) trait Owned {
    /// The owner and group of the name itself (a symlink's own), if it exists.
    fn owners(&self) -> Option<(u32, u32)>;
    /// `lchown` of the name.
    fn lchown(&self, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()>;
    /// How log lines name it.
    fn shown(&self) -> &Path;
}

impl Owned for Path {
    fn owners(&self) -> Option<(u32, u32)> {
        fs::symlink_metadata(self).ok().map(|m| (m.uid(), m.gid()))
    }

    fn lchown(&self, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
        std::os::unix::fs::lchown(self, uid, gid)
    }

    fn shown(&self) -> &Path {
        self
    }
}

impl Owned for Place {
    fn owners(&self) -> Option<(u32, u32)> {
        self.stat().ok().map(|s| (s.uid, s.gid))
    }

    fn lchown(&self, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
        self.chown(uid, gid)
    }

    fn shown(&self) -> &Path {
        &self.path
    }
}

impl Owned for Pinned<'_> {
    fn owners(&self) -> Option<(u32, u32)> {
        Pinned::owners(self)
    }

    fn lchown(&self, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
        self.chown(uid, gid)
    }

    fn shown(&self) -> &Path {
        self.path()
    }
}

/// A mode's bits as Salt prints them (`"0644"`).
pub(crate) fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Salt's `check_perms` for the owner of `path` (the link itself, never its target): in test
/// mode the `user`/`group` changes that would be made, otherwise `chown` and a second look.
/// The changes go into `changes`; each owner that could not be set is one returned comment
/// (`Failed to change user to nobody`), as when Salt runs unprivileged.
pub(crate) fn apply_owner(
    path: &(impl Owned + ?Sized),
    owner: &Owner,
    test: bool,
    changes: &mut serde_json::Map<String, Value>,
) -> Vec<String> {
    let Some((uid, gid)) = path.owners() else { return Vec::new() };
    let user = owner.user.as_ref().filter(|(want, _)| *want != uid);
    let group = owner.group.as_ref().filter(|(want, _)| *want != gid);
    if user.is_none() && group.is_none() {
        return Vec::new();
    }
    if test {
        for (key, wanted) in [("user", user), ("group", group)] {
            if let Some((_, name)) = wanted {
                changes.insert(key.into(), Value::String(name.clone()));
            }
        }
        return Vec::new();
    }
    let chown = path.lchown(user.map(|u| u.0), group.map(|g| g.0));
    if let Err(e) = &chown {
        log::info!("chown {}: {e}", path.shown().display());
    }
    let (uid, gid) = path.owners().unwrap_or((uid, gid));
    let mut failed = Vec::new();
    for (key, wanted, now) in [("user", user, uid), ("group", group, gid)] {
        match wanted {
            Some((want, name)) if *want != now => {
                failed.push(format!("Failed to change {key} to {name}"))
            }
            Some((_, name)) => {
                changes.insert(key.into(), Value::String(name.clone()));
            }
            None => {}
        }
    }
    failed
}

/// Salt's `normalize_mode`: `644`, `"0644"`, `"0o644"` → `"0644"`; `keep` → `None`.
pub(crate) fn normalize_mode(value: &Value) -> Result<Option<String>, String> {
    let text = match value {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) if s.trim().eq_ignore_ascii_case("keep") => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        other => return Err(format!("Invalid mode: {}", py_str(other))),
    };
    let digits = text.replace("0o", "0");
    let digits = digits.trim_matches('"').trim_matches('\'').trim_start_matches('0');
    if digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("Invalid mode: {text}"));
    }
    Ok(Some(format!("{digits:0>4}")))
}

/// The permission bits of a normalised mode.
pub(crate) fn bits(mode: &str) -> u32 {
    u32::from_str_radix(mode, 8).unwrap_or(0o644) & 0o7777
}

/// The process umask (from `/proc/self/status`; 022 where that is unknown).
pub(crate) fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// Salt's mode for a new file when none is given: `0666 & ~umask`.
pub(crate) fn default_file_mode() -> String {
    format!("{:04o}", 0o666 & !umask())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes_normalise_as_salt() {
        for (given, want) in [
            (json!(644), Ok(Some("0644"))),
            (json!("0644"), Ok(Some("0644"))),
            (json!("0o755"), Ok(Some("0755"))),
            (json!("2755"), Ok(Some("2755"))),
            (json!("00600"), Ok(Some("0600"))),
            (json!("keep"), Ok(None)),
            (json!("rw-r--r--"), Err("Invalid mode: rw-r--r--")),
            (json!(999), Err("Invalid mode: 999")),
        ] {
            let want = want.map(|m| m.map(str::to_string)).map_err(str::to_string);
            assert_eq!(normalize_mode(&given), want, "{given}");
        }
        assert_eq!(bits("0644"), 0o644);
    }

    #[test]
    fn owners_resolve_by_name_or_number_and_unknown_ones_are_refused() {
        let root = Some((0, user_name(0)));
        let wanted = wanted_owner(Some(&json!(0)), Some(&json!("0"))).unwrap();
        assert_eq!(wanted, Owner { user: root.clone(), group: Some((0, group_name(0))) });
        let by_name = wanted_owner(Some(&json!(user_name(0))), None).unwrap();
        assert_eq!(by_name, Owner { user: root, group: None });
        assert_eq!(
            wanted_owner(Some(&json!("no-such-user-x")), Some(&json!("no-such-group-x"))),
            Err("User no-such-user-x is not available Group no-such-group-x is not available"
                .into())
        );
    }
}
