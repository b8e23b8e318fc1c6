//! The `salt://` file server: files under `file_roots` (base environment, roots searched in
//! order), served over the minion sessions in chunks; and [`RootFiles`], the same roots (or
//! `pillar_roots`) as the state engine's `Fileserver` for code running on the master
//! (orchestrations, the pillar compiler).
//!
//! Invariant: a path is served only if, after resolving symlinks, it is a regular file inside
//! one of the roots. `..`, absolute paths, NUL and backslashes are refused before any lookup.

use halite_common::crypto::sha256_reader;
use halite_common::encoding::base64;
use halite_common::proto::{FileOp, FileReply, FILE_CHUNK_BYTES};
use halite_states::{Called, Fileserver, Functions};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Most paths `cp.list_master` returns (a huge tree must not stall the loop).
const MAX_LISTED: usize = 100_000;

/// The base environment's roots and a cache of file hashes.
#[derive(Debug)]
pub struct FileRoots {
    roots: Vec<PathBuf>,
    /// The config key the roots come from, for messages (`file_roots`, `pillar_roots`).
    key: &'static str,
    /// path → (modified, size, sha256): a file is hashed again only when it changed.
    hashes: HashMap<PathBuf, (SystemTime, u64, String)>,
}

impl FileRoots {
    pub fn new(roots: Vec<PathBuf>) -> FileRoots {
        FileRoots::of("file_roots", roots)
    }

    /// Roots named by config key `key` in messages.
    pub fn of(key: &'static str, roots: Vec<PathBuf>) -> FileRoots {
        FileRoots { roots, key, hashes: HashMap::new() }
    }

    /// Answers one request.
    pub fn answer(&mut self, op: &FileOp) -> FileReply {
        let result = match op {
            FileOp::Read { path, offset } => self.read(path, *offset),
            FileOp::Hash { path } => self.hash(path),
            FileOp::List => Ok(FileReply::List { paths: self.list() }),
        };
        result.unwrap_or_else(|message| FileReply::Error { message })
    }

    /// The real file behind `salt://path`, inside a root.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let path = path.strip_prefix("salt://").unwrap_or(path);
        let refuse = || format!("salt://{path}: refused (outside {})", self.key);
        if path.is_empty() || path.contains(['\0', '\\']) {
            return Err(refuse());
        }
        let relative = Path::new(path);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(refuse());
        }
        for root in &self.roots {
            let candidate = root.join(relative);
            let Ok(real) = candidate.canonicalize() else { continue };
            let Ok(real_root) = root.canonicalize() else { continue };
            if !real.starts_with(&real_root) {
                return Err(refuse());
            }
            if real.is_file() {
                return Ok(real);
            }
        }
        Err(format!("salt://{path}: no such file in {}", self.key))
    }

    fn read(&mut self, path: &str, offset: u64) -> Result<FileReply, String> {
        let real = self.resolve(path)?;
        let fail = |e: std::io::Error| format!("salt://{path}: {e}");
        let mut file = File::open(&real).map_err(fail)?;
        let size = file.metadata().map_err(fail)?.len();
        file.seek(SeekFrom::Start(offset.min(size))).map_err(fail)?;
        let mut data = Vec::with_capacity(FILE_CHUNK_BYTES.min(size as usize));
        file.take(FILE_CHUNK_BYTES as u64).read_to_end(&mut data).map_err(fail)?;
        Ok(FileReply::Chunk { data: base64(&data), offset, size })
    }

    fn hash(&mut self, path: &str) -> Result<FileReply, String> {
        let real = self.resolve(path)?;
        let fail = |e: std::io::Error| format!("salt://{path}: {e}");
        let meta = std::fs::metadata(&real).map_err(fail)?;
        let (modified, size) = (meta.modified().map_err(fail)?, meta.len());
        if let Some((m, s, sha)) = self.hashes.get(&real) {
            if *m == modified && *s == size {
                return Ok(FileReply::Hash { sha256: sha.clone(), size });
            }
        }
        let sha256 = sha256_reader(File::open(&real).map_err(fail)?).map_err(fail)?;
        self.hashes.insert(real, (modified, size, sha256.clone()));
        Ok(FileReply::Hash { sha256, size })
    }

    /// Every regular file under the roots, relative, sorted, deduplicated (earlier roots win).
    fn list(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        for root in &self.roots {
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let Ok(kind) = entry.file_type() else { continue };
                    let path = entry.path();
                    let Ok(rel) = path.strip_prefix(root) else { continue };
                    let rel = rel.to_string_lossy().into_owned();
                    if kind.is_dir() {
                        stack.push(path);
                    } else if out.len() < MAX_LISTED
                        && (kind.is_file() || (kind.is_symlink() && self.resolve(&rel).is_ok()))
                    {
                        out.insert(rel);
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Largest SLS or template file the master's own renders read (as the reactor's sources).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Roots read directly by a thread that may touch the disk (an orchestration, the pillar
/// compiler), with [`FileRoots::resolve`]'s confinement, at most 1 MiB a file.
pub struct RootFiles(Mutex<FileRoots>);

impl RootFiles {
    /// `roots` from config key `key` (`file_roots`, `pillar_roots`).
    pub fn new(key: &'static str, roots: Vec<PathBuf>) -> RootFiles {
        RootFiles(Mutex::new(FileRoots::of(key, roots)))
    }

    fn roots(&self) -> std::sync::MutexGuard<'_, FileRoots> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Fileserver for RootFiles {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let real = self.roots().resolve(path)?;
        let fail = |e: std::io::Error| format!("salt://{path}: {e}");
        let mut data = Vec::new();
        let file = File::open(real).map_err(fail)?;
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut data).map_err(fail)?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(format!("salt://{path}: larger than {MAX_FILE_BYTES} bytes"));
        }
        Ok(data)
    }

    fn hash(&self, path: &str) -> Result<String, String> {
        self.read(path).map(|data| halite_common::crypto::sha256_hex(&data))
    }

    fn list(&self) -> Result<Vec<String>, String> {
        Ok(self.roots().list())
    }
}

