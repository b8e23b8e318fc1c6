//! Salt's run checks (`State._run_check`), asked of any state before it runs: `onlyif`
//! (run only if every command succeeds), `unless` (skip if any command succeeds) and
//! `creates` (skip if the files exist). A command is a shell string run with `cmd.retcode`,
//! or `{fun: module.function, args: [...], ...}` judged by its return value; both go through
//! the host's [`Functions`](super::Functions).

use super::value::{py_str, truthy};
use super::Run;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The arguments of the state that the check commands also get, as in Salt.
const CMD_ARGS: &[&str] =
    &["cwd", "root", "runas", "env", "prepend_path", "umask", "timeout", "success_retcodes"];

/// One check's verdict.
struct Verdict {
    /// `true`: do not run the state.
    skip: bool,
    comment: Option<String>,
    skip_watch: bool,
}

impl Verdict {
    fn run(comment: &str) -> Verdict {
        Verdict { skip: false, comment: Some(comment.into()), skip_watch: false }
    }

    fn skip(comment: &str) -> Verdict {
        Verdict { skip: true, comment: Some(comment.into()), skip_watch: true }
    }
}

/// `Some(ret)` when the checks say not to run the state: Salt's return for that case, keys
/// in Salt's order (`result`, `name`, `changes`, `comment`, `__sls__`, `__id__`,
/// `skip_watch`). `None`: run it (also when there are no checks).
pub(crate) fn run_check(run: &Run, low: &Map<String, Value>) -> Option<Map<String, Value>> {
    if !["onlyif", "unless", "creates"].iter().any(|k| low.contains_key(*k)) {
        return None;
    }
    let mut skip = false;
    let mut skip_watch = false;
    let mut comments: Vec<String> = Vec::new();
    let mut note = |v: Verdict, combine: bool| {
        skip = if combine { v.skip || skip } else { v.skip };
        skip_watch = v.skip_watch || skip_watch;
        comments.extend(v.comment);
    };
    if let Some(onlyif) = low.get("onlyif") {
        note(onlyif_check(run, low, onlyif), false);
    }
    if let Some(unless) = low.get("unless") {
        note(unless_check(run, low, unless), true);
    }
    if let Some(creates) = low.get("creates") {
        note(creates_check(creates), true);
    }
    if !skip {
        return None;
    }
    let mut ret = Map::new();
    ret.insert("result".into(), Value::Bool(true));
    ret.insert("name".into(), low.get("name").cloned().unwrap_or(Value::Null));
    ret.insert("changes".into(), json!({}));
    ret.insert("comment".into(), Value::String(comments.join("\n")));
    for key in ["__sls__", "__id__"] {
        ret.insert(key.into(), low.get(key).cloned().unwrap_or(Value::Null));
    }
    if skip_watch {
        ret.insert("skip_watch".into(), Value::Bool(true));
    }
    Some(ret)
}

fn entries(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Every command must succeed for the state to run.
fn onlyif_check(run: &Run, low: &Map<String, Value>, onlyif: &Value) -> Verdict {
    let mut verdict = Verdict { skip: false, comment: None, skip_watch: false };
    for entry in entries(onlyif) {
        let ok = match entry {
            // A command that cannot run counts as failed (Salt: return code 100).
            Value::String(cmd) => retcode(run, low, cmd).unwrap_or(100) == 0,
            Value::Object(call) if call.contains_key("fun") => function_check(run, call),
            Value::Object(call) => {
                let comment = format!(
                    "no `fun` argument in onlyif: {}",
                    py_str(&Value::Object(call.clone()))
                );
                return Verdict { skip: false, comment: Some(comment), skip_watch: false };
            }
            _ => return Verdict::run("onlyif execution failed, bad type passed"),
        };
        if !ok {
            return Verdict::skip("onlyif condition is false");
        }
        verdict = Verdict::run("onlyif condition is true");
    }
    verdict
}

/// Any command failing lets the state run.
fn unless_check(run: &Run, low: &Map<String, Value>, unless: &Value) -> Verdict {
    let mut verdict = Verdict { skip: false, comment: None, skip_watch: false };
    for entry in entries(unless) {
        let ok = match entry {
            // A command that cannot run counts as succeeded (Salt: return code 0).
            Value::String(cmd) => retcode(run, low, cmd).unwrap_or(0) == 0,
            Value::Object(call) if call.contains_key("fun") => function_check(run, call),
            Value::Object(call) => {
                let comment = format!(
                    "no `fun` argument in unless: {}",
                    py_str(&Value::Object(call.clone()))
                );
                return Verdict { skip: false, comment: Some(comment), skip_watch: false };
            }
            _ => return Verdict::run("unless condition is false, bad type passed"),
        };
        if !ok {
            return Verdict::run("unless condition is false");
        }
        verdict = Verdict::skip("unless condition is true");
    }
    verdict
}

fn creates_check(creates: &Value) -> Verdict {
    match creates {
        Value::String(path) if Path::new(path).exists() => Verdict::skip(&format!("{path} exists")),
        Value::Array(paths)
            if paths.iter().all(|p| p.as_str().is_some_and(|p| Path::new(p).exists())) =>
        {
            Verdict::skip("All files in creates exist")
        }
        _ => Verdict::run("Creates files not found"),
    }
}

/// `cmd.retcode` of `cmd` with the state's command options; `None` when it could not run.
fn retcode(run: &Run, low: &Map<String, Value>, cmd: &str) -> Option<i64> {
    let mut kwargs = Map::new();
    kwargs.insert("__kwarg__".into(), Value::Bool(true));
    kwargs.insert("ignore_retcode".into(), Value::Bool(true));
    kwargs.insert("python_shell".into(), Value::Bool(true));
    for key in CMD_ARGS {
        if let Some(v) = low.get(*key).filter(|v| !v.is_null()) {
            kwargs.insert((*key).into(), v.clone());
        }
    }
    if let Some(shell) = low.get("shell").or_else(|| run.host.grains.get("shell")) {
        kwargs.insert("shell".into(), shell.clone());
    }
    let id = &run.host.id;
    match run.host.functions.call("cmd.retcode", &[json!(cmd), Value::Object(kwargs)]) {
        Err(why) => {
            log::info!("{id}: check command {cmd:?} could not run: {why}");
            None
        }
        Ok(called) => {
            log::debug!("{id}: last command return code: {}", called.value);
            called.value.as_i64()
        }
    }
}

/// `{fun: m.f, args: [...], k: v}`: the execution function's return value, by truthiness.
fn function_check(run: &Run, call: &Map<String, Value>) -> bool {
    let fun = call.get("fun").map(py_str).unwrap_or_default();
    let mut args: Vec<Value> =
        call.get("args").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut kwargs: Map<String, Value> = call
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "fun" | "args" | "get_return"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !kwargs.is_empty() {
        kwargs.insert("__kwarg__".into(), Value::Bool(true));
        args.push(Value::Object(kwargs));
    }
    let Ok(called) = run.host.functions.call(&fun, &args) else { return false };
    let mut value = &called.value;
    if let Some(path) = call.get("get_return").and_then(Value::as_str) {
        for key in path.split(':') {
            value = value.get(key).unwrap_or(&Value::Null);
        }
    }
    called.retcode == 0 && truthy(value)
}
