//! The minion's execution functions (Salt's `__salt__`): one registry of [`Spec`]s, Salt's
//! argument binding, and [`call`], which the job runner runs on a worker thread.
//!
//! Adding a module: write `foo.rs` with a `pub(super) const SPECS: &[Spec]` and chain it in
//! [`registry`]. Each function gets its arguments already bound to its Python-style signature
//! ([`Bound`]) and answers with a [`Ret`] or a [`Failure`]; `call` turns either into the
//! [`Outcome`] Salt's minion would send.

pub(crate) mod args;
pub(crate) mod beacons;
mod cmd;
mod cp;
mod grains_fn;
mod pillar;
pub(crate) mod process;
mod state;
mod sys;
mod test;

pub use args::split_args;
pub(crate) use args::Bound;

use crate::states::Fileserver;
use serde_json::{Map, Value};
use std::sync::Arc;

/// What a job needs to know about the minion it runs on.
#[derive(Clone)]
pub struct Context {
    pub id: String,
    pub grains: Map<String, Value>,
    /// The master's `salt://` file server over the session (`None` without one).
    pub fileserver: Option<Arc<dyn Fileserver>>,
    /// The pillar the master compiled for this minion (`None`: no master, an empty pillar).
    pub pillar: Option<Arc<crate::pillar::Pillar>>,
}

impl Context {
    /// This minion's compiled pillar (empty without a master).
    pub(crate) fn pillar(&self) -> Arc<Map<String, Value>> {
        self.pillar.as_ref().map(|p| p.current()).unwrap_or_default()
    }

    /// The session's file server, or the failure a function needing one answers with.
    pub(crate) fn files(&self) -> Result<&Arc<dyn Fileserver>, Failure> {
        self.fileserver.as_ref().ok_or_else(|| {
            Failure::Command("the salt:// file server is not available (no master session)".into())
        })
    }
}

/// The result of one function call, as Salt reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The `return` field.
    pub ret: Value,
    /// 0 = success.
    pub retcode: i64,
    /// Salt's outputter hint, e.g. `Some("nested")` for errors; `None` normally.
    pub out: Option<String>,
}

/// A function's answer: its return value and the retcode it set (Salt's
/// `__context__["retcode"]`, 0 unless the function chose otherwise).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ret {
    pub value: Value,
    pub retcode: i64,
}

impl Ret {
    pub fn ok(value: impl Into<Value>) -> Ret {
        Ret { value: value.into(), retcode: 0 }
    }

    pub fn with_retcode(value: impl Into<Value>, retcode: i64) -> Ret {
        Ret { value: value.into(), retcode }
    }
}

/// Why a call failed, worded as Salt's minion words each exception class.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// Python's `TypeError` (bad arguments): `Passed invalid arguments to <fun>: <msg>\n<doc>`.
    BadArgs(String),
    /// `SaltInvocationError`: `ERROR executing '<fun>': <msg>`.
    Invocation(String),
    /// `CommandExecutionError`: `ERROR: <msg>`.
    Command(String),
}

impl Failure {
    fn message(&self, spec: &Spec) -> String {
        match self {
            Failure::BadArgs(msg) => {
                format!("Passed invalid arguments to {}: {msg}\n{}", spec.name, spec.doc)
            }
            Failure::Invocation(msg) => format!("ERROR executing '{}': {msg}", spec.name),
            Failure::Command(msg) => format!("ERROR: {msg}"),
        }
    }
}

pub(crate) type FnResult = Result<Ret, Failure>;

/// One function: its name, Python-style signature, outputter, documentation and body.
pub(crate) struct Spec {
    /// `module.function`.
    pub name: &'static str,
    /// Named parameters, in order; the first `required` have no default.
    pub params: &'static [&'static str],
    pub required: usize,
    /// Takes `*args` (extra positional values).
    pub varargs: bool,
    /// Takes `**kwargs` (any keyword); without it unknown keywords are refused, as Salt does.
    pub varkw: bool,
    /// The module's `__outputter__` entry for this function.
    pub out: Option<&'static str>,
    /// What `sys.doc` shows; also appended to bad-argument errors, as Salt does.
    pub doc: &'static str,
    pub run: fn(&Bound, &Context) -> FnResult,
}

