//! Finding and reading SLS files: a filesystem path (Salt allows globs such as
//! `/srv/reactor/*.sls`) or `salt://path` looked up in the file roots.

use crate::glob::{fnmatch, has_magic};
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Larger files are refused rather than rendered.
pub(super) const MAX_SLS_BYTES: u64 = 1 << 20;

/// The files an SLS entry names, sorted; `Err` says why there are none (Salt's message).
pub(super) fn resolve(sls: &str, roots: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let files = match sls.strip_prefix("salt://") {
        Some(rest) => from_roots(rest, roots)?.into_iter().collect(),
        None if has_magic(sls) => glob(sls),
        None => Some(PathBuf::from(sls)).filter(|p| p.is_file()).into_iter().collect(),
    };
    if files.is_empty() {
        return Err(format!("Can not render SLS {sls}: file missing or not found"));
    }
    Ok(files)
}

/// `salt://dir/file.sls?saltenv=x` → the first root holding `dir/file.sls` (environments other
/// than base are not kept apart). Paths leaving the root are refused.
fn from_roots(rest: &str, roots: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    let rel = Path::new(rest.split('?').next().unwrap_or_default().trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || rel.as_os_str().is_empty() {
        return Err(format!("salt://{rest}: not a plain relative path"));
    }
    if roots.is_empty() {
        return Err(format!("salt://{rest}: no file_roots to look it up in"));
    }
    Ok(roots.iter().map(|root| root.join(rel)).find(|p| p.is_file()))
}

/// Python's `glob.glob` for one pattern: wildcards per path component, hidden names only for
/// components that start with a dot. Directories are listed in sorted order.
fn glob(pattern: &str) -> Vec<PathBuf> {
    let mut found =
        vec![if pattern.starts_with('/') { PathBuf::from("/") } else { PathBuf::new() }];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &found {
            if !has_magic(part) {
                let path = base.join(part);
                if (last && path.is_file()) || (!last && path.is_dir()) {
                    next.push(path);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() { Path::new(".") } else { base.as_path() };
            let Ok(entries) = fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| {
                    (!name.starts_with('.') || part.starts_with('.')) && fnmatch(name, part)
                })
                .collect();
            names.sort();
            for name in names {
                let path = base.join(name);
                if (last && path.is_file()) || (!last && path.is_dir()) {
                    next.push(path);
                }
            }
        }
        found = next;
    }
    found
}

/// The file's text. `Err` is (`missing`, why) when it cannot be read, (`render`, why) when it
/// is over [`MAX_SLS_BYTES`] or not UTF-8.
pub(super) fn read(path: &Path) -> Result<String, (&'static str, String)> {
    let unreadable =
        |e: std::io::Error| ("missing", format!("cannot read {}: {e}", path.display()));
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_SLS_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SLS_BYTES {
        return Err(("render", format!("{} is larger than {MAX_SLS_BYTES} bytes", path.display())));
    }
    String::from_utf8(bytes)
        .map_err(|_| ("render", format!("{} is not UTF-8 text", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::tests::TempDir;

    #[test]
    fn globs_and_roots() {
        let dir = TempDir::new("sources");
        let root = dir.path();
        for f in ["a.sls", "b.sls", ".hidden.sls", "sub/c.sls", "notes.txt"] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x: 1\n").unwrap();
        }
        let s = |p: &str| root.join(p).to_string_lossy().into_owned();
        let names = |r: Result<Vec<PathBuf>, String>| {
            r.unwrap()
                .iter()
                .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(resolve(&s("*.sls"), &[])), ["a.sls", "b.sls"]);
        assert_eq!(names(resolve(&s(".*.sls"), &[])), [".hidden.sls"]);
        assert_eq!(names(resolve(&s("*/*.sls"), &[])), ["sub/c.sls"]);
        assert_eq!(names(resolve(&s("[ab].sls"), &[])), ["a.sls", "b.sls"]);
        assert_eq!(names(resolve(&s("a.sls"), &[])), ["a.sls"]);
        assert!(resolve(&s("*.yml"), &[]).unwrap_err().contains("file missing or not found"));
        assert!(resolve(&s("nope.sls"), &[]).is_err());
        assert!(resolve(&s("sub"), &[]).is_err(), "a directory is not an SLS file");

        let roots = vec![root.join("none"), root.to_path_buf()];
        assert_eq!(names(resolve("salt://sub/c.sls?saltenv=prod", &roots)), ["sub/c.sls"]);
        assert!(resolve("salt://sub/c.sls", &[]).unwrap_err().contains("no file_roots"));
        assert!(resolve("salt://../etc/passwd", &roots)
            .unwrap_err()
            .contains("not a plain relative path"));
        assert!(resolve("salt://missing.sls", &roots).is_err());

        fs::write(root.join("big.sls"), vec![b'#'; MAX_SLS_BYTES as usize + 1]).unwrap();
        let (kind, why) = read(&root.join("big.sls")).unwrap_err();
        assert!(kind == "render" && why.contains("larger than"), "{why}");
        fs::write(root.join("latin1.sls"), b"x: \xe9\n").unwrap();
        assert_eq!(read(&root.join("latin1.sls")).unwrap_err().0, "render");
        assert_eq!(read(&root.join("gone.sls")).unwrap_err().0, "missing");
        assert_eq!(read(&root.join("a.sls")).unwrap(), "x: 1\n");
    }
}
