//! Salt's `cmd` states: `cmd.run` (through the minion's own `cmd.run_all`, so `cwd`, `env`,
//! `shell`, `timeout`, `success_retcodes` … behave as in `cmd.run`) and `cmd.wait` (runs only
//! through `watch`). `changes` is `cmd.run_all`'s answer, `result` its exit code.

use halite_states::value::py_str;
use halite_states::{Call, Called, StateFn, StateRet};
use serde_json::{Map, Value};
use std::path::Path;

pub(super) const STATES: &[StateFn] = &[
    StateFn { name: "cmd.run", required: &[], run },
    StateFn { name: "cmd.wait", required: &[], run: wait },
];

/// Low chunk keys that are Salt's own (requisites, run checks, bookkeeping) or `cmd.run`
/// state options, not `cmd.run_all` options.
const NOT_COMMAND_OPTIONS: &[&str] = &[
    "state",
    "fun",
    "name",
    "names",
    "order",
    "require",
    "require_any",
    "require_in",
    "watch",
    "watch_any",
    "watch_in",
    "onchanges",
    "onchanges_any",
    "onchanges_in",
    "onfail",
    "onfail_any",
    "onfail_all",
    "onfail_in",
    "onlyif",
    "unless",
    "creates",
    "check_cmd",
    "failhard",
    "retry",
    "reload_modules",
    "reload_grains",
    "reload_pillar",
    "fire_event",
    "saltenv",
    "parallel",
    "stateful",
    "ignore_timeout",
    "root",
];

fn run(c: &Call) -> StateRet {
    let name = c.name.clone();
    let ret = StateRet::new(&name, false);
    if c.arg("env").is_some_and(|env| !env.is_array() && !env.is_object()) {
        return ret.with(Some(false), "Invalidly-formatted 'env' parameter. See documentation.");
    }
    if c.test() {
        let mut ret = ret.with(None, format!("Command \"{name}\" would have been executed"));
        ret.change("cmd", name);
        return ret;
    }
    if let Some(cwd) = c.text("cwd") {
        if !Path::new(&cwd).is_dir() {
            return ret.with(
                Some(false),
                format!("Desired working directory \"{cwd}\" is not available"),
            );
        }
    }
    let mut kwargs: Map<String, Value> = c
        .low
        .iter()
        .filter(|(k, v)| !k.starts_with("__") && !v.is_null())
        .filter(|(k, _)| !NOT_COMMAND_OPTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !kwargs.contains_key("shell") {
        if let Some(shell) = c.run.host.grains.get("shell") {
            kwargs.insert("shell".into(), shell.clone());
        }
    }
    kwargs.insert("python_shell".into(), Value::Bool(true));
    kwargs.insert("__kwarg__".into(), Value::Bool(true));
    let run_all = [Value::String(name.clone()), Value::Object(kwargs)];
    let changes = match c.run.host.functions.call("cmd.run_all", &run_all) {
        Ok(Called { value: Value::Object(changes), .. }) => changes,
        Ok(other) => return ret.with(Some(false), py_str(&other.value)),
        // The command could not run at all (a bad option, a missing shell).
        Err(why) => return ret.with(Some(false), why),
    };
    let retcode = changes.get("retcode").and_then(Value::as_i64).unwrap_or(1);
    let mut ret = ret.with(Some(retcode == 0), format!("Command \"{name}\" run"));
    ret.changes = changes;
    ret
}

/// `cmd.wait`: nothing by itself; its `mod_watch` runs the command.
fn wait(c: &Call) -> StateRet {
    StateRet::new(&c.name, true)
}

/// Salt's `cmd.mod_watch`: run the command.
pub(super) fn mod_watch(c: &Call, _changed: &[String]) -> StateRet {
    run(c)
}
