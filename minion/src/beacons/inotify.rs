//! Salt's `inotify` beacon: an inotify descriptor (`inotify_init1`, non-blocking) that the
//! minion's loop watches. `files` maps paths to `mask` (Salt's names), `recurse`, `auto_add`
//! and `exclude` (prefixes, globs, or `{pattern: {regex: True}}`). Each change fires
//! `{"path": <file>, "change": "IN_MODIFY"}` tagged with the watched path, pyinotify's
//! `event.path`, and `IN_IGNORED` when a watch ends (a file removed or replaced), as Salt
//! does whatever the mask. Identical pending changes are coalesced and the queue is capped; kernel
//! queue overflows and what the cap drops are counted.

use super::{Module, Payload};
use halite_common::glob::Glob;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Salt's accepted mask names and their bits.
const MASKS: [(&str, u32); 17] = [
    ("access", libc::IN_ACCESS),
    ("attrib", libc::IN_ATTRIB),
    ("close_nowrite", libc::IN_CLOSE_NOWRITE),
    ("close_write", libc::IN_CLOSE_WRITE),
    ("create", libc::IN_CREATE),
    ("delete", libc::IN_DELETE),
    ("delete_self", libc::IN_DELETE_SELF),
    ("excl_unlink", libc::IN_EXCL_UNLINK),
    ("ignored", libc::IN_IGNORED),
    ("modify", libc::IN_MODIFY),
    ("moved_from", libc::IN_MOVED_FROM),
    ("moved_to", libc::IN_MOVED_TO),
    ("move_self", libc::IN_MOVE_SELF),
    ("oneshot", libc::IN_ONESHOT),
    ("onlyifdir", libc::IN_ONLYDIR),
    ("open", libc::IN_OPEN),
    ("unmount", libc::IN_UNMOUNT),
];

/// pyinotify's default: create, delete, modify.
const DEFAULT_MASK: u32 = libc::IN_CREATE | libc::IN_DELETE | libc::IN_MODIFY;

/// Most watches one beacon holds (recursion stops there, with a log line).
const MAX_WATCHES: usize = 8192;
/// Most directory entries one recursive watch looks at (it runs on the loop).
const MAX_SCAN: usize = 65_536;
/// Most distinct changes waiting for the next run; more are counted and dropped.
pub(super) const MAX_PENDING: usize = 1024;

enum Exclude {
    Prefix(String),
    Glob(Glob),
    Regex(regex::Regex),
}

impl Exclude {
    fn matches(&self, path: &str) -> bool {
        match self {
            Exclude::Prefix(p) => path.starts_with(p.as_str()),
            Exclude::Glob(g) => g.is_match(path),
            Exclude::Regex(r) => r.is_match(path),
        }
    }
}

struct Watched {
    path: String,
    mask: u32,
    recurse: bool,
    auto_add: bool,
    exclude: Vec<Exclude>,
}

struct Watch {
    path: String,
    /// Index into `files`.
    root: usize,
}

pub(super) struct Inotify {
    fd: OwnedFd,
    files: Vec<Watched>,
    watches: HashMap<i32, Watch>,
    by_path: HashMap<String, i32>,
    /// Directory entries `add` may still read this turn (reset at every `readable` and
    /// run): renaming a big watched tree again and again must not rescan it each time.
    scan_left: usize,
    pending: Vec<Payload>,
    seen: HashSet<(String, String, String)>,
    dropped: u64,
    buf: Vec<u8>,
}

fn mask_of(path: &str, options: &Map<String, Value>) -> Result<u32, String> {
    let Some(mask) = options.get("mask") else { return Ok(DEFAULT_MASK) };
    let Value::Array(names) = mask else {
        return Err("Configuration for inotify beacon mask must be list.".into());
    };
    let mut bits = 0;
    for name in names {
        let bit = name.as_str().and_then(|n| MASKS.iter().find(|(m, _)| *m == n)).map(|(_, b)| *b);
        bits |= bit.ok_or_else(|| {
            format!("Configuration for inotify beacon invalid mask option {name} (for {path}).")
        })?;
    }
    Ok(bits)
}

