//! The reactor inside the master loop: every drained event is matched against the `reactor:`
//! rules; matching SLS files are rendered (`halite_common::reactor`) and their reactions run
//! like any other work — key moves at once, `local.*` jobs published, runners called.
//!
//! Loop protection: every event carries its causal chain (`Event::chain`). A reaction's
//! events, its jobs and their returns carry the chain plus the tag that caused them; past
//! `reactor_max_depth` the reactor refuses and fires one `salt/reactor/refused` event naming
//! the chain. Rendering is also rate-limited per SLS file (`reactor_rate_limit`). The
//! reactor's own events (`salt/reactor/...`) never trigger reactions.

use crate::jobs::JobRequest;
use crate::server::Master;
use halite_common::control::{select, source_statuses, KeyAction};
use halite_common::event::{object, Event};
use halite_common::reactor::{Client, Reaction, Reactor};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The reactor and its counters (`halite-run reactor.stats`).
pub struct ReactorState {
    pub reactor: Reactor,
    pub stats: Stats,
    /// The same counters per SLS file (`matched`: events that matched one of its rules).
    pub by_sls: BTreeMap<String, Stats>,
    /// Per SLS file: the second a window started and renders in it.
    windows: HashMap<String, (Instant, u32)>,
}

/// What the reactor did since the master started.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub matched: u64,
    pub rendered: u64,
    pub reactions: u64,
    pub errors: u64,
    pub refused: u64,
}

impl Stats {
    pub fn to_json(self) -> Value {
        Value::Object(object([
            ("matched", self.matched.into()),
            ("rendered", self.rendered.into()),
            ("reactions", self.reactions.into()),
            ("errors", self.errors.into()),
            ("refused", self.refused.into()),
        ]))
    }
}

impl ReactorState {
    pub fn new(reactor: Reactor) -> ReactorState {
        ReactorState {
            reactor,
            stats: Stats::default(),
            by_sls: BTreeMap::new(),
            windows: HashMap::new(),
        }
    }

    /// Counts a render of `sls`; false when the file is over its per-second budget.
    fn admit(&mut self, sls: &str, limit: u32, now: Instant) -> bool {
        if limit == 0 {
            return true;
        }
        let window = self.windows.entry(sls.to_string()).or_insert((now, 0));
        if now.duration_since(window.0).as_secs() >= 1 {
            *window = (now, 0);
        }
        window.1 += 1;
        window.1 <= limit
    }

    /// Bumps one counter of each of `files`.
    fn count<'a>(&mut self, files: impl IntoIterator<Item = &'a String>, bump: fn(&mut Stats)) {
        for sls in files {
            bump(self.by_sls.entry(sls.clone()).or_default());
        }
    }
}

