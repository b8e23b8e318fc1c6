//! Salt's state system on the minion (`state.sls`, `state.apply`, `state.highstate`): SLS
//! files come from the master's `file_roots` through a [`Fileserver`], are rendered (Jinja,
//! then YAML) into Salt's high data, compiled into low chunks, ordered by `order` and their
//! requisites, and run; the answer is Salt's return map keyed `<state>_|-<id>_|-<name>_|-<fun>`,
//! or Salt's list of error strings when the SLS does not compile.
//!
//! The pipeline, one module a step: [`load`] (files, `include`, automatic order) → [`high`]
//! (structure checks, low chunks) → [`graph`] (requisite edges, execution order, cycles) →
//! [`engine`] (requisite status, `unless`/`onlyif`/`creates`, timing) → the state functions
//! ([`file`], [`managed`], [`cmd`], [`testing`], registered in [`registry`]).

mod checks;
mod cmd;
mod diff;
mod engine;
mod file;
mod graph;
mod high;
mod load;
mod managed;
mod perms;
mod registry;
mod render;
mod testing;
mod top;
mod value;

#[cfg(test)]
mod tests;

use crate::functions::Context;
use render::Renderer;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) use render::render_file;

/// The master's `salt://` file server as the minion sees it.
pub trait Fileserver: Send + Sync {
    /// Contents of `salt://<path>` (path without the `salt://` prefix), from the master's
    /// file_roots. Errors are human-readable ("salt://x: no such file").
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
    /// Hex SHA-256 of `salt://<path>` as the master sees it.
    fn hash(&self, path: &str) -> Result<String, String>;
    /// Every file path under the roots (for cp.list_master), sorted.
    fn list(&self) -> Result<Vec<String>, String>;
}

/// How a state run was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `test=True`: report what would change, change nothing.
    pub test: bool,
    /// `pillar=` given on the command line: the templates' `pillar` (Halite has no pillar
    /// system of its own yet).
    pub pillar: Map<String, Value>,
    /// `exclude=`: SLS names (or `{"sls": ..}` / `{"id": ..}` maps) left out of the run.
    pub exclude: Vec<Value>,
}

/// A state function's answer: Salt's return value and the job retcode it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub value: Value,
    /// 0, 1 (did not compile: `value` is a list of errors) or 2 (a state failed).
    pub retcode: i64,
}

impl Answer {
    fn errors(errors: Vec<String>) -> Answer {
        Answer { value: Value::Array(errors.into_iter().map(Value::String).collect()), retcode: 1 }
    }

    /// Salt's `_set_retcode`: 2 when any state's result is `False`.
    fn results(running: Map<String, Value>) -> Answer {
        let failed = running.values().any(|ret| ret.get("result") == Some(&Value::Bool(false)));
        Answer { value: Value::Object(running), retcode: if failed { 2 } else { 0 } }
    }
}

/// Everything one run shares: the minion, the file server, the renderer and the options.
pub(crate) struct Run<'a> {
    pub ctx: &'a Context,
    pub fs: &'a dyn Fileserver,
    pub renderer: Renderer,
    pub opts: &'a Options,
}

impl<'a> Run<'a> {
    fn new(ctx: &'a Context, fs: &'a Arc<dyn Fileserver>, opts: &'a Options) -> Run<'a> {
        let renderer = Renderer::new(ctx, fs.clone(), &opts.pillar, opts.test);
        Run { ctx, fs: fs.as_ref(), renderer, opts }
    }
}

/// `state.sls mods`: renders `mods` (with their includes) and runs them.
pub fn sls(ctx: &Context, fs: &Arc<dyn Fileserver>, mods: &[String], opts: &Options) -> Answer {
    let run = Run::new(ctx, fs, opts);
    let (high, errors) = load::Loader::new(&run).render_highstate(mods);
    if !errors.is_empty() {
        return Answer::errors(errors);
    }
    call_high(&run, high)
}

/// `state.highstate`: the SLS files `top.sls` assigns to this minion.
pub fn highstate(ctx: &Context, fs: &Arc<dyn Fileserver>, opts: &Options) -> Answer {
    let run = Run::new(ctx, fs, opts);
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

/// `state.show_top`: `{"base": [sls, ...]}` for this minion.
pub fn show_top(ctx: &Context, fs: &Arc<dyn Fileserver>, opts: &Options) -> Answer {
    let run = Run::new(ctx, fs, opts);
    match top::matches(&run) {
        Ok(mods) if mods.is_empty() => Answer { value: json!({}), retcode: 0 },
        Ok(mods) => Answer { value: json!({ "base": mods }), retcode: 0 },
        Err(top::TopError::Render(message)) => Answer::errors(vec![message]),
        Err(top::TopError::Invalid(errors)) => Answer::errors(errors),
    }
}

/// `state.show_sls mods`: the high data the run would use, without running it.
pub fn show_sls(
    ctx: &Context,
    fs: &Arc<dyn Fileserver>,
    mods: &[String],
    opts: &Options,
) -> Answer {
    let run = Run::new(ctx, fs, opts);
    let (high, mut errors) = load::Loader::new(&run).render_highstate(mods);
    errors.extend(high::verify(&high));
    match errors.is_empty() {
        true => Answer { value: Value::Object(high), retcode: 0 },
        false => Answer::errors(errors),
    }
}

/// `state.show_low_sls mods`: the ordered low chunks the run would execute.
pub fn show_low_sls(
    ctx: &Context,
    fs: &Arc<dyn Fileserver>,
    mods: &[String],
    opts: &Options,
) -> Answer {
    let run = Run::new(ctx, fs, opts);
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
    graph::plan(high::compile(&high))
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
