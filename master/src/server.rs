//! The master's one `mio` loop: minion listener, control socket, signals, and every
//! connection. One turn = poll until the next deadline → dispatch readiness → housekeeping
//! (handshake deadlines, keepalive) → drain the event bus.

use crate::auth::{self, Policy};
use crate::bus::Bus;
use crate::client::Client;
use crate::control;
use crate::jobcache::{JidGen, JobCache};
use crate::keyflow::{accepted_key_is, KEY_GONE};
use crate::keystore::{load_or_create_master_key, KeyStore};
use crate::peer::{keepalive, Keepalive, Peer, Phase};
use halite_common::config::MasterConfig;
use halite_common::conn::Conn;
use halite_common::control::{Response, SOCKET_NAME};
use halite_common::crypto::KeyPair;
use halite_common::event::{minion_tag_refusal, object, wrap_minion_event};
use halite_common::files::create_private_dir;
use halite_common::handshake::{self, HelloIn, KeyCache};
use halite_common::proto::{AuthStatus, ToMaster, ToMinion};
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token};
use serde_json::{Map, Value};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const CONTROL: Token = Token(1);
const SIGNALS: Token = Token(2);
const RENDER_WORKER: Token = Token(3);
/// The disk worker's wake-up (a key write finished).
const DISK: Token = Token(4);
const FIRST_CONN: usize = 5;

/// Time a connection gets to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pending minion re-sends its hello every `acceptance_wait_time`; silence this long means gone.
const PENDING_IDLE: Duration = Duration::from_secs(600);
/// The quickest a pending connection may send its next hello.
const MIN_REHELLO: Duration = Duration::from_millis(900);
/// Largest frame before a session is live: a hello is well under 1 KiB.
const MAX_HANDSHAKE_FRAME: usize = 16 * 1024;
/// Largest first session frame (`Ready`, with the minion's grains).
const MAX_READY_FRAME: usize = 1024 * 1024;
/// How often housekeeping runs.
const TICK: Duration = Duration::from_millis(500);
/// Unsent output allowed per minion before it is cut off.
const MAX_MINION_BACKLOG: usize = 64 * 1024 * 1024;
/// Unsent output allowed per control client.
const MAX_CONTROL_BACKLOG: usize = 16 * 1024 * 1024;

