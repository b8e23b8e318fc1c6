//! Halite's state engine, Salt's state system: SLS files come from a [`Fileserver`], are
//! rendered (Jinja, then YAML) into Salt's high data, compiled into low chunks, ordered by
//! `order` and their requisites, and run through the host's [`StateModules`]; the answer is
//! Salt's return map keyed `<state>_|-<id>_|-<name>_|-<fun>`, or Salt's list of error strings
//! when the SLS does not compile. The minion runs it with its `file.*`/`cmd.*` states; the
//! master's orchestrator is to run it with `salt.*` states, so both share requisites,
//! ordering, test mode and failhard.
//!
//! The pipeline, one module a step: [`load`] (files, `include`, automatic order) → [`high`]
//! (structure checks, low chunks) → [`graph`] (requisite edges, execution order, cycles) →
//! [`engine`] (requisite status, `unless`/`onlyif`/`creates`, timing) → the host's state
//! functions (and the shared [`testing`] ones), seen through [`registry`]. Nothing here
//! touches the host itself: files come through [`Fileserver`], execution functions (Jinja's
//! `salt[...]`, `onlyif`/`unless`) through [`Functions`].

mod checks;
pub mod compile_pillar;
mod engine;
mod graph;
mod high;
mod load;
pub mod memfs;
pub mod pillar;
mod registry;
mod render;
pub mod testing;
mod top;
pub mod value;

#[cfg(test)]
mod tests;

pub use engine::WATCH_UNCHANGED;
pub use registry::{Call, Layout, ModWatch, StateFn, StateModules, StateRet, Table};
pub use render::{render_file, Renderer};
pub use top::NO_MATCHES;

use serde_json::{json, Map, Value};
use std::fmt;
use std::sync::Arc;

/// Where SLS and source files come from: the master's `salt://` file server (the minion asks
/// over its session; the orchestrator reads `file_roots`).
pub trait Fileserver: Send + Sync {
    /// Contents of `salt://<path>` (path without the `salt://` prefix), from the master's
    /// file_roots. Errors are human-readable ("salt://x: no such file").
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
    /// Hex SHA-256 of `salt://<path>` as the master sees it.
    fn hash(&self, path: &str) -> Result<String, String>;
    /// Every file path under the roots (for cp.list_master), sorted.
    fn list(&self) -> Result<Vec<String>, String>;
}

/// Salt's `__salt__`: the execution functions templates (`salt['cmd.run'](...)`) and run
/// checks (`onlyif`, `unless`) call.
pub trait Functions: Send + Sync {
    /// Runs `fun` with Salt's `arg` list (keywords in a trailing `{"__kwarg__": true, ...}`).
    /// `Err` is the error Salt would raise, worded for the user (an unknown function, bad
    /// arguments, a command that could not start).
    fn call(&self, fun: &str, arg: &[Value]) -> Result<Called, String>;
}

/// An execution function's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    pub value: Value,
    /// The job's retcode (0 unless the function set one).
    pub retcode: i64,
}

/// What a state run runs on: who it is for, where files come from, the execution functions
/// and the state modules.
#[derive(Clone)]
pub struct Host {
    /// The minion id (the orchestrator: `<master>_master`), for `opts.id`, the top file and logs.
    pub id: String,
    pub grains: Map<String, Value>,
    pub fs: Arc<dyn Fileserver>,
    pub functions: Arc<dyn Functions>,
    pub modules: Arc<dyn StateModules>,
}

/// How a state run was asked for. Its `Debug` hides the pillar.
#[derive(Clone, Default)]
pub struct Options {
    /// `test=True`: report what would change, change nothing.
    pub test: bool,
    /// Inline pillar (`pillar=`, see [`pillar::inline`]): the templates' `pillar`. Per run,
    /// never logged.
    pub pillar: Map<String, Value>,
    /// `exclude=`: SLS names (or `{"sls": ..}` / `{"id": ..}` maps) left out of the run.
    pub exclude: Vec<Value>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("test", &self.test)
            .field("pillar", &format!("<{} keys hidden>", self.pillar.len()))
            .field("exclude", &self.exclude)
            .finish()
    }
}

/// A state function's answer: Salt's return value and the job retcode it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub value: Value,
    /// 0, 1 (did not compile: `value` is a list of errors) or 2 (a state failed).
    pub retcode: i64,
}

impl Answer {
    pub fn errors(errors: Vec<String>) -> Answer {
        Answer { value: Value::Array(errors.into_iter().map(Value::String).collect()), retcode: 1 }
    }

