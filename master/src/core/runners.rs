//! Master-side functions for `halite-run` (Salt's runners): `jobs.*`, `manage.*`,
//! `event.send`, `state.orchestrate`. Each run fires `salt/run/<jid>/new` and `.../ret` as
//! Salt does.

use super::jobs::Origin;
use super::Core;
use crate::jobcache::JobCache;
use crate::orchestrate;
use halite_common::control::Response;
use halite_common::event::object;
use halite_common::proto::{hide_pillar, split_args};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Every runner Halite has, for error messages.
pub const RUNNERS: [&str; 13] = [
    "event.send",
    "event_return.status",
    "jobs.list_jobs",
    "jobs.lookup_jid",
    "manage.down",
    "manage.status",
    "manage.up",
    "manage.versions",
    "reactor.list",
    "reactor.reload",
    "reactor.stats",
    "state.orch",
    "state.orchestrate",
];

/// A runner run, waiting for its result.
struct Run {
    jid: String,
    new: Map<String, Value>,
    cause: Vec<String>,
    origin: Origin,
}

impl Core {
    /// Runs `fun`, wrapped in Salt's runner events; `origin` hears the result (the `jobs.*`
    /// runners read the job cache on the disk job thread first). `cause` is the causal chain
    /// of the reaction that runs it (empty for a CLI): every event the run fires carries it.
    pub(crate) fn run_runner(
        &mut self,
        fun: &str,
        arg: &[Value],
        user: &str,
        cause: &[String],
        origin: Origin,
    ) {
        let jid = self.jids.allocate();
        let new = object([
            ("fun", format!("runner.{fun}").into()),
            // Pillar (an orchestration's `pillar=`) is secret: not in events.
            ("fun_args", hide_pillar(arg).into()),
            ("jid", jid.clone().into()),
            ("user", user.into()),
        ]);
        self.bus.fire_caused(format!("salt/run/{jid}/new"), new.clone(), cause);
        let run = Run { jid, new, cause: cause.to_vec(), origin };
        let (args, kwargs) = split_args(arg);
        let first = args
            .first()
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| kwargs.get("jid").and_then(Value::as_str).map(str::to_string));
        if matches!(fun, "state.orchestrate" | "state.orch") {
            return self.orchestrate(run, fun, arg, user);
        }
        if fun == "manage.versions" {
            return self.manage_versions(run, arg, user);
        }
        let read: fn(&JobCache, Option<&str>) -> Result<Value, String> = match fun {
            "jobs.lookup_jid" => |cache, jid| {
                let jid = jid.ok_or("jobs.lookup_jid needs a jid")?;
                cache.lookup(jid).map(Value::Object).map_err(|e| e.to_string())
            },
            "jobs.list_jobs" => {
                |cache, _| cache.list().map(Value::Object).map_err(|e| e.to_string())
            }
            _ => {
                let result = self.runner(fun, arg, cause);
                return self.runner_done(run, result);
            }
        };
        let cache = Arc::clone(&self.jobs);
        self.io.submit(move || {
            let result = read(&super::jobs::lock(&cache), first.as_deref());
            Box::new(move |core: &mut Core| core.runner_done(run, result))
        });
    }

    /// What a thread that talks to this master as a CLI needs to know (an orchestration,
    /// `manage.versions`).
    fn remote_settings(&self, run: &Run, user: &str) -> orchestrate::Settings {
        orchestrate::Settings {
            socket: self.cfg.sock_dir.join(halite_common::control::SOCKET_NAME),
            roots: self.cfg.file_roots.get("base").cloned().unwrap_or_default(),
            timeout: self.cfg.timeout,
            master_id: orchestrate::master_id(),
            user: user.to_string(),
            jid: run.jid.clone(),
            cause: run.cause.clone(),
        }
    }

    /// `manage.versions`: `test.version` to every minion from a thread of its own, which
    /// talks to this master over the control socket; the return comes back as a continuation.
    fn manage_versions(&mut self, run: Run, arg: &[Value], user: &str) {
        if !arg.is_empty() {
            let message = "manage.versions takes no arguments: versions()".to_string();
            return self.runner_done(run, Err(message));
        }
        let settings = self.remote_settings(&run, user);
        let poster = self.io.poster();
        let (jid, cause, origin) = (run.jid.clone(), run.cause.clone(), run.origin.clone());
        let new = run.new.clone();
        let started = crate::manage::spawn(settings, move |result| {
            let run = Run { jid, new, cause, origin };
            let then = Box::new(move |core: &mut Core| core.runner_done(run, result));
            if !poster.post(then) {
                log::warn!("manage.versions finished after the master stopped");
            }
        });
        if let Err(message) = started {
            log::error!("manage.versions: {message}");
            self.runner_done(run, Err(message));
        }
    }

    /// `state.orchestrate`: the orchestration runs on its own thread, which talks to this
    /// master over the control socket; its return comes back as a continuation.
    fn orchestrate(&mut self, run: Run, fun: &str, arg: &[Value], user: &str) {
        let settings = self.remote_settings(&run, user);
        let orch = match orchestrate::Orchestration::from_args(fun, arg, settings) {
            Ok(orch) => orch,
            Err(message) => return self.runner_done(run, Err(message)),
        };
        let poster = self.io.poster();
        let (jid, cause, origin) = (run.jid.clone(), run.cause.clone(), run.origin.clone());
        let new = run.new.clone();
        let started = orchestrate::spawn(orch, move |value| {
            let run = Run { jid, new, cause, origin };
            let then = Box::new(move |core: &mut Core| core.runner_done(run, Ok(value)));
            if !poster.post(then) {
                log::warn!("an orchestration finished after the master stopped");
            }
        });
        if let Err(message) = started {
            log::error!("{fun}: {message}");
            self.runner_done(run, Err(message));
        }
    }

    /// Fires the runner's `ret` event and tells whoever asked. An orchestration's return
    /// (`outputter: highstate`) with a non-zero `retcode` is no success, as in Salt's runner
    /// client (a minion named `retcode` in `jobs.lookup_jid` is not mistaken for one).
    fn runner_done(&mut self, run: Run, result: Result<Value, String>) {
        let Run { jid, new, cause, origin } = run;
        let mut ret = new;
        let success = match &result {
            Ok(value) if value.get("outputter") == Some(&Value::from("highstate")) => {
                value.get("retcode").and_then(Value::as_i64) == Some(0)
            }
            Ok(_) => true,
            Err(_) => false,
        };
        ret.insert("return".into(), result.clone().unwrap_or_else(Value::String));
        ret.insert("success".into(), success.into());
        self.bus.fire_caused(format!("salt/run/{jid}/ret"), ret, &cause);
        self.answer(&origin, result.map(|value| Response::Value { value }));
    }

    /// The runners that answer at once, from memory.
    fn runner(&mut self, fun: &str, arg: &[Value], cause: &[String]) -> Result<Value, String> {
        let (args, kwargs) = split_args(arg);
        match fun {
            "reactor.stats" => Ok(self.reactor_stats()),
            "reactor.reload" => {
                let (rules, problems) = self.reload_reactor()?;
                Ok(Value::Object(object([("rules", rules.into()), ("problems", problems.into())])))
            }
            "reactor.list" => Ok(super::reactor::rules_json(self.reactor.reactor.rules())),
            "event_return.status" => match &self.forward {
                Some(forward) => Ok(forward.status()),
                None => Err("event_return is not configured on this master".into()),
            },
            "manage.up" => Ok(self.live_ids().into()),
            "manage.down" => {
                let live = self.live_ids();
                let accepted = self.accepted_ids()?;
                Ok(accepted.into_iter().filter(|id| !live.contains(id)).collect::<Vec<_>>().into())
            }
            "manage.status" => {
                let live = self.live_ids();
                let accepted = self.accepted_ids()?;
                let down: Vec<String> =
                    accepted.into_iter().filter(|id| !live.contains(id)).collect();
                Ok(Value::Object(object([("up", live.into()), ("down", down.into())])))
            }
            "event.send" => {
                let tag = args
                    .first()
                    .or(kwargs.get("tag"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or("event.send needs a tag")?;
                let tag = tag.as_str();
                if let Some(problem) = halite_common::event::tag_problem(tag) {
                    return Err(format!("event.send: {problem}"));
                }
                let mut data = match args.get(1) {
                    Some(Value::Object(map)) => map.clone(),
                    Some(Value::Null) | None => Map::new(),
                    Some(other) => {
                        return Err(format!("event data must be a mapping, not {other}"))
                    }
                };
                if let Some(Value::Object(map)) = kwargs.get("data") {
                    data.extend(map.clone());
                }
                data.extend(kwargs.into_iter().filter(|(k, _)| k != "data" && k != "tag"));
                // Scripts on the master are trusted with any tag but the jobs' own: a forged
                // return or publish event would corrupt what CLIs and the job cache see.
                if tag.starts_with("salt/job/") || crate::jobcache::is_jid(tag) {
                    return Err(format!("tag '{tag}' is reserved for the master's jobs"));
                }
                if let Some(reason) = super::oversized(&data, self.cfg.max_event_bytes) {
                    return Err(reason);
                }
                self.bus.fire_caused(tag.to_string(), data, cause);
                Ok(Value::Bool(true))
            }
            _ => Err(format!("'{fun}' is not available. Runners: {}", RUNNERS.join(", "))),
        }
    }
}
