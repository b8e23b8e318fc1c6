//! Salt's beacons on the minion's loop: each configured beacon runs its module every
//! `interval` (the loop's deadlines, no sleeping thread), or at once when its inotify fd is
//! readable; modules that may block (`service`, `log`, `diskusage`) each run on a worker
//! thread of their own. What they
//! return becomes Salt's `salt/beacon/<id>/<name>/<tag>` events, bounded per run.

mod config;
mod diskusage;
mod inotify;
mod load;
mod log_beacon;
pub(crate) mod manage;
mod memusage;
mod service;
mod status;
mod worker;

use halite_common::proto::BeaconEvent;
use mio::{Interest, Registry, Token, Waker};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One event a module returns: Salt's dict, whose `tag` (if any) ends the event's tag.
pub(crate) type Payload = Map<String, Value>;

/// Tokens from here on are beacons' file descriptors (the index of the beacon added).
pub const FIRST_TOKEN: usize = 16;

/// How often a beacon without `interval` runs: Salt's default `loop_interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Most events one run of one beacon may fire; the rest are counted and logged.
pub(crate) const MAX_EVENTS_PER_RUN: usize = 1024;

/// Dropped events are logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Most distinct tags a beacon remembers for `onchangeonly`.
const MAX_REMEMBERED: usize = 1024;

/// Every module Halite has, for `beacons.list_available`.
pub(crate) const MODULES: [&str; 6] =
    ["diskusage", "inotify", "load", "log", "memusage", "service"];

/// A beacon module's running state.
pub(crate) trait Module: Send {
    /// Salt's `beacon(config)`: the events of this run.
    fn check(&mut self) -> Vec<Payload>;
    /// Whether `check` may block (a process, a big file, a hung mount): it then runs on a
    /// worker thread of its own.
    fn blocking(&self) -> bool {
        false
    }
    /// A descriptor for the loop to watch (inotify's).
    fn fd(&self) -> Option<std::os::unix::io::RawFd> {
        None
    }
    /// Reads what the descriptor has; `true` when there is something for `check`.
    fn readable(&mut self) -> bool {
        false
    }
    /// Drops what `readable` queued (a disabled beacon).
    fn discard(&mut self) {}
    /// Changes it had to drop since the last call (queue cap, kernel overflow).
    fn take_dropped(&mut self) -> u64 {
        0
    }
}

/// Where a beacon's module is.
enum Slot {
    Here(Box<dyn Module>),
    /// On its worker thread, running.
    Away,
    /// The worker could not be started.
    Lost,
}

/// One configured beacon.
struct Beacon {
    name: String,
    /// Its configuration as written (what `beacons.list` shows).
    config: Value,
    common: config::Common,
    /// Switched by `beacons.enable_beacon`/`disable_beacon` (and `run_once`).
    enabled: bool,
    due: Instant,
    slot: Slot,
    /// Last payload per tag, for `onchangeonly`.
    last: HashMap<String, Payload>,
    /// The thread a blocking module runs on, one per beacon: a `statvfs` hung on a dead
    /// mount once stalled every other blocking beacon behind it.
    worker: Option<worker::Worker>,
}

/// The minion's beacons.
pub struct Beacons {
    id: String,
    list: Vec<Beacon>,
    /// Configured beacons that are off, with why (`beacons.list` still shows them).
    off: Vec<(String, Value)>,
    /// `beacons.enable`/`disable`: all beacons at once.
    enabled: bool,
    /// The top-level `enabled` item `beacons.list` shows, once set (config or a function).
    global_flag: Option<bool>,
    waker: Arc<Waker>,
    /// Events dropped since the last report (queue caps, no session).
    dropped: u64,
    reported: Instant,
}