impl Spec {
    pub const fn new(
        name: &'static str,
        doc: &'static str,
        run: fn(&Bound, &Context) -> FnResult,
    ) -> Spec {
        Spec { name, params: &[], required: 0, varargs: false, varkw: false, out: None, doc, run }
    }

    pub const fn params(mut self, params: &'static [&'static str], required: usize) -> Spec {
        self.params = params;
        self.required = required;
        self
    }

    pub const fn varargs(mut self) -> Spec {
        self.varargs = true;
        self
    }

    pub const fn varkw(mut self) -> Spec {
        self.varkw = true;
        self
    }

    pub const fn out(mut self, out: &'static str) -> Spec {
        self.out = Some(out);
        self
    }

    /// The Python function name, as `TypeError` messages show it (`echo` for `test.echo`).
    pub fn py_name(&self) -> &'static str {
        self.name.rsplit_once('.').map_or(self.name, |(_, f)| f)
    }
}

/// Every function, in no particular order. `event.*` is not here yet: until its module
/// lands, it is "not available" like any unknown name.
pub(crate) fn registry() -> impl Iterator<Item = &'static Spec> {
    test::SPECS
        .iter()
        .chain(cmd::SPECS)
        .chain(grains_fn::SPECS)
        .chain(sys::SPECS)
        .chain(state::SPECS)
        .chain(cp::SPECS)
        .chain(pillar::SPECS)
        .chain(beacons::SPECS)
}

fn find(fun: &str) -> Option<&'static Spec> {
    registry().find(|spec| spec.name == fun)
}

/// Every function name this minion has, sorted (for `sys.list_functions`).
pub fn list_functions() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = registry().map(|spec| spec.name).collect();
    names.sort_unstable();
    names
}

/// Runs `fun` with Salt-style `arg` (positional values, plus trailing maps marked
/// `{"__kwarg__": true, ...}` carrying keyword arguments). Never panics on bad input.
pub fn call(fun: &str, arg: &[Value], ctx: &Context) -> Outcome {
    let Some(spec) = find(fun) else {
        return not_available(fun);
    };
    let result = args::bind(spec, arg).and_then(|bound| (spec.run)(&bound, ctx));
    match result {
        Ok(Ret { value, retcode }) => {
            // Salt: a function that set no retcode but returns a map whose `result` or
            // `success` is falsy has failed.
            let retcode = if retcode == 0 && reports_failure(&value) { 1 } else { retcode };
            Outcome { ret: value, retcode, out: spec.out.map(String::from) }
        }
        Err(failure) => {
            let message = failure.message(spec);
            log::warn!("{}: {}", ctx.id, message.lines().next().unwrap_or(""));
            Outcome { ret: Value::String(message), retcode: 1, out: Some("nested".into()) }
        }
    }
}

/// Binds the arguments of a function the minion's loop answers itself (`beacons.*`); a
/// binding error is already the failed call's outcome.
pub(crate) fn bind_on_loop(fun: &str, arg: &[Value]) -> Result<Bound, Outcome> {
    let spec = find(fun).ok_or_else(|| not_available(fun))?;
    args::bind(spec, arg).map_err(|failure| Outcome {
        ret: Value::String(failure.message(spec)),
        retcode: 1,
        out: Some("nested".into()),
    })
}

/// `all(ret.get(k, True) for k in ("result", "success"))` is false for a map return.
fn reports_failure(value: &Value) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    ["result", "success"].iter().any(|key| map.get(*key).is_some_and(|v| !args::py_truthy(v)))
}

