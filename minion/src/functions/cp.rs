//! Salt's `cp` module over the session's `salt://` file server: `get_file` (fetch to a local
//! path; `""` on failure, as Salt), `list_master`, `hash_file`.

use super::args::py_str;
use super::{Bound, Context, Failure, FnResult, Ret, Spec};
use crate::states::{host, Fileserver};
use halite_common::crypto::sha256_reader;
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(super) const SPECS: &[Spec] = &[
    Spec::new("cp.get_file", GET_FILE_DOC, get_file)
        .params(&["path", "dest", "saltenv", "makedirs", "template", "gzip"], 2)
        .varkw(),
    Spec::new("cp.list_master", LIST_MASTER_DOC, list_master).params(&["saltenv", "prefix"], 0),
    Spec::new("cp.hash_file", HASH_FILE_DOC, hash_file).params(&["path", "saltenv"], 1),
];

const GET_FILE_DOC: &str = "Used to get a single file from the salt master\n\n\
    Returns the local path of the file, or an empty string when it could not be fetched. \
    With makedirs=True missing parent directories are created; template=jinja renders the \
    file first.\n\n\
    CLI Example:\n\n    salt '*' cp.get_file salt://path/to/file /minion/dest\n";
const LIST_MASTER_DOC: &str = "List all of the files stored on the master\n\n\
    CLI Example:\n\n    salt '*' cp.list_master\n";
const HASH_FILE_DOC: &str = "Return the hash of a file, to get the hash of a file on the \
    salt master file server prepend the path with salt://<file on server> otherwise, prepend \
    the file with / for a local file.\n\n\
    CLI Example:\n\n    salt '*' cp.hash_file salt://path/to/file\n";

/// `salt://a/b?saltenv=base` → `a/b`; `None` for other environments.
fn salt_path<'a>(url: &'a str, saltenv: Option<&Value>) -> Option<&'a str> {
    let rest = url.strip_prefix("salt://")?;
    let (path, env) = match rest.split_once("?saltenv=") {
        Some((path, env)) => (path, env.to_string()),
        None => (rest, saltenv.map_or_else(|| "base".to_string(), py_str)),
    };
    (env == "base").then_some(path)
}

fn get_file(b: &Bound, ctx: &Context) -> FnResult {
    let fs = ctx.files()?;
    let url = b.given("path").map(py_str).unwrap_or_default();
    let dest = b.given("dest").map(py_str).unwrap_or_default();
    match fetch(ctx, fs, &url, &dest, b) {
        Ok(path) => Ok(Ret::ok(path)),
        Err(why) => {
            log::warn!("{}: cp.get_file {url} {dest}: {why}", ctx.id);
            Ok(Ret::ok(""))
        }
    }
}

/// Fetches `url` to `dest`; the path written, or why not.
fn fetch(
    ctx: &Context,
    fs: &Arc<dyn Fileserver>,
    url: &str,
    dest: &str,
    b: &Bound,
) -> Result<String, String> {
    let path =
        salt_path(url, b.get("saltenv")).ok_or("not a salt:// path of the base environment")?;
    if dest.is_empty() {
        return Err("no destination".into());
    }
    let hash = fs.hash(path)?;
    let mut target = PathBuf::from(dest);
    if dest.ends_with('/') || target.is_dir() {
        target.push(path.rsplit('/').next().unwrap_or(path));
    }
    let template = b.get("template").map(py_str);
    if template.is_none()
        && fs::File::open(&target).ok().and_then(|f| sha256_reader(f).ok()) == Some(hash)
    {
        return Ok(target.display().to_string());
    }
    let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !parent.as_os_str().is_empty() && !parent.is_dir() {
        if !b.flag("makedirs", false) {
            return Err(format!("{} does not exist (makedirs=False)", parent.display()));
        }
        fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut data = fs.read(path)?;
    match template.as_deref() {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("jinja") => {
            let text = String::from_utf8_lossy(&data).into_owned();
            data = halite_states::render_file(&host(ctx, fs), path, &text)?.into_bytes();
        }
        Some(t) => return Err(format!("template {t} is not supported (use jinja)")),
    }
    write_beside(&target, &data).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(target.display().to_string())
}

/// Writes through a temporary file beside `target`, so a reader never sees half a file.
fn write_beside(target: &Path, data: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.halite-{}-{n}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(data)?;
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn list_master(b: &Bound, ctx: &Context) -> FnResult {
    let fs = ctx.files()?;
    if b.get("saltenv").is_some_and(|env| py_str(env) != "base") {
        return Ok(Ret::ok(json!([])));
    }
    let prefix = b.get("prefix").map(py_str).unwrap_or_default();
    let files = fs.list().map_err(Failure::Command)?;
    let files: Vec<Value> =
        files.into_iter().filter(|f| f.starts_with(&prefix)).map(Value::String).collect();
    Ok(Ret::ok(files))
}

fn hash_file(b: &Bound, ctx: &Context) -> FnResult {
    let url = b.given("path").map(py_str).unwrap_or_default();
    let hsum = if url.starts_with("salt://") {
        let fs = ctx.files()?;
        salt_path(&url, b.get("saltenv")).and_then(|path| fs.hash(path).ok())
    } else {
        fs::File::open(&url).ok().and_then(|f| sha256_reader(f).ok())
    };
    Ok(Ret::ok(match hsum {
        Some(hsum) => json!({"hash_type": "sha256", "hsum": hsum}),
        None => json!({}),
    }))
}
