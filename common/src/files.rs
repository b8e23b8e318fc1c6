//! Small file helpers shared by the daemons: private directories, atomic writes, key files.

use crate::crypto::{KeyPair, PublicKey};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Shared by master and minion: read the secret key file or generate and store a new pair.
pub fn load_or_create_pair(secret: &Path, public: &Path) -> io::Result<KeyPair> {
    match fs::read_to_string(secret) {
        Ok(pem) => {
            let pair = KeyPair::from_secret_pem(&pem).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", secret.display()))
            })?;
            make_private(&fs::File::open(secret)?, secret)?;
            if !public.exists() {
                write_atomic(public, pair.public.to_pem().as_bytes(), 0o644)?;
            }
            Ok(pair)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let pair = KeyPair::generate();
            write_atomic(secret, pair.secret_pem().as_bytes(), 0o600)?;
            write_atomic(public, pair.public.to_pem().as_bytes(), 0o644)?;
            log::info!(
                "generated key pair {} (fingerprint {})",
                public.display(),
                pair.public.fingerprint()
            );
            Ok(pair)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", secret.display()))),
    }
}

/// The master key a minion cached on first use (`minion_master.pub`). Only a missing file is
/// `None`, first use: an empty or unparsable one is an error naming the file, since trusting
/// whoever answers next because the file was truncated would hand a rogue master the minion.
pub fn read_cached_master_key(path: &Path) -> io::Result<Option<PublicKey>> {
    let named = |e: &dyn std::fmt::Display| {
        format!("cannot read the cached master key {}: {e}", path.display())
    };
    match fs::read_to_string(path) {
        Ok(pem) => match PublicKey::from_pem(&pem) {
            Ok(key) => Ok(Some(key)),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, named(&e))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), named(&e))),
    }
}

/// Sets an open file's mode to 0600 if group or others have any access, with a warning: a
/// file created by an older version, by hand, or by logrotate's `create 0644`.
pub fn make_private(file: &fs::File, path: &Path) -> io::Result<()> {
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        log::warn!("{} is readable by others (mode {:o}); fixing", path.display(), mode & 0o7777);
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Opens an append-only file of JSON lines (created 0600, tightened to 0600 if it exists),
/// first ending a line a crash left half-written, so the next line is not glued onto it and
/// lost with it. The event log and the master's caches: they hold job output.
pub fn open_line_log(path: &Path) -> io::Result<fs::File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file =
        fs::OpenOptions::new().create(true).append(true).read(true).mode(0o600).open(path)?;
    make_private(&file, path)?;
    if file.metadata()?.len() > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// The JSON values of a file of JSON lines, skipping lines that do not parse (a torn last
/// line, even one cut inside a multi-byte character). A missing file has none.
pub fn read_json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Vec<T>> {
    use std::io::BufRead;
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut values = Vec::new();
    for line in io::BufReader::new(file).split(b'\n') {
        if let Ok(value) = serde_json::from_slice(&line?) {
            values.push(value);
        }
    }
    Ok(values)
}

/// Creates `dir` (and parents) with mode 0700 for the leaf.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `data` to a temp file beside `path` with `mode`, syncs it, renames it into place,
/// then syncs the directory (the rename itself is an entry there): for keys, which must
/// survive a crash whole and in their place.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, true)
}

/// Makes the entries of `dir` durable (a rename or unlink in it survives a crash): fsync on
/// the directory itself. The error names the directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

/// Like [`write_atomic`] without the fsync: for caches (job returns, grains), where a write
/// per minion on the master loop must not wait for the disk.
pub fn write_cache(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let staged = Staged::write(path, data, mode)?;
    if durable {
        staged.sync()?;
    }
    let dir = staged.commit()?;
    match durable {
        true => sync_dir(&dir),
        false => Ok(()),
    }
}

/// A file's new content written beside it under a temp name, not yet in its place: the steps
/// of [`write_atomic`] one by one, so a batch of writes can sync all its files before any
/// rename (one journal commit for the batch instead of one per file). Dropped uncommitted,
/// the temp file is removed.
#[derive(Debug)]
pub struct Staged {
    file: Option<fs::File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Creates the temp file beside `path` with `mode` and writes `data` (no fsync).
    pub fn write(path: &Path, data: &[u8], mode: u32) -> io::Result<Staged> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        // Unique per call, not only per process: two job threads may fetch the same file at once.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{name}-{}-{n}", std::process::id()));
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(named)?;
        // From here a failure drops the staged file, which removes the temp file.
        let mut staged = Staged { file: Some(file), tmp, path: path.to_path_buf() };
        staged.file.as_mut().expect("just opened").write_all(data).map_err(named)?;
        Ok(staged)
    }

    /// Syncs the temp file's content to the disk.
    pub fn sync(&self) -> io::Result<()> {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.path.display()));
        self.file.as_ref().map_or(Ok(()), |f| f.sync_all().map_err(named))
    }

    /// Renames the temp file into place; returns the directory to sync for the rename to be
    /// durable.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.file = None;
        let renamed = fs::rename(&self.tmp, &self.path);
        let path = std::mem::take(&mut self.path);
        renamed.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.tmp = PathBuf::new(); // in place: nothing for Drop to remove
        Ok(path.parent().unwrap_or(Path::new(".")).to_path_buf())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_logs_are_created_private_and_tightened() {
        let dir = std::env::temp_dir().join(format!("halite-linelog-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = dir.join("fresh.jsonl");
        open_line_log(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        let loose = dir.join("loose.jsonl");
        fs::write(&loose, "{}\n").unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
        open_line_log(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600);
        assert_eq!(fs::read_to_string(&loose).unwrap(), "{}\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_missing_cached_master_key_is_first_use() {
        let dir = std::env::temp_dir().join(format!("halite-masterkey-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("minion_master.pub");
        assert!(read_cached_master_key(&path).unwrap().is_none());
        let key = KeyPair::generate().public;
        fs::write(&path, key.to_pem()).unwrap();
        assert_eq!(read_cached_master_key(&path).unwrap(), Some(key));
        for corrupt in ["", "\n", "-----BEGIN PUBLIC KEY-----\nxx\n"] {
            fs::write(&path, corrupt).unwrap();
            let err = read_cached_master_key(&path).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("cannot read the cached master key {}: ", path.display())),
                "{err}"
            );
        }
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(read_cached_master_key(&path).is_err(), "a directory is not a missing file");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Durability needs a power cut to test; this checks only that the syncs run and fail
    /// loudly: a key lands whole with no temp file left, and a missing directory is named.
    #[test]
    fn durable_writes_sync_the_directory_and_name_it_when_they_cannot() {
        let dir = std::env::temp_dir().join(format!("halite-durable-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k");
        write_atomic(&key, b"pem", 0o644).unwrap();
        write_atomic(&key, b"pem2", 0o644).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"pem2");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        sync_dir(&dir).unwrap();
        let missing = dir.join("missing");
        let err = sync_dir(&missing).unwrap_err().to_string();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Two job threads fetching the same `salt://` file write the same cache path at once:
    /// every write succeeds, the file is one of them whole, and no temp file is left.
    #[test]
    fn concurrent_writes_of_one_path_do_not_trip_over_each_other() {
        let dir = std::env::temp_dir().join(format!("halite-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cached");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    (0..50).map(|_| write_cache(&path, &[i; 4096], 0o600)).collect::<Vec<_>>()
                })
            })
            .collect();
        for writer in writers {
            assert!(writer.join().unwrap().iter().all(Result::is_ok));
        }
        let data = fs::read(&path).unwrap();
        assert!(data.len() == 4096 && data.iter().all(|b| *b == data[0]));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