impl Master {
    /// Runs the reactor over one drained event.
    pub(crate) fn react(&mut self, event: &Event) {
        if event.tag.starts_with("salt/reactor/") || !self.reactor.reactor.wants(&event.tag) {
            return;
        }
        self.reactor.stats.matched += 1;
        let mut files: Vec<String> = Vec::new();
        for rule in self.reactor.reactor.matching_rules(&event.tag) {
            for sls in &rule.sls {
                if !files.contains(sls) {
                    files.push(sls.clone()); // named by two matching rules: counted once
                }
            }
        }
        self.reactor.count(&files, |s| s.matched += 1);
        let max = self.cfg.reactor_max_depth;
        if event.chain.len() >= max {
            self.reactor.stats.refused += 1;
            self.reactor.count(&files, |s| s.refused += 1);
            log::warn!("reactor: refusing '{}' at causal depth {}", event.tag, event.chain.len());
            let mut chain = event.chain.clone();
            chain.push(event.tag.clone());
            let data = object([
                ("tag", event.tag.as_str().into()),
                ("depth", event.chain.len().into()),
                ("reactor_max_depth", max.into()),
                ("chain", chain.into()),
                ("reason", "causal depth limit reached: the reactor refuses to go on".into()),
            ]);
            self.bus.fire("salt/reactor/refused", data);
            return;
        }
        // Rate limit: an event is refused when any of its files is over its budget this second.
        let now = Instant::now();
        let limit = self.cfg.reactor_rate_limit;
        let over: Vec<String> =
            files.iter().filter(|sls| !self.reactor.admit(sls, limit, now)).cloned().collect();
        if !over.is_empty() {
            self.reactor.stats.refused += 1;
            self.reactor.count(&over, |s| s.refused += 1);
            log::warn!("reactor: rate limit reached for {over:?}; '{}' refused", event.tag);
            let data = object([
                ("tag", event.tag.as_str().into()),
                ("sls", over.into()),
                ("reactor_rate_limit", limit.into()),
                ("reason", "rate limit: too many renders of these files this second".into()),
            ]);
            self.bus.fire("salt/reactor/refused", data);
            return;
        }
        let outcome = self.reactor.reactor.react(&event.tag, &event.data);
        self.reactor.stats.rendered += outcome.matched.len() as u64;
        self.reactor.count(&outcome.matched, |s| s.rendered += 1);
        let mut chain = event.chain.clone();
        chain.push(event.tag.clone());
        for error in &outcome.errors {
            self.reactor.stats.errors += 1;
            self.reactor.count([&error.sls], |s| s.errors += 1);
            log::error!(
                "reactor: {} for tag '{}' failed ({}{}): {}",
                error.sls,
                error.tag,
                error.kind,
                error.line.map(|l| format!(", line {l}")).unwrap_or_default(),
                error.message
            );
            self.fire_reactor_error(error.to_json(), &chain);
        }
        for reaction in outcome.reactions {
            self.reactor.stats.reactions += 1;
            self.reactor.count([&reaction.sls], |s| s.reactions += 1);
            self.bus.cause = chain.clone();
            let result = self.run_reaction(&reaction);
            self.bus.cause.clear();
            if let Err(message) = result {
                self.reactor.stats.errors += 1;
                self.reactor.count([&reaction.sls], |s| s.errors += 1);
                log::error!("reactor: {} ({}) failed: {message}", reaction.id, reaction.sls);
                let data = object([
                    ("sls", reaction.sls.as_str().into()),
                    ("tag", event.tag.as_str().into()),
                    ("kind", "reaction".into()),
                    ("line", reaction.line.map_or(Value::Null, Value::from)),
                    ("id", reaction.id.as_str().into()),
                    ("message", message.into()),
                ]);
                self.fire_reactor_error(Value::Object(data), &chain);
            }
        }
    }

    fn fire_reactor_error(&mut self, data: Value, chain: &[String]) {
        let Value::Object(data) = data else { return };
        self.bus.cause = chain.to_vec();
        self.bus.fire("salt/reactor/error", data);
        self.bus.cause.clear();
    }

    /// Runs one reaction; `Err` is reported as a `salt/reactor/error` event.
    fn run_reaction(&mut self, r: &Reaction) -> Result<(), String> {
        log::info!("reactor: {} ({}) runs {}.{}", r.id, r.sls, r.client.as_str(), r.fun);
        for warning in &r.warnings {
            log::warn!("reactor: {} ({}): {warning}", r.id, r.sls);
        }
        match r.client {
            Client::Wheel => self.run_wheel(r),
            Client::Local => {
                let tgt = r.tgt.clone().ok_or("local reaction without tgt")?;
                if let Some(ret) = &r.ret {
                    log::warn!(
                        "reactor: {} ({}): Halite has no returner '{ret}'; the returns go to \
                         the job cache and the event bus only",
                        r.id,
                        r.sls
                    );
                }
                let mut arg = r.arg.clone();
                if !r.kwarg.is_empty() {
                    let mut kwarg = r.kwarg.clone();
                    kwarg.insert("__kwarg__".into(), true.into());
                    arg.push(Value::Object(kwarg));
                }
                let request = JobRequest {
                    tgt,
                    tgt_type: r.tgt_type.clone(),
                    fun: r.fun.clone(),
                    arg,
                    user: halite_common::config::process_user(),
                };
                self.publish(request, None).map(|_| ())
            }
            Client::Runner => {
                let mut arg = r.arg.clone();
                if !r.kwarg.is_empty() {
                    let mut kwarg = r.kwarg.clone();
                    kwarg.insert("__kwarg__".into(), true.into());
                    arg.push(Value::Object(kwarg));
                }
                self.run_runner(&r.fun, &arg, "Reactor").map(|_| ())
            }
            Client::Caller => Err("caller reactions run on a minion's own reactor; the master \
                                   has none"
                .into()),
        }
    }