impl Beacons {
    /// Checks every configured beacon; a bad one is logged and left off, the others run.
    pub fn new(id: &str, config: &Value, registry: &Registry, waker: Arc<Waker>) -> Beacons {
        let now = Instant::now();
        let mut beacons = Beacons {
            id: id.to_string(),
            list: Vec::new(),
            off: Vec::new(),
            enabled: true,
            global_flag: None,
            waker,
            dropped: 0,
            // The first drop is reported at once.
            reported: now.checked_sub(REPORT_EVERY).unwrap_or(now),
        };
        let entries = match config {
            Value::Null => return beacons,
            Value::Object(map) => map.clone(),
            other => {
                log::error!("beacons are off: beacons must be a mapping, not {other}");
                return beacons;
            }
        };
        for (name, raw) in entries {
            if name == "enabled" {
                beacons.enabled = raw.as_bool().unwrap_or(true);
                beacons.global_flag = Some(beacons.enabled);
                continue;
            }
            match beacons.add(&name, &raw, registry, now) {
                Ok(()) => log::info!("beacon {name} on"),
                Err(why) => {
                    log::error!("beacon {name} is off: {why}");
                    beacons.off.push((name, raw));
                }
            }
        }
        beacons
    }

    fn add(
        &mut self,
        name: &str,
        raw: &Value,
        registry: &Registry,
        now: Instant,
    ) -> Result<(), String> {
        if name.is_empty() || name.contains(['/', '\0']) || name.chars().any(char::is_control) {
            return Err(format!("{name:?} is not a usable beacon name"));
        }
        let mut map = config::list_to_dict(name, raw)?;
        let common = config::common(name, &mut map)?;
        let module: Box<dyn Module> = match common.module.as_str() {
            "inotify" => Box::new(inotify::Inotify::new(&map)?),
            "diskusage" => Box::new(diskusage::DiskUsage::new(&map)?),
            "load" => Box::new(load::Load::new(&map, common.onchangeonly)?),
            "memusage" => Box::new(memusage::MemUsage::new(&map)?),
            "service" => Box::new(service::Service::new(&map)?),
            "log" => Box::new(log_beacon::LogBeacon::new(&map)?),
            "status" => Box::new(status::Status::new(&map)?),
            other => return Err(format!("no beacon module named '{other}'")),
        };
        if let Some(fd) = module.fd() {
            let token = Token(FIRST_TOKEN + self.list.len());
            registry
                .register(&mut mio::unix::SourceFd(&fd), token, Interest::READABLE)
                .map_err(|e| format!("cannot watch its descriptor: {e}"))?;
        }
        self.list.push(Beacon {
            name: name.to_string(),
            config: raw.clone(),
            enabled: common.enabled,
            common,
            due: now,
            slot: Slot::Here(module),
            last: HashMap::new(),
            worker: None,
        });
        Ok(())
    }

