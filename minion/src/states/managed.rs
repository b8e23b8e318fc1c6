//! Salt's `file.managed`: a file's contents from `source` (`salt://…` through the file
//! server, or a local path; a list means the first that exists) or from `contents` (a string
//! or a list of lines), optionally rendered as a Jinja `template`; with `mode`, `makedirs`,
//! `replace: False`, `create: False`, `user`/`group`. Changes are Salt's: `diff` ("New
//! file", or a unified diff), `mode` (always reported for a new file, as Salt 3008 does),
//! `user`/`group`; in test mode `newfile`/`diff`/`mode`/`user`/`group` with result `None`. Files are written beside and renamed into
//! place, keeping an existing file's mode.

use super::diff::file_diff;
use super::file::expand_user;
use super::perms::{self, normalize_mode};
use super::safepath::Place;
use halite_states::value::{py_str, str_list};
use halite_states::{Call, Layout, StateRet};
use serde_json::{Map, Value};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Options Salt has that Halite refuses rather than ignores.
const UNSUPPORTED: &[&str] =
    &["contents_pillar", "contents_grains", "check_cmd", "attrs", "selinux"];

pub(super) fn managed(c: &Call) -> StateRet {
    let name = expand_user(&c.name);
    let mut ret = StateRet::new(&name, true);
    ret.layout = Layout::File;
    match manage(c, &name, &mut ret) {
        Ok(()) => ret,
        Err(why) => ret.error(why),
    }
}