    /// `wheel.key.accept|reject|delete` with `match` (glob, or list), `include_rejected`,
    /// `include_denied` — the same selection and events as `halite-key`.
    fn run_wheel(&mut self, r: &Reaction) -> Result<(), String> {
        let action = match r.fun.as_str() {
            "key.accept" => KeyAction::Accept,
            "key.reject" => KeyAction::Reject,
            "key.delete" => KeyAction::Delete,
            other => return Err(format!("wheel function '{other}' is not available")),
        };
        let flag = |k: &str| r.kwarg.get(k).is_some_and(|v| v == &Value::Bool(true));
        let glob = match r.kwarg.get("match").or(r.arg.first()) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
            }
            _ => return Err("wheel key functions need `match`".into()),
        };
        let keys = self.store.list().map_err(|e| format!("cannot list keys: {e}"))?;
        let from = source_statuses(
            action,
            flag("include_accepted"),
            flag("include_rejected"),
            flag("include_denied"),
        );
        let chosen: Vec<(String, _)> =
            select(&keys, &glob, &from).into_iter().map(|k| (k.id.clone(), k.status)).collect();
        if chosen.is_empty() {
            log::info!("reactor: {} matched no key for '{glob}'", r.id);
        }
        // Salt's wheel events around the call, as the reactor's user sees them.
        let fun_args: Vec<Value> = match action {
            KeyAction::Accept => vec![
                glob.as_str().into(),
                Value::Object(object([
                    ("include_denied", flag("include_denied").into()),
                    ("include_rejected", flag("include_rejected").into()),
                ])),
            ],
            KeyAction::Reject => vec![
                glob.as_str().into(),
                Value::Object(object([
                    ("include_accepted", flag("include_accepted").into()),
                    ("include_denied", flag("include_denied").into()),
                ])),
            ],
            KeyAction::Delete => vec![glob.as_str().into()],
        };
        let jid = self.jids.allocate();
        let new = object([
            ("fun", format!("wheel.{}", r.fun).into()),
            ("fun_args", fun_args.into()),
            ("jid", jid.clone().into()),
            ("user", "Reactor".into()),
        ]);
        self.bus.fire(format!("salt/wheel/{jid}/new"), new.clone());
        let result = match crate::control::apply(self, action, &chosen) {
            halite_common::control::Response::Error { message } => Err(message),
            halite_common::control::Response::Applied { ids } => Ok(ids),
            _ => Ok(Vec::new()),
        };
        let mut ret = new;
        let user = ret.remove("user").unwrap_or_default();
        let (value, success) = match &result {
            Ok(ids) => (Value::Object(object([("minions", ids.clone().into())])), true),
            Err(message) => (Value::String(message.clone()), false),
        };
        ret.insert("return".into(), value);
        ret.insert("success".into(), success.into());
        ret.insert("user".into(), user);
        self.bus.fire(format!("salt/wheel/{jid}/ret"), ret);
        result.map(|_| ())
    }

    /// `reactor.stats`: the totals, and under `sls` the same counters for each file.
    pub(crate) fn reactor_stats(&self) -> Value {
        let mut stats = self.reactor.stats.to_json();
        let per: Map<String, Value> =
            self.reactor.by_sls.iter().map(|(sls, s)| (sls.clone(), s.to_json())).collect();
        if let Value::Object(map) = &mut stats {
            map.insert("sls".into(), Value::Object(per));
        }
        stats
    }
}

/// `reactor.list`: `[{pattern: [sls, ...]}, ...]` in config order, as the config spells it.
pub fn rules_json(rules: &[halite_common::reactor::Rule]) -> Value {
    rules
        .iter()
        .map(|r| Value::Object(object([(r.pattern.as_str(), r.sls.clone().into())])))
        .collect()
}