    /// Salt's `_set_retcode`: 2 when any state's result is `False`.
    pub fn results(running: Map<String, Value>) -> Answer {
        let failed = running.values().any(|ret| ret.get("result") == Some(&Value::Bool(false)));
        Answer { value: Value::Object(running), retcode: if failed { 2 } else { 0 } }
    }
}

/// Everything one run shares: the host, the renderer and the options.
pub struct Run<'a> {
    pub host: &'a Host,
    pub renderer: Renderer,
    pub opts: &'a Options,
}

impl<'a> Run<'a> {
    fn new(host: &'a Host, opts: &'a Options) -> Run<'a> {
        let renderer = Renderer::new(host, &opts.pillar, opts.test);
        Run { host, renderer, opts }
    }
}

/// `state.sls mods`: renders `mods` (with their includes) and runs them.
pub fn sls(host: &Host, mods: &[String], opts: &Options) -> Answer {
    let run = Run::new(host, opts);
    let (high, errors) = load::Loader::new(&run).render_highstate(mods);
    if !errors.is_empty() {
        return Answer::errors(errors);
    }
    call_high(&run, high)
}

/// `state.highstate`: the SLS files `top.sls` assigns to this host.
pub fn highstate(host: &Host, opts: &Options) -> Answer {
    let run = Run::new(host, opts);
    let mods = match top::matches(&run) {
        Ok(mods) if mods.is_empty() => return no_states(top::NO_MATCHES),
        Ok(mods) => mods,
        Err(top::TopError::Render(message)) => {
            return no_states(&format!("Unable to render top file: {message}"))
        }
        Err(top::TopError::Invalid(errors)) => return Answer::errors(errors),
    };
    let (high, errors) = load::Loader::new(&run).render_highstate(&mods);
    if !errors.is_empty() {
        return Answer::errors(errors);
    }
    call_high(&run, high)
}

/// `state.show_top`: `{"base": [sls, ...]}` for this host.
pub fn show_top(host: &Host, opts: &Options) -> Answer {
    let run = Run::new(host, opts);
    match top::matches(&run) {
        Ok(mods) if mods.is_empty() => Answer { value: json!({}), retcode: 0 },
        Ok(mods) => Answer { value: json!({ "base": mods }), retcode: 0 },
        Err(top::TopError::Render(message)) => Answer::errors(vec![message]),
        Err(top::TopError::Invalid(errors)) => Answer::errors(errors),
    }
}

/// `state.show_sls mods`: the high data the run would use, without running it.
pub fn show_sls(host: &Host, mods: &[String], opts: &Options) -> Answer {
    let run = Run::new(host, opts);
    let (high, mut errors) = load::Loader::new(&run).render_highstate(mods);
    errors.extend(high::verify(&high));
    match errors.is_empty() {
        true => Answer { value: Value::Object(high), retcode: 0 },
        false => Answer::errors(errors),
    }
}

/// `state.show_low_sls mods`: the ordered low chunks the run would execute.
pub fn show_low_sls(host: &Host, mods: &[String], opts: &Options) -> Answer {
    let run = Run::new(host, opts);
    let (high, errors) = load::Loader::new(&run).render_highstate(mods);
    if !errors.is_empty() {
        return Answer::errors(errors);
    }
    match compile(&run, high) {
        Ok(plan) => Answer {
            value: plan.order.iter().map(|&i| Value::Object(plan.chunks[i].clone())).collect(),
            retcode: 0,
        },
        Err(errors) => Answer::errors(errors),
    }
}

/// Salt's `call_high`: check, compile, order, run.
fn call_high(run: &Run, high: Map<String, Value>) -> Answer {
    match compile(run, high) {
        Ok(plan) => Answer::results(engine::run(run, &plan)),
        Err(errors) => Answer::errors(errors),
    }
}

fn compile(run: &Run, mut high: Map<String, Value>) -> Result<graph::Plan, Vec<String>> {
    let errors = high::verify(&high);
    if !errors.is_empty() {
        return Err(errors);
    }
    if !run.opts.exclude.is_empty() {
        high::add_exclude(&mut high, &run.opts.exclude);
    }
    high::apply_exclude(&mut high);
    graph::plan(high::compile(&high), &*run.host.modules)
}

/// Salt's answer when the top file gives this minion nothing to do.
fn no_states(comment: &str) -> Answer {
    let mut running = Map::new();
    running.insert(
        "no_|-states_|-states_|-None".into(),
        json!({
            "result": false,
            "comment": comment,
            "name": "No States",
            "changes": {},
            "__run_num__": 0,
        }),
    );
    Answer::results(running)
}
