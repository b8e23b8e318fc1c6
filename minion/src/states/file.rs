//! Salt's `file` states other than `managed` (see [`super::managed`]): `directory`,
//! `absent`, `symlink`, `append`. Comments and changes are worded as Salt's.

use super::diff::unified;
use super::managed;
use super::perms::{self, normalize_mode};
use super::safepath::Place;
use halite_states::value::str_list;
use halite_states::{Call, StateFn, StateRet};
use serde_json::{json, Map, Value};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(super) const STATES: &[StateFn] = &[
    StateFn { name: "file.managed", required: &[], run: managed::managed },
    StateFn { name: "file.directory", required: &[], run: directory },
    StateFn { name: "file.absent", required: &[], run: absent },
    StateFn { name: "file.symlink", required: &["target"], run: symlink },
    StateFn { name: "file.append", required: &[], run: append },
];

/// Python's `os.path.expanduser` for `~` and `~/…`.
pub(super) fn expand_user(name: &str) -> String {
    let rest = match name {
        "~" => "",
        _ => match name.strip_prefix("~/") {
            Some(rest) => rest,
            None => return name.to_string(),
        },
    };
    match std::env::var("HOME") {
        Ok(home) if rest.is_empty() => home,
        Ok(home) => format!("{}/{rest}", home.trim_end_matches('/')),
        Err(_) => name.to_string(),
    }
}

/// Python's `os.path.normpath` (for comparing symlink targets).
fn normpath(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

fn absent(c: &Call) -> StateRet {
    let name = expand_user(&c.name);
    let mut ret = StateRet::new(&name, true);
    if name.is_empty() {
        return ret.error("Must provide name to file.absent");
    }
    if !Path::new(&name).is_absolute() {
        return ret.error(format!("Specified file {name} is not an absolute path"));
    }
    if name == "/" {
        return ret.error("Refusing to make \"/\" absent");
    }
    // The name itself, never a link's target; no other user's link on the way (`safepath`).
    let place = match Place::resolve(Path::new(&name), false) {
        Ok(place) => place,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return ret.with(Some(true), format!("File {name} is not present"))
        }
        Err(e) => return ret.error(format!("Unable to remove {name}: {e}")),
    };
    let Ok(stat) = place.stat() else {
        return ret.with(Some(true), format!("File {name} is not present"));
    };
    let is_dir = stat.is_dir();
    let kind = if is_dir { "Directory" } else { "File" };
    ret.change("removed", name.clone());
    if c.test() {
        return ret.with(None, format!("{kind} {name} is set for removal"));
    }
    let removed = match is_dir {
        true => place.remove_all(),
        false => place.remove(None),
    };
    match (removed, is_dir) {
        (Ok(()), true) => ret.with(Some(true), format!("Removed directory {name}")),
        (Ok(()), false) => ret.with(Some(true), format!("Removed file {name}")),
        (Err(_), true) => {
            ret.changes.clear();
            ret.error(format!("Failed to remove directory {name}"))
        }
        (Err(e), false) => {
            ret.changes.clear();
            ret.error(e.to_string())
        }
    }
}