/// The body; `Err` is the failure comment.
fn manage(c: &Call, name: &str, ret: &mut StateRet) -> Result<(), String> {
    if name.is_empty() {
        return Err("Destination file name is required".into());
    }
    if let Some(option) = UNSUPPORTED.iter().find(|o| c.arg(o).is_some()) {
        return Err(format!("The '{option}' option of file.managed is not supported by Halite"));
    }
    let mode = c.arg("mode").map(normalize_mode).transpose()?.flatten();
    let (source, contents) = (c.arg("source"), c.arg("contents"));
    if source.is_some() && contents.is_some() {
        return Err("'source' cannot be used in combination with 'contents', \
                    'contents_pillar', or 'contents_grains'"
            .into());
    }
    let replace = c.flag("replace", true) && (source.is_some() || contents.is_some());
    let jinja = match c.text("template") {
        None => false,
        Some(t) if t.eq_ignore_ascii_case("jinja") => true,
        Some(t) => return Err(format!("Specified template format {t} is not supported")),
    };
    let path = Path::new(name);
    if !c.flag("create", true) && !path.is_file() {
        ret.comment = format!("File {name} is not present and is not set for creation");
        return Ok(());
    }
    let owner = perms::wanted_owner(c.arg("user"), c.arg("group"))?;
    if !path.is_absolute() {
        return Err(format!("Specified file {name} is not an absolute path"));
    }
    if path.is_dir() {
        return Err(format!("Specified target {name} is a directory"));
    }
    // Contents, mode and owner go to one file: the link's target unless `follow_symlinks:
    // False`. No symlink another user owns is followed on the way (`safepath`), and the
    // file is changed relative to its directory held open.
    let resolved = Place::resolve(path, c.flag("follow_symlinks", true));
    let exists = fs::symlink_metadata(path).is_ok();
    let place = match resolved {
        Ok(place) => Some(place),
        // Its directory is missing (`makedirs`).
        Err(e) if e.kind() == io::ErrorKind::NotFound && !exists => None,
        Err(e) => return Err(format!("Unable to manage file: {e}")),
    };
    if !replace && exists {
        let place = place.as_ref().expect("resolved: it exists");
        keep_existing(c, name, place, mode, &owner, ret)?;
        return Ok(());
    }
    let desired = desired_contents(c, name, source, contents, jinja)?;
    // A symlink left (`follow_symlinks: False`) is replaced by the file, not read through.
    let stat = place.as_ref().and_then(|place| place.stat().ok());
    let current = match place.as_ref().filter(|_| stat.is_some_and(|s| !s.is_symlink())) {
        None => None,
        Some(place) => match place.read() {
            Ok(bytes) => Some(bytes),
            Err(e) => return Err(format!("Unable to manage file: {e}")),
        },
    };
    let mode_now = stat.map(|s| perms::mode_text(s.mode));

    if c.test() {
        match &current {
            None => ret.change("newfile", name),
            Some(current) => {
                if let Some(desired) = desired.as_ref().filter(|d| *d != current) {
                    ret.change("diff", file_diff(current, desired));
                }
                if let Some(m) = mode.as_ref().filter(|m| mode_now.as_ref() != Some(*m)) {
                    ret.change("mode", m.clone());
                }
                if let Some(place) = &place {
                    perms::apply_owner(place, &owner, true, &mut ret.changes);
                }
            }
        }
        if ret.changes.is_empty() {
            ret.comment = format!("The file {name} is in the correct state");
        } else {
            ret.result = None;
            ret.comment = format!(
                "The file {name} is set to be changed\nNote: No changes made, actual changes \
                 may\nbe different due to other states."
            );
        }
        return Ok(());
    }

    let failed = match (current, &place) {
        (Some(current), Some(place)) => {
            let mode_was = place.stat().ok().map(|s| perms::mode_text(s.mode));
            let failed = match desired.filter(|d| *d != current) {
                Some(desired) => {
                    let diff = file_diff(&current, &desired);
                    // The owner and mode wanted go to the new file before it has the name:
                    // changed by name afterwards, a file swapped in meanwhile (another
                    // user's, in their directory) would get them.
                    let mut owners = Map::new();
                    perms::apply_owner(place, &owner, true, &mut owners);
                    let wanted =
                        (owner.user.as_ref().map(|u| u.0), owner.group.as_ref().map(|g| g.0));
                    let bits = mode.as_deref().map(perms::bits);
                    let (uid, gid) = replace_file(place, &desired, wanted, bits)
                        .map_err(|e| format!("Failed to commit change: {e}"))?;
                    ret.change("diff", diff);
                    let mut failed = Vec::new();
                    for (key, want, now) in
                        [("user", &owner.user, uid), ("group", &owner.group, gid)]
                    {
                        match (want, owners.remove(key)) {
                            (Some((id, name)), _) if *id != now => {
                                failed.push(format!("Failed to change {key} to {name}"))
                            }
                            (Some(_), Some(change)) => {
                                ret.changes.insert(key.into(), change);
                            }
                            _ => {}
                        }
                    }
                    failed
                }
                // The owner before the mode, as Salt's check_perms: a chown clears setuid.
                None => {
                    may_become(place, &owner, mode.as_deref())?;
                    perms::apply_owner(place, &owner, false, &mut ret.changes)
                }
            };
            let mode_now = place.stat().ok().map(|s| perms::mode_text(s.mode));
            if let Some(m) = mode.as_ref().filter(|m| mode_now.as_ref() != Some(*m)) {
                place
                    .chmod(perms::bits(m))
                    .map_err(|e| format!("Failed to change mode to {m}: {e}"))?;
            }
            if let Some(m) = mode.filter(|m| mode_was.as_ref() != Some(m)) {
                ret.change("mode", m);
            }
            ret.comment = match ret.changes.is_empty() {
                true => format!("File {name} is in the correct state"),
                false => format!("File {name} updated"),
            };
            failed
        }
        (_, place) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let made;
            let place = match place {
                Some(place) => place,
                None if !c.flag("makedirs", false) => {
                    return Err("Parent directory not present".into())
                }
                None => {
                    // Each missing directory made in the one held open before it.
                    made =
                        Place::make_dirs(path, c.flag("follow_symlinks", true)).map_err(|e| {
                            format!("Failed to create directory {}: {e}", parent.display())
                        })?;
                    let dir_mode = c.arg("dir_mode").map(normalize_mode).transpose()?.flatten();
                    if let Some(dir_mode) = dir_mode {
                        Place::resolve(parent, true)
                            .and_then(|dir| dir.chmod(perms::bits(&dir_mode)))
                            .map_err(|e| format!("Failed to change mode to {dir_mode}: {e}"))?;
                    }
                    &made
                }
            };
            let mode = mode.unwrap_or_else(perms::default_file_mode);
            let data = desired.as_deref().unwrap_or_default();
            let wanted = (owner.user.as_ref().map(|u| u.0), owner.group.as_ref().map(|g| g.0));
            let (uid, gid) = write_beside(place, data, perms::bits(&mode), wanted)
                .map_err(|e| format!("File {name} not created: {e}"))?;
            match desired {
                Some(_) => ret.change("diff", "New file"),
                None => {
                    ret.change("new", format!("file {name} created"));
                    ret.comment = "Empty file".into();
                }
            }
            ret.change("mode", mode.clone());
            if ret.comment.is_empty() {
                ret.comment = format!("File {name} updated");
            }
            // The owner was set on the open file, before it had a name another user could
            // swap: what changed from the creator's, or could not be.
            let me = perms::me();
            let mut failed = Vec::new();
            for (key, wanted, mine, now) in
                [("user", &owner.user, me.uid, uid), ("group", &owner.group, me.gid, gid)]
            {
                match wanted {
                    Some((want, name)) if *want != now => {
                        failed.push(format!("Failed to change {key} to {name}"))
                    }
                    Some((want, name)) if *want != mine => ret.change(key, name.clone()),
                    _ => {}
                }
            }
            failed
        }
    };
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("\n")),
    }
}