fn excludes(options: &Map<String, Value>) -> Result<Vec<Exclude>, String> {
    let Some(Value::Array(items)) = options.get("exclude") else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) if s.contains('*') => out.push(Exclude::Glob(Glob::new(s))),
            Value::String(s) => out.push(Exclude::Prefix(s.clone())),
            Value::Object(m) => {
                let Some((pattern, opts)) = m.iter().next() else { continue };
                if opts.get("regex").and_then(Value::as_bool) == Some(true) {
                    let re = regex::RegexBuilder::new(pattern)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("inotify beacon: bad exclude regex {pattern}: {e}"))?;
                    out.push(Exclude::Regex(re));
                } else {
                    out.push(Exclude::Prefix(pattern.clone()));
                }
            }
            other => return Err(format!("inotify beacon: bad exclude item {other}")),
        }
    }
    Ok(out)
}

/// Salt's `validate`, then the watched paths.
fn files(config: &Map<String, Value>) -> Result<Vec<Watched>, String> {
    let Some(files) = config.get("files") else {
        return Err("Configuration for inotify beacon must include files.".into());
    };
    let Value::Object(files) = files else {
        return Err("Configuration for inotify beacon invalid, files must be a dict.".into());
    };
    let mut out = Vec::new();
    for (path, options) in files {
        let Value::Object(options) = options else {
            return Err("Configuration for inotify beacon must be a list of dictionaries.".into());
        };
        if !["mask", "recurse", "auto_add"].iter().any(|k| options.contains_key(*k)) {
            return Err(
                "Configuration for inotify beacon must contain mask, recurse or auto_add items."
                    .into(),
            );
        }
        let boolean = |key: &str| match options.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("Configuration for inotify beacon {key} must be boolean.")),
        };
        if !path.starts_with('/') || path.contains('\0') {
            return Err(format!("inotify beacon: {path:?} is not an absolute path"));
        }
        let trimmed = path.trim_end_matches('/');
        out.push(Watched {
            path: if trimmed.is_empty() { "/".into() } else { trimmed.into() },
            mask: mask_of(path, options)?,
            recurse: boolean("recurse")?,
            auto_add: boolean("auto_add")?,
            exclude: excludes(options)?,
        });
    }
    Ok(out)
}

/// pyinotify's `maskname`: the event's name, `|IN_ISDIR` for a directory.
pub(super) fn maskname(mask: u32) -> String {
    const NAMES: [(u32, &str); 15] = [
        (libc::IN_ACCESS, "IN_ACCESS"),
        (libc::IN_MODIFY, "IN_MODIFY"),
        (libc::IN_ATTRIB, "IN_ATTRIB"),
        (libc::IN_CLOSE_WRITE, "IN_CLOSE_WRITE"),
        (libc::IN_CLOSE_NOWRITE, "IN_CLOSE_NOWRITE"),
        (libc::IN_OPEN, "IN_OPEN"),
        (libc::IN_MOVED_FROM, "IN_MOVED_FROM"),
        (libc::IN_MOVED_TO, "IN_MOVED_TO"),
        (libc::IN_CREATE, "IN_CREATE"),
        (libc::IN_DELETE, "IN_DELETE"),
        (libc::IN_DELETE_SELF, "IN_DELETE_SELF"),
        (libc::IN_MOVE_SELF, "IN_MOVE_SELF"),
        (libc::IN_UNMOUNT, "IN_UNMOUNT"),
        (libc::IN_Q_OVERFLOW, "IN_Q_OVERFLOW"),
        (libc::IN_IGNORED, "IN_IGNORED"),
    ];
    let mut names: Vec<&str> =
        NAMES.iter().filter(|(b, _)| mask & b != 0).map(|(_, n)| *n).collect();
    if mask & libc::IN_ISDIR != 0 {
        names.push("IN_ISDIR");
    }
    names.join("|")
}

