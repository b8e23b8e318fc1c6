//! The reactor inside the master loop: every drained event is matched against the `reactor:`
//! rules; matching events wait in a queue for the render worker (`render_worker`: the SLS
//! files are rendered in a child process), and the reactions it sends back run on the loop,
//! in event order, like any other work — key moves at once, `local.*` jobs published, runners
//! called.
//!
//! Loop protection: every event carries its causal chain (`Event::chain`). A reaction's
//! events, its jobs and their returns carry the chain plus the tag that caused them; past
//! `reactor_max_depth` the reactor refuses and fires one `salt/reactor/refused` event naming
//! the chain. Budgets: per SLS file and second, at most `reactor_rate_limit` renders and
//! `reactor_render_budget_ms` of render time (checked when the worker takes the next event,
//! so the time of every earlier render is known); `salt/auth` events are budgeted per source
//! address, so a flood of hellos from one place cannot starve the others. A render's memory is
//! capped by the worker's `reactor_render_max_bytes`. The reactor's own events
//! (`salt/reactor/...`) never trigger reactions.

use super::jobs::{JobRequest, Origin};
use super::Core;
use crate::budget::{Budgets, Refusal};
use crate::render_worker::{RenderWorker, Reply};
use halite_common::control::{source_statuses, KeyAction};
use halite_common::event::{object, Event};
use halite_common::reactor::{Client, Reaction, Reactions, Reactor};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Events waiting for the render worker past this many are refused at once.
pub const MAX_QUEUED: usize = 10_000;
/// And past this many bytes of event data (each event may be up to `max_event_bytes`).
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The reactor, its counters (`halite-run reactor.stats`), budgets and render queue.
/// A reaction, as much of it as its failure reports (it may fail later, once the disk answers).
#[derive(Debug, Clone)]
pub struct ReactionRef {
    pub sls: String,
    pub id: String,
    pub line: Option<usize>,
    /// The tag of the event it reacted to.
    pub tag: String,
    /// The causal chain its events carry (the event's, with the event's tag).
    pub chain: Vec<String>,
    /// The render budget keys of the event it came from: parsing and matching its target is
    /// render time too ([`Core::charge_reaction`]).
    pub budget_keys: Vec<String>,
    /// The peer behind the event it came from, where there is one (`Event::source`): its
    /// reactions' jobs share the reactions lane with other sources' (`MAX_PREPARING_PER_SOURCE`).
    pub source: Option<std::net::IpAddr>,
}

pub struct ReactorState {
    pub reactor: Reactor,
    pub stats: Stats,
    /// The same counters per SLS file (`matched`: events that matched one of its rules).
    pub by_sls: BTreeMap<String, Stats>,
    /// Renders and render time per SLS entry (and source) this second.
    budgets: Budgets,
    /// Matched events waiting for the worker, oldest first.
    queue: VecDeque<Queued>,
    /// The data bytes of the events in `queue`.
    queued_bytes: usize,
    /// The event the worker is rendering.
    in_flight: Option<Queued>,
    pub worker: RenderWorker,
}

/// An event waiting for (or in) the worker, with its SLS entries and their budget keys.
struct Queued {
    event: Event,
    /// The size of its data as JSON.
    bytes: usize,
    files: Vec<String>,
    keys: Vec<String>,
}

/// What the reactor did since the master started.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub matched: u64,
    pub rendered: u64,
    pub reactions: u64,
    pub errors: u64,
    /// Every refusal: depth, rate, render time and a full queue.
    pub refused: u64,
    /// Of `refused`: over `reactor_rate_limit`.
    pub rate_refused: u64,
    /// Of `refused`: over `reactor_render_budget_ms`.
    pub budget_refused: u64,
}

impl Stats {
    pub fn to_json(self) -> Value {
        Value::Object(object([
            ("matched", self.matched.into()),
            ("rendered", self.rendered.into()),
            ("reactions", self.reactions.into()),
            ("errors", self.errors.into()),
            ("refused", self.refused.into()),
            ("rate_refused", self.rate_refused.into()),
            ("budget_refused", self.budget_refused.into()),
        ]))
    }
}

