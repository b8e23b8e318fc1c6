//! Running a [`Plan`] (Salt's `call_chunks`, `call_chunk`, `_check_requisites`, `call`):
//! each chunk's requisites are judged from the results so far (failed, changed, skipped);
//! the state then runs, is skipped with Salt's comment, or fails with "One or more requisite
//! failed"; every result gets `__sls__`, `__run_num__`, `start_time`, `duration`, `__id__`.
//!
//! Halite departs from Salt in one place, on purpose: a `cmd.run` with `watch` runs only when
//! a watched state changed (Salt would run it every time, and again through `mod_watch`).

use super::checks::run_check;
use super::graph::{tag, Plan, Req};
use super::registry::Call;
use super::value::{py_str, truthy};
use super::Run;
use halite_common::time::Utc;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The comment of a `cmd.run` whose watched states did not change.
pub const WATCH_UNCHANGED: &str = "State was not run because none of the watched states changed";

/// Runs every chunk in order; the results keyed by tag, in execution order.
pub(crate) fn run(run: &Run, plan: &Plan) -> Map<String, Value> {
    let mut engine = Engine { run, plan, rets: vec![None; plan.chunks.len()], run_num: 0 };
    let mut running = Map::new();
    for &i in &plan.order {
        let low = &plan.chunks[i];
        let ret = engine.call_chunk(i);
        let failed = ret.get("result") == Some(&Value::Bool(false));
        log::info!(
            "{}: state {} {}",
            run.host.id,
            tag(low),
            match ret.get("result") {
                Some(Value::Bool(true)) => "succeeded",
                Some(Value::Bool(false)) => "failed",
                _ => "would change",
            }
        );
        running.insert(tag(low), Value::Object(ret.clone()));
        engine.rets[i] = Some(ret);
        if failed && !run.opts.test && low.get("failhard").is_some_and(truthy) {
            log::info!("{}: failhard: stopping after {}", run.host.id, tag(low));
            break;
        }
    }
    running
}

/// How a chunk's requisites stand (Salt's `status`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Met,
    Fail,
    Change,
    Onfail,
    Onchanges,
}

/// Salt's `req_stats` flags.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    met: bool,
    fail: bool,
    change: bool,
    onfail: bool,
    onchanges: bool,
    onchanges_met: bool,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.met |= o.met;
        self.fail |= o.fail;
        self.change |= o.change;
        self.onfail |= o.onfail;
        self.onchanges |= o.onchanges;
        self.onchanges_met |= o.onchanges_met;
    }
}

struct Engine<'a> {
    run: &'a Run<'a>,
    plan: &'a Plan,
    /// Results so far, by chunk.
    rets: Vec<Option<Map<String, Value>>>,
    run_num: i64,
}

/// A state's start: wall clock for `start_time`, monotonic for `duration`.
struct Clock {
    start: Utc,
    instant: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock { start: Utc::now(), instant: Instant::now() }
    }

    /// Python's `time.isoformat()` (no fraction when it is zero).
    fn start_time(&self) -> String {
        let Utc { hour, minute, second, micros, .. } = self.start;
        match micros {
            0 => format!("{hour:02}:{minute:02}:{second:02}"),
            _ => format!("{hour:02}:{minute:02}:{second:02}.{micros:06}"),
        }
    }

    /// Milliseconds, to the microsecond.
    fn duration(&self) -> Value {
        json!(self.instant.elapsed().as_micros() as f64 / 1000.0)
    }
}