fn directory(c: &Call) -> StateRet {
    let mut name = expand_user(&c.name);
    while name.len() > 1 && name.ends_with('/') {
        name.pop();
    }
    let mut ret = StateRet::new(&name, true);
    if name.is_empty() {
        return ret.error("Must provide name to file.directory");
    }
    let owner = match perms::wanted_owner(c.arg("user"), c.arg("group")) {
        Ok(owner) => owner,
        Err(why) => return ret.error(why),
    };
    let mode = match c.arg("dir_mode").or_else(|| c.arg("mode")).map(normalize_mode).transpose() {
        Ok(mode) => mode.flatten(),
        Err(why) => return ret.error(why),
    };
    let path = Path::new(&name);
    if !path.is_absolute() {
        return ret.error(format!("Specified file {name} is not an absolute path"));
    }
    let meta = fs::symlink_metadata(path).ok();
    let is_link = meta.as_ref().is_some_and(|m| m.file_type().is_symlink());
    let force = c.flag("force", false);
    let in_the_way = path.is_file() || (is_link && (!c.flag("allow_symlink", true) || force));
    if in_the_way {
        let what = if is_link { "symlink" } else { "file" };
        if !force {
            return ret.error(format!("Specified location {name} exists and is a {what}"));
        }
        let noun = if is_link { "Symlink" } else { "File" };
        if c.test() {
            ret.change("forced", format!("{noun} would be forcibly replaced"));
        } else if let Err(e) = Place::resolve(path, false).and_then(|p| p.remove(None)) {
            return ret.error(format!("Unable to remove {name}: {e}"));
        } else {
            ret.change("forced", format!("{noun} was forcibly replaced"));
        }
    }
    let exists = path.is_dir() && !(c.test() && in_the_way);
    let mode_differs = |m: &String| mode_of_target(path).as_ref() != Some(m);
    let mut would = Map::new();
    if !exists {
        would.insert(name.clone(), json!({"directory": "new"}));
    } else {
        let mut change = Map::new();
        if let Some(m) = mode.as_ref().filter(|m| mode_differs(m)) {
            change.insert("mode".into(), json!(m));
        }
        perms::apply_owner(path, &owner, true, &mut change);
        if !change.is_empty() {
            would.insert(name.clone(), Value::Object(change));
        }
    }
    if c.test() {
        if would.is_empty() && ret.changes.is_empty() {
            return ret.with(Some(true), format!("The directory {name} is in the correct state"));
        }
        let mut comment = String::from("The following files will be changed:\n");
        for (file, change) in &would {
            for (key, val) in change.as_object().into_iter().flatten() {
                comment.push_str(&format!("{file}: {key} - {}\n", val.as_str().unwrap_or("")));
            }
        }
        ret.changes.extend(would);
        return ret.with(None, comment);
    }
    if would.is_empty() && ret.changes.is_empty() {
        return ret.with(Some(true), format!("The directory {name} is in the correct state"));
    }
    if !exists {
        let parent = parent_of(path);
        if !parent.is_dir() {
            if !c.flag("makedirs", false) {
                return ret.error(format!("No directory to create {name} in"));
            }
            if let Err(e) = Place::make_dirs(path, false) {
                return ret.error(format!("Failed to create directory {}: {e}", parent.display()));
            }
        }
        // The mode and owner go to the directory made, held: another user who can write
        // the parent may put theirs at the name meanwhile.
        let place = match Place::resolve(path, false) {
            Ok(place) => place,
            Err(e) => return ret.error(format!("Failed to create directory {name}: {e}")),
        };
        let made = match place.mkdir(0o777) {
            Ok(made) => made,
            Err(e) => return ret.error(format!("Failed to create directory {name}: {e}")),
        };
        if let Some(m) = &mode {
            if let Err(e) = made.chmod(perms::bits(m)) {
                return ret.error(format!("Failed to change mode to {m}: {e}"));
            }
        }
        ret.change(&name, "New Dir");
        let failed = perms::apply_owner(&made, &owner, false, &mut ret.changes);
        if !failed.is_empty() {
            return ret.error(failed.join("\n"));
        }
        return ret.with(Some(true), format!("Directory {name} updated"));
    }
    if let Some(m) = mode.as_ref().filter(|m| mode_differs(m)) {
        if let Err(e) = set_mode(path, m) {
            return ret.error(format!("Failed to change mode to {m}: {e}"));
        }
        ret.change("mode", m.clone());
    }
    let place = match Place::resolve(path, false) {
        Ok(place) => place,
        Err(e) => return ret.error(format!("Unable to manage directory {name}: {e}")),
    };
    let failed = perms::apply_owner(&place, &owner, false, &mut ret.changes);
    if !failed.is_empty() {
        return ret.error(failed.join("\n"));
    }
    ret.with(Some(true), format!("Directory {name} updated"))
}

/// `chmod` of what `path` leads to, following no other user's link (`safepath`).
fn set_mode(path: &Path, mode: &str) -> io::Result<()> {
    Place::resolve(path, true)?.chmod(perms::bits(mode))
}

/// The mode of what `path` points to.
fn mode_of_target(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| format!("{:04o}", m.mode() & 0o7777))
}

