//! `cmd.*` keyword options (Salt's `_run` parameters) checked into a ready-to-run
//! [`Job`]: the command line, working directory, environment, stdin, timeout and the
//! success overrides.

use super::super::args::{flag, integer, number, py_repr, py_str, py_type};
use super::super::process::Job;
use super::super::{Bound, Failure};
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options Halite cannot honour; silently ignoring them would run the command differently
/// than asked (as another user, with another umask, unrendered).
const UNSUPPORTED: &[&str] = &["runas", "group", "umask", "template"];

/// Longest timeout accepted, in seconds (a year).
const MAX_TIMEOUT_SECS: f64 = 365.0 * 86400.0;

pub(crate) const DEFAULT_SHELL: &str = "/bin/sh";

/// Salt's `reset_system_locale` set.
const LOCALE_VARS: &[&str] = &[
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
    "LANGUAGE",
];

/// Everything `_run` needs, checked.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub job: Job,
    /// The command as Salt names it in a timeout message.
    pub display: String,
    /// How Salt prints the timeout (`str(timeout)`).
    pub timeout_text: String,
    pub rstrip: bool,
    pub hide_output: bool,
    pub ignore_retcode: bool,
    pub bg: bool,
    pub success_retcodes: Vec<i64>,
    pub success_stdout: Vec<String>,
    pub success_stderr: Vec<String>,
}

/// Checks every option; `merge_default` is whether stderr goes into stdout unless
/// `redirect_stderr` says otherwise (true for `cmd.run`).
pub(crate) fn parse(b: &Bound, merge_default: bool) -> Result<Options, Failure> {
    for name in UNSUPPORTED {
        if b.get(name).is_some() {
            return Err(Failure::Invocation(format!(
                "the '{name}' option is not supported by Halite"
            )));
        }
    }
    let (argv, display) = command_line(b)?;
    let (timeout, timeout_text) = timeout(b)?;
    let bg = b.flag("bg", false);
    let job = Job {
        argv,
        cwd: cwd(b)?,
        env: environment(b)?,
        stdin: stdin(b),
        timeout,
        merge_stderr: b.flag("redirect_stderr", merge_default),
    };
    let retcodes = success_list(b, "success_retcodes")
        .iter()
        .map(integer)
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| Failure::Invocation("success_retcodes must be a list of integers".into()))?;
    Ok(Options {
        job,
        display,
        timeout_text,
        rstrip: b.flag("rstrip", true),
        hide_output: b.flag("hide_output", false),
        ignore_retcode: b.flag("ignore_retcode", false) || bg,
        bg,
        success_retcodes: retcodes,
        success_stdout: success_list(b, "success_stdout").iter().map(py_str).collect(),
        success_stderr: success_list(b, "success_stderr").iter().map(py_str).collect(),
    })
}

/// The argv to run and the command as Salt shows it: a string (or a number: Salt's
/// "cmd.run 3" corner case) runs through the shell; a list runs as it is, without one.
fn command_line(b: &Bound) -> Result<(Vec<String>, String), Failure> {
    let cmd = b.given("cmd").unwrap_or(&Value::Null);
    let text = match cmd {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if !items.is_empty() => {
            let argv = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(Failure::BadArgs(format!(
                        "cmd list items must be strings, not {}",
                        py_type(other)
                    ))),
                })
                .collect::<Result<Vec<String>, Failure>>()?;
            refuse_nul("cmd", argv.iter().map(String::as_str))?;
            return Ok((argv, py_repr(cmd)));
        }
        other => {
            return Err(Failure::BadArgs(format!(
                "cmd must be a string (or a list of strings), not {}",
                py_type(other)
            )));
        }
    };
    if text.trim().is_empty() {
        return Err(Failure::BadArgs("cmd must not be empty".into()));
    }
    let shell = match b.get("shell") {
        None => DEFAULT_SHELL.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Failure::BadArgs(format!("shell must be a path, not {}", py_type(other))));
        }
    };
    refuse_nul("cmd", [text.as_str(), shell.as_str()])?;
    if !is_executable(Path::new(&shell)) {
        return Err(Failure::Command(format!("The shell {shell} is not available")));
    }
    Ok((vec![shell, "-c".into(), text.clone()], text))
}