/// Refuses up front an owner, group and mode the file may not have in place (see
/// [`Place::may_become`]): checked one step at a time, the group went through and the mode
/// was then refused, leaving the file half changed on every run.
fn may_become(place: &Place, owner: &perms::Owner, mode: Option<&str>) -> Result<(), String> {
    let (uid, gid) = (owner.user.as_ref().map(|u| u.0), owner.group.as_ref().map(|g| g.0));
    place
        .may_become(uid, gid, mode.map(perms::bits))
        .map_err(|e| format!("Failed to change permissions: {e}"))
}

/// `replace: False` on an existing file: only its mode is managed.
fn keep_existing(
    c: &Call,
    name: &str,
    place: &Place,
    mode: Option<String>,
    owner: &perms::Owner,
    ret: &mut StateRet,
) -> Result<(), String> {
    let mode_of = || place.stat().ok().map(|s| perms::mode_text(s.mode));
    let current = mode_of().unwrap_or_default();
    let wanted = mode.clone();
    let mode = mode.filter(|m| *m != current);
    if c.test() {
        if let Some(m) = &mode {
            ret.change("mode", m.clone());
        }
        perms::apply_owner(place, owner, true, &mut ret.changes);
        if ret.changes.is_empty() {
            ret.comment = format!("File {name} not updated");
        } else {
            ret.result = None;
            ret.comment = match &mode {
                Some(m) => format!(
                    "File {name} will be updated with permissions {m} from its current state \
                     of {current}"
                ),
                None => format!("File {name} not updated"),
            };
        }
        return Ok(());
    }
    // The owner before the mode: a chown clears setuid/setgid.
    may_become(place, owner, wanted.as_deref())?;
    let failed = perms::apply_owner(place, owner, false, &mut ret.changes);
    // The mode asked for, again if a chown cleared its setuid/setgid. Never the mode the
    // file had: a setuid file of a user's, given to root, would come out setuid root.
    if let Some(m) = wanted.filter(|m| mode_of().as_ref() != Some(m)) {
        place.chmod(perms::bits(&m)).map_err(|e| format!("Failed to change mode to {m}: {e}"))?;
        if m != current {
            ret.change("mode", m);
        }
    }
    if ret.changes.is_empty() {
        ret.comment = format!("File {name} exists with proper permissions. No changes made.");
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("\n")),
    }
}