impl ReactorState {
    pub fn new(reactor: Reactor, worker: RenderWorker) -> ReactorState {
        ReactorState {
            reactor,
            stats: Stats::default(),
            by_sls: BTreeMap::new(),
            budgets: Budgets::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: None,
            worker,
        }
    }

    /// Bumps one counter of each of `files`.
    fn count<'a>(&mut self, files: impl IntoIterator<Item = &'a String>, bump: fn(&mut Stats)) {
        for sls in files {
            bump(self.by_sls.entry(sls.clone()).or_default());
        }
    }
}

/// Whether an event under `tag` goes to `reactor`: a rule wants it, and it is not the
/// reactor's own (`salt/reactor/…`, its refusals and errors).
pub(crate) fn wanted(reactor: &Reactor, tag: &str) -> bool {
    !tag.starts_with("salt/reactor/") && reactor.wants(tag)
}

impl Core {
    /// [`wanted`] by the reactor in force.
    pub(crate) fn reacts_to(&self, tag: &str) -> bool {
        wanted(&self.reactor.reactor, tag)
    }

    /// Runs the reactor over one drained event: refuses it, or queues it for the worker.
    pub(crate) fn react(&mut self, event: &Event) {
        if !self.reacts_to(&event.tag) {
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
            log::warn!("reactor: refusing '{}' at causal depth {}", event.tag, event.chain.len());
            let mut chain = event.chain.clone();
            chain.push(event.tag.clone());
            let data = [
                ("depth", event.chain.len().into()),
                ("reactor_max_depth", max.into()),
                ("chain", chain.into()),
                ("reason", "causal depth limit reached: the reactor refuses to go on".into()),
            ];
            self.refuse(event, &files, data);
            return;
        }
        let bytes = super::json_len(&event.data);
        let (queued, queued_bytes) = (self.reactor.queue.len(), self.reactor.queued_bytes);
        if queued >= MAX_QUEUED || queued_bytes + bytes > MAX_QUEUED_BYTES {
            log::warn!(
                "reactor: {queued} events ({queued_bytes} bytes) wait for the render worker; \
                 '{}' ({bytes} bytes) refused",
                event.tag
            );
            let data = [
                ("sls", files.clone().into()),
                ("queued", queued.into()),
                ("queued_bytes", queued_bytes.into()),
                ("reactor_queue_max_bytes", MAX_QUEUED_BYTES.into()),
                ("reason", "the render queue is full".into()),
            ];
            self.refuse(event, &files, data);
            return;
        }
        let keys = crate::budget::keys(&files, event.source);
        self.reactor.queued_bytes += bytes;
        self.reactor.queue.push_back(Queued { event: event.clone(), bytes, files, keys });
        self.pump_reactor();
    }

    /// One `salt/reactor/refused` for `event` (`tag`, then `data`, then `source` when known).
    fn refuse<const N: usize>(
        &mut self,
        event: &Event,
        files: &[String],
        data: [(&str, Value); N],
    ) {
        self.reactor.stats.refused += 1;
        self.reactor.count(files, |s| s.refused += 1);
        let mut out = object([("tag", event.tag.as_str().into())]);
        out.extend(data.into_iter().map(|(k, v)| (k.to_string(), v)));
        if let Some(ip) = event.source {
            out.insert("source".into(), ip.to_string().into());
        }
        self.bus.fire("salt/reactor/refused", out);
    }