/// Why the master could not start.
#[derive(Debug)]
pub enum StartError {
    Io { what: String, source: io::Error },
    AlreadyRunning(PathBuf),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Io { what, source } => write!(f, "{what}: {source}"),
            StartError::AlreadyRunning(sock) => {
                write!(f, "another master is already serving {}", sock.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// The running master.
pub struct Master {
    pub(crate) cfg: MasterConfig,
    poll: Poll,
    listener: TcpListener,
    control: UnixListener,
    control_path: PathBuf,
    signals: Signals,
    keys: KeyPair,
    /// Accepted minions' shared keys: their next hello costs no scalar multiplication.
    shared_keys: KeyCache,
    pub(crate) store: KeyStore,
    policy: Policy,
    pub(crate) peers: HashMap<Token, Peer>,
    /// Live sessions by minion id.
    pub(crate) live: HashMap<String, Token>,
    pub(crate) controls: HashMap<Token, Client>,
    pub(crate) bus: Bus,
    pub(crate) jobs: JobCache,
    pub(crate) jids: JidGen,
    /// Last grains each minion reported (also cached on disk for offline targeting).
    pub(crate) grains: HashMap<String, Map<String, Value>>,
    pub(crate) grains_cache: crate::grainscache::GrainsCache,
    next_token: usize,
    /// Connections whose read budget ran out: read again next turn.
    again: Vec<Token>,
    pub(crate) stopping: bool,
    /// An accept failed (e.g. out of file descriptors): retry at the next tick.
    accept_retry: bool,
    /// Unauthenticated connections, counted against their caps.
    admission: crate::limits::Admission,
    /// New pending keys per source address.
    pub(crate) pending_rate: crate::limits::PendingRate,
    /// A descriptor held back for EMFILE: closed to accept (and close) one connection, so the
    /// listen queue drains instead of stalling, then opened again.
    reserve_fd: Option<std::fs::File>,
    /// Replies waiting for their key writes to reach the disk.
    pub(crate) key_writes: crate::keyflow::KeyWrites,
    config_dir: Option<PathBuf>,
    pub(crate) reactor: crate::reactor::ReactorState,
    files: crate::fileserver::FileRoots,
    /// Recent jobs: who may return, and the causal chain their returns carry (bounded).
    pub(crate) recent_jobs: HashMap<String, crate::jobs::RecentJob>,
    pub(crate) recent_order: std::collections::VecDeque<String>,
    /// Minion entries in `recent_jobs`, bounded.
    pub(crate) recent_ids: usize,
    /// Events refused from a job (`event.send` run by `halite`): (jid, minion) → why. The
    /// job's return, which follows on the same session, reports the refusal.
    pub(crate) refused_events: HashMap<(String, String), String>,
    /// When the next maintenance pass (presence, job cache pruning) is due.
    next_maintenance: Instant,
    /// Who was present at the last presence pass.
    last_present: Vec<String>,
}

impl Master {
    /// Opens keys, event log, listener and control socket; nothing is served until [`Master::run`].
    pub fn bind(cfg: MasterConfig) -> Result<Master, StartError> {
        halite_common::crypto::init();
        let keys = load_or_create_master_key(&cfg.pki_dir).map_err(io_err("master key"))?;
        let poll = Poll::new().map_err(io_err("poll"))?;
        let waker = mio::Waker::new(poll.registry(), DISK).map_err(io_err("poll"))?;
        let store = KeyStore::open(&cfg.pki_dir, move || {
            let _ = waker.wake();
        })
        .map_err(io_err("pki_dir"))?;
        let bus = Bus::open(&cfg.event_log_file, cfg.event_log_max_bytes, cfg.event_log_keep)
            .map_err(io_err("event_log_file"))?;
        create_private_dir(&cfg.cachedir).map_err(io_err("cachedir"))?;
        let jobs = JobCache::open(&cfg.cachedir, cfg.keep_jobs).map_err(io_err("job cache"))?;
        let (grains_cache, grains) = crate::grainscache::GrainsCache::open(&cfg.cachedir);
        let reactor = halite_common::reactor::Reactor::new(cfg.reactor.clone())
            .with_file_roots(cfg.file_roots.get("base").cloned().unwrap_or_default());
        for problem in reactor.check() {
            log::warn!("reactor: {problem}");
        }
        let files = crate::fileserver::FileRoots::new(
            cfg.file_roots.get("base").cloned().unwrap_or_default(),
        );
        create_private_dir(&cfg.sock_dir).map_err(io_err("sock_dir"))?;
        let control_path = cfg.sock_dir.join(SOCKET_NAME);
        if std::os::unix::net::UnixStream::connect(&control_path).is_ok() {
            return Err(StartError::AlreadyRunning(control_path));
        }
        let _ = std::fs::remove_file(&control_path);
        let mut control = UnixListener::bind(&control_path)
            .map_err(io_err(format!("control socket {}", control_path.display())))?;
        std::fs::set_permissions(&control_path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("control socket mode"))?;
        let addr = SocketAddr::new(cfg.interface, cfg.ret_port);
        let mut listener = TcpListener::bind(addr).map_err(io_err(format!("listen on {addr}")))?;
        set_backlog(&listener, cfg.zmq_backlog).map_err(io_err("zmq_backlog"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(io_err("signals"))?;
        let registry = poll.registry();
        registry.register(&mut listener, LISTENER, Interest::READABLE).map_err(io_err("poll"))?;
        registry.register(&mut control, CONTROL, Interest::READABLE).map_err(io_err("poll"))?;
        registry.register(&mut signals, SIGNALS, Interest::READABLE).map_err(io_err("poll"))?;
        let worker = crate::render_worker::RenderWorker::new(
            registry.try_clone().map_err(io_err("poll"))?,
            RENDER_WORKER,
            cfg.reactor_render_max_bytes,
            reactor.rules(),
            cfg.file_roots.get("base").cloned().unwrap_or_default(),
        );
        let reactor = crate::reactor::ReactorState::new(reactor, worker);
        let policy = Policy {
            auto_accept: cfg.auto_accept,
            autosign_file: cfg.autosign_file.clone(),
            autoreject_file: cfg.autoreject_file.clone(),
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
        let reserve_fd = Some(std::fs::File::open("/dev/null").map_err(io_err("/dev/null"))?);
        Ok(Master {
            cfg,
            poll,
            listener,
            control,
            control_path,
            signals,
            keys,
            shared_keys: KeyCache::default(),
            store,
            policy,
            peers: HashMap::new(),
            live: HashMap::new(),
            controls: HashMap::new(),
            bus,
            jobs,
            jids: JidGen::default(),
            grains,
            grains_cache,
            next_token: FIRST_CONN,
            again: Vec::new(),
            stopping: false,
            accept_retry: false,
            admission,
            pending_rate,
            reserve_fd,
            key_writes: Default::default(),
            config_dir: None,
            reactor,
            files,
            recent_jobs: HashMap::new(),
            recent_order: std::collections::VecDeque::new(),
            recent_ids: 0,
            refused_events: HashMap::new(),
            next_maintenance: Instant::now(),
            last_present: Vec::new(),
        })
    }

    /// Where the config came from, so that SIGHUP can re-read the reactor rules.
    pub fn with_config_dir(mut self, dir: PathBuf) -> Master {
        self.config_dir = Some(dir);
        self
    }

    /// SIGHUP: re-reads the config and swaps in its `reactor:` rules. Other settings need a
    /// restart; a config that no longer parses keeps the running rules.
    /// Reads the config again and takes its `reactor:` rules, `reactor_max_depth` and
    /// `reactor_rate_limit` (SIGHUP, `halite-run reactor.reload`). Returns the rule count and
    /// the problems found; a config with errors keeps the old rules and says why.
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
        Ok((rules, problems))
    }

    /// The address minions connect to (the real port when `ret_port` is 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(mut self) -> io::Result<()> {
        log::info!(
            "halite-master ready: minions on {}, control socket {}, fingerprint {}",
            self.local_addr()?,
            self.control_path.display(),
            self.keys.public.fingerprint()
        );
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        while !self.stopping {
            let timeout = match self.again.is_empty() && !self.bus.pending() {
                true => next_tick.saturating_duration_since(Instant::now()),
                false => Duration::ZERO,
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_minions(),
                    CONTROL => self.accept_controls(),
                    SIGNALS => self.on_signals(),
                    RENDER_WORKER => self.on_render_worker(),
                    DISK => self.on_disk(),
                    token if self.peers.contains_key(&token) => self.on_peer(token),
                    token if self.controls.contains_key(&token) => self.on_control(token),
                    _ => {}
                }
            }
            for token in std::mem::take(&mut self.again) {
                match self.peers.contains_key(&token) {
                    true => self.on_peer(token),
                    false => self.on_control(token),
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.housekeeping(now);
                next_tick = now + TICK;
            }
            self.drain_bus();
        }
        log::info!("halite-master stopping");
        for failed in self.store.flush().into_iter().filter_map(|d| d.error) {
            log::error!("key write failed: {failed}");
        }
        self.drain_bus();
        self.abandon_reactor();
        self.drain_bus();
        let _ = std::fs::remove_file(&self.control_path);
        Ok(())
    }

    fn token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    // -----------------------------------------------------------------------------------------
    // Signals

    fn on_signals(&mut self) {
        for signal in self.signals.pending() {
            match signal {
                SIGHUP => {
                    self.bus.reopen_log();
                    let _ = self.reload_reactor(); // logged either way
                }
                _ => {
                    log::info!("received signal {signal}, shutting down");
                    self.stopping = true;
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Minion connections

    fn accept_minions(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    if let Err(why) = self.admission.admit(addr.ip(), self.peers.len()) {
                        // Dropped unread: a flood costs one accept and one close each.
                        log::warn!("refused connection from {addr}: {why}");
                        continue;
                    }
                    let token = self.token();
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE)
                    {
                        log::error!("cannot register connection from {addr}: {e}");
                        self.admission.release(addr.ip());
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    // Until the session is live only small frames are read: no one can make the
                    // master buffer megabytes before proving who they are.
                    let conn = Conn::new(stream, MAX_HANDSHAKE_FRAME, MAX_MINION_BACKLOG);
                    let mut peer = Peer::new(conn, addr, Instant::now());
                    log::debug!("connection from {addr}");
                    let greeting = handshake::greeting(&self.keys.public);
                    // A fresh connection has an empty backlog; this cannot fail.
                    let _ = peer.conn.send(&greeting);
                    self.peers.insert(token, peer);
                    self.flush_peer(token);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_descriptors(&e) && self.shed_one(Listener::Minions) => {}
                Err(e) => {
                    // Readiness is edge-triggered: connections already queued would wait for
                    // the next newcomer, so housekeeping retries.
                    log::error!("accept failed: {e}");
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }

    /// Out of descriptors: closes the reserve one to accept a connection, closes that at once
    /// (a refusal the peer sees, instead of a silent listen queue), and takes the reserve back.
    /// `true` when one was shed and another may wait; `false` when the queue is empty (Linux
    /// reports EMFILE before looking at the queue) or there is no reserve to spend.
    fn shed_one(&mut self, which: Listener) -> bool {
        if self.reserve_fd.take().is_none() {
            return false;
        }
        let accepted = match which {
            Listener::Minions => self.listener.accept().map(|(_, addr)| addr.to_string()),
            Listener::Control => self.control.accept().map(|_| "a control client".to_string()),
        };
        let shed = match accepted {
            Ok(who) => {
                log::warn!("refused connection from {who}: out of file descriptors");
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                log::error!("accept failed even with the reserve descriptor: {e}");
                false
            }
        };
        self.reserve_fd = std::fs::File::open("/dev/null").ok();
        self.accept_retry = true;
        shed && self.reserve_fd.is_some()
    }

    fn on_peer(&mut self, token: Token) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        let turn = peer.conn.read();
        if !turn.frames.is_empty() {
            peer.heard = Instant::now();
        }
        if turn.more {
            self.again.push(token);
        }
        for frame in turn.frames {
            if let Err(reason) = self.on_peer_frame(token, &frame) {
                self.close_peer(token, &reason);
                return;
            }
        }
        if let Some(reason) = turn.closed {
            self.close_peer(token, &reason.to_string());
            return;
        }
        self.flush_peer(token);
    }

    /// Handles one frame from a minion; `Err` closes the connection with that reason.
    fn on_peer_frame(&mut self, token: Token, frame: &[u8]) -> Result<(), String> {
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        if peer.parked {
            return Err("sent a frame before its verdict".into());
        }
        match &mut peer.phase {
            Phase::AwaitHello => {
                let hello = handshake::open_hello(&self.keys, &mut self.shared_keys, frame)
                    .map_err(|e| format!("refused hello: {e}"))?;
                self.authenticate(token, hello)
            }
            Phase::Pending(pending) => {
                // A pending minion asks again every acceptance_wait_time (at least 1 s), for
                // the same id. Anything else is a flood of key files and auth events.
                if peer.since.elapsed() < MIN_REHELLO {
                    return Err("hellos too fast while pending".into());
                }
                let id = pending.id.clone();
                let hello = handshake::open_hello(&self.keys, &mut self.shared_keys, frame)
                    .map_err(|e| format!("refused hello: {e}"))?;
                if hello.id != id {
                    return Err(format!("pending as '{id}', asked again as '{}'", hello.id));
                }
                self.authenticate(token, hello)
            }
            Phase::AwaitReady { id, session, key } => {
                let msg: ToMaster =
                    session.open(frame).map_err(|e| format!("bad session frame: {e}"))?;
                let ToMaster::Ready { grains, transient } = msg else {
                    return Err("first session message was not Ready".into());
                };
                let id = id.clone();
                if !accepted_key_is(&self.store, &id, key) {
                    return Err(format!("{KEY_GONE}: {id}"));
                }
                let Phase::AwaitReady { session, .. } =
                    std::mem::replace(&mut peer.phase, Phase::AwaitHello)
                else {
                    unreachable!()
                };
                peer.phase = Phase::Live { id: id.clone(), session };
                peer.since = Instant::now();
                self.admission.release(peer.addr.ip());
                peer.conn.set_max_frame(self.cfg.max_frame_bytes);
                if transient {
                    log::info!("minion {} opened a one-shot session", peer.label());
                    return Ok(());
                }
                log::info!("minion {} authenticated", peer.label());
                let mut grains = grains;
                grains.insert("id".into(), id.clone().into());
                self.remember_grains(&id, grains);
                if let Some(old) = self.live.insert(id.clone(), token) {
                    if old != token {
                        self.close_peer(old, "replaced by a new session of the same minion");
                    }
                }
                Ok(())
            }
            Phase::Live { id, session, .. } => {
                let msg: ToMaster =
                    session.open(frame).map_err(|e| format!("bad session frame: {e}"))?;
                let id = id.clone();
                self.on_session_message(token, &id, msg)
            }
        }
    }

    fn on_session_message(&mut self, token: Token, id: &str, msg: ToMaster) -> Result<(), String> {
        match msg {
            ToMaster::Ping { seq } => self.send_session(token, &ToMinion::Pong { seq }),
            ToMaster::Pong { .. } => Ok(()),
            ToMaster::Ready { .. } => Err("Ready sent twice".into()),
            ToMaster::FileRequest { req, op } => {
                let reply = self.files.answer(&op);
                self.send_session(token, &ToMinion::FileReply { req, reply })
            }
            ToMaster::Return(ret) => {
                let jid = ret.jid.clone();
                match self.on_return(id, ret) {
                    true => self.send_session(token, &ToMinion::ReturnAck { jid }),
                    // Not stored: no ack, so the minion sends it again after a reconnect.
                    false => Ok(()),
                }
            }
            ToMaster::Event { tag, data, ts, ack, jid } => {
                let refusal = minion_tag_refusal(&tag, id)
                    .or_else(|| oversized(&data, self.cfg.max_event_bytes));
                if let Some(reason) = refusal {
                    log::warn!("refused event from minion {id}: {reason}");
                    // Only for a job this minion was sent: a made-up jid must not crowd out
                    // real refusals.
                    let sent = jid.as_ref().and_then(|j| self.recent_jobs.get(j));
                    if let Some(jid) = jid.filter(|_| sent.is_some_and(|j| j.minions.contains(id)))
                    {
                        if self.refused_events.len() >= 10_000 {
                            self.refused_events.clear(); // returns that never came
                        }
                        self.refused_events.insert((jid, id.to_string()), reason.clone());
                    }
                    return self.send_session(token, &ToMinion::EventRefused { tag, reason });
                }
                // Fired by a reaction's job: the event continues that job's causal chain.
                let job = jid.as_ref().and_then(|j| self.recent_jobs.get(j));
                let cause = job.map_or(&[][..], |j| &j.cause);
                self.bus.fire_caused(tag.clone(), wrap_minion_event(id, &tag, data, ts), cause);
                match ack {
                    true => self.send_session(token, &ToMinion::EventAck { tag }),
                    false => Ok(()),
                }
            }
        }
    }

    /// Runs the `_auth` decision for a hello on `token` and answers it.
    pub(crate) fn authenticate(&mut self, token: Token, hello: HelloIn) -> Result<(), String> {
        self.authenticate_after(token, hello, None, &[])
    }

    /// `authenticate`, with the verdict also waiting for the key write `after` (a key move
    /// that made it change); the `salt/auth` event carries that move's `cause`.
    fn authenticate_after(
        &mut self,
        token: Token,
        hello: HelloIn,
        after: Option<u64>,
        cause: &[String],
    ) -> Result<(), String> {
        let is_live = self.live.contains_key(&hello.id);
        let ip = self.peers.get(&token).ok_or("gone")?.addr.ip();
        let first = self.store.submitted() + 1;
        let rate = &mut self.pending_rate;
        let outcome = auth::decide(
            &mut self.store,
            &self.policy,
            &hello.id,
            &hello.public,
            self.live.len(),
            is_live,
            || rate.allow(ip, Instant::now()),
        )
        .map_err(|e| format!("key store error for {}: {e}", hello.id))?;
        // Budgets count per source as the connection limits do (an IPv6 /64 is one).
        let source = self.peers.get(&token).map(|p| crate::limits::source_of(p.addr.ip()));
        self.bus.fire_from("salt/auth", outcome.event, source, cause);
        if self.park_verdict(token, &hello, outcome.status, first, after)? {
            return Ok(());
        }
        self.answer_hello(token, hello, outcome.status)
    }

    /// Sends the verdict on a hello and moves the connection on (or closes it).
    pub(crate) fn answer_hello(
        &mut self,
        token: Token,
        hello: HelloIn,
        status: AuthStatus,
    ) -> Result<(), String> {
        let (reply, session) = handshake::seal_reply(&mut self.shared_keys, &hello, status);
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        peer.conn.send(&reply)?;
        let id = hello.id.clone();
        match (status, session) {
            (AuthStatus::Accepted, Some(session)) => {
                peer.phase = Phase::AwaitReady { id, session, key: hello.public };
                peer.since = Instant::now();
                // Ready carries the grains; only a holder of the accepted key can seal it.
                peer.conn.set_max_frame(MAX_READY_FRAME.min(self.cfg.max_frame_bytes));
                Ok(())
            }
            (AuthStatus::Pending, _) => {
                peer.since = Instant::now();
                peer.phase = Phase::Pending(hello);
                log::info!("minion {} is pending acceptance", peer.label());
                Ok(())
            }
            (status, _) => {
                // Best effort: let the minion read the verdict before we hang up.
                let _ = peer.conn.flush();
                Err(format!("key {status:?}").to_lowercase())
            }
        }
    }

    /// Sends a session message to a live (or just-accepted) minion.
    pub(crate) fn send_session(&mut self, token: Token, msg: &ToMinion) -> Result<(), String> {
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        let session = match &mut peer.phase {
            Phase::Live { session, .. } | Phase::AwaitReady { session, .. } => session,
            _ => return Err("no session".into()),
        };
        let frame = session.seal(msg).map_err(|e| e.to_string())?;
        Ok(peer.conn.send(&frame)?)
    }

    /// Writes what can be written and keeps WRITABLE interest in step with the backlog.
    pub(crate) fn flush_peer(&mut self, token: Token) {
        let Some(peer) = self.peers.get_mut(&token) else {
            return;
        };
        if let Err(e) = peer.conn.flush() {
            let reason = e.to_string();
            self.close_peer(token, &reason);
            return;
        }
        let wants = peer.conn.wants_write();
        if wants != peer.writing {
            let interest = match wants {
                true => Interest::READABLE | Interest::WRITABLE,
                false => Interest::READABLE,
            };
            if let Err(e) = self.poll.registry().reregister(&mut peer.conn.stream, token, interest)
            {
                log::error!("cannot reregister {}: {e}", peer.label());
            }
            peer.writing = wants;
        }
    }

    pub(crate) fn close_peer(&mut self, token: Token, reason: &str) {
        self.close_peer_caused(token, reason, &[]);
    }

    /// [`Master::close_peer`] for a close a reaction led to: the disconnect event carries
    /// `cause`, its causal chain.
    pub(crate) fn close_peer_caused(&mut self, token: Token, reason: &str, cause: &[String]) {
        let Some(mut peer) = self.peers.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut peer.conn.stream);
        if !matches!(peer.phase, Phase::Live { .. }) {
            self.admission.release(peer.addr.ip());
        }
        let was_live = peer.id().is_some_and(|id| self.live.get(id) == Some(&token));
        match (&peer.phase, was_live) {
            (Phase::Live { id, .. }, true) => {
                self.live.remove(id);
                log::info!("minion {} disconnected: {reason}", peer.label());
                // Not a Salt tag: lets a reactor act on a lost minion without waiting for the
                // next presence pass. Minions cannot fire it (see `minion_tag_refusal`).
                let data = object([("id", id.as_str().into()), ("reason", reason.into())]);
                self.bus.fire_caused(format!("salt/minion/{id}/disconnected"), data, cause);
            }
            (Phase::Live { .. }, false) => log::debug!("session {} closed: {reason}", peer.label()),
            _ => log::warn!("closed connection {}: {reason}", peer.label()),
        }
    }

    /// Every `loop_interval`: prune the job cache, and fire Salt's presence events.
    fn maintenance(&mut self) {
        let pruned = self.jobs.prune(std::time::SystemTime::now());
        if pruned > 0 {
            log::info!("pruned {pruned} jobs older than keep_jobs from the job cache");
        }
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
        // A disk worker that died wakes nobody: look for its results (or its death) here too,
        // so replies waiting for key writes get an answer.
        self.on_disk();
        if std::mem::take(&mut self.accept_retry) {
            self.accept_minions();
            self.accept_controls();
        }
        self.reactor_tick(now);
        self.pending_rate.prune(now);
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.cfg.loop_interval;
            self.maintenance();
        }
        let interval = self.cfg.keepalive_interval;
        let mut close = Vec::new();
        let mut ping = Vec::new();
        for (&token, peer) in &self.peers {
            match &peer.phase {
                Phase::AwaitHello | Phase::AwaitReady { .. } => {
                    if now.duration_since(peer.since) > HANDSHAKE_TIMEOUT {
                        close.push((token, "handshake timed out"));
                    }
                }
                Phase::Pending(_) => {
                    if now.duration_since(peer.heard) > PENDING_IDLE {
                        close.push((token, "pending minion went silent"));
                    }
                }
                Phase::Live { .. } => match keepalive(peer.heard, peer.pinged, now, interval) {
                    Keepalive::Drop => close.push((token, "keepalive timeout")),
                    Keepalive::Ping => ping.push(token),
                    Keepalive::Nothing => {}
                },
            }
        }
        for (token, reason) in close {
            self.close_peer(token, reason);
        }
        for token in ping {
            let Some(peer) = self.peers.get_mut(&token) else {
                continue;
            };
            peer.pinged = now;
            peer.ping_seq += 1;
            let seq = peer.ping_seq;
            if let Err(reason) = self.send_session(token, &ToMinion::Ping { seq }) {
                self.close_peer(token, &reason);
                continue;
            }
            self.flush_peer(token);
        }
    }

    /// The master's public key fingerprint.
    pub(crate) fn fingerprint(&self) -> String {
        self.keys.public.fingerprint()
    }

    /// Ids of the minions with a live session, sorted.
    pub(crate) fn live_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.live.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every pending connection claiming `id`. All of them are answered when the key moves:
    /// a replayed hello (minion public keys are not secret) must not shadow the real minion.
    /// A scan, because key moves are rare and a map would be one more thing to keep in step.
    pub(crate) fn pending_connections(&self, id: &str) -> Vec<Token> {
        self.peers
            .iter()
            .filter(|(_, p)| matches!(&p.phase, Phase::Pending(hello) if hello.id == id))
            .map(|(&t, _)| t)
            .collect()
    }

    /// The token of the live session for `id`, if any.
    pub(crate) fn live_connection(&self, id: &str) -> Option<Token> {
        self.live.get(id).copied()
    }

    /// Re-runs the decision for a pending connection (after its key moved) and answers it;
    /// `cause` is the key move's causal chain.
    pub(crate) fn reauthenticate(&mut self, token: Token, cause: &[String]) {
        let hello = match self.peers.get(&token).map(|p| &p.phase) {
            Some(Phase::Pending(hello)) => hello.clone(),
            _ => return,
        };
        let after = Some(self.store.submitted());
        match self.authenticate_after(token, hello, after, cause) {
            Ok(()) => self.flush_peer(token),
            Err(reason) => self.close_peer(token, &reason),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Control connections (CLIs)

    fn accept_controls(&mut self) {
        loop {
            match self.control.accept() {
                Ok((mut stream, _)) => {
                    let token = self.token();
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE)
                    {
                        log::error!("cannot register control connection: {e}");
                        continue;
                    }
                    let conn = Conn::new(stream, self.cfg.max_frame_bytes, MAX_CONTROL_BACKLOG);
                    self.controls.insert(token, Client::new(conn));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_descriptors(&e) && self.shed_one(Listener::Control) => {}
                Err(e) => {
                    log::error!("control accept failed: {e}");
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }

    fn on_control(&mut self, token: Token) {
        let Some(client) = self.controls.get_mut(&token) else {
            return;
        };
        let turn = client.conn.read();
        if turn.more {
            self.again.push(token);
        }
        for frame in turn.frames {
            let first = self.store.submitted() + 1;
            let response = control::handle(self, token, &frame);
            // Key moves answer once their files are on disk.
            let Some(response) = self.park_control(token, first, response) else {
                continue;
            };
            if !self.queue_control(token, &response) {
                return;
            }
        }
        self.flush_control(token);
        if let Some(reason) = turn.closed {
            // Answers already queued are flushed above; a half-closed CLI still reads them.
            self.close_control(token, &reason.to_string());
        }
    }

    /// Queues one response for a control client; `false` if that closed it.
    fn queue_control(&mut self, token: Token, response: &Response) -> bool {
        let payload = serde_json::to_vec(response).expect("responses serialise");
        let Some(client) = self.controls.get_mut(&token) else {
            return false;
        };
        if let Err(reason) = client.conn.send(&payload) {
            self.close_control(token, &reason.to_string());
            return false;
        }
        true
    }

    /// Sends one response to a control client now (a reply that waited for the disk).
    pub(crate) fn send_control(&mut self, token: Token, response: &Response) {
        if self.queue_control(token, response) {
            self.flush_control(token);
        }
    }

    fn flush_control(&mut self, token: Token) {
        let Some(client) = self.controls.get_mut(&token) else {
            return;
        };
        if let Err(e) = client.conn.flush() {
            let reason = e.to_string();
            self.close_control(token, &reason);
            return;
        }
        let wants = client.conn.wants_write();
        if wants != client.writing {
            let interest = match wants {
                true => Interest::READABLE | Interest::WRITABLE,
                false => Interest::READABLE,
            };
            let _ = self.poll.registry().reregister(&mut client.conn.stream, token, interest);
            client.writing = wants;
        }
    }

    fn close_control(&mut self, token: Token, reason: &str) {
        if let Some(mut client) = self.controls.remove(&token) {
            let _ = self.poll.registry().deregister(&mut client.conn.stream);
            match client.subs.is_empty() {
                true => log::debug!("control connection closed: {reason}"),
                false => log::info!("event subscriber closed: {reason}"),
            }
        }
    }

    /// Drains the event queue: the log (in `Bus`), then every subscriber that wants each event
    /// (a subscriber whose backlog is full is dropped; the loop never waits for one), then the
    /// reactor.
    fn drain_bus(&mut self) {
        let events = self.bus.drain();
        self.deliver(&events);
        for event in &events {
            self.react(event);
        }
    }

    /// Hands drained events to every subscriber that wants them.
    fn deliver(&mut self, events: &[halite_common::event::Event]) {
        if events.is_empty() || self.controls.values().all(|c| c.subs.is_empty()) {
            return;
        }
        let mut dropped = Vec::new();
        for event in events.iter() {
            let mut payload: Option<Vec<u8>> = None;
            for (&token, client) in self.controls.iter_mut() {
                if !client.wants(&event.tag) || dropped.contains(&token) {
                    continue;
                }
                let bytes = payload.get_or_insert_with(|| {
                    let response =
                        Response::Event { tag: event.tag.clone(), data: event.data.clone() };
                    serde_json::to_vec(&response).expect("events serialise")
                });
                if let Err(reason) = client.conn.send(bytes) {
                    log::warn!("dropping event subscriber: {reason}");
                    dropped.push(token);
                }
            }
        }
        for token in dropped {
            self.close_control(token, "too slow: event backlog full");
        }
        let tokens: Vec<Token> =
            self.controls.iter().filter(|(_, c)| !c.subs.is_empty()).map(|(&t, _)| t).collect();
        for token in tokens {
            self.flush_control(token);
        }
    }
}

/// Which listener an accept is for.
#[derive(Clone, Copy)]
enum Listener {
    Minions,
    Control,
}

/// EMFILE or ENFILE: this process, or the whole system, is out of descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Why event data is refused for size, if it is.
pub(crate) fn oversized(data: &impl serde::Serialize, max: usize) -> Option<String> {
    let len = serde_json::to_vec(data).map(|b| b.len()).unwrap_or(usize::MAX);
    (len > max).then(|| format!("event data is {len} bytes, over max_event_bytes {max}"))
}

/// Raises the listen queue: mio listens with 128, and a burst of minions (all of them
/// reconnecting after a master restart) overflows that; each dropped SYN costs its minion a
/// one-second retransmit. `listen` on a listening socket only changes its backlog.
fn set_backlog(listener: &TcpListener, backlog: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: the descriptor belongs to `listener`, which outlives the call; `listen` reads
    // no memory of ours.
    match unsafe { libc::listen(listener.as_raw_fd(), backlog) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