/// Salt's answer for an unknown function: the docs of functions whose names start with
/// `fun` (so a typo like `test.pin` shows `test.ping`) plus the "not available" line, or only
/// the line when nothing matches. An empty name or one with glob characters only gets the
/// line (Salt would glob with it).
fn not_available(fun: &str) -> Outcome {
    let missing = format!("'{fun}' is not available.");
    let mut docs = match fun.is_empty() || halite_common::glob::has_magic(fun) {
        true => Map::new(),
        false => sys::docs_matching(&format!("{fun}*")),
    };
    let ret = if docs.is_empty() {
        Value::String(missing)
    } else {
        docs.insert(fun.to_string(), Value::String(missing));
        Value::Object(docs)
    };
    Outcome { ret, retcode: 1, out: Some("nested".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn ctx() -> Context {
        let grains = json!({"id": "minion1", "os": "Debian", "roles": ["web", "db"]});
        Context {
            id: "minion1".into(),
            grains: grains.as_object().cloned().unwrap_or_default(),
            fileserver: None,
            pillar: None,
        }
    }

    #[track_caller]
    fn check(fun: &str, arg: Value, ret: Value, retcode: i64, out: Option<&str>) {
        let arg = arg.as_array().cloned().unwrap_or_default();
        let got = call(fun, &arg, &ctx());
        let want = Outcome { ret, retcode, out: out.map(String::from) };
        assert_eq!(got, want, "{fun} {arg:?}");
    }

    #[test]
    fn unknown_and_reserved_functions_are_not_available() {
        for fun in ["no.such_function", "event.send", "", "*", "test.p[i]ng", "test.ping.extra"] {
            let missing = json!(format!("'{fun}' is not available."));
            check(fun, json!([]), missing, 1, Some("nested"));
        }
    }

    #[test]
    fn unknown_function_with_a_known_prefix_lists_the_docs() {
        let got = call("test.pin", &[], &ctx());
        assert_eq!(got.retcode, 1);
        assert_eq!(got.out.as_deref(), Some("nested"));
        let map = got.ret.as_object().cloned().unwrap_or_default();
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys, ["test.ping", "test.pin"]);
        assert_eq!(map["test.pin"], json!("'test.pin' is not available."));
    }

    #[test]
    fn reserved_modules_are_not_listed() {
        let names = list_functions();
        for name in &names {
            assert!(!name.starts_with("event."), "{name}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted and unique");
        for fun in [
            "test.ping",
            "cmd.run",
            "cmd.run_all",
            "grains.get",
            "sys.list_functions",
            "state.sls",
            "state.apply",
            "cp.get_file",
        ] {
            assert!(names.contains(&fun), "{fun}");
        }
    }

    #[test]
    fn a_falsy_result_or_success_key_fails_the_job() {
        for (value, failed) in [
            (json!({"result": false}), true),
            (json!({"success": false}), true),
            (json!({"result": null}), true),
            (json!({"result": ""}), true),
            (json!({"result": true, "success": 1}), false),
            (json!({"other": false}), false),
            (json!(false), false),
            (json!([{"result": false}]), false),
        ] {
            assert_eq!(reports_failure(&value), failed, "{value}");
        }
        // Through a real function: test.echo returning such a map.
        check("test.echo", json!([{"result": false}]), json!({"result": false}), 1, None);
    }

    #[test]
    fn failures_are_worded_as_salt_words_them() {
        let echo = find("test.echo").expect("registered");
        let bad = Failure::BadArgs("boom".into()).message(echo);
        assert!(bad.starts_with("Passed invalid arguments to test.echo: boom\n"), "{bad}");
        assert_eq!(Failure::Invocation("x".into()).message(echo), "ERROR executing 'test.echo': x");
        assert_eq!(Failure::Command("y".into()).message(echo), "ERROR: y");
    }

    #[test]
    fn every_spec_is_well_formed() {
        for spec in registry() {
            assert!(spec.required <= spec.params.len(), "{}", spec.name);
            assert!(spec.name.contains('.'), "{}", spec.name);
            assert!(!spec.doc.is_empty(), "{}", spec.name);
        }
    }
}
