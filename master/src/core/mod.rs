//! The master's sans-IO core: every decision about minion sessions, CLIs, keys, jobs, events
//! and the reactor, driven by [`Core::handle`]`(now, Input)` and answered with [`Effect`]s
//! (send bytes, change a frame limit, close) that the driver (`server`) carries out. The core
//! owns no socket and reads no clock: time comes in with each input, so tests move it by hand.

mod control;
mod http;
mod jobs;
mod keyflow;
mod metrics;
mod pillar;
mod reactor;
mod runners;
mod sessions;
#[cfg(test)]
mod tests;

pub use http::HttpListener;
pub(crate) use http::MAX_HTTP_BACKLOG;
pub use runners::RUNNERS;

use crate::auth::{AutoList, Policy};
use crate::bus::Bus;
use crate::client::Client;
use crate::jobcache::{JidGen, JobCache};
use crate::keystore::{load_or_create_master_key, KeyStore};
use crate::peer::Peer;
use halite_common::config::MasterConfig;
use halite_common::conn::ConnError;
use halite_common::crypto::KeyPair;
use halite_common::event::object;
use halite_common::files::create_private_dir;
use halite_common::handshake::KeyCache;
use mio::Token;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The render worker's pipes (registered by the worker itself).
pub(crate) const RENDER_WORKER: Token = Token(3);
/// The disk worker's wake-up (a write finished).
pub(crate) const DISK: Token = Token(4);