    /// When the next beacon is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.list.iter().filter(|b| matches!(b.slot, Slot::Here(_))).map(|b| b.due).min()
    }

    /// A beacon's descriptor is readable.
    pub fn on_ready(&mut self, token: Token) {
        let active = self.enabled;
        let Some(beacon) = token.0.checked_sub(FIRST_TOKEN).and_then(|i| self.list.get_mut(i))
        else {
            return;
        };
        let Slot::Here(module) = &mut beacon.slot else { return };
        if module.readable() {
            if !(active && beacon.enabled) {
                module.discard();
            } else if beacon.common.interval.is_none() {
                beacon.due = Instant::now(); // no interval asked: fire at once
            }
        }
    }

    /// Reads every descriptor now (before an enable, so nothing from the disabled time fires).
    fn drain_ready(&mut self) {
        for i in 0..self.list.len() {
            self.on_ready(Token(FIRST_TOKEN + i));
        }
    }

    /// Runs the beacons that are due; `state_running` skips `disable_during_state_run` ones.
    pub fn tick(&mut self, now: Instant, state_running: bool) -> Vec<BeaconEvent> {
        let mut events = Vec::new();
        for i in 0..self.list.len() {
            let active = self.enabled;
            let beacon = &mut self.list[i];
            if beacon.due > now || !matches!(beacon.slot, Slot::Here(_)) {
                continue;
            }
            beacon.due = now + beacon.common.interval.unwrap_or(DEFAULT_INTERVAL);
            let Slot::Here(module) = &mut beacon.slot else { continue };
            if !(active && beacon.enabled) {
                module.discard();
                continue;
            }
            if beacon.common.disable_during_state_run && state_running {
                log::debug!("beacon {} skipped: a state run is in progress", beacon.name);
                module.discard();
                continue;
            }
            if module.blocking() {
                let Slot::Here(module) = std::mem::replace(&mut beacon.slot, Slot::Away) else {
                    continue;
                };
                self.send_to_worker(i, module);
                continue;
            }
            let payloads = module.check();
            self.dropped += module.take_dropped();
            self.fired(i, payloads, &mut events);
        }
        self.report(now);
        events
    }

    /// Results of the worker threads (after the loop's waker fired).
    pub fn collect(&mut self) -> Vec<BeaconEvent> {
        let mut events = Vec::new();
        // Each result goes back to the beacon whose worker ran it.
        let done: Vec<_> = (self.list.iter().enumerate())
            .filter_map(|(i, b)| b.worker.as_ref().map(|w| (i, w)))
            .flat_map(|(i, w)| w.done().into_iter().map(move |(m, p)| (i, m, p)))
            .collect();
        for (i, module, payloads) in done {
            let Some(beacon) = self.list.get_mut(i) else { continue };
            beacon.slot = Slot::Here(module);
            if self.enabled && beacon.enabled {
                self.fired(i, payloads, &mut events);
            }
        }
        events
    }

    fn send_to_worker(&mut self, i: usize, module: Box<dyn Module>) {
        let beacon = &mut self.list[i];
        if beacon.worker.is_none() {
            match worker::Worker::start(Arc::clone(&self.waker)) {
                Ok(w) => beacon.worker = Some(w),
                Err(e) => {
                    log::error!("beacon {}: cannot start its worker thread: {e}", beacon.name)
                }
            }
        }
        let sent = match &beacon.worker {
            Some(w) => w.run(module),
            None => Err(module),
        };
        if sent.is_err() {
            log::error!("beacon {} is off: its worker thread is gone", beacon.name);
            beacon.slot = Slot::Lost;
        }
    }

    /// Turns a run's payloads into events: Salt's tag, `id`, `onchangeonly`, the cap.
    fn fired(&mut self, i: usize, payloads: Vec<Payload>, events: &mut Vec<BeaconEvent>) {
        let id = &self.id;
        let beacon = &mut self.list[i];
        let over = payloads.len().saturating_sub(MAX_EVENTS_PER_RUN);
        self.dropped += over as u64;
        for mut data in payloads.into_iter().take(MAX_EVENTS_PER_RUN) {
            let suffix = match data.remove("tag") {
                Some(Value::String(tag)) => tag,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let tag = format!("salt/beacon/{id}/{}/{suffix}", beacon.name);
            if !data.contains_key("id") {
                data.insert("id".into(), id.as_str().into());
            }
            if beacon.common.onchangeonly && beacon.common.module != "load" {
                if beacon.last.get(&tag) == Some(&data) {
                    continue;
                }
                if beacon.last.len() >= MAX_REMEMBERED {
                    beacon.last.clear();
                }
                beacon.last.insert(tag.clone(), data.clone());
            }
            events.push(BeaconEvent { tag, data });
        }
        if beacon.common.run_once {
            log::info!("beacon {} ran once; disabling it (run_once)", beacon.name);
            beacon.enabled = false;
        }
    }

    /// Counts events that could not be sent (no session, a full send queue).
    pub fn count_dropped(&mut self, n: usize) {
        self.dropped += n as u64;
    }

    /// Logs what was dropped, at most every 10 seconds.
    fn report(&mut self, now: Instant) {
        if self.dropped > 0 && now.duration_since(self.reported) >= REPORT_EVERY {
            log::warn!(
                "{}: dropped {} beacon events (queues full or no master)",
                self.id,
                self.dropped
            );
            self.dropped = 0;
            self.reported = now;
        }
    }
}

#[cfg(test)]
mod tests;