fn symlink(c: &Call) -> StateRet {
    let name = expand_user(&c.name);
    let mut ret = StateRet::new(&name, true);
    if name.is_empty() {
        return ret.error("Must provide name to file.symlink");
    }
    let target = c.text("target").unwrap_or_default();
    // Salt's defaults: the minion's user, and that user's primary group.
    let me = perms::me();
    let user = c.arg("user").cloned().unwrap_or_else(|| json!(me.uid));
    let group = match (c.arg("group"), perms::wanted_owner(Some(&user), None)) {
        (Some(group), _) => group.clone(),
        (None, Ok(owner)) => {
            json!(owner.user.and_then(|u| perms::primary_group(u.0)).unwrap_or(me.gid))
        }
        (None, Err(_)) => json!(me.gid),
    };
    let owner = match perms::wanted_owner(Some(&user), Some(&group)) {
        Ok(owner) => owner,
        Err(why) => return ret.error(why),
    };
    let (user, group) =
        (owner.user.clone().unwrap_or_default().1, owner.group.clone().unwrap_or_default().1);
    let path = Path::new(&name);
    if !path.is_absolute() {
        return ret.error(format!("Specified file {name} is not an absolute path"));
    }
    // What is at the name, looked at where it will be changed (`safepath`): no other user's
    // link on the way.
    let resolved = match Place::resolve(path, false) {
        Ok(place) => Some(place),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None, // `makedirs`
        Err(e) => {
            return ret.error(format!("Unable to create new symlink {name} -> {target}: {e}"))
        }
    };
    let link = resolved.as_ref().and_then(|p| p.read_link().ok());
    let link = link.map(|t| t.to_string_lossy().into_owned());
    let exists = resolved.as_ref().is_some_and(|p| p.stat().is_ok());
    let force = c.flag("force", false);
    if c.test() {
        return match (&link, exists) {
            (None, false) => {
                ret.change("new", name.clone());
                ret.with(None, format!("Symlink {name} to {target} is set for creation"))
            }
            (Some(t), _) if *t != target => {
                ret.change("change", name.clone());
                ret.with(None, format!("Link {name} target is set to be changed to {target}"))
            }
            (Some(_), _) => {
                let mut would = Map::new();
                perms::apply_owner(path, &owner, true, &mut would);
                if would.is_empty() {
                    return ret.with(Some(true), format!("The symlink {name} is present"));
                }
                let (uid, gid) =
                    fs::symlink_metadata(path).map(|m| (m.uid(), m.gid())).unwrap_or_default();
                let now = format!("{}:{}", perms::user_name(uid), perms::group_name(gid));
                ret.change("ownership", now.clone());
                ret.with(
                    None,
                    format!(
                        "The symlink {name} is present, but the ownership of the symlink would be \
                         changed from {now} to {user}:{group}"
                    ),
                )
            }
            (None, true) if force => ret.with(
                None,
                format!(
                    "The file or directory {name} is set for removal to make way for a new \
                     symlink targeting {target}"
                ),
            ),
            (None, true) => ret.with(
                Some(false),
                format!(
                    "File or directory exists where the symlink {name} should be. Did you mean \
                     to use force?"
                ),
            ),
        };
    }
    let parent = parent_of(path);
    if !parent.is_dir() {
        if !c.flag("makedirs", false) {
            return ret.error(format!("Directory {} for symlink is not present", parent.display()));
        }
        if let Err(e) = Place::make_dirs(path, false) {
            return ret.error(format!("Failed to create directory {}: {e}", parent.display()));
        }
    }
    // The link is made, replaced and chowned relative to its directory held open.
    let place = match resolved.map_or_else(|| Place::resolve(path, false), Ok) {
        Ok(place) => place,
        Err(e) => {
            return ret.error(format!("Unable to create new symlink {name} -> {target}: {e}"))
        }
    };
    let mut comment_new = format!("Created new symlink {name} -> {target}");
    let mut key = "new";
    match (&link, exists) {
        (Some(t), _) if normpath(t) == normpath(&target) => {
            let mut changed = Map::new();
            if !perms::apply_owner(&place, &owner, false, &mut changed).is_empty() {
                return ret
                    .error(format!("Failed to set ownership of symlink {name} to {user}:{group}"));
            }
            if changed.is_empty() {
                return ret.with(
                    Some(true),
                    format!("Symlink {name} is present and owned by {user}:{group}"),
                );
            }
            ret.change("ownership", format!("{user}:{group}"));
            return ret
                .with(Some(true), format!("Set ownership of symlink {name} to {user}:{group}"));
        }
        (Some(_), _) => {
            if let Err(e) = place.remove(None) {
                return ret.error(format!("Unable to remove symlink {name}: {e}"));
            }
            comment_new = format!("Set target of symlink {name} -> {target}");
            key = "change";
        }
        (None, true) if force => {
            let removed = match place.stat().is_ok_and(|s| s.is_dir()) {
                true => place.remove_all(),
                false => place.remove(None),
            };
            if let Err(e) = removed {
                return ret.error(format!("Unable to remove {name}: {e}"));
            }
            ret.change("forced", "Symlink was forcibly replaced");
        }
        (None, true) => {
            let kind = if path.is_dir() { "Directory" } else { "File" };
            return ret.error(format!("{kind} exists where the symlink {name} should be"));
        }
        (None, false) => {}
    }
    // The owner goes to the link made, held (see `file.directory`).
    let made = match place.symlink(target.as_ref()) {
        Ok(made) => made,
        Err(e) => {
            return ret.error(format!("Unable to create new symlink {name} -> {target}: {e}"))
        }
    };
    ret.change(key, name.clone());
    if !perms::apply_owner(&made, &owner, false, &mut Map::new()).is_empty() {
        return ret
            .error(format!("{comment_new}, but was unable to set ownership to {user}:{group}"));
    }
    ret.with(Some(true), comment_new)
}