/// Time a connection gets to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pending minion re-sends its hello every `acceptance_wait_time`; silence this long means gone.
const PENDING_IDLE: Duration = Duration::from_secs(600);
/// The quickest a pending connection may send its next hello.
const MIN_REHELLO: Duration = Duration::from_millis(900);
/// One-shot sessions (`halite-minion call`) one minion may hold open beside its daemon's.
const MAX_ONE_SHOT_SESSIONS: usize = 8;
/// Largest frame before a session is live: a hello is well under 1 KiB.
pub(crate) const MAX_HANDSHAKE_FRAME: usize = 16 * 1024;
/// Largest first session frame (`Ready`, with the minion's grains).
const MAX_READY_FRAME: usize = 1024 * 1024;
/// How often housekeeping runs.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// Why the master could not start.
#[derive(Debug)]
pub enum StartError {
    Io { what: String, source: io::Error },
    AlreadyRunning(PathBuf),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io { what, source } => write!(f, "{what}: {source}"),
            StartError::AlreadyRunning(sock) => {
                write!(f, "another master is already serving {}", sock.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// What happened, as the driver saw it. Connections are named by the driver's tokens.
#[derive(Debug)]
pub enum Input {
    /// A minion connected from `addr`; the connection reads at most
    /// [`MAX_HANDSHAKE_FRAME`]-byte frames until the core says otherwise.
    MinionConnected { conn: Token, addr: SocketAddr },
    /// A CLI connected to the control socket.
    ControlConnected { conn: Token },
    /// An HTTP client connected to `listener` from `addr`.
    HttpConnected { conn: Token, addr: SocketAddr, listener: HttpListener },
    /// Bytes read from an HTTP connection (unframed: the core parses them).
    HttpData { conn: Token, bytes: Vec<u8> },
    /// One whole frame from a connection.
    Frame { conn: Token, frame: Vec<u8> },
    /// The driver closed a connection: the peer hung up, a read or write failed, or its
    /// backlog overflowed. The core forgets it (and fires what a disconnect fires).
    Closed { conn: Token, error: ConnError },
    /// SIGHUP: reopen the event log, reload the reactor rules.
    Reload,
    /// SIGTERM or SIGINT: stop serving.
    Stop,
    /// The disk worker, the job thread, the pillar thread or the log thread woke the loop.
    DiskDone,
    /// The render worker's pipes are ready.
    RenderReady,
    /// The end of a turn (and a deadline passing): housekeeping when due, the turn's returns
    /// handed to the disk thread as one batch, then the event bus drained into a batch for
    /// the log thread (the subscribers and the reactor get it once it is written).
    Tick,
}

/// What the driver must do, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Queue one frame's payload on a connection (the driver frames and flushes it).
    Send { conn: Token, bytes: Vec<u8> },
    /// Frames larger than `max` now close the connection.
    MaxFrame { conn: Token, max: usize },
    /// Write what can be written now, then close. The core has forgotten the connection
    /// and logged why.
    Close { conn: Token, reason: String },
}

/// The master's state and decisions, without sockets.
pub struct Core {
    pub(crate) cfg: MasterConfig,
    /// The time of the input being handled.
    pub(crate) now: Instant,
    fx: Vec<Effect>,
    keys: KeyPair,
    /// Accepted minions' shared keys: their next hello costs no scalar multiplication.
    shared_keys: KeyCache,
    pub(crate) store: KeyStore,
    policy: Policy,
    /// A check of the autosign/autoreject files is running on the job thread.
    lists_in_flight: bool,
    pub(crate) peers: HashMap<Token, Peer>,
    /// Live sessions by minion id.
    pub(crate) live: HashMap<String, Token>,
    /// One-shot sessions (`halite-minion call`) by minion id: at most
    /// [`MAX_ONE_SHOT_SESSIONS`] each, closed with the daemon's session when the key moves.
    pub(crate) one_shot: HashMap<String, Vec<Token>>,
    /// Minion connections counted by `admission` (not live yet), oldest first: tokens only
    /// grow.
    unauthenticated: std::collections::BTreeSet<Token>,
    /// File server requests waiting for the job thread, by minion (at most
    /// `sessions::MAX_FILE_REQUESTS` each).
    files_in_flight: HashMap<String, usize>,
    pub(crate) controls: HashMap<Token, Client>,
    pub(crate) bus: Bus,
    /// The job cache: read and written only by jobs on `io`'s thread.
    pub(crate) jobs: Arc<Mutex<JobCache>>,
    /// Blocking work off the loop (job cache, file server), continuations back on it.
    pub(crate) io: crate::offload::Offload<Core>,
    /// The pillar compiler's thread (renders `pillar_roots` off the loop), continuations back
    /// on it; its own thread so a slow pillar never holds up the job cache.
    pub(crate) pillar_io: crate::offload::Offload<Core>,
    /// Reactions' targets are parsed and matched here (`jobs::Lane`): a costly one holds up
    /// other reactions only, never a CLI's publish or the job cache.
    pub(crate) reaction_io: crate::offload::Offload<Core>,
    pub(crate) pillar: pillar::Pillars,
    pub(crate) jids: JidGen,
    /// Last grains each minion reported (also cached on disk for offline targeting).
    pub(crate) grains: crate::grainscache::Grains,
    /// Written on the job thread only.
    pub(crate) grains_cache: Arc<Mutex<crate::grainscache::GrainsCache>>,
    pub(crate) stopping: bool,
    /// Unauthenticated connections, counted against their caps.
    admission: crate::limits::Admission,
    /// The log lines hostile peers can cause (refused and failed connections, refused
    /// webhook requests), per second.
    quiet: crate::limits::LogLimiter,
    /// The same for what authenticated minions cause (refused events, file and pillar
    /// requests, returns for jobs they were not sent): [`Core::minion_warn`].
    minion_quiet: crate::limits::LogLimiter,
    /// The HTTP listeners' connections and limits (webhooks, metrics).
    http: http::HttpConns,
    /// The metrics endpoint's counters.
    metrics: metrics::Metrics,
    /// New pending keys per source address.
    pub(crate) pending_rate: crate::limits::PendingRate,
    /// Replies waiting for their key writes to reach the disk.
    pub(crate) key_writes: keyflow::KeyWrites,
    config_dir: Option<PathBuf>,
    pub(crate) reactor: reactor::ReactorState,
    /// The file server: used only by jobs on `io`'s thread.
    files: Arc<Mutex<crate::fileserver::FileRoots>>,
    /// Recent jobs: who may return, and the causal chain their returns carry (bounded).
    pub(crate) recent_jobs: HashMap<String, jobs::RecentJob>,
    pub(crate) recent_order: std::collections::VecDeque<String>,
    /// Minion entries in `recent_jobs`, bounded.
    pub(crate) recent_ids: usize,
    /// Jobs read back from the job cache for a late return, apart from `recent_jobs` so that
    /// returns for old jobs never push the running ones out (bounded; see `jobs`).
    pub(crate) old_jobs: jobs::OldJobs,
    /// Events refused from a job (`event.send` run by `halite`): (jid, minion) → why. The
    /// job's return, which follows on the same session, reports the refusal.
    pub(crate) refused_events: HashMap<(String, String), String>,
    /// The log thread: the event log is written there, a batch per turn.
    log_io: crate::offload::Offload<Core>,
    /// Batches handed to the log thread, and the last one it wrote.
    log_submitted: u64,
    log_written: u64,
    /// Bytes of lines handed to the log thread and not yet written, and the most there may be
    /// before the driver stops reading minions and HTTP clients ([`Core::reading_paused`]).
    log_in_flight: usize,
    log_in_flight_max: usize,
    /// Bytes of minion returns (as framed) on their way to the job cache: looked up there or
    /// waiting to be stored, and the most there may be before the driver stops reading
    /// minions and HTTP clients ([`Core::cache_behind`]).
    returns_in_flight: usize,
    returns_in_flight_max: usize,
    /// Sends and closes waiting for the batch (by number) holding every event fired before
    /// them: nobody hears of anything before the events that led to it are in the log.
    held: std::collections::VecDeque<(u64, Effect)>,
    /// Closes of connections refused at accept, which were told nothing and fired nothing:
    /// never held, so a refused connection keeps no descriptor while the log lags.
    refused_now: Vec<Effect>,
    /// `event_return`: the thread forwarding the event log to Redis.
    forward: Option<crate::forward::Forwarder>,
    /// Returns taken this turn, stored together at its end ([`Core::store_returns`]).
    pub(crate) returns_queued: Vec<jobs::QueuedReturn>,
    /// Returns taken and not stored yet, by (jid, id), with the sessions that sent the same
    /// return again meanwhile: their acks wait for the store (a failed store owes none).
    pub(crate) returns_storing: HashMap<(String, String), Vec<Token>>,
    /// Grains of minions that connected this turn, appended together at its end.
    pub(crate) grains_queued: Vec<(String, Arc<str>)>,
    /// Publishes whose target the job thread is parsing or matching, or that wait for it.
    pub(crate) preparing: jobs::Preparing,
    /// Peers owing return acks ([`Peer::acks`]) since this tick, and since the one before:
    /// unless another frame to that minion took them first, they are sent at the second tick
    /// after they were owed (0.5 to 1 s later), so that a minion kept busy with jobs gets
    /// them with its next job.
    pub(crate) acks_owed: [Vec<Token>; 2],
    /// When housekeeping is next due.
    next_tick: Instant,
    /// When the next maintenance pass (presence, job cache pruning) is due.
    next_maintenance: Instant,
    /// Who was present at the last presence pass.
    last_present: Vec<String>,
}

impl Core {
    /// Opens the master key, key store, event log, job and grains caches and the reactor.
    /// `registry` is the driver's: the disk and render workers wake the loop through it.
    pub fn open(
        cfg: MasterConfig,
        registry: &mio::Registry,
        now: Instant,
    ) -> Result<Core, StartError> {
        let what = |what: &'static str| move |source| StartError::Io { what: what.into(), source };
        let keys = load_or_create_master_key(&cfg.pki_dir).map_err(what("master key"))?;
        // One waker per poll: the key writer, the job thread and the pillar thread share it.
        let waker = Arc::new(mio::Waker::new(registry, DISK).map_err(what("poll"))?);
        let wake = move |waker: &Arc<mio::Waker>| {
            let waker = Arc::clone(waker);
            move || {
                let _ = waker.wake();
            }
        };
        let store = KeyStore::open(&cfg.pki_dir, wake(&waker)).map_err(what("pki_dir"))?;
        let io = crate::offload::Offload::spawn("cache", wake(&waker)).map_err(what("thread"))?;
        let pillar_io =
            crate::offload::Offload::spawn("pillar", wake(&waker)).map_err(what("thread"))?;
        let log_io =
            crate::offload::Offload::spawn("eventlog", wake(&waker)).map_err(what("thread"))?;
        let reaction_io =
            crate::offload::Offload::spawn("reactions", wake(&waker)).map_err(what("thread"))?;
        let bus = Bus::open(&cfg.event_log_file, cfg.event_log_max_bytes, cfg.event_log_keep)
            .map_err(what("event_log_file"))?;
        let forward = match &cfg.event_return {
            Some(er) => Some(
                crate::forward::Forwarder::spawn(
                    er.clone(),
                    cfg.id.clone(),
                    &cfg.event_log_file,
                    cfg.event_log_keep,
                )
                .map_err(what("event_return"))?,
            ),
            None => None,
        };
        create_private_dir(&cfg.cachedir).map_err(what("cachedir"))?;
        let jobs = JobCache::open(&cfg.cachedir, cfg.keep_jobs).map_err(what("job cache"))?;
        let (grains_cache, grains) = crate::grainscache::GrainsCache::open(&cfg.cachedir);
        let roots = cfg.file_roots.get("base").cloned().unwrap_or_default();
        let reactor = halite_common::reactor::Reactor::new(cfg.reactor.clone())
            .with_file_roots(roots.clone());
        for problem in reactor.check() {
            log::warn!("reactor: {problem}");
        }
        let files = Arc::new(Mutex::new(crate::fileserver::FileRoots::new(roots.clone())));
        let worker = crate::render_worker::RenderWorker::new(
            registry.try_clone().map_err(what("poll"))?,
            RENDER_WORKER,
            cfg.reactor_render_max_bytes,
            reactor.rules(),
            roots,
        );
        let reactor = reactor::ReactorState::new(reactor, worker);
        let policy = Policy {
            auto_accept: cfg.auto_accept,
            autosign: cfg.autosign_file.as_deref().map(AutoList::read).unwrap_or_default(),
            autoreject: cfg.autoreject_file.as_deref().map(AutoList::read).unwrap_or_default(),
            max_minions: cfg.max_minions,
            max_pending_keys: cfg.max_pending_keys,
        };
        let nofile = crate::limits::nofile_limit();
        let admission = crate::limits::Admission::new(
            nofile,
            cfg.max_pending_connections,
            cfg.max_pending_connections_per_ip,
        );
        log::debug!("RLIMIT_NOFILE {nofile}: {admission:?}");
        let pending_rate = crate::limits::PendingRate::new(cfg.pending_key_rate);
        let http = http::HttpConns::new(&cfg.webhook);
        let log_in_flight_max = cfg.event_log_backlog_bytes;
        let returns_in_flight_max = cfg.job_cache_backlog_bytes;
        let shared_keys = KeyCache::default();
        warm_shared_keys(&keys, &store, shared_keys.room(), io.poster());
        Ok(Core {
            cfg,
            now,
            fx: Vec::new(),
            keys,
            shared_keys,
            store,
            policy,
            lists_in_flight: false,
            peers: HashMap::new(),
            live: HashMap::new(),
            one_shot: HashMap::new(),
            unauthenticated: std::collections::BTreeSet::new(),
            files_in_flight: HashMap::new(),
            controls: HashMap::new(),
            bus,
            jobs: Arc::new(Mutex::new(jobs)),
            io,
            pillar_io,
            reaction_io,
            pillar: Default::default(),
            jids: JidGen::default(),
            grains,
            grains_cache: Arc::new(Mutex::new(grains_cache)),
            stopping: false,
            admission,
            quiet: Default::default(),
            minion_quiet: Default::default(),
            http,
            metrics: Default::default(),
            pending_rate,
            key_writes: Default::default(),
            config_dir: None,
            reactor,
            files,
            recent_jobs: HashMap::new(),
            recent_order: std::collections::VecDeque::new(),
            recent_ids: 0,
            old_jobs: jobs::OldJobs::default(),
            refused_events: HashMap::new(),
            log_io,
            log_submitted: 0,
            log_written: 0,
            log_in_flight: 0,
            log_in_flight_max,
            returns_in_flight: 0,
            returns_in_flight_max,
            held: Default::default(),
            refused_now: Vec::new(),
            forward,
            returns_queued: Vec::new(),
            returns_storing: HashMap::new(),
            grains_queued: Vec::new(),
            preparing: Default::default(),
            acks_owed: [Vec::new(), Vec::new()],
            next_tick: now + TICK,
            next_maintenance: now,
            last_present: Vec::new(),
        })
    }

    /// Where the config came from, so that SIGHUP can re-read the reactor rules.
    pub fn set_config_dir(&mut self, dir: PathBuf) {
        self.config_dir = Some(dir);
    }

    /// Reads the config again and takes its `reactor:` rules, `reactor_max_depth`,
    /// `reactor_rate_limit`, `reactor_render_budget_ms` and `webhook_tokens` (SIGHUP,
    /// `halite-run reactor.reload`); other settings need a restart. Returns the rule count and the
    /// problems found; a config with errors keeps the old rules and says why.
    pub(crate) fn reload_reactor(&mut self) -> Result<(usize, Vec<String>), String> {
        let Some(dir) = &self.config_dir else {
            return Err("the master was started without a config directory".into());
        };
        let loaded = halite_common::config::load_master(dir).map_err(|e| {
            let why = format!("reactor not reloaded, the config has errors:\n{e}");
            log::error!("{why}");
            why
        })?;
        let roots = loaded.config.file_roots.get("base").cloned().unwrap_or_default();
        let reactor = halite_common::reactor::Reactor::new(loaded.config.reactor)
            .with_file_roots(roots.clone());
        let problems = reactor.check();
        for problem in &problems {
            log::warn!("reactor: {problem}");
        }
        let rules = reactor.rules().len();
        log::info!("reactor reloaded: {rules} rules");
        self.reactor.worker.set_rules(reactor.rules(), roots);
        self.reactor.reactor = reactor;
        self.cfg.reactor_max_depth = loaded.config.reactor_max_depth;
        self.cfg.reactor_rate_limit = loaded.config.reactor_rate_limit;
        self.cfg.reactor_render_budget_ms = loaded.config.reactor_render_budget_ms;
        // Rotating a webhook secret needs no restart (the listener's address does).
        if self.cfg.webhook.tokens != loaded.config.webhook.tokens {
            self.http.set_tokens(&loaded.config.webhook);
            self.cfg.webhook.tokens = loaded.config.webhook.tokens;
            log::info!("webhook tokens reloaded: {}", self.cfg.webhook.tokens.len());
        }
        Ok((rules, problems))
    }

    /// Handles one input at time `now`; `out` receives what the driver must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input, out: &mut Vec<Effect>) {
        self.now = now;
        match input {
            Input::MinionConnected { conn, addr } => self.on_connected(conn, addr),
            Input::ControlConnected { conn } => {
                self.controls.insert(conn, Client::default());
            }
            Input::HttpConnected { conn, addr, listener } => {
                self.on_http_connected(conn, addr, listener)
            }
            Input::HttpData { conn, bytes } => self.on_http_data(conn, &bytes),
            Input::Frame { conn, frame } => {
                if self.peers.contains_key(&conn) {
                    if let Some(peer) = self.peers.get_mut(&conn) {
                        peer.heard = now;
                    }
                    if let Err(reason) = self.on_peer_frame(conn, &frame) {
                        self.close_peer(conn, &reason);
                    }
                } else if self.controls.contains_key(&conn) {
                    self.on_control_frame(conn, &frame);
                }
            }
            Input::Closed { conn, error } => {
                let reason = error.to_string();
                if self.peers.contains_key(&conn) {
                    self.close_peer(conn, &reason);
                    return self.emit(out);
                }
                if self.http.has(conn) {
                    self.http_closed(conn, &reason);
                    return self.emit(out);
                }
                let subscriber = self.controls.get(&conn).is_some_and(|c| !c.subs.is_empty());
                if subscriber
                    && matches!(error, ConnError::Backlog { .. } | ConnError::Stalled { .. })
                {
                    log::warn!("dropping event subscriber: too slow, {reason}");
                }
                self.close_control(conn, &reason);
            }
            Input::Reload => {
                let log = self.bus.log();
                self.log_io.submit(move || {
                    crate::bus::lock(&log).reopen();
                    Box::new(|_: &mut Core| {})
                });
                let _ = self.reload_reactor(); // logged either way
            }
            Input::Stop => self.stopping = true,
            Input::DiskDone => {
                self.on_disk();
                self.on_io();
            }
            Input::RenderReady => self.on_render_worker(),
            Input::Tick => {
                if now >= self.next_tick {
                    self.housekeeping(now);
                    self.next_tick = now + TICK;
                }
                self.store_returns();
                self.store_grains();
                self.drain_bus();
            }
        }
        self.emit(out);
    }

    /// Hands the driver what it may carry out now: sends and closes wait (in order) until
    /// the events fired before them are in the log; frame limits and the closes of
    /// connections refused at accept never wait.
    fn emit(&mut self, out: &mut Vec<Effect>) {
        out.append(&mut self.refused_now);
        while self.held.front().is_some_and(|(batch, _)| *batch <= self.log_written) {
            out.extend(self.held.pop_front().map(|(_, effect)| effect));
        }
        let barrier = self.log_submitted + u64::from(self.bus.pending());
        for effect in self.fx.drain(..) {
            match effect {
                Effect::MaxFrame { .. } => out.push(effect),
                _ if self.held.is_empty() && barrier <= self.log_written => out.push(effect),
                _ => self.held.push_back((barrier, effect)),
            }
        }
    }

    /// When the core next wants a [`Input::Tick`]: now while events wait in the bus, or
    /// returns or grains wait to be stored.
    pub fn next_deadline(&self) -> Instant {
        match self.bus.pending()
            || !self.returns_queued.is_empty()
            || !self.grains_queued.is_empty()
        {
            true => self.now,
            false => self.next_tick,
        }
    }

    /// Whether the driver must stop reading minions and HTTP clients (control connections
    /// are still read) until the disk catches up: the event log's or the job cache's.
    pub fn reading_paused(&self) -> bool {
        self.log_behind() || self.cache_behind()
    }

    /// Whether the log thread has more lines to write than `event_log_backlog_bytes`.
    fn log_behind(&self) -> bool {
        self.log_in_flight > self.log_in_flight_max
    }

    /// Whether more returns wait for the job cache than `job_cache_backlog_bytes`.
    fn cache_behind(&self) -> bool {
        self.returns_in_flight > self.returns_in_flight_max
    }

    /// `bytes` of a return go to the job cache (looked up or stored).
    fn returns_in(&mut self, bytes: usize) {
        let was_behind = self.cache_behind();
        self.returns_in_flight += bytes;
        if !was_behind && self.cache_behind() {
            log::warn!(
                "the job cache is {} MiB behind: not reading minions until it catches up",
                self.returns_in_flight >> 20
            );
        }
    }

    /// `bytes` of a return are through with the job cache.
    fn returns_out(&mut self, bytes: usize) {
        let was_behind = self.cache_behind();
        self.returns_in_flight = self.returns_in_flight.saturating_sub(bytes);
        if was_behind && !self.cache_behind() {
            log::info!("the job cache caught up: reading minions again");
        }
    }

    /// One line for systemd's `STATUS=`: the minions connected and the keys waiting.
    pub fn status(&self) -> String {
        format!(
            "{} minions connected, {} accepted, {} pending",
            self.live.len(),
            self.store.count(halite_common::control::KeyStatus::Accepted),
            self.store.count(halite_common::control::KeyStatus::Pending)
        )
    }

    /// Whether a stop was asked for ([`Input::Stop`]).
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// Closes a connection just accepted, past a cap: at once, not held for the log (it was
    /// told nothing; its refusal fires no event, only a log line).
    fn refuse_at_accept(&mut self, conn: Token, reason: String) {
        self.refused_now.push(Effect::Close { conn, reason });
    }

    /// Network connections the core knows (minions live or not, HTTP clients): what every
    /// listener's admission counts against the one descriptor budget.
    fn network_conns(&self) -> usize {
        self.peers.len() + self.http.open()
    }

    /// The last turn after a stop: key writes finished, queued renders refused, the bus
    /// drained and logged; `out` receives what waited for the log (answers, acks), for the
    /// driver's last flush. Connections are left to the driver.
    pub fn shut_down(&mut self, out: &mut Vec<Effect>) {
        self.store_returns();
        self.store_grains();
        // A reaction's parsed target goes on to the job thread (its load's write).
        while self.reaction_io.busy() || self.io.busy() {
            for then in self.reaction_io.wait_idle() {
                then(self);
            }
            for then in self.io.wait_idle() {
                then(self);
            }
        }
        self.send_acks(true);
        for failed in self.store.flush().into_iter().filter_map(|d| d.error) {
            log::error!("key write failed: {failed}");
        }
        self.drain_bus();
        self.wait_logged();
        self.abandon_reactor();
        self.drain_bus();
        self.wait_logged();
        if let Some(forward) = self.forward.as_mut() {
            forward.stop();
        }
        self.emit(out);
    }

    /// Whether the key writer, the job, pillar or reaction thread has work not yet handed
    /// back (tests wait for all four).
    #[cfg(test)]
    fn workers_busy(&self) -> bool {
        self.store.busy() || self.io.busy() || self.pillar_io.busy() || self.reaction_io.busy()
    }

    /// Runs the continuations of the disk jobs that finished (the log thread's first: its
    /// batches release what waits for them).
    fn on_io(&mut self) {
        for then in self.log_io.finished() {
            then(self);
        }
        for then in self.io.finished() {
            then(self);
        }
        for then in self.pillar_io.finished() {
            then(self);
        }
        for then in self.reaction_io.finished() {
            then(self);
        }
    }

    /// Tests: logs what is queued and waits for the log thread until nothing waits for it,
    /// as the driver's turns would.
    #[cfg(test)]
    fn settle_log(&mut self, out: &mut Vec<Effect>) {
        while self.bus.pending() || self.log_io.busy() || !self.held.is_empty() {
            self.drain_bus();
            self.wait_logged();
            self.emit(out);
        }
    }

    /// Blocks until the log thread has written every batch (shutdown, tests).
    fn wait_logged(&mut self) {
        for then in self.log_io.wait_idle() {
            then(self);
        }
    }

    /// The master's public key fingerprint.
    pub fn fingerprint(&self) -> String {
        self.keys.public.fingerprint()
    }

    fn maintenance(&mut self) {
        let cache = Arc::clone(&self.jobs);
        let now = std::time::SystemTime::now();
        self.io.submit(move || {
            let pruned = jobs::lock(&cache).prune(now);
            if pruned > 0 {
                log::info!("pruned {pruned} jobs older than keep_jobs from the job cache");
            }
            Box::new(|_: &mut Core| {})
        });
        if !self.cfg.presence_events {
            return;
        }
        let present = self.live_ids();
        // Both lists are sorted: binary searches keep this O(n log n) at 10,000 minions.
        let absent = |list: &[String], id: &String| list.binary_search(id).is_err();
        let new: Vec<String> =
            present.iter().filter(|id| absent(&self.last_present, id)).cloned().collect();
        let lost: Vec<String> =
            self.last_present.iter().filter(|id| absent(&present, id)).cloned().collect();
        if !new.is_empty() || !lost.is_empty() {
            let change = object([("new", new.into()), ("lost", lost.into())]);
            self.bus.fire("salt/presence/change", change);
        }
        self.bus.fire("salt/presence/present", object([("present", present.clone().into())]));
        self.last_present = present;
    }

    /// Handshake deadlines and keepalive.
    fn housekeeping(&mut self, now: Instant) {
        // Judged before `on_io`, which may bring the log back: connections left unread while it
        // was behind are read by the driver after this turn, not before the deadlines below.
        let was_paused = self.reading_paused();
        self.send_acks(false);
        // A disk worker that died wakes nobody: look for its results (or its death) here too,
        // so replies waiting for key writes get an answer.
        self.on_disk();
        self.on_io();
        self.reactor_tick(now);
        self.pending_rate.prune(now);
        self.old_jobs_tick(now);
        if let Some(n) = self.quiet.flush(now).map(|s| s.lines) {
            log::warn!(
                "{n} more unauthenticated connections were refused or closed in the last \
                 second or so (one line each suppressed)"
            );
        }
        if let Some(said) = self.minion_quiet.flush(now) {
            let most = said.loudest.map(|(id, n)| format!(", {n} of them from minion {id}"));
            log::warn!(
                "{} more requests from minions were refused or ignored in the last second or \
                 so (one line each suppressed{}; at most {} lines a second about one minion)",
                said.lines,
                most.unwrap_or_default(),
                crate::limits::LOG_LINES_PER_KEY
            );
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.cfg.loop_interval;
            self.maintenance();
        }
        // While a disk is too far behind, minion and HTTP connections are not read: none can
        // be judged silent or slow (their frames wait unread), so no deadline applies until
        // it caught up and the driver read them (before the next tick).
        if !was_paused && !self.reading_paused() {
            self.peer_deadlines(now);
            self.http_deadlines(now);
        }
        self.refresh_auto_lists();
        self.job_timeouts(now);
    }

    /// Reads `autosign_file` and `autoreject_file` again on the job thread if they changed
    /// (one check in flight at a time): the loop decides from the lists it holds.
    fn refresh_auto_lists(&mut self) {
        let files = (self.cfg.autosign_file.clone(), self.cfg.autoreject_file.clone());
        if self.lists_in_flight || files == (None, None) {
            return;
        }
        self.lists_in_flight = true;
        let (sign, reject) = (self.policy.autosign.stamp(), self.policy.autoreject.stamp());
        self.io.submit(move || {
            let read = |file: Option<PathBuf>, since| {
                file.and_then(|file| AutoList::changed(&file, since).map(|list| (file, list)))
            };
            let (sign, reject) = (read(files.0, sign), read(files.1, reject));
            Box::new(move |core: &mut Core| {
                core.lists_in_flight = false;
                if let Some((file, sign)) = sign {
                    sign.announce(&file);
                    core.policy.autosign = sign;
                }
                if let Some((file, reject)) = reject {
                    reject.announce(&file);
                    core.policy.autoreject = reject;
                }
            })
        });
    }

    /// Drains the event queue into a batch for the log thread; once it is written,
    /// [`Core::on_logged`] hands it on.
    fn drain_bus(&mut self) {
        // Whether the reactor reacts is decided now, with the rules in force at the drain.
        let reactor = &self.reactor.reactor;
        let events = self.bus.drain(|tag| reactor::wanted(reactor, tag));
        if events.is_empty() {
            return;
        }
        self.log_submitted += 1;
        let was_behind = self.log_behind();
        self.log_in_flight += events.iter().map(|l| l.line.len() + 1).sum::<usize>();
        if !was_behind && self.log_behind() {
            log::warn!(
                "the event log is {} MiB behind: not reading minions until it catches up",
                self.log_in_flight >> 20
            );
        }
        let (batch, log) = (self.log_submitted, self.bus.log());
        self.log_io.submit(move || {
            let counts = crate::bus::lock(&log).append_all(&events);
            Box::new(move |core: &mut Core| core.on_logged(batch, events, counts))
        });
    }

    /// A batch is in the log: what waited for it may go out, then every subscriber that wants
    /// each event gets it (a subscriber whose backlog is full is dropped; the loop never waits
    /// for one), then the reactor, then the forwarder hears of it.
    fn on_logged(
        &mut self,
        batch: u64,
        events: Vec<crate::bus::Logged>,
        counts: crate::bus::LogCounts,
    ) {
        self.log_written = batch;
        let was_behind = self.log_behind();
        let written = events.iter().map(|l| l.line.len() + 1).sum::<usize>();
        self.log_in_flight = self.log_in_flight.saturating_sub(written);
        if was_behind && !self.log_behind() {
            log::info!("the event log caught up: reading minions again");
        }
        self.bus.logged(counts);
        self.deliver(&events);
        for logged in &events {
            self.metrics.count_event(&logged.event.tag);
            if logged.has_data {
                self.react(&logged.event);
            }
        }
        if let Some(forward) = &self.forward {
            forward.wake();
        }
    }
}

/// Computes the shared keys of the accepted minions (as many as the cache has room for) on a
/// thread of its own, handing them to the loop in chunks: a master restarted under a fleet
/// that reconnects at once answers their hellos without a scalar multiplication each.
fn warm_shared_keys(
    keys: &KeyPair,
    store: &KeyStore,
    room: usize,
    poster: crate::offload::Poster<Core>,
) {
    use halite_common::control::KeyStatus::Accepted;
    use halite_common::crypto::PublicKey;
    let accepted: Vec<PublicKey> = store
        .ids_iter(Accepted)
        .filter_map(|id| store.read(Accepted, id).ok().flatten())
        .filter_map(|pem| PublicKey::from_pem(&pem).ok())
        .take(room)
        .collect();
    if accepted.is_empty() {
        return;
    }
    let master = keys.duplicate();
    let spawned = std::thread::Builder::new().name("keywarm".into()).spawn(move || {
        let started = std::time::Instant::now();
        for chunk in accepted.chunks(256) {
            let shared: Vec<_> = chunk
                .iter()
                .filter_map(|p| Some((p.clone(), master.shared_with(p).ok()?)))
                .collect();
            let then = move |core: &mut Core| {
                for (public, key) in shared {
                    core.shared_keys.warm(&public, key);
                }
            };
            if !poster.post(Box::new(then)) {
                return; // the master stopped
            }
        }
        let ms = started.elapsed().as_millis();
        log::info!("shared keys of {} accepted minions computed in {ms} ms", accepted.len());
    });
    if let Err(e) = spawned {
        log::warn!("cannot start the key warm-up thread ({e}); each minion's first hello pays");
    }
}

/// Why event data is refused for size, if it is.
pub(crate) fn oversized(data: &impl serde::Serialize, max: usize) -> Option<String> {
    over_max(json_len(data), max)
}

/// Why event data of `len` bytes (as JSON) is refused, if it is.
pub(crate) fn over_max(len: usize, max: usize) -> Option<String> {
    (len > max).then(|| format!("event data is {len} bytes, over max_event_bytes {max}"))
}

/// The length of `value` as JSON, counted without building the text.
pub(crate) fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