fn refuse_nul<'a>(what: &str, texts: impl IntoIterator<Item = &'a str>) -> Result<(), Failure> {
    match texts.into_iter().any(|t| t.contains('\0')) {
        true => Err(Failure::BadArgs(format!("{what} must not contain a NUL byte"))),
        false => Ok(()),
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `cwd`, or the minion user's home (`/` when that is not a readable directory), as Salt.
fn cwd(b: &Bound) -> Result<PathBuf, Failure> {
    let Some(value) = b.get("cwd") else {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let readable = |h: &PathBuf| h.is_absolute() && std::fs::read_dir(h).is_ok();
        return Ok(home.filter(readable).unwrap_or_else(|| "/".into()));
    };
    let cwd = py_str(value);
    let path = PathBuf::from(&cwd);
    if cwd.contains('\0') || !path.is_absolute() || !path.is_dir() {
        return Err(Failure::Command(format!(
            "Specified cwd '{cwd}' either not absolute or does not exist"
        )));
    }
    Ok(path)
}

/// `stdin` as text (`str()` of other values); a typed `\n` becomes a line break unless
/// `stdin_raw_newlines` is set, as Salt.
fn stdin(b: &Bound) -> Option<Vec<u8>> {
    let text = py_str(b.get("stdin")?);
    let raw = b.kwargs.get("stdin_raw_newlines").is_some_and(flag);
    Some(match raw {
        true => text.into_bytes(),
        false => text.replace("\\n", "\n").into_bytes(),
    })
}

/// The timeout and how Salt prints it; 0 or none means no timeout.
fn timeout(b: &Bound) -> Result<(Option<Duration>, String), Failure> {
    let Some(value) = b.get("timeout") else {
        return Ok((None, String::new()));
    };
    let secs = number(value).filter(|s| (0.0..=MAX_TIMEOUT_SECS).contains(s)).ok_or_else(|| {
        Failure::BadArgs(format!(
            "timeout must be a number of seconds from 0 to {MAX_TIMEOUT_SECS}, not {}",
            py_repr(value)
        ))
    })?;
    match secs == 0.0 {
        true => Ok((None, String::new())),
        false => Ok((Some(Duration::from_secs_f64(secs)), py_str(value))),
    }
}

/// The child's environment: the minion's (unless `clean_env`), then Salt's C locale (unless
/// `reset_system_locale=False`), then `env`, then `prepend_path`. `NOTIFY_SOCKET` is dropped
/// unless `env` sets it.
fn environment(b: &Bound) -> Result<Vec<(OsString, OsString)>, Failure> {
    let given = env_vars(b.get("env"))?;
    let mut env: Vec<(OsString, OsString)> = match b.flag("clean_env", false) {
        true => Vec::new(),
        false => std::env::vars_os().filter(|(k, _)| k != "NOTIFY_SOCKET").collect(),
    };
    if b.flag("reset_system_locale", true) {
        for key in LOCALE_VARS {
            set_var(&mut env, key, "C".into());
        }
    }
    for (key, value) in &given {
        set_var(&mut env, key, value.into());
    }
    if let Some(prefix) = b.get("prepend_path") {
        let prefix = py_str(prefix);
        refuse_nul("prepend_path", [prefix.as_str()])?;
        let mut path = OsString::from(format!("{prefix}:"));
        if let Some((_, old)) = env.iter().find(|(k, _)| k == "PATH") {
            path.push(old);
        }
        set_var(&mut env, "PATH", path);
    }
    Ok(env)
}

fn set_var(env: &mut Vec<(OsString, OsString)>, key: &str, value: OsString) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => env.push((key.into(), value)),
    }
}

/// `env` as a dict, or a list of one-key dicts merged (Salt's `repack_dictlist`); values as
/// Python's `str()`, null as "".
fn env_vars(value: Option<&Value>) -> Result<Vec<(String, String)>, Failure> {
    let maps: Vec<&Map<String, Value>> = match value {
        None => Vec::new(),
        Some(Value::Object(map)) => vec![map],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_object().ok_or_else(|| {
                    Failure::BadArgs(format!("env list items must be dicts, not {}", py_type(item)))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(Failure::BadArgs(format!("env must be a dict, not {}", py_type(other))));
        }
    };
    let mut vars: Vec<(String, String)> = Vec::new();
    for (key, value) in maps.into_iter().flatten() {
        let text = if value.is_null() { String::new() } else { py_str(value) };
        if key.is_empty() || key.contains(['=', '\0']) || text.contains('\0') {
            return Err(Failure::BadArgs(format!(
                "env variable {} is not valid",
                py_repr(&Value::String(key.clone()))
            )));
        }
        vars.retain(|(k, _)| k != key);
        vars.push((key.clone(), text));
    }
    Ok(vars)
}

/// A `success_*` option: a list, or a comma-separated string (Salt's `split_input`).
fn success_list(b: &Bound, name: &str) -> Vec<Value> {
    match b.get(name) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => {
            s.split(',').map(|p| Value::String(p.trim().to_string())).collect()
        }
        Some(other) => vec![other.clone()],
    }
}