fn append(c: &Call) -> StateRet {
    let name = expand_user(&c.name);
    let mut ret = StateRet::new(&name, false);
    if name.is_empty() {
        return ret.error("Must provide name to file.append");
    }
    if c.arg("source").is_some() || c.arg("sources").is_some() {
        return ret
            .error("The source and sources options of file.append are not supported by Halite");
    }
    let Some(text) = c.arg("text").and_then(str_list) else {
        return ret.error("No text found to append. Nothing appended");
    };
    let path = Path::new(&name);
    if !path.is_absolute() {
        return ret.error(format!("Specified file {name} is not an absolute path"));
    }
    // No other user's link on the way or last (`safepath`); read and written relative to
    // the directory held open.
    let place = match Place::resolve(path, true) {
        Ok(place) => Some(place),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return ret.error(format!("Unable to append to {name}: {e}")),
    };
    let is_file = place.as_ref().and_then(|p| p.stat().ok()).is_some_and(|f| f.is_file());
    if !is_file && c.test() {
        ret.change("new", name.clone());
        return ret.with(None, format!("File {name} is set to be created"));
    }
    let place = match place {
        Some(place) => place,
        None => {
            let parent = parent_of(path);
            if !c.flag("makedirs", false) {
                return ret.error(format!(
                    "Directory not present, and makedirs is false: {}",
                    parent.display()
                ));
            }
            match Place::make_dirs(path, true) {
                Ok(place) => place,
                Err(e) => {
                    let parent = parent.display();
                    return ret.error(format!("Failed to create directory {parent}: {e}"));
                }
            }
        }
    };
    if !is_file {
        if let Err(e) = place.append(true) {
            return ret.error(format!("File {name} does not exist and could not be created: {e}"));
        }
    }
    let content = match place.read() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return ret.error(format!("Unable to read {name}: {e}")),
    };
    let ignore_whitespace = c.flag("ignore_whitespace", true);
    let old: Vec<&str> = content.lines().collect();
    let mut added: Vec<String> = Vec::new();
    for chunk in &text {
        if present(&old, &content, chunk, ignore_whitespace) {
            continue;
        }
        added.extend(chunk.lines().map(str::to_string));
    }
    let new: Vec<&str> = old.iter().copied().chain(added.iter().map(String::as_str)).collect();
    let diff = || unified(&old, &new, "\n").join("\n");
    if c.test() {
        if added.is_empty() {
            return ret.with(Some(true), format!("File {name} is in correct state"));
        }
        ret.change("diff", diff());
        return ret.with(None, format!("File {name} is set to be updated"));
    }
    if added.is_empty() {
        return ret.with(Some(true), format!("File {name} is in correct state"));
    }
    let mut tail = String::new();
    if !content.is_empty() && !content.ends_with('\n') {
        tail.push('\n');
    }
    for line in &added {
        tail.push_str(line);
        tail.push('\n');
    }
    let written = place.append(false).and_then(|mut f| f.write_all(tail.as_bytes()));
    if let Err(e) = written {
        return ret.error(format!("Unable to append to {name}: {e}"));
    }
    ret.change("diff", diff());
    ret.with(Some(true), format!("Appended {} lines", added.len()))
}

/// Whether `chunk` is already in the file: its lines, in a row, ignoring whitespace (Salt's
/// `build_whitespace_split_regex`), or verbatim.
fn present(lines: &[&str], content: &str, chunk: &str, ignore_whitespace: bool) -> bool {
    if !ignore_whitespace {
        return content.contains(chunk);
    }
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let want: Vec<String> = chunk.lines().map(squash).collect();
    if want.is_empty() {
        return true;
    }
    let have: Vec<String> = lines.iter().map(|l| squash(l)).collect();
    have.windows(want.len()).any(|w| w == want.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_like_python() {
        for (path, want) in [
            ("/a//b/./c/", "/a/b/c"),
            ("a/../b", "b"),
            ("/../x", "/x"),
            ("../x", "../x"),
            ("", "."),
        ] {
            assert_eq!(normpath(path), want, "{path}");
        }
    }

    #[test]
    fn appended_text_is_found_ignoring_whitespace() {
        let content = "a  b\nc\n";
        let lines: Vec<&str> = content.lines().collect();
        assert!(present(&lines, content, "a b", true));
        assert!(present(&lines, content, "a b\nc", true));
        assert!(!present(&lines, content, "c\na b", true));
        assert!(!present(&lines, content, "a b", false));
    }
}