    /// Hands queued events to the worker while it is idle, refusing those over budget. Not
    /// once the master is stopping: no render starts then (see [`Core::abandon_reactor`]).
    pub(crate) fn pump_reactor(&mut self) {
        while !self.reactor.worker.busy() && !self.stopping {
            let Some(next) = self.reactor.queue.pop_front() else { return };
            self.reactor.queued_bytes -= next.bytes;
            let rate = self.cfg.reactor_rate_limit;
            let budget_ms = self.cfg.reactor_render_budget_ms;
            let budget = Duration::from_millis(budget_ms.into());
            let tag = next.event.tag.clone();
            let now = self.now;
            match self.reactor.budgets.admit(&next.files, &next.keys, rate, budget, now) {
                Some(Refusal::Rate(over)) => {
                    self.reactor.stats.rate_refused += 1;
                    log::warn!("reactor: rate limit reached for {over:?}; '{tag}' refused");
                    let data = [
                        ("sls", over.into()),
                        ("reactor_rate_limit", rate.into()),
                        (
                            "reason",
                            "rate limit: too many renders of these files this second".into(),
                        ),
                    ];
                    self.refuse(&next.event, &next.files, data);
                }
                Some(Refusal::Time(over)) => {
                    self.reactor.stats.budget_refused += 1;
                    log::warn!("reactor: render time budget used for {over:?}; '{tag}' refused");
                    let data = [
                        ("sls", over.into()),
                        ("reactor_render_budget_ms", budget_ms.into()),
                        (
                            "reason",
                            "render time budget: these files rendered for their budget this second"
                                .into(),
                        ),
                    ];
                    self.refuse(&next.event, &next.files, data);
                }
                None => match self.reactor.worker.render(&tag, &next.event.data, now) {
                    Ok(()) => self.reactor.in_flight = Some(next),
                    Err(why) => self.render_failed(next, why),
                },
            }
        }
    }

    /// The worker's socket is ready: applies the answer (or the failure) of the render in
    /// flight, then hands it the next event.
    pub(crate) fn on_render_worker(&mut self) {
        match self.reactor.worker.on_ready() {
            Reply::Nothing => {}
            Reply::Rendered(outcome, took) => {
                if let Some(done) = self.reactor.in_flight.take() {
                    self.reactor.budgets.charge(&done.keys, took);
                    self.apply_reactions(&done.event, &done.keys, outcome);
                }
            }
            Reply::Died(why) => {
                if let Some(done) = self.reactor.in_flight.take() {
                    self.render_failed(done, why);
                }
            }
        }
        self.pump_reactor();
    }

    /// Shutdown: the render in flight and the queued events will not run. Each is said, in
    /// the log and as a `salt/reactor/refused` in the event log, so a stop never drops a
    /// reaction silently.
    pub(crate) fn abandon_reactor(&mut self) {
        let left: Vec<Queued> =
            self.reactor.in_flight.take().into_iter().chain(self.reactor.queue.drain(..)).collect();
        self.reactor.queued_bytes = 0;
        for q in left {
            log::warn!("reactor: the master is stopping; '{}' was not rendered", q.event.tag);
            let data = [("reason", "the master stopped before this event was rendered".into())];
            self.refuse(&q.event, &q.files, data);
        }
    }

    /// Charges the time its target took to parse and match (on the reaction thread) to the
    /// render budget of the event a reaction came from, as if the render had taken it: a
    /// reactor file whose targets are costly (regexes from event data) is refused for the
    /// rest of the second like one whose Jinja is.
    pub(crate) fn charge_reaction(&mut self, r: &ReactionRef, took: Duration) {
        self.reactor.budgets.charge(&r.budget_keys, took);
    }

    /// Housekeeping: kills a render past its deadline; forgets old budget windows.
    pub(crate) fn reactor_tick(&mut self, now: Instant) {
        if let Some(why) = self.reactor.worker.check_deadline(now) {
            if let Some(done) = self.reactor.in_flight.take() {
                self.render_failed(done, why);
            }
            self.pump_reactor();
        }
        self.reactor.budgets.prune(now);
    }

    /// A render that produced nothing because of a limit: one error per SLS entry.
    fn render_failed(&mut self, q: Queued, why: String) {
        log::error!("reactor: rendering for tag '{}' failed: {why}", q.event.tag);
        let mut chain = q.event.chain.clone();
        chain.push(q.event.tag.clone());
        for sls in &q.files {
            self.reactor.stats.errors += 1;
            self.reactor.count([sls], |s| s.errors += 1);
            let data = object([
                ("sls", sls.as_str().into()),
                ("tag", q.event.tag.as_str().into()),
                ("kind", "limit".into()),
                ("line", Value::Null),
                ("message", why.as_str().into()),
            ]);
            self.fire_reactor_error(Value::Object(data), &chain);
        }
    }

