//! Salt's `log` beacon (`log_beacon.py`): lines appended to `file` that match a tag's `regex`
//! (Python's `re.match`: anchored at the start) fire `{"match": "yes", "raw": <line>,
//! "error": ""}` under `…/log/<tag>`. It starts at the end of the file, as Salt does, and
//! unlike Salt follows rotation (a new inode: the old file's rest, then the new one from its
//! start) and truncation. Reads at most `READ_BUDGET` a run and keeps at most `MAX_LINE`
//! bytes of a line; it runs on the beacons' worker thread.

use super::{Module, Payload, MAX_EVENTS_PER_RUN};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Most bytes read in one run; the rest waits for the next.
const READ_BUDGET: u64 = 1 << 20;
/// Longest line kept; the rest of a longer line is skipped.
const MAX_LINE: usize = 64 * 1024;

struct Open {
    file: File,
    /// (device, inode): a rotation gives the path another.
    identity: (u64, u64),
    offset: u64,
}

pub(super) struct LogBeacon {
    path: PathBuf,
    tags: Vec<(String, regex::Regex)>,
    open: Option<Open>,
    started: bool,
    partial: Vec<u8>,
}

impl LogBeacon {
    pub fn new(config: &Map<String, Value>) -> Result<LogBeacon, String> {
        let Some(Value::String(file)) = config.get("file") else {
            return Err("Configuration for log beacon must contain file option.".into());
        };
        let mut tags = Vec::new();
        let empty = Map::new();
        let configured = match config.get("tags") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(t)) => t,
            Some(_) => return Err("log beacon: tags must be a mapping".into()),
        };
        for (tag, options) in configured {
            if tag.chars().any(char::is_control) {
                return Err(format!("log beacon: tag {tag:?} contains control characters"));
            }
            let Some(pattern) =
                options.get("regex").and_then(Value::as_str).filter(|p| !p.is_empty())
            else {
                continue; // Salt skips a tag without a regex
            };
            let re = regex::RegexBuilder::new(&format!("^(?:{pattern})"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("log beacon: bad regex for tag {tag}: {e}"))?;
            tags.push((tag.clone(), re));
        }
        Ok(LogBeacon {
            path: PathBuf::from(file),
            tags,
            open: None,
            started: false,
            partial: Vec::new(),
        })
    }

    /// Opens the file if it is a regular one: a FIFO or a device would block the worker or
    /// never end (non-blocking open, then the type is checked on what was opened).
    /// A symlink is followed only if root or this minion's user made it: the minion reads
    /// as root, and a log in a directory its application's user can write could otherwise be
    /// swapped for a link to a file only root may read, whose matching lines would go to the
    /// master's bus.
    fn open_at(&self, from_end: bool) -> Option<Open> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |flags| File::options().read(true).custom_flags(flags).open(&self.path);
        let mut file = match open(libc::O_NONBLOCK | libc::O_NOFOLLOW) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                // Every link of the chain, each hop's owner checked; the last is opened
                // without following (a link swapped in meanwhile is refused).
                let target = trusted_link_target(&self.path)?;
                File::options()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                    .open(target)
                    .ok()?
            }
            opened => opened.ok()?,
        };
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            log::debug!("log beacon: {} is not a regular file", self.path.display());
            return None;
        }
        let offset = if from_end { file.seek(SeekFrom::End(0)).ok()? } else { 0 };
        Some(Open { file, identity: (meta.dev(), meta.ino()), offset })
    }

    /// Reads what was appended since the last run, within `budget`; calls `line` per line.
    fn read_new(&mut self, budget: &mut u64, out: &mut Vec<Payload>) -> bool {
        let Some(open) = &mut self.open else { return false };
        if open.file.seek(SeekFrom::Start(open.offset)).is_err() {
            return false;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut read_any = false;
        while *budget > 0 {
            let want = buf.len().min(*budget as usize);
            let n = match open.file.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            read_any = true;
            open.offset += n as u64;
            *budget -= n as u64;
            let mut rest = &buf[..n];
            while let Some(end) = rest.iter().position(|b| *b == b'\n') {
                keep(&mut self.partial, &rest[..end]);
                let line = std::mem::take(&mut self.partial);
                matches(&self.tags, &line, out);
                rest = &rest[end + 1..];
            }
            keep(&mut self.partial, rest);
        }
        read_any
    }

    fn flush_partial(&mut self, out: &mut Vec<Payload>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            matches(&self.tags, &line, out);
        }
    }
}

/// Appends to the line being built, up to `MAX_LINE`.
fn keep(partial: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(partial.len());
    partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn matches(tags: &[(String, regex::Regex)], line: &[u8], out: &mut Vec<Payload>) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    for (tag, re) in tags {
        if out.len() < MAX_EVENTS_PER_RUN + 1 && re.is_match(text) {
            let event = [
                ("tag", Value::from(tag.as_str())),
                ("match", "yes".into()),
                ("raw", text.into()),
                ("error", "".into()),
            ];
            out.push(event.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        }
    }
}

/// Where the symlink `path` leads, when root or this minion's user made every link of the
/// chain (40 at most, as the kernel's); `None` otherwise.
fn trusted_link_target(path: &std::path::Path) -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut hop = path.to_path_buf();
    for _ in 0..40 {
        let meta = std::fs::symlink_metadata(&hop).ok()?;
        if !meta.file_type().is_symlink() {
            return Some(hop);
        }
        if meta.uid() != 0 && meta.uid() != me {
            log::debug!(
                "log beacon: {} leads through {}, a symlink of user {}; not followed",
                path.display(),
                hop.display(),
                meta.uid()
            );
            return None;
        }
        let next = std::fs::read_link(&hop).ok()?;
        hop = match hop.parent() {
            Some(dir) => dir.join(next),
            None => next,
        };
    }
    None
}