/// One raw event of the descriptor's buffer: (wd, mask, name), and the bytes it used.
pub(super) fn parse_event(buf: &[u8]) -> Option<((i32, u32, String), usize)> {
    let field = |at: usize| -> Option<[u8; 4]> { buf.get(at..at + 4)?.try_into().ok() };
    let wd = i32::from_ne_bytes(field(0)?);
    let mask = u32::from_ne_bytes(field(4)?);
    let len = u32::from_ne_bytes(field(12)?) as usize;
    let name = buf.get(16..16 + len)?;
    let name = name.split(|b| *b == 0).next().unwrap_or_default();
    Some(((wd, mask, String::from_utf8_lossy(name).into_owned()), 16 + len))
}

impl Inotify {
    pub fn new(config: &Map<String, Value>) -> Result<Inotify, String> {
        let files = files(config)?;
        // SAFETY: inotify_init1(2) takes flags only; a non-negative result is a new descriptor
        // that nothing else owns.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(format!("inotify_init1: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut me = Inotify {
            fd,
            files,
            watches: HashMap::new(),
            by_path: HashMap::new(),
            scan_left: MAX_SCAN,
            pending: Vec::new(),
            seen: HashSet::new(),
            dropped: 0,
            buf: vec![0; 16 * 1024],
        };
        me.watch_missing();
        Ok(me)
    }

    /// Adds the configured paths not watched yet (Salt retries them every run: a file that
    /// appears, or is replaced, is watched again).
    fn watch_missing(&mut self) {
        for root in 0..self.files.len() {
            let path = self.files[root].path.clone();
            if !self.by_path.contains_key(&path) {
                let recurse = self.files[root].recurse;
                self.add(root, &path, recurse);
            }
        }
    }

    /// Watches `path` and, with `recurse`, the directories under it (depth-first with a stack
    /// of its own: a deep hostile tree cannot exhaust the loop's stack), up to `MAX_WATCHES`.
    fn add(&mut self, root: usize, path: &str, recurse: bool) {
        let mut todo = vec![path.to_string()];
        while let Some(path) = todo.pop() {
            if self.watches.len() >= MAX_WATCHES {
                log::warn!("inotify beacon: {MAX_WATCHES} watches reached; not watching {path}");
                return;
            }
            let watched = &self.files[root];
            let mut mask = watched.mask;
            if watched.auto_add {
                mask |= libc::IN_CREATE | libc::IN_MOVED_TO;
            }
            let Ok(cpath) = std::ffi::CString::new(path.as_str()) else { continue };
            // SAFETY: the descriptor is ours and open, `cpath` is NUL-terminated.
            let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), cpath.as_ptr(), mask) };
            if wd < 0 {
                continue; // not there (yet): a configured path is retried on the next run
            }
            // A directory renamed is the same watch under its new name: its old name goes,
            // or every rename would leave one behind.
            if let Some(old) = self.watches.insert(wd, Watch { path: path.clone(), root }) {
                if old.path != path && self.by_path.get(&old.path) == Some(&wd) {
                    self.by_path.remove(&old.path);
                }
            }
            self.by_path.insert(path.clone(), wd);
            if !recurse {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&path) else { continue };
            for entry in entries.flatten() {
                if self.scan_left == 0 {
                    log::warn!(
                        "inotify beacon: {MAX_SCAN} directory entries read this turn; not \
                         recursing under {path}"
                    );
                    return;
                }
                self.scan_left -= 1;
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir()); // symlinks not followed
                let sub = entry.path().display().to_string();
                if is_dir && !self.files[root].exclude.iter().any(|e| e.matches(&sub)) {
                    todo.push(sub);
                }
            }
        }
    }

    fn on_event(&mut self, wd: i32, mask: u32, name: String) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            log::warn!("inotify beacon: the kernel's event queue overflowed; changes were lost");
            self.dropped += 1;
            return;
        }
        let Some(watch) = self.watches.get(&wd) else { return };
        let (root, dir) = (watch.root, watch.path.clone());
        let ignored = mask & libc::IN_IGNORED != 0;
        if ignored {
            // The watch is gone (the file was removed or replaced, as editors save): the next
            // run watches the path again. pyinotify hands this event on whatever the mask, so
            // Salt fires it (`IN_IGNORED`), and reactors rely on it for files editors replace.
            self.watches.remove(&wd);
            if self.by_path.get(&dir) == Some(&wd) {
                self.by_path.remove(&dir);
            }
        }
        let pathname = match name.is_empty() {
            true => dir.clone(),
            false if dir == "/" => format!("/{name}"),
            false => format!("{dir}/{name}"),
        };
        let watched = &self.files[root];
        let new_dir =
            mask & libc::IN_ISDIR != 0 && mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0;
        if new_dir && watched.auto_add && !watched.exclude.iter().any(|e| e.matches(&pathname)) {
            let recurse = watched.recurse;
            self.add(root, &pathname, recurse);
        }
        let watched = &self.files[root];
        if !ignored && mask & watched.mask & libc::IN_ALL_EVENTS == 0 {
            return; // only asked for because of auto_add
        }
        if watched.exclude.iter().any(|e| e.matches(&pathname)) {
            log::debug!("Excluding {pathname} from event for {}", watched.path);
            return;
        }
        let change = maskname(mask);
        let key = (dir, pathname, change);
        if self.seen.contains(&key) {
            return; // coalesced with the same pending change
        }
        if self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
            return;
        }
        let (dir, pathname, change) = key.clone();
        self.seen.insert(key);
        let event = [("tag", dir), ("path", pathname), ("change", change)];
        self.pending
            .push(event.into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect());
    }
}

