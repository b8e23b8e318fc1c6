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
}

impl Sink {
    pub fn stdout() -> Sink {
        Sink { file: None }
    }

    /// Opens `path` before anything is published, so a bad path costs no job. A regular
    /// file is emptied unless `append` (its mode kept, as Salt keeps it); a new file is
    /// created 0600, since returns can hold secrets. The error is Salt's text
    /// (`PATH: Access denied: ...`).
    pub fn file(path: &Path, append: bool) -> Result<Sink, String> {
        let denied = |e: std::io::Error| {
            let message = e.to_string();
            let message = message.split(" (os error").next().unwrap_or(&message).to_string();
            format!("{}: Access denied: {message}", path.display())
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .map_err(denied)?;
        let meta = file.metadata().map_err(denied)?;
        if meta.is_dir() {
            return Err(denied(std::io::Error::from_raw_os_error(libc::EISDIR)));
        }
        if !append && meta.is_file() {
            file.set_len(0).map_err(denied)?;
        }
        Ok(Sink { file: Some(file) })
    }

    /// Writes one outputter's text (already ending in a newline; empty text writes nothing).
    pub fn display(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match &mut self.file {
            Some(file) => {
                if let Err(e) = file.write_all(text.as_bytes()) {
                    eprintln!("halite: cannot write the output file: {e}");
                }
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        }
    }
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