    /// Runs what the worker rendered for `event`; errors become `salt/reactor/error` events.
    fn apply_reactions(&mut self, event: &Event, keys: &[String], outcome: Reactions) {
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
            let r = ReactionRef {
                sls: reaction.sls.clone(),
                id: reaction.id.clone(),
                line: reaction.line,
                tag: event.tag.clone(),
                chain: chain.clone(),
                budget_keys: keys.to_vec(),
                source: event.source,
            };
            if let Err(message) = self.run_reaction(&reaction, &r) {
                self.reaction_failed(&r, message);
            }
        }
    }

    /// A reaction failed, now or once the disk answered: counted, logged, and fired as a
    /// `salt/reactor/error` under its chain.
    pub(crate) fn reaction_failed(&mut self, r: &ReactionRef, message: String) {
        self.reactor.stats.errors += 1;
        self.reactor.count([&r.sls], |s| s.errors += 1);
        log::error!("reactor: {} ({}) failed: {message}", r.id, r.sls);
        let data = object([
            ("sls", r.sls.as_str().into()),
            ("tag", r.tag.as_str().into()),
            ("kind", "reaction".into()),
            ("line", r.line.map_or(Value::Null, Value::from)),
            ("id", r.id.as_str().into()),
            ("message", message.into()),
        ]);
        self.fire_reactor_error(Value::Object(data), &r.chain);
    }

    fn fire_reactor_error(&mut self, data: Value, chain: &[String]) {
        let Value::Object(data) = data else { return };
        self.bus.fire_caused("salt/reactor/error", data, chain);
    }

    /// Runs one reaction; `Err` is reported as a `salt/reactor/error` event. Every event the
    /// reaction fires (its job's and runner's too) carries `chain`.
    fn run_reaction(&mut self, r: &Reaction, origin: &ReactionRef) -> Result<(), String> {
        let chain = &origin.chain[..];
        log::info!("reactor: {} ({}) runs {}.{}", r.id, r.sls, r.client.as_str(), r.fun);
        for warning in &r.warnings {
            log::warn!("reactor: {} ({}): {warning}", r.id, r.sls);
        }
        match r.client {
            Client::Wheel => self.run_wheel(r, chain),
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
                let arg = r.salt_arg();
                let request = JobRequest {
                    tgt,
                    tgt_type: r.tgt_type.clone(),
                    fun: r.fun.clone(),
                    arg,
                    user: halite_common::config::process_user(),
                };
                self.publish(request, Origin::Reaction(origin.clone()), false, chain)
            }
            Client::Runner => {
                let arg = r.salt_arg();
                self.run_runner(&r.fun, &arg, "Reactor", chain, Origin::Reaction(origin.clone()));
                Ok(())
            }
            Client::Caller => Err("caller reactions run on a minion's own reactor; the master \
                                   has none"
                .into()),
        }
    }

    /// `wheel.key.accept|reject|delete` with `match` (glob, or list), `include_rejected`,
    /// `include_denied` — the same selection and events as `halite-key`.
    fn run_wheel(&mut self, r: &Reaction, chain: &[String]) -> Result<(), String> {
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
        let from = source_statuses(
            action,
            flag("include_accepted"),
            flag("include_rejected"),
            flag("include_denied"),
        );
        // From the index: a reactor accepting minions one by one must not parse and
        // fingerprint every key each time (that made mass onboarding quadratic).
        let chosen = self.store.select(&glob, &from);
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
        self.bus.fire_caused(format!("salt/wheel/{jid}/new"), new.clone(), chain);
        let result = match super::control::apply(self, action, &chosen, chain) {
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
        self.bus.fire_caused(format!("salt/wheel/{jid}/ret"), ret, chain);
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