/// What the file should contain: `None` when neither `source` nor `contents` is given.
fn desired_contents(
    c: &Call,
    name: &str,
    source: Option<&Value>,
    contents: Option<&Value>,
    jinja: bool,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(contents) = contents {
        let parts = str_list(contents).ok_or(
            "Contents specified by contents/contents_pillar/contents_grains is not a string or \
             list of strings, and is not binary data. SLS is likely malformed.",
        )?;
        let mut text = String::new();
        for part in &parts {
            for line in part.lines() {
                text.push_str(line.trim_end_matches(['\n', '\r']));
                text.push('\n');
            }
        }
        if !c.flag("contents_newline", true) {
            text = text.trim_end_matches('\n').trim_end_matches('\r').to_string();
        }
        if jinja {
            text = render(c, name, name, None, &text)?;
        }
        return Ok(Some(text.into_bytes()));
    }
    let Some(source) = source else { return Ok(None) };
    let sources: Vec<String> = match source {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                // `{url: source_hash}` entries name their URL by the key.
                Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
                other => py_str(other),
            })
            .collect(),
        other => vec![py_str(other)],
    };
    let mut last_error = String::new();
    for src in &sources {
        match fetch(c, src) {
            Ok((template_name, bytes)) => {
                if !jinja {
                    return Ok(Some(bytes));
                }
                let text = String::from_utf8_lossy(&bytes);
                return render(c, name, &template_name, Some(src), &text)
                    .map(|t| Some(t.into_bytes()));
            }
            Err(why) => last_error = why,
        }
    }
    match sources.len() {
        1 => Err(last_error),
        _ => Err("Unable to manage file: none of the specified sources were found".into()),
    }
}

/// A source's bytes and the name its template is known by.
fn fetch(c: &Call, src: &str) -> Result<(String, Vec<u8>), String> {
    if let Some(rest) = src.strip_prefix("salt://") {
        let (path, env) = match rest.split_once("?saltenv=") {
            Some((path, env)) => (path, env),
            None => (rest, "base"),
        };
        let not_found = || format!("Source file {src} not found in saltenv '{env}'");
        if env != "base" {
            return Err(not_found());
        }
        return match c.run.host.fs.read(path) {
            Ok(bytes) => Ok((path.to_string(), bytes)),
            Err(why) => {
                log::info!("{}: {src}: {why}", c.run.host.id);
                Err(not_found())
            }
        };
    }
    let local = src.strip_prefix("file://").unwrap_or(src);
    if !local.starts_with('/') {
        return Err(format!(
            "Unable to manage file: the source {src} is not supported by Halite (use salt:// or \
             an absolute local path)"
        ));
    }
    fs::read(local)
        .map(|bytes| (local.to_string(), bytes))
        .map_err(|_| format!("Source file {src} not found"))
}

/// `template: jinja` with `defaults` overridden by `context`, plus `name`, `source`, `sls`.
fn render(
    c: &Call,
    name: &str,
    template_name: &str,
    source: Option<&str>,
    text: &str,
) -> Result<String, String> {
    let mut extra = Map::new();
    for key in ["defaults", "context"] {
        match c.arg(key) {
            None => {}
            Some(Value::Object(map)) => extra.extend(map.clone()),
            Some(_) => {
                let what = if key == "context" { "Context" } else { "Defaults" };
                return Err(format!("{what} must be formed as a dict"));
            }
        }
    }
    extra.insert("name".into(), Value::String(name.into()));
    if let Some(source) = source {
        extra.insert("source".into(), Value::String(source.into()));
    }
    if let Some(sls) = c.low.get("__sls__") {
        extra.insert("sls".into(), sls.clone());
    }
    c.run
        .renderer
        .template(template_name, text, &extra)
        .map_err(|why| format!("Failed to render template with error: {why}"))
}

/// A temporary name beside `name`, random: another user who can write the directory cannot
/// take it first (and fail the state on every run).
fn temp_name(name: &OsStr) -> OsString {
    let random: String =
        halite_common::crypto::random_bytes(8).iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".halite-{random}"));
    tmp
}