impl Module for LogBeacon {
    fn blocking(&self) -> bool {
        true
    }

    fn check(&mut self) -> Vec<Payload> {
        let mut out = Vec::new();
        if !self.started {
            // Salt's first run only notes where the file ends.
            self.started = true;
            self.open = self.open_at(true);
            match &self.open {
                Some(open) => log::info!(
                    "log beacon: watching {} from byte {}",
                    self.path.display(),
                    open.offset
                ),
                None => log::info!(
                    "log beacon: waiting for {} (missing, not a regular file, or another \
                     user's symlink)",
                    self.path.display()
                ),
            }
            return out;
        }
        let mut budget = READ_BUDGET;
        let current = std::fs::metadata(&self.path).ok().map(|m| ((m.dev(), m.ino()), m.len()));
        match (&self.open, current) {
            (None, Some(_)) => self.open = self.open_at(false), // appeared: all of it is new
            (Some(open), Some((identity, _))) if open.identity != identity => {
                // Rotated: the old file's last lines, then the new file from its start.
                self.read_new(&mut budget, &mut out);
                self.flush_partial(&mut out);
                self.open = self.open_at(false);
            }
            (Some(open), Some((_, len))) if len < open.offset => {
                log::info!(
                    "log beacon: {} was truncated; reading it from the start",
                    self.path.display()
                );
                self.partial.clear();
                self.open = self.open_at(false);
            }
            (Some(_), None) => {
                // Removed (rotation in progress): finish the old file, wait for the new one.
                self.read_new(&mut budget, &mut out);
                self.flush_partial(&mut out);
                self.open = None;
                return out;
            }
            _ => {}
        }
        self.read_new(&mut budget, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn beacon(path: &std::path::Path) -> LogBeacon {
        let config = json!({"file": path, "tags": {"error": {"regex": "ERROR"}, "none": {}}});
        LogBeacon::new(config.as_object().unwrap()).unwrap()
    }

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn raws(out: Vec<Payload>) -> Vec<String> {
        out.iter().map(|p| p["raw"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn matches_new_lines_and_follows_rotation_and_truncation() {
        let dir = std::env::temp_dir().join(format!("halite-logbeacon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.log");
        append(&path, "ERROR old, before the start\n");
        let mut b = beacon(&path);
        assert!(b.check().is_empty(), "the first run notes the end");
        append(&path, "INFO fine\nERROR disk full\nan ERROR not at the start\nERROR half");
        let out = b.check();
        assert_eq!(
            Value::Object(out[0].clone()),
            json!({"tag": "error", "match": "yes", "raw": "ERROR disk full", "error": ""})
        );
        assert_eq!(out.len(), 1, "the unfinished line waits");
        append(&path, " done\r\n");
        assert_eq!(raws(b.check()), ["ERROR half done"]);
        // Rotation: the old file's last line, then the new file from its start.
        append(&path, "ERROR last of old\n");
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        append(&path, "ERROR first of new\n");
        assert_eq!(raws(b.check()), ["ERROR last of old", "ERROR first of new"]);
        // Truncation (copytruncate), seen as a file shorter than what was read.
        std::fs::write(&path, "").unwrap();
        append(&path, "ERROR tr\n");
        assert_eq!(raws(b.check()), ["ERROR tr"]);
        // A huge line is kept to MAX_LINE bytes.
        append(&path, &format!("ERROR {}\n", "x".repeat(3 * MAX_LINE)));
        let out = raws(b.check());
        assert_eq!(out[0].len(), MAX_LINE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A log swapped for another user's symlink to a file only root may read is not read;
    /// root's own links still are. (Needs root, as CI runs, to make a link of another user.)
    #[test]
    fn a_symlink_of_another_user_is_not_followed() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: making another user's symlink needs root");
            return;
        }
        let dir =
            std::env::temp_dir().join(format!("halite-logbeacon-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, secret) = (dir.join("app.log"), dir.join("secret"));
        append(&secret, "ERROR root's secret\n");
        append(&path, "");
        let mut b = beacon(&path);
        assert!(b.check().is_empty());
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
        assert!(b.check().is_empty(), "followed another user's link");
        assert!(b.open.is_none());
        // Root's link to another user's link is not followed either.
        let hop = dir.join("hop");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&hop, &path).unwrap();
        std::os::unix::fs::symlink(&secret, &hop).unwrap();
        std::os::unix::fs::lchown(&hop, Some(65534), Some(65534)).unwrap();
        assert!(b.check().is_empty(), "followed another user's link, one hop in");
        // Root's own links are followed.
        std::os::unix::fs::lchown(&hop, Some(0), Some(0)).unwrap();
        assert_eq!(raws(b.check()), ["ERROR root's secret"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_or_device_is_not_read() {
        let dir =
            std::env::temp_dir().join(format!("halite-logbeacon-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        for path in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
            let mut b = beacon(path);
            assert!(b.check().is_empty());
            assert!(b.open.is_none(), "{}", path.display());
            assert!(b.check().is_empty(), "and no read on later runs");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_configs_are_refused() {
        let err = LogBeacon::new(&Map::new()).err().unwrap();
        assert_eq!(err, "Configuration for log beacon must contain file option.");
        let bad = json!({"file": "/x", "tags": {"t": {"regex": "("}}});
        assert!(LogBeacon::new(bad.as_object().unwrap()).is_err());
    }
}
