//! Salt's orchestration states (`salt/states/saltmod.py`): `salt.function`, `salt.state`,
//! `salt.runner`, `salt.wheel`, plus the shared `test.*` states, as the engine's
//! [`StateModules`]. Each step asks the master through [`Remote`]; how its outcome becomes
//! Salt's result, comment and changes is pure ([`function_ret`], [`state_ret`]).

use super::remote::{Gathered, Remote};
use halite_common::control::KeyAction;
use halite_common::reactor::functions::lookup;
use halite_common::reactor::Client as Kind;
use halite_states::value::{py_str, str_list, truthy};
use halite_states::{testing, Call, StateModules, StateRet};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The `salt.*` state functions and the arguments each cannot do without.
const SALT: &[(&str, &[&str])] = &[
    ("salt.function", &["tgt"]),
    ("salt.state", &["tgt"]),
    ("salt.runner", &[]),
    ("salt.wheel", &[]),
];

/// Chunk keys that belong to the state system, not to the runner or wheel function a step
/// calls (Salt's `STATE_INTERNAL_KEYWORDS`, with `name`, the function itself).
const INTERNAL: &[&str] = &[
    "name",
    "names",
    "state",
    "fun",
    "order",
    "failhard",
    "onlyif",
    "unless",
    "creates",
    "check_cmd",
    "retry",
    "parallel",
    "fire_event",
    "reload_modules",
    "reload_grains",
    "reload_pillar",
    "saltenv",
    "require",
    "require_in",
    "require_any",
    "watch",
    "watch_in",
    "watch_any",
    "onfail",
    "onfail_in",
    "onfail_any",
    "onfail_all",
    "onchanges",
    "onchanges_in",
    "onchanges_any",
    "prereq",
    "prereq_in",
    "use",
    "use_in",
    "listen",
    "listen_in",
];

/// The orchestrator's state functions.
pub struct SaltStates {
    remote: Remote,
}

impl SaltStates {
    pub fn new(remote: Remote) -> SaltStates {
        SaltStates { remote }
    }
}

impl StateModules for SaltStates {
    fn required(&self, full: &str) -> Option<&'static [&'static str]> {
        SALT.iter()
            .find(|(name, _)| *name == full)
            .map(|(_, required)| *required)
            .or_else(|| testing::TABLE.required(full))
    }

    fn has_mod_watch(&self, state: &str) -> bool {
        testing::TABLE.has_mod_watch(state)
    }

    fn call(&self, call: &Call, changed: Option<&[String]>) -> StateRet {
        match call.full().as_str() {
            "salt.function" => self.function(call),
            "salt.state" => self.state(call),
            "salt.runner" => self.runner(call),
            "salt.wheel" => self.wheel(call),
            _ => testing::TABLE.call(call, changed),
        }
    }
}