impl Engine<'_> {
    fn call_chunk(&mut self, i: usize) -> Map<String, Value> {
        let low = &self.plan.chunks[i];
        let n = self.run_num;
        self.run_num += 1;
        if !self.plan.lost[i].is_empty() {
            return self.not_found(i, n);
        }
        let (status, failed, changed) = self.check_requisites(i);
        match status {
            Status::Fail => {
                let comment = format!("One or more requisite failed: {}", failed.join(", "));
                self.not_run(i, n, false, &comment)
            }
            Status::Onfail => {
                self.not_run(i, n, true, "State was not run because onfail req did not change")
            }
            Status::Onchanges => self.not_run(
                i,
                n,
                true,
                "State was not run because none of the onchanges reqs changed",
            ),
            Status::Change => {
                let clock = Clock::start();
                let state = low.get("state").map(py_str).unwrap_or_default();
                let ret = self.call(i, n, None, &clock);
                let unchanged = ret.get("changes").is_none_or(|c| !truthy(c));
                let skip_watch = ret.get("skip_watch").is_some_and(truthy);
                match unchanged && !skip_watch && self.run.host.modules.has_mod_watch(&state) {
                    true => self.call(i, n, Some(&changed), &clock),
                    false => ret,
                }
            }
            Status::Met if is_watching_cmd_run(low, &self.plan.deps[i]) => {
                self.not_run(i, n, true, WATCH_UNCHANGED)
            }
            Status::Met => self.call(i, n, None, &Clock::start()),
        }
    }

    /// Salt's `_check_requisites`; also the failed requisites (`sls.id`) and the watched
    /// states that changed (`state: id`, for `mod_watch`).
    fn check_requisites(&self, i: usize) -> (Status, Vec<String>, Vec<String>) {
        let mut groups: Vec<(Req, Vec<usize>)> = Vec::new();
        for &(req, dep) in &self.plan.deps[i] {
            match groups.iter_mut().find(|(r, _)| *r == req) {
                Some((_, deps)) => deps.push(dep),
                None => groups.push((req, vec![dep])),
            }
        }
        let mut all = Stats::default();
        let mut failed: Vec<String> = Vec::new();
        let mut changed: Vec<String> = Vec::new();
        for (req, deps) in groups {
            let base = req.base();
            let mut s = Stats::default();
            for dep in deps {
                // Requisites always run first: the graph orders them so.
                let Some(ret) = &self.rets[dep] else { continue };
                let result = ret.get("result");
                let has_changes = ret.get("changes").is_some_and(truthy);
                if result == Some(&Value::Bool(false)) {
                    let low = &self.plan.chunks[dep];
                    let name = format!(
                        "{}.{}",
                        low.get("__sls__").map(py_str).unwrap_or_default(),
                        low.get("__id__").map(py_str).unwrap_or_default()
                    );
                    if !failed.contains(&name) {
                        failed.push(name);
                    }
                }
                if base == Req::Onfail {
                    if result == Some(&Value::Bool(true)) {
                        s.onfail = true;
                        continue;
                    }
                } else if result == Some(&Value::Bool(false)) {
                    s.fail = true;
                    continue;
                }
                if base == Req::Onchanges {
                    match has_changes {
                        true => s.onchanges_met = true,
                        false => s.onchanges = true,
                    }
                    continue;
                }
                if base == Req::Watch && has_changes {
                    s.change = true;
                    let low = &self.plan.chunks[dep];
                    changed.push(format!(
                        "{}: {}",
                        low.get("state").map(py_str).unwrap_or_default(),
                        low.get("__id__").map(py_str).unwrap_or_default()
                    ));
                    continue;
                }
                if ret.get("__state_ran__") != Some(&Value::Bool(false)) {
                    s.met = true;
                }
            }
            if req.is_any() || req == Req::Onfail {
                if s.met || s.change {
                    s.fail = false;
                }
                if s.onchanges_met {
                    s.onchanges = false;
                    s.fail = false;
                }
                if s.onfail && s.met {
                    s.onfail = false;
                }
            }
            if req.is_all() && s.onfail && s.met {
                s.met = false;
            }
            all.merge(s);
        }
        let status = if all.fail {
            Status::Fail
        } else if all.onfail && !all.onchanges_met {
            Status::Onfail
        } else if all.onchanges && !all.onchanges_met {
            Status::Onchanges
        } else if all.change {
            Status::Change
        } else if all.onfail {
            Status::Onfail
        } else {
            Status::Met
        };
        (status, failed, changed)
    }

    /// Salt's `call`: checks the state exists, runs `onlyif`/`unless`/`creates`, runs it
    /// (or its module's `mod_watch`), and stamps the result.
    fn call(
        &self,
        i: usize,
        n: i64,
        mod_watch: Option<&[String]>,
        clock: &Clock,
    ) -> Map<String, Value> {
        let low = &self.plan.chunks[i];
        let state = low.get("state").map(py_str).unwrap_or_default();
        let full = format!("{state}.{}", low.get("fun").map(py_str).unwrap_or_default());
        let name = low.get("name").map(py_str).unwrap_or_default();
        log::info!("{}: running state [{name}] ({full})", self.run.host.id);
        let modules = &*self.run.host.modules;
        let required = modules.required(&full);
        let mut errors = Vec::new();
        match required {
            None => {
                let sls = low.get("__sls__").map(py_str).unwrap_or_default();
                errors.push(format!("State '{full}' was not found in SLS '{sls}'"));
                errors.push(format!("Reason: '{full}' is not available."));
            }
            Some(required) => {
                for param in required.iter().filter(|p| !low.contains_key(**p)) {
                    errors.push(format!("Missing parameter {param} for state {full}"));
                }
            }
        }
        if !errors.is_empty() {
            // Salt returns these without the timing keys.
            let mut ret = Map::new();
            ret.insert("result".into(), Value::Bool(false));
            ret.insert("name".into(), Value::String(name));
            ret.insert("changes".into(), json!({}));
            ret.insert(
                "comment".into(),
                Value::String(errors.iter().map(|e| format!("{e}\n")).collect()),
            );
            ret.insert("__run_num__".into(), json!(n));
            return ret;
        }
        let mut ret = match run_check(self.run, low) {
            Some(skipped) => skipped,
            None => {
                let call = Call { run: self.run, low, name };
                let changed = mod_watch.filter(|_| modules.has_mod_watch(&state));
                modules.call(&call, changed).into_map()
            }
        };
        ret.insert("__sls__".into(), low.get("__sls__").cloned().unwrap_or(Value::Null));
        ret.insert("__run_num__".into(), json!(n));
        ret.insert("start_time".into(), Value::String(clock.start_time()));
        ret.insert("duration".into(), clock.duration());
        ret.insert("__id__".into(), low.get("__id__").cloned().unwrap_or(Value::Null));
        ret
    }

    /// Salt's `_assign_not_run_result_dict`.
    fn not_run(&self, i: usize, n: i64, result: bool, comment: &str) -> Map<String, Value> {
        self.unrun(i, n, result, comment, true)
    }

    /// The result of a state that did not run, with `__state_ran__: false` where Salt adds it.
    fn unrun(
        &self,
        i: usize,
        n: i64,
        result: bool,
        comment: &str,
        mark: bool,
    ) -> Map<String, Value> {
        let clock = Clock::start();
        let low = &self.plan.chunks[i];
        let mut ret = Map::new();
        ret.insert("changes".into(), json!({}));
        ret.insert("result".into(), Value::Bool(result));
        ret.insert("duration".into(), clock.duration());
        ret.insert("start_time".into(), Value::String(clock.start_time()));
        ret.insert("comment".into(), Value::String(comment.into()));
        if mark {
            ret.insert("__state_ran__".into(), Value::Bool(false));
        }
        ret.insert("__run_num__".into(), json!(n));
        for key in ["__sls__", "__id__", "name"] {
            ret.insert(key.into(), low.get(key).cloned().unwrap_or(Value::Null));
        }
        ret
    }

    /// A state whose requisites name no state (Salt 2019–3006's wording).
    fn not_found(&self, i: usize, n: i64) -> Map<String, Value> {
        let mut comment = String::from("The following requisites were not found:\n");
        let mut kinds: Vec<Req> = Vec::new();
        for (req, _) in &self.plan.lost[i] {
            if !kinds.contains(req) {
                kinds.push(*req);
            }
        }
        for kind in kinds {
            comment.push_str(&format!("{}{}:\n", " ".repeat(19), kind.name()));
            for (_, what) in self.plan.lost[i].iter().filter(|(r, _)| *r == kind) {
                comment.push_str(&format!("{}{what}\n", " ".repeat(23)));
            }
        }
        self.unrun(i, n, false, &comment, false)
    }
}

/// A `cmd.run` with `watch` requisites (it runs only when one of them changed).
fn is_watching_cmd_run(low: &Map<String, Value>, deps: &[(Req, usize)]) -> bool {
    low.get("state").and_then(Value::as_str) == Some("cmd")
        && low.get("fun").and_then(Value::as_str) == Some("run")
        && deps.iter().any(|(req, _)| req.base() == Req::Watch)
}
