//! Where `halite` writes the outputters' text: stdout, or Salt's `--out-file` (truncated
//! first unless `--out-file-append`, created 0600 when missing). Salt's other lines
//! (`Executing run on`, the summary, job ids) always go to stdout, as Salt's `print_cli`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The destination of the returns' text.
pub struct Sink {
    file: Option<File>,
    /// Text kept by [`Sink::hold`], not yet written.
    held: Vec<u8>,
}

/// Held text written at the latest once it is this long.
const MAX_HELD: usize = 64 * 1024;

impl Sink {
    pub fn stdout() -> Sink {
        Sink { file: None, held: Vec::new() }
    }

    /// Opens `path` before anything is published, so a bad path costs no job. A regular
    /// file is emptied unless `append` (its mode kept, as Salt keeps it); a new file is
    /// created 0600, since returns can hold secrets. In a world-writable directory (`/tmp`),
    /// where anyone can put something at that name first, a symlink, a file of another user
    /// and anything but a regular file are refused (the kernel's `protected_symlinks` and
    /// `protected_regular` rules, which a host may not have on). The error is Salt's text
    /// (`PATH: Access denied: ...`).
    pub fn file(path: &Path, append: bool) -> Result<Sink, String> {
        let denied = |why: String| format!("{}: Access denied: {why}", path.display());
        let io_denied = |e: std::io::Error| {
            let message = e.to_string();
            denied(message.split(" (os error").next().unwrap_or(&message).to_string())
        };
        let shared = in_world_writable_dir(path);
        let mut flags = libc::O_NOCTTY;
        if shared {
            // No symlink followed, and no wait on a FIFO planted there.
            flags |= libc::O_NOFOLLOW | libc::O_NONBLOCK;
        }
        let opened =
            OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(flags).open(path);
        let file = match opened {
            Err(e) if shared && e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(denied("a symbolic link in a world-writable directory".into()))
            }
            // A FIFO no one reads (or a socket): not a file to write returns to.
            Err(e) if shared && e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(denied("not a regular file, in a world-writable directory".into()))
            }
            other => other.map_err(io_denied)?,
        };
        let meta = file.metadata().map_err(io_denied)?;
        if meta.is_dir() {
            return Err(io_denied(std::io::Error::from_raw_os_error(libc::EISDIR)));
        }
        if shared {
            use std::os::unix::fs::MetadataExt;
            if !meta.is_file() {
                return Err(denied("not a regular file, in a world-writable directory".into()));
            }
            // SAFETY: geteuid has no preconditions.
            if meta.uid() != unsafe { libc::geteuid() } {
                return Err(denied("owned by another user, in a world-writable directory".into()));
            }
        }
        if !append && meta.is_file() {
            file.set_len(0).map_err(io_denied)?;
        }
        Ok(Sink { file: Some(file), held: Vec::new() })
    }

    /// Writes one outputter's text (already ending in a newline; empty text writes nothing),
    /// after what is held.
    pub fn display(&mut self, text: &str) {
        self.held.extend_from_slice(text.as_bytes());
        self.flush();
    }

    /// Keeps one outputter's text to be written with the next: a stream of returns coming in
    /// faster than they are printed was a write per return (10,000 for a ping of 10,000
    /// minions). What is held is written by [`Sink::flush`] (before the caller waits for
    /// more), by the next [`Sink::display`], once it passes 64 KiB, or when dropped.
    pub fn hold(&mut self, text: &str) {
        self.held.extend_from_slice(text.as_bytes());
        if self.held.len() >= MAX_HELD {
            self.flush();
        }
    }

    /// Writes what is held.
    pub fn flush(&mut self) {
        if self.held.is_empty() {
            return;
        }
        match &mut self.file {
            Some(file) => {
                if let Err(e) = file.write_all(&self.held) {
                    eprintln!("halite: cannot write the output file: {e}");
                }
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&self.held);
                let _ = out.flush();
            }
        }
        self.held.clear();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Whether the directory `path` would be created in is writable by every user.
fn in_world_writable_dir(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn truncates_appends_creates_private_and_refuses_directories() {
        let dir = std::env::temp_dir().join(format!("halite-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.txt");
        let _ = std::fs::remove_file(&path);
        Sink::file(&path, false).unwrap().display("one\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        Sink::file(&path, true).unwrap().display("two\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut sink = Sink::file(&path, false).unwrap();
        sink.display("");
        sink.display("three\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        let err = Sink::file(&dir, false).err().unwrap();
        assert_eq!(err, format!("{}: Access denied: Is a directory", dir.display()));
        let err = Sink::file(&dir.join("no/such/dir"), false).err().unwrap();
        assert!(err.ends_with(": Access denied: No such file or directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