/// Writes `data` to a private temporary file beside the file, gives it `owner` (where
/// allowed) then `mode` and renames it in; the file's owner as it ended up. The directory
/// may be one another user can write (a home directory): everything is done relative to the
/// directory held open, everything after the open on the open file, and what the rename put
/// in place must be that file. By path, a symlink to /etc/shadow swapped in for the
/// temporary file while it was written had the chmod and chown meant for it.
fn write_beside(place: &Place, data: &[u8], mode: u32, owner: Owners) -> io::Result<(u32, u32)> {
    write_beside_with(place, data, mode, owner, |_| {})
}

/// A user and a group id to give a file, each if wanted.
type Owners = (Option<u32>, Option<u32>);

/// [`write_beside`], calling `before_rename` with the temporary name just before the rename
/// (tests play the other user there).
fn write_beside_with(
    place: &Place,
    data: &[u8],
    mode: u32,
    (uid, gid): Owners,
    before_rename: impl FnOnce(&OsStr),
) -> io::Result<(u32, u32)> {
    let tmp = temp_name(place.name());
    let mut file = place.create_beside(&tmp)?;
    let written = (|| {
        file.write_all(data)?;
        if uid.is_some() || gid.is_some() {
            // Where allowed: an unprivileged minion keeps its own (the caller sees it).
            let _ = std::os::unix::fs::fchown(&file, uid, gid);
        }
        // After the chown, which clears setuid and setgid.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        before_rename(&tmp);
        place.rename_in(&tmp)
    })();
    if let Err(e) = written {
        let _ = place.remove(Some(&tmp));
        return Err(e);
    }
    let ours = file.metadata()?;
    match place.stat() {
        Ok(now) if (now.dev, now.ino) == (ours.dev(), ours.ino()) => Ok((ours.uid(), ours.gid())),
        _ => {
            // What was renamed in is not what was written: the other user's (a symlink to
            // a file of their choosing); it goes.
            let _ = place.remove(None);
            Err(io::Error::other(
                "the temporary file was replaced while it was written (another user can write \
                 to this directory)",
            ))
        }
    }
}

/// New contents for an existing file, with the owner and mode `wanted` (each kept from the
/// file where not: its owner where allowed); the owner it ended up with.
fn replace_file(
    place: &Place,
    data: &[u8],
    (uid, gid): Owners,
    mode: Option<u32>,
) -> io::Result<(u32, u32)> {
    let stat = place.stat()?;
    // The old file's owner and group, even when they are the minion's own: a new file takes
    // the group of a setgid directory, and a user's `chmod g+s` on their home made root's
    // replaced 0640 file readable to the user's group.
    let owner = (uid.or(Some(stat.uid)), gid.or(Some(stat.gid)));
    // In a directory others can write the file may be root's setuid program linked there
    // (its own name since replaced): the contents change, the setuid bits do not carry over.
    let kept = match place.shared() {
        true => stat.mode & 0o1777,
        false => stat.mode & 0o7777,
    };
    write_beside(place, data, mode.unwrap_or(kept), owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The other user swaps the temporary file for a symlink to a file of theirs choosing
    /// while it is written: that file keeps its mode, and no symlink is left in place.
    #[test]
    fn a_temporary_file_swapped_for_a_symlink_changes_nothing_it_points_to() {
        let dir = std::env::temp_dir().join(format!("halite-swap-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "secret").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let managed = dir.join("f");
        let swap = |tmp: &OsStr| {
            fs::rename(dir.join(tmp), dir.join("stolen")).unwrap();
            std::os::unix::fs::symlink(&victim, dir.join(tmp)).unwrap();
        };
        let place = Place::resolve(&managed, true).unwrap();
        let err = write_beside_with(&place, b"x", 0o644, (None, None), swap).unwrap_err();
        assert!(err.to_string().contains("replaced while it was written"), "{err}");
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the symlink's target was chmodded");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "secret");
        assert!(fs::symlink_metadata(&managed).is_err(), "the swapped-in link was left in place");
        // Undisturbed, the file is written with its mode.
        write_beside(&place, b"x", 0o640, (None, None)).unwrap();
        assert_eq!(fs::metadata(&managed).unwrap().permissions().mode() & 0o7777, 0o640);
        fs::remove_dir_all(&dir).unwrap();
    }
}