/// `fail_minions`: a list, or a comma-separated string.
fn fail_minions(call: &Call) -> Vec<String> {
    match call.arg("fail_minions") {
        Some(Value::String(s)) => s.split(',').map(|m| m.trim().to_string()).collect(),
        Some(Value::Array(items)) => items.iter().map(py_str).collect(),
        Some(_) => {
            log::warn!("'fail_minions' needs to be a list or a comma separated string. Ignored.");
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// Salt's `arg` list, with `kwarg` appended as the trailing `__kwarg__` map.
fn job_args(mut arg: Vec<Value>, kwarg: Map<String, Value>) -> Vec<Value> {
    if !kwarg.is_empty() {
        let mut map = Map::new();
        map.insert("__kwarg__".into(), true.into());
        map.extend(kwarg);
        arg.push(Value::Object(map));
    }
    arg
}

/// The chunk's own arguments for a runner or wheel function.
fn function_kwargs(call: &Call) -> Map<String, Value> {
    call.low
        .iter()
        .filter(|(k, _)| !k.starts_with("__") && !INTERNAL.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl SaltStates {
    /// `salt.function`: `name` on `tgt` with `arg` and `kwarg`.
    fn function(&self, call: &Call) -> StateRet {
        let name = call.name.as_str();
        let tgt = call.arg("tgt").cloned().unwrap_or(Value::Null);
        if call.test() {
            let comment = format!("Function {name} would be executed on target {}", py_str(&tgt));
            return StateRet::new(name, true).with(None, comment);
        }
        let arg = match call.arg("arg") {
            None => Vec::new(),
            Some(Value::String(s)) => {
                log::warn!("{}: Please specify 'arg' as a list of arguments.", call.name);
                s.split_whitespace().map(Value::from).collect()
            }
            Some(Value::Array(items)) => items.clone(),
            Some(other) => vec![other.clone()],
        };
        let kwarg = match call.arg("kwarg") {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                let why = format!("kwarg must be a dict, not {}", py_str(other));
                return StateRet::new(name, false).error(why);
            }
        };
        let tgt_type = call.text("tgt_type").unwrap_or_else(|| "glob".into());
        let timeout = self.remote.timeout(call.arg("timeout"));
        match self.remote.cmd(tgt, &tgt_type, name, job_args(arg, kwarg), timeout) {
            Ok(gathered) => function_ret(name, &gathered, &fail_minions(call)),
            Err(message) => StateRet::new(name, false).error(message),
        }
    }

    /// `salt.state`: `state.sls` of `sls` (or `state.highstate`) on `tgt`.
    fn state(&self, call: &Call) -> StateRet {
        let name = call.name.as_str();
        let fail = |comment: &str| StateRet::new(name, false).error(comment);
        let Ok(allow_fail) = call.arg("allow_fail").map_or(Ok(0), |v| py_str(v).parse::<usize>())
        else {
            return fail("Passed invalid value for 'allow_fail', must be an int");
        };
        let (fun, arg) = if call.flag("highstate", false) {
            ("state.highstate", Vec::new())
        } else if let Some(sls) = call.arg("sls").filter(|v| truthy(v)).and_then(str_list) {
            ("state.sls", vec![Value::from(sls.join(","))])
        } else {
            return fail("No highstate or sls specified, no execution made");
        };
        let mut kwarg = Map::new();
        let test = match call.arg("test") {
            Some(value) => Some(truthy(value)),
            None => call.test().then_some(true),
        };
        if let Some(test) = test {
            kwarg.insert("test".into(), test.into());
        }
        if let Some(pillar) = call.arg("pillar").filter(|v| truthy(v)) {
            kwarg.insert("pillar".into(), pillar.clone());
        }
        if let Some(saltenv) = call.arg("saltenv") {
            kwarg.insert("saltenv".into(), saltenv.clone());
        }
        kwarg.insert("queue".into(), call.flag("queue", false).into());
        match call.arg("concurrent") {
            None => kwarg.insert("concurrent".into(), false.into()),
            Some(Value::Bool(b)) => kwarg.insert("concurrent".into(), (*b).into()),
            Some(_) => return fail("Must pass in boolean for value of 'concurrent'"),
        };
        let tgt = call.arg("tgt").cloned().unwrap_or(Value::Null);
        let tgt_type = call.text("tgt_type").unwrap_or_else(|| "glob".into());
        let timeout = self.remote.timeout(call.arg("timeout"));
        let testing = test.unwrap_or(false) || call.test();
        match self.remote.cmd(tgt, &tgt_type, fun, job_args(arg, kwarg), timeout) {
            Ok(gathered) => state_ret(name, &gathered, &fail_minions(call), allow_fail, testing),
            Err(message) => fail(&message),
        }
    }

    /// `salt.runner`: runner `name` with the chunk's other arguments as keywords.
    fn runner(&self, call: &Call) -> StateRet {
        let name = call.name.as_str();
        if call.test() {
            let comment = format!("Runner function '{name}' would be executed.");
            return StateRet::new(name, true).with(None, comment);
        }
        let (value, success) = match self.remote.runner(name, function_kwargs(call)) {
            Ok(value) => {
                let failed = value.get("Error").is_some()
                    || value.get("retcode").and_then(Value::as_i64).is_some_and(|rc| rc != 0);
                (value, !failed)
            }
            Err(message) => (Value::String(message), false),
        };
        let verb = if success { "executed" } else { "failed" };
        let mut ret = StateRet::new(name, success)
            .with(Some(success), format!("Runner function '{name}' {verb}."));
        ret.change("return", value);
        ret
    }

    /// `salt.wheel`: `key.accept`, `key.reject`, `key.delete` with `match`.
    fn wheel(&self, call: &Call) -> StateRet {
        let name = call.name.as_str();
        let fail = |comment: String| StateRet::new(name, false).error(comment);
        let signature = match lookup(Kind::Wheel, name) {
            Ok(signature) => signature,
            Err(message) => return fail(message),
        };
        if call.test() {
            let comment = format!("Wheel function '{name}' would be executed.");
            return StateRet::new(name, true).with(None, comment);
        }
        let (arg, kwarg) = match signature.format_call(function_kwargs(call)) {
            Ok(bound) => bound,
            Err(message) => return fail(message),
        };
        let action = match name {
            "key.accept" => KeyAction::Accept,
            "key.reject" => KeyAction::Reject,
            _ => KeyAction::Delete,
        };
        let glob = match arg.first() {
            Some(Value::Array(items)) => items.iter().map(py_str).collect::<Vec<_>>().join(","),
            Some(other) => py_str(other),
            None => String::new(),
        };
        let flag = |k: &str| kwarg.get(k).is_some_and(truthy);
        let (value, success) = match self.remote.keys(action, &glob, flag) {
            Ok(value) => (value, true),
            Err(message) => (Value::String(message), false),
        };
        let verb = if success { "executed" } else { "failed" };
        let mut ret = StateRet::new(name, success)
            .with(Some(success), format!("Wheel function '{name}' {verb}."));
        ret.change("return", value);
        ret
    }
}

/// Salt's `{"out": "highstate", "ret": {minion: return}}` changes.
fn highstate_changes(changes: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("out".into(), "highstate".into());
    out.insert("ret".into(), Value::Object(changes));
    out
}

/// Salt's `salt.function` result: failed when no minion returned, or when one returned a
/// non-zero retcode or `False` (unless listed in `fail_minions`, for the latter).
pub fn function_ret(name: &str, g: &Gathered, fail_minions: &[String]) -> StateRet {
    let mut ret = StateRet::new(name, true);
    if g.returns.is_empty() {
        return ret.error("No minions responded");
    }
    let mut fail = BTreeSet::new();
    let mut changes = Map::new();
    for (id, data) in &g.returns {
        let m_ret = data.get("return").cloned().unwrap_or(Value::Null);
        if data.get("retcode").is_some_and(truthy) {
            fail.insert(id.clone());
        }
        if m_ret == Value::Bool(false) && !fail_minions.contains(id) {
            fail.insert(id.clone());
        }
        changes.insert(id.clone(), m_ret);
    }
    let ran: Vec<&str> = changes.keys().map(String::as_str).collect();
    let mut comment = match fail.is_empty() {
        true => "Function ran successfully.".to_string(),
        false => {
            ret.result = Some(false);
            let failed: Vec<&str> = fail.iter().map(String::as_str).collect();
            format!("Running function {name} failed on minions: {}", failed.join(", "))
        }
    };
    comment.push_str(&format!(" Function {name} ran on {}.", ran.join(", ")));
    ret.comment = comment;
    ret.changes = highstate_changes(changes);
    ret
}

/// Salt's `check_state_result(ret, recurse=True)`: a non-empty map of state returns none
/// of which failed.
fn check_result(ret: &Value) -> bool {
    let Value::Object(states) = ret else { return false };
    !states.is_empty()
        && states.values().all(|state| match state {
            Value::Object(map) => match map.get("result") {
                Some(Value::Bool(false)) => false,
                Some(_) => true,
                None => check_result(state),
            },
            _ => true,
        })
}

/// Salt's `salt.state` result: every targeted minion must return a state run without a
/// failed state (a minion that did not return failed), `allow_fail` of them excepted;
/// changes hold the returns of the minions that changed something or failed.
pub fn state_ret(
    name: &str,
    g: &Gathered,
    fail_minions: &[String],
    allow_fail: usize,
    test: bool,
) -> StateRet {
    let mut ret = StateRet::new(name, true);
    if g.minions.is_empty() {
        return ret.error("No minions returned");
    }
    let returned: BTreeSet<&str> = g.returns.iter().map(|(id, _)| id.as_str()).collect();
    let silent = g.minions.iter().filter(|id| !returned.contains(id.as_str()));
    let outcomes = g
        .returns
        .iter()
        .map(|(id, data)| (id, data.get("return").cloned().unwrap_or(Value::Null)))
        .chain(silent.map(|id| (id, Value::Bool(false))));
    let mut fail = Vec::new();
    let mut no_change = Vec::new();
    let mut changes = Map::new();
    for (id, m_ret) in outcomes {
        if !check_result(&m_ret) {
            if !fail_minions.contains(id) {
                fail.push(id.as_str());
            }
            changes.insert(id.clone(), m_ret);
            continue;
        }
        let changed = m_ret
            .as_object()
            .is_some_and(|states| states.values().any(|s| s.get("changes").is_some_and(truthy)));
        match changed {
            true => {
                changes.insert(id.clone(), m_ret);
            }
            false => no_change.push(id.as_str()),
        }
    }
    if fail.len() > allow_fail {
        ret.result = Some(false);
        ret.comment = format!("Run failed on minions: {}", fail.join(", "));
    } else {
        ret.comment = "States ran successfully.".into();
        if !changes.is_empty() {
            let ids: Vec<&str> = changes.keys().map(String::as_str).collect();
            ret.comment.push_str(&format!(" Updating {}.", ids.join(", ")));
        }
        if !no_change.is_empty() {
            ret.comment.push_str(&format!(" No changes made to {}.", no_change.join(", ")));
        }
    }
    if !changes.is_empty() {
        ret.changes = highstate_changes(changes);
        if test && ret.result == Some(true) {
            ret.result = None;
        }
    }
    ret
}
