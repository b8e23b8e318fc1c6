//! File modes and owners as Salt's `check_perms` sees them. Halite manages files only as
//! the user it runs as: `user`/`group` must name (or number) that user and group, and no
//! owner is ever changed.

use super::value::py_str;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

/// Who the minion runs as.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
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
        let user = name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string());
        let group = name_of("/etc/group", gid).unwrap_or_else(|| gid.to_string());
        Me { uid, gid, user, group }
    })
}

/// The name with numeric id `id` in a `/etc/passwd`-style file.
fn name_of(file: &str, id: u32) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found = fields.nth(1)?.parse::<u32>().ok()?;
        (found == id).then(|| name.to_string())
    })
}

/// The numeric id of `name` in a `/etc/passwd`-style file.
fn id_of(file: &str, name: &str) -> Option<u32> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse::<u32>().ok()
    })
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

/// Salt's `_check_user` (unknown names), then Halite's rule: only the minion's own user and
/// group. `Err` is the state's comment.
pub(crate) fn check_owner(user: Option<&Value>, group: Option<&Value>) -> Result<(), String> {
    let me = me();
    let mut unknown = String::new();
    let mut foreign = Vec::new();
    if let Some(user) = user {
        match resolve(user, "/etc/passwd") {
            None => unknown.push_str(&format!("User {} is not available ", py_str(user))),
            Some(uid) if uid != me.uid => foreign.push(format!("user {}", py_str(user))),
            Some(_) => {}
        }
    }
    if let Some(group) = group {
        match resolve(group, "/etc/group") {
            None => unknown.push_str(&format!("Group {} is not available", py_str(group))),
            Some(gid) if gid != me.gid => foreign.push(format!("group {}", py_str(group))),
            Some(_) => {}
        }
    }
    if !unknown.is_empty() {
        return Err(unknown);
    }
    if !foreign.is_empty() {
        return Err(format!(
            "Cannot give the file to {}: Halite manages files as the user it runs as ({}:{}) and \
             does not change owners",
            foreign.join(" and "),
            me.user,
            me.group
        ));
    }
    Ok(())
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

/// A file's mode as Salt prints it (`"0644"`).
pub(crate) fn mode_of(path: &Path) -> Option<String> {
    fs::symlink_metadata(path).ok().map(|m| format!("{:04o}", m.mode() & 0o7777))
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

pub(crate) fn set_mode(path: &Path, mode: &str) -> std::io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(bits(mode)))
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
    fn only_the_minions_own_user_and_group_are_accepted() {
        let me = me();
        assert_eq!(check_owner(Some(&json!(me.user)), Some(&json!(me.group))), Ok(()));
        assert_eq!(check_owner(Some(&json!(me.uid)), Some(&json!(me.gid.to_string()))), Ok(()));
        assert_eq!(
            check_owner(Some(&json!("no-such-user-x")), Some(&json!("no-such-group-x"))),
            Err("User no-such-user-x is not available Group no-such-group-x is not available"
                .into())
        );
        let other = if me.uid == 0 { 1 } else { 0 };
        let err = check_owner(Some(&json!(other)), None).unwrap_err();
        assert!(err.starts_with(&format!("Cannot give the file to user {other}:")), "{err}");
    }
}