impl Module for Inotify {
    fn check(&mut self) -> Vec<Payload> {
        self.scan_left = MAX_SCAN;
        self.watch_missing();
        self.seen.clear();
        std::mem::take(&mut self.pending)
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn readable(&mut self) -> bool {
        self.scan_left = MAX_SCAN;
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            // SAFETY: the descriptor is ours and open; `buf` is writable for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                break; // EAGAIN: drained (edge-triggered, so read until then)
            }
            let mut at = 0;
            while let Some(((wd, mask, name), used)) = parse_event(&buf[at..n as usize]) {
                self.on_event(wd, mask, name);
                at += used;
            }
        }
        self.buf = buf;
        !self.pending.is_empty()
    }

    fn discard(&mut self) {
        self.pending.clear();
        self.seen.clear();
    }

    fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(wd: i32, mask: u32, name: &str) -> Vec<u8> {
        let padded = if name.is_empty() { 0 } else { (name.len() / 16 + 1) * 16 };
        let mut out = Vec::new();
        for v in [wd as u32, mask, 0, padded as u32] {
            out.extend(v.to_ne_bytes());
        }
        out.extend(name.as_bytes());
        out.resize(16 + padded, 0);
        out
    }

    #[test]
    fn parses_raw_events_and_names_masks_as_pyinotify() {
        let mut buf = raw(3, libc::IN_CREATE | libc::IN_ISDIR, "newdir");
        buf.extend(raw(4, libc::IN_MODIFY, ""));
        let ((wd, mask, name), used) = parse_event(&buf).unwrap();
        assert_eq!((wd, name.as_str(), used), (3, "newdir", 32));
        assert_eq!(maskname(mask), "IN_CREATE|IN_ISDIR");
        let ((wd, mask, name), _) = parse_event(&buf[used..]).unwrap();
        assert_eq!((wd, maskname(mask).as_str(), name.as_str()), (4, "IN_MODIFY", ""));
        assert!(parse_event(&buf[..10]).is_none(), "truncated header");
        assert!(parse_event(&raw(1, 2, "abc")[..20]).is_none(), "truncated name");
    }

    #[test]
    fn validation_says_what_salt_says() {
        for (config, want) in [
            (json!({}), "must include files"),
            (json!({"files": ["/x"]}), "files must be a dict"),
            (json!({"files": {"/x": {}}}), "must contain mask, recurse or auto_add"),
            (json!({"files": {"/x": {"mask": "modify"}}}), "mask must be list"),
            (json!({"files": {"/x": {"mask": ["bogus"]}}}), "invalid mask option"),
            (json!({"files": {"/x": {"recurse": "yes"}}}), "recurse must be boolean"),
            (json!({"files": {"x": {"recurse": true}}}), "not an absolute path"),
        ] {
            let err = files(config.as_object().unwrap()).err().unwrap();
            assert!(err.contains(want), "{config}: {err}");
        }
    }

    /// Blocks until the inotify descriptor has an event (a test that never gets one fails
    /// here, saying so, instead of on an empty read).
    fn wait_readable(beacon: &Inotify) {
        let fd = beacon.fd().expect("an inotify descriptor");
        let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, 20_000) };
        assert_eq!(ready, 1, "no inotify event within 20 s");
    }

    /// A local user renaming a watched directory again and again (`auto_add`): each rename
    /// left its old name in the path index (the same watch under a new name), so memory grew
    /// with every rename.
    #[test]
    fn a_directory_renamed_again_and_again_is_one_watch_under_one_name() {
        let dir = std::env::temp_dir().join(format!("halite-inotify-mv-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d0")).unwrap();
        let root = dir.display().to_string();
        let config = json!({"files": {root.clone(): {"mask": ["create"], "auto_add": true}}});
        let mut b = Inotify::new(config.as_object().unwrap()).unwrap();
        for n in 0..500 {
            std::fs::rename(dir.join(format!("d{n}")), dir.join(format!("d{}", n + 1))).unwrap();
            if n % 50 == 0 {
                b.readable();
            }
        }
        b.readable();
        assert!(b.by_path.len() <= 2, "{} names kept", b.by_path.len());
        assert_eq!(b.by_path.len(), b.watches.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn watches_coalesces_caps_and_excludes() {
        let dir = std::env::temp_dir().join(format!("halite-inotify-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let root = dir.display().to_string();
        let config = json!({"files": {root.clone(): {"mask": ["modify", "create"], "recurse": true,
            "auto_add": true, "exclude": [format!("{root}/skip"), "*.swp"]}}});
        let mut b = Inotify::new(config.as_object().unwrap()).unwrap();
        assert_eq!(b.watches.len(), 2, "the directory and its subdirectory");
        for _ in 0..3 {
            std::fs::write(dir.join("sub/a"), "x").unwrap();
        }
        std::fs::write(dir.join("skip"), "x").unwrap();
        std::fs::write(dir.join("x.swp"), "x").unwrap();
        std::fs::create_dir(dir.join("new")).unwrap();
        wait_readable(&b);
        assert!(b.readable());
        let got: Vec<(String, String, String)> = b
            .check()
            .into_iter()
            .map(|p| {
                (
                    p["tag"].as_str().unwrap().into(),
                    p["path"].as_str().unwrap().into(),
                    p["change"].as_str().unwrap().into(),
                )
            })
            .collect();
        let sub = format!("{root}/sub");
        assert_eq!(
            got,
            [
                (sub.clone(), format!("{sub}/a"), "IN_CREATE".to_string()),
                (sub.clone(), format!("{sub}/a"), "IN_MODIFY".to_string()),
                (root.clone(), format!("{root}/new"), "IN_CREATE|IN_ISDIR".to_string()),
            ]
        );
        assert_eq!(b.watches.len(), 3, "auto_add watched the new directory");
        // A watched file replaced by an editor: Salt's IN_IGNORED, then it is watched again.
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap();
        let path = file.display().to_string();
        let single = json!({"files": {path.clone(): {"mask": ["modify"]}}});
        let mut f = Inotify::new(single.as_object().unwrap()).unwrap();
        std::fs::write(dir.join("file.tmp"), "y").unwrap();
        std::fs::rename(dir.join("file.tmp"), &file).unwrap();
        // The kernel queues IN_IGNORED when it lets go of the replaced inode, which may be
        // after rename(2) returns (it failed once on a busy machine): wait for it.
        wait_readable(&f);
        assert!(f.readable());
        let got = f.check();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            Value::Object(got[0].clone()),
            json!({"tag": path, "path": path, "change": "IN_IGNORED"})
        );
        assert_eq!(f.by_path.len(), 1, "watched again by the run that fired it");
        // A flood: the pending queue stays capped, the rest is counted.
        for i in 0..(MAX_PENDING + 50) {
            std::fs::write(dir.join(format!("new/f{i}")), "x").unwrap();
        }
        b.readable();
        assert_eq!(b.pending.len(), MAX_PENDING);
        assert!(b.take_dropped() > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