/// The master has no execution modules for templates (`salt[...]` in an orchestration or
/// pillar SLS): only `pillar.get`, which the engine answers from the run's pillar.
pub struct NoFunctions;

impl Functions for NoFunctions {
    fn call(&self, fun: &str, _arg: &[serde_json::Value]) -> Result<Called, String> {
        Err(format!("'{fun}' is not available on the master"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (PathBuf, PathBuf, FileRoots) {
        halite_common::crypto::init();
        let base = std::env::temp_dir().join(format!("halite-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("example"), "from a\n").unwrap();
        std::fs::write(b.join("example"), "from b\n").unwrap();
        std::fs::write(b.join("only_b"), "b\n").unwrap();
        std::fs::write(a.join("sub/x.sls"), "x: {}\n").unwrap();
        std::fs::write(base.join("secret"), "outside\n").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), a.join("escape")).unwrap();
        std::os::unix::fs::symlink(a.join("example"), a.join("inside")).unwrap();
        (base.clone(), a.clone(), FileRoots::new(vec![a, b]))
    }

    #[test]
    fn roots_are_searched_in_order_and_nothing_leaves_them() {
        let (base, a, mut roots) = tree();
        assert_eq!(
            roots.resolve("salt://example").unwrap(),
            a.join("example").canonicalize().unwrap()
        );
        assert!(roots.resolve("only_b").is_ok());
        assert!(roots.resolve("inside").is_ok());
        for bad in
            ["../secret", "/etc/passwd", "sub/../../secret", "escape", "", "a\0b", "sub\\x", "."]
        {
            let err = roots.resolve(bad).unwrap_err();
            assert!(err.contains("refused") || err.contains("no such file"), "{bad}: {err}");
        }
        assert!(roots.resolve("escape").unwrap_err().contains("refused"));
        match roots.answer(&FileOp::Read { path: "example".into(), offset: 0 }) {
            FileReply::Chunk { data, offset: 0, size: 7 } => assert_eq!(data, base64(b"from a\n")),
            other => panic!("{other:?}"),
        }
        match roots.answer(&FileOp::Read { path: "example".into(), offset: 5 }) {
            FileReply::Chunk { data, .. } => assert_eq!(data, base64(b"a\n")),
            other => panic!("{other:?}"),
        }
        let FileReply::Hash { sha256, size: 7 } =
            roots.answer(&FileOp::Hash { path: "example".into() })
        else {
            panic!("hash")
        };
        assert_eq!(sha256, halite_common::crypto::sha256_hex(b"from a\n"));
        assert_eq!(
            roots.answer(&FileOp::List),
            FileReply::List {
                paths: vec!["example".into(), "inside".into(), "only_b".into(), "sub/x.sls".into()]
            }
        );
        assert!(matches!(
            roots.answer(&FileOp::Hash { path: "../secret".into() }),
            FileReply::Error { .. }
        ));
        std::fs::remove_dir_all(base).unwrap();
    }
}
