//! The master's driver: the one `mio` loop. It owns the sockets (minion listener, control
//! socket, webhook and metrics listeners, every connection), the signals and the clock,
//! turns readiness into [`Input`]s for the [`Core`] and carries out the [`Effect`]s it
//! answers with. It decides nothing: which connection to greet, answer or drop is the
//! core's. Only the driver closes sockets.

use crate::core::{
    Core, Effect, HttpListener, Input, StartError, DISK, MAX_HANDSHAKE_FRAME, MAX_HTTP_BACKLOG,
    RENDER_WORKER, TICK,
};
use halite_common::config::MasterConfig;
use halite_common::conn::{Conn, ConnError, Patience, ReadTurn};
use halite_common::control::SOCKET_NAME;
use halite_common::files::create_private_dir;
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

const LISTENER: Token = Token(0);
const CONTROL: Token = Token(1);
const SIGNALS: Token = Token(2);
/// The webhook listener (tokens 3 and 4 are the core's workers).
const WEBHOOK: Token = Token(5);
/// The metrics listener (7 is left for one more listener).
const METRICS: Token = Token(6);
const FIRST_CONN: usize = 8;

/// Connections accepted per turn at most (mio is edge-triggered: the rest wait for the next).
const ACCEPTS_PER_TURN: usize = 256;
/// Unsent output allowed per minion before it is cut off.
const MAX_MINION_BACKLOG: usize = 64 * 1024 * 1024;
/// Unsent output a control client may leave while it reads (a `halite` watching a job
/// whose minions return big outputs at once); past [`CONTROL_PATIENCE`]'s soft backlog it
/// must keep taking bytes.
const MAX_CONTROL_BACKLOG: usize = 128 * 1024 * 1024;
/// Past 16 MiB unsent, a control client that has not taken 64 KiB in 10 s is cut off.
const CONTROL_PATIENCE: Patience =
    Patience { soft: 16 * 1024 * 1024, stall: std::time::Duration::from_secs(10), step: 64 * 1024 };
/// How often control clients are looked at for stalling when nothing is sent to them.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// One connection's socket and buffers.
enum Link {
    Minion(Conn<TcpStream>),
    Control(Conn<UnixStream>),
    /// An HTTP client: a raw (unframed) connection.
    Http(Conn<TcpStream>),
}

/// A connection as the driver holds it.
struct Linked {
    link: Link,
    /// Whether it is registered with the poll yet (a refused connection never is).
    registered: bool,
    /// Whether WRITABLE interest is registered.
    writing: bool,
    /// Readiness was reported since the last flush. While WRITABLE interest waits for the
    /// socket to drain, only then is a flush tried: a CLI reading returns slower than a fleet
    /// sends them would otherwise cost a write that says `WouldBlock` per return.
    readied: bool,
}

impl Linked {
    fn new(link: Link) -> Linked {
        Linked { link, registered: false, writing: false, readied: false }
    }

    /// Whether a flush could write now (see `readied`).
    fn may_flush(&mut self) -> bool {
        let readied = std::mem::take(&mut self.readied);
        !self.writing || readied
    }

    /// Reads after a readiness edge (`closing`: the peer closed or failed).
    fn read(&mut self, closing: bool) -> ReadTurn {
        match &mut self.link {
            Link::Minion(c) | Link::Http(c) => c.read_edge(closing),
            Link::Control(c) => c.read_edge(closing),
        }
    }

    fn send(&mut self, bytes: &[u8], now: Instant) -> Result<(), ConnError> {
        match &mut self.link {
            Link::Minion(c) | Link::Http(c) => c.send(bytes),
            Link::Control(c) => c.send_at(bytes, now),
        }
    }

    fn flush(&mut self, now: Instant) -> Result<(), ConnError> {
        match &mut self.link {
            Link::Minion(c) | Link::Http(c) => c.flush(),
            Link::Control(c) => c.flush_at(now),
        }
    }

    fn wants_write(&self) -> bool {
        match &self.link {
            Link::Minion(c) | Link::Http(c) => c.wants_write(),
            Link::Control(c) => c.wants_write(),
        }
    }

    fn set_max_frame(&mut self, max: usize) {
        match &mut self.link {
            Link::Minion(c) | Link::Http(c) => c.set_max_frame(max),
            Link::Control(c) => c.set_max_frame(max),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match &mut self.link {
            Link::Minion(c) | Link::Http(c) => &mut c.stream,
            Link::Control(c) => &mut c.stream,
        }
    }

    /// Registers the connection, or moves its interest in step with its backlog.
    fn update_interest(&mut self, registry: &Registry, token: Token) -> Result<(), ConnError> {
        self.try_interest(registry, token).map_err(|e| ConnError::Write {
            kind: e.kind(),
            message: format!("cannot register with the poll: {e}"),
        })
    }

    fn try_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let wants = self.wants_write();
        let interest = match wants {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        if !self.registered {
            registry.register(self.source(), token, interest)?;
            self.registered = true;
        } else if wants != self.writing {
            registry.reregister(self.source(), token, interest)?;
        }
        self.writing = wants;
        Ok(())
    }
}

/// A listening socket and what its connections are.
enum Listener {
    Minions(TcpListener),
    Control(UnixListener),
    Http(TcpListener, HttpListener),
}

impl Listener {
    /// How log lines name its connections.
    fn name(&self) -> &'static str {
        match self {
            Listener::Minions(_) => "minion",
            Listener::Control(_) => "control",
            Listener::Http(_, which) => which.name(),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            Listener::Minions(l) | Listener::Http(l, _) => l,
            Listener::Control(l) => l,
        }
    }

    /// Accepts one connection as connection `conn`: its link, and the input that tells the
    /// core about it.
    fn accept(&self, conn: Token, control_max_frame: usize) -> io::Result<(Link, Input)> {
        match self {
            Listener::Minions(l) => {
                let (stream, addr) = l.accept()?;
                let _ = stream.set_nodelay(true);
                // Until the session is live only small frames are read: no one can make the
                // master buffer megabytes before proving who they are.
                let link = Link::Minion(Conn::new(stream, MAX_HANDSHAKE_FRAME, MAX_MINION_BACKLOG));
                Ok((link, Input::MinionConnected { conn, addr }))
            }
            Listener::Control(l) => {
                let (stream, _) = l.accept()?;
                let link = Conn::new(stream, control_max_frame, MAX_CONTROL_BACKLOG);
                let link = Link::Control(link.with_patience(CONTROL_PATIENCE, Instant::now()));
                Ok((link, Input::ControlConnected { conn }))
            }
            Listener::Http(l, listener) => {
                let (stream, addr) = l.accept()?;
                let _ = stream.set_nodelay(true);
                let link = Link::Http(Conn::raw(stream, MAX_HTTP_BACKLOG));
                Ok((link, Input::HttpConnected { conn, addr, listener: *listener }))
            }
        }
    }

    /// Accepts one connection and drops it at once; says who it was.
    fn shed(&self) -> io::Result<String> {
        match self {
            Listener::Minions(l) => l.accept().map(|(_, addr)| addr.to_string()),
            Listener::Control(l) => l.accept().map(|_| "a control client".to_string()),
            Listener::Http(l, _) => {
                l.accept().map(|(_, addr)| format!("{} client {addr}", self.name()))
            }
        }
    }
}

/// A listener on the poll.
struct Listening {
    token: Token,
    listener: Listener,
    /// It still had connections queued after a turn's share: accept again next turn.
    more: bool,
}

/// The running master: the driver around its [`Core`].
pub struct Master {
    core: Core,
    poll: Poll,
    /// The minion listener first, the control socket, then the webhook and metrics listeners
    /// when their ports are set.
    listeners: Vec<Listening>,
    control_path: PathBuf,
    signals: Signals,
    links: HashMap<Token, Linked>,
    next_token: usize,
    /// Connections whose read budget ran out: read again next turn.
    again: Vec<Token>,
    /// Minion and HTTP connections that became ready while a disk was behind
    /// (`Core::reading_paused`): read once it has caught up.
    deferred: std::collections::HashSet<Token>,
    /// Connections written to since their last flush.
    dirty: Vec<Token>,
    /// Effects waiting to be carried out (reused between inputs).
    fx: Vec<Effect>,
    /// An accept failed (e.g. out of file descriptors): retry at `retry_at`.
    retry_at: Option<Instant>,
    /// Log lines for minion connections shed for want of descriptors, per second.
    quiet: crate::limits::LogLimiter,
    /// A descriptor held back for EMFILE: closed to accept (and close) one connection, so the
    /// listen queue drains instead of stalling, then opened again.
    reserve_fd: Option<std::fs::File>,
    /// Salt's `log_file`, reopened on SIGHUP.
    log_file: Option<halite_common::logging::LogFile>,
    /// When control clients are next looked at for stalling (see `cut_stalled`).
    stall_check: Instant,
    /// systemd's notify socket (`Type=notify`), when the master runs under it.
    notifier: halite_common::sdnotify::Notifier,
    /// The `STATUS=` last sent, and when the next may go.
    status: (String, Instant),
}

impl Master {
    /// Opens keys, event log, listener and control socket; nothing is served until [`Master::run`].
    pub fn bind(cfg: MasterConfig) -> Result<Master, StartError> {
        halite_common::crypto::init();
        let poll = Poll::new().map_err(io_err("poll"))?;
        create_private_dir(&cfg.sock_dir).map_err(io_err("sock_dir"))?;
        let control_path = cfg.sock_dir.join(SOCKET_NAME);
        if std::os::unix::net::UnixStream::connect(&control_path).is_ok() {
            return Err(StartError::AlreadyRunning(control_path));
        }
        let addr = SocketAddr::new(cfg.interface, cfg.ret_port);
        let backlog = cfg.zmq_backlog;
        let core = Core::open(cfg, poll.registry(), Instant::now())?;
        let _ = std::fs::remove_file(&control_path);
        let control = UnixListener::bind(&control_path)
            .map_err(io_err(format!("control socket {}", control_path.display())))?;
        std::fs::set_permissions(&control_path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("control socket mode"))?;
        let listener = TcpListener::bind(addr).map_err(io_err(format!("listen on {addr}")))?;
        set_backlog(&listener, backlog).map_err(io_err("zmq_backlog"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(io_err("signals"))?;
        let mut listeners =
            vec![(LISTENER, Listener::Minions(listener)), (CONTROL, Listener::Control(control))];
        let http = [
            (WEBHOOK, HttpListener::Webhook, core.cfg.webhook.port, core.cfg.webhook.interface),
            (METRICS, HttpListener::Metrics, core.cfg.metrics.port, core.cfg.metrics.interface),
        ];
        for (token, which, port, interface) in http {
            let Some(port) = port else { continue };
            let addr = SocketAddr::new(interface, port);
            let what = format!("{} listener on {addr}", which.name());
            let listener = TcpListener::bind(addr).map_err(io_err(what))?;
            listeners.push((token, Listener::Http(listener, which)));
        }
        let registry = poll.registry();
        let mut listening = Vec::with_capacity(listeners.len());
        for (token, mut listener) in listeners {
            registry
                .register(listener.source(), token, Interest::READABLE)
                .map_err(io_err("poll"))?;
            listening.push(Listening { token, listener, more: false });
        }
        registry.register(&mut signals, SIGNALS, Interest::READABLE).map_err(io_err("poll"))?;
        let reserve_fd = Some(std::fs::File::open("/dev/null").map_err(io_err("/dev/null"))?);
        Ok(Master {
            core,
            poll,
            listeners: listening,
            control_path,
            signals,
            links: HashMap::new(),
            next_token: FIRST_CONN,
            again: Vec::new(),
            deferred: Default::default(),
            dirty: Vec::new(),
            fx: Vec::new(),
            retry_at: None,
            stall_check: Instant::now() + STALL_CHECK,
            quiet: Default::default(),
            reserve_fd,
            notifier: halite_common::sdnotify::Notifier::none(),
            status: (String::new(), Instant::now()),
            log_file: None,
        })
    }

    /// Where the config came from, so that SIGHUP can re-read the reactor rules.
    pub fn with_config_dir(mut self, dir: PathBuf) -> Master {
        self.core.set_config_dir(dir);
        self
    }

    /// The log file to reopen on SIGHUP.
    pub fn with_log_file(mut self, log_file: Option<halite_common::logging::LogFile>) -> Master {
        self.log_file = log_file;
        self
    }

    /// Tells systemd about readiness, reloads, stopping and the minion counts through this.
    pub fn with_notifier(mut self, notifier: halite_common::sdnotify::Notifier) -> Master {
        self.notifier = notifier;
        self
    }

    /// The address minions connect to (the real port when `ret_port` is 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_addr(LISTENER).ok_or_else(|| io::Error::other("no minion listener"))?
    }

    /// The address of the TCP listener on `token`, if there is one.
    fn tcp_addr(&self, token: Token) -> Option<io::Result<SocketAddr>> {
        self.listeners.iter().find(|l| l.token == token).and_then(|l| match &l.listener {
            Listener::Minions(l) | Listener::Http(l, _) => Some(l.local_addr()),
            Listener::Control(_) => None,
        })
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(mut self) -> io::Result<()> {
        if let Some(addr) = self.tcp_addr(WEBHOOK) {
            log::info!("webhooks on {}", addr?);
        }
        if let Some(addr) = self.tcp_addr(METRICS) {
            let addr = addr?;
            log::info!("metrics on http://{addr}/metrics");
            if !addr.ip().is_loopback() {
                log::warn!(
                    "metrics on {addr} answer anyone who can reach it (no authentication): \
                     keep it on a private network or behind a proxy"
                );
            }
        }
        log::info!(
            "halite-master ready: minions on {}, control socket {}, fingerprint {}",
            self.local_addr()?,
            self.control_path.display(),
            self.core.fingerprint()
        );
        self.notifier.notify(&format!("READY=1\nSTATUS={}", self.core.status()));
        let mut events = Events::with_capacity(1024);
        while !self.core.stopping() {
            let now = Instant::now();
            let mut deadline = self.core.next_deadline();
            if let Some(retry) = self.retry_at {
                deadline = deadline.min(retry);
            }
            let more = self.listeners.iter().any(|l| l.more);
            let timeout = match self.again.is_empty() && !more {
                true => deadline.saturating_duration_since(now),
                false => std::time::Duration::ZERO,
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER | CONTROL | WEBHOOK | METRICS => self.accept(event.token()),
                    SIGNALS => self.on_signals(),
                    RENDER_WORKER => self.input(Input::RenderReady),
                    DISK => self.input(Input::DiskDone),
                    token => self.on_ready(token, event.is_read_closed() || event.is_error()),
                }
            }
            if !self.deferred.is_empty() && !self.core.reading_paused() {
                self.again.extend(self.deferred.drain());
            }
            for token in std::mem::take(&mut self.again) {
                self.on_ready(token, false);
            }
            for at in 0..self.listeners.len() {
                if std::mem::take(&mut self.listeners[at].more) {
                    self.accept(self.listeners[at].token);
                }
            }
            if let Some(n) = self.quiet.flush(Instant::now()) {
                let n = n.lines;
                log::warn!("{n} more connections were refused for want of file descriptors");
            }
            if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                // Readiness is edge-triggered: connections already queued would wait for the
                // next newcomer.
                self.retry_at = None;
                for at in 0..self.listeners.len() {
                    self.accept(self.listeners[at].token);
                }
            }
            self.input(Input::Tick);
            self.cut_stalled(Instant::now());
            self.send_status();
        }
        log::info!("halite-master stopping");
        self.core.shut_down(&mut self.fx);
        // Best effort: what the last batches released goes out if the sockets take it now.
        self.carry_out();
        let _ = std::fs::remove_file(&self.control_path);
        Ok(())
    }

    /// Hands one input to the core and carries out what it answers (and what that leads to:
    /// a connection that fails while being written to is one more input).
    fn input(&mut self, input: Input) {
        self.core.handle(Instant::now(), input, &mut self.fx);
        self.carry_out();
    }

    /// Applies the effects in order, flushes every connection written to, and tells the core
    /// about each connection that failed on the way, until nothing is left to do.
    fn carry_out(&mut self) {
        loop {
            let mut closed = Vec::new();
            let now = Instant::now();
            for effect in std::mem::take(&mut self.fx) {
                match effect {
                    Effect::Send { conn, bytes } => {
                        let Some(linked) = self.links.get_mut(&conn) else { continue };
                        match linked.send(&bytes, now) {
                            Ok(()) => self.dirty.push(conn),
                            Err(error) => closed.push((conn, error)),
                        }
                    }
                    Effect::MaxFrame { conn, max } => {
                        if let Some(linked) = self.links.get_mut(&conn) {
                            linked.set_max_frame(max);
                        }
                    }
                    Effect::Close { conn, .. } => self.close(conn),
                }
            }
            for conn in std::mem::take(&mut self.dirty) {
                let Some(linked) = self.links.get_mut(&conn) else { continue };
                if !linked.may_flush() {
                    continue;
                }
                let registry = self.poll.registry();
                let flushed = linked.flush(now);
                let done = flushed.and_then(|()| linked.update_interest(registry, conn));
                if let Err(error) = done {
                    closed.push((conn, error));
                }
            }
            for (conn, error) in closed {
                if self.links.contains_key(&conn) {
                    self.close(conn);
                    self.core.handle(Instant::now(), Input::Closed { conn, error }, &mut self.fx);
                }
            }
            if self.fx.is_empty() && self.dirty.is_empty() {
                return;
            }
        }
    }

    /// Cuts off the control clients that have fallen behind past their patience, sends or
    /// not: one that stopped reading (a `halite` suspended, or piped into a pager left
    /// open) with a backlog owed held it until it went away. Once a second.
    fn cut_stalled(&mut self, now: Instant) {
        if now < self.stall_check {
            return;
        }
        self.stall_check = now + STALL_CHECK;
        let stalled: Vec<(Token, ConnError)> = (self.links.iter_mut())
            .filter_map(|(conn, linked)| match &mut linked.link {
                Link::Control(c) => c.stalled(now).map(|error| (*conn, error)),
                _ => None,
            })
            .collect();
        for (conn, error) in stalled {
            // One closed meanwhile (its input failed another) is not reported twice.
            if self.links.contains_key(&conn) {
                self.close(conn);
                self.input(Input::Closed { conn, error });
            }
        }
    }

    /// Writes what can be written now, then drops the connection.
    fn close(&mut self, conn: Token) {
        let Some(mut linked) = self.links.remove(&conn) else { return };
        let _ = linked.flush(Instant::now()); // best effort: a refusal's verdict reaches the peer
        if linked.registered {
            let _ = self.poll.registry().deregister(linked.source());
        }
        if let Link::Http(c) = &mut linked.link {
            linger(&mut c.stream);
        }
    }

    fn on_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            match signal {
                SIGHUP => {
                    self.notifier.reloading();
                    if let Some(file) = &self.log_file {
                        file.reopen();
                    }
                    self.input(Input::Reload);
                    self.notifier.notify("READY=1");
                }
                _ => {
                    log::info!("received signal {signal}, shutting down");
                    self.notifier.notify("STOPPING=1");
                    self.input(Input::Stop);
                }
            }
        }
    }

    /// `STATUS=` with the minion counts, when they changed, at most once a second.
    fn send_status(&mut self) {
        let now = Instant::now();
        if now < self.status.1 {
            return;
        }
        // Looked at once a second, not every turn: the loop's hot path builds no string.
        self.status.1 = now + std::time::Duration::from_secs(1);
        let status = self.core.status();
        if status != self.status.0 {
            self.notifier.notify(&format!("STATUS={status}"));
            self.status.0 = status;
        }
    }

    /// A connection is ready: its frames go to the core one by one, then it is flushed.
    /// `closing`: the readiness said the peer closed or failed (read until it shows).
    fn on_ready(&mut self, token: Token, closing: bool) {
        let Some(linked) = self.links.get_mut(&token) else { return };
        linked.readied = true;
        if self.core.reading_paused() && !matches!(linked.link, Link::Control(_)) {
            // Readiness is edge-triggered: remembered, and read once the disk caught up.
            self.deferred.insert(token);
            return;
        }
        let turn = linked.read(closing);
        if turn.more {
            self.again.push(token);
        }
        let http = matches!(linked.link, Link::Http(_));
        for frame in turn.frames {
            if !self.links.contains_key(&token) {
                return; // closed by the core on an earlier frame
            }
            match http {
                true => self.input(Input::HttpData { conn: token, bytes: frame }),
                false => self.input(Input::Frame { conn: token, frame }),
            }
        }
        // Answers already queued go out first: a half-closed CLI still reads them.
        self.dirty.push(token);
        self.carry_out();
        if let Some(error) = turn.closed {
            if self.links.contains_key(&token) {
                self.close(token);
                self.input(Input::Closed { conn: token, error });
            }
        }
    }

    /// Accepts at most `ACCEPTS_PER_TURN` connections on the listener `token`, so that a flood
    /// of them shares the loop with the connections already there; the rest are accepted
    /// next turn. Every listener's connections come in here; the core admits each (or has
    /// it closed).
    fn accept(&mut self, token: Token) {
        let Some(at) = self.listeners.iter().position(|l| l.token == token) else { return };
        let max_frame = self.core.cfg.max_frame_bytes;
        for _ in 0..ACCEPTS_PER_TURN {
            let conn = Token(self.next_token);
            let name = self.listeners[at].listener.name();
            match self.listeners[at].listener.accept(conn, max_frame) {
                Ok((link, input)) => {
                    self.next_token += 1;
                    let mut linked = Linked::new(link);
                    // A minion connection is registered once the core greets it (one it
                    // refuses never is); the others are only read, so registered now.
                    if !matches!(linked.link, Link::Minion(_)) {
                        if let Err(e) = linked.update_interest(self.poll.registry(), conn) {
                            log::error!("cannot register {name} connection: {e}");
                            continue;
                        }
                    }
                    self.links.insert(conn, linked);
                    self.input(input);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_descriptors(&e) && self.shed_one(at) => {}
                Err(e) => {
                    log::error!("{name} accept failed: {e}");
                    self.retry_at = Some(Instant::now() + TICK);
                    return;
                }
            }
        }
        self.listeners[at].more = true;
    }

    /// Out of descriptors: closes the reserve one to accept a connection on listener `at`,
    /// closes that at once (a refusal the peer sees, instead of a silent listen queue), and
    /// takes the reserve back. `true` when one was shed and another may wait; `false` when
    /// the queue is empty (Linux reports EMFILE before looking at the queue) or there is no
    /// reserve to spend.
    fn shed_one(&mut self, at: usize) -> bool {
        if self.reserve_fd.take().is_none() {
            return false;
        }
        let listener = &self.listeners[at].listener;
        let shed = match listener.shed() {
            Ok(who) => {
                let control = matches!(listener, Listener::Control(_));
                if control || self.quiet.allow(Instant::now()) {
                    log::warn!("refused connection from {who}: out of file descriptors");
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                log::error!("accept failed even with the reserve descriptor: {e}");
                false
            }
        };
        self.reserve_fd = std::fs::File::open("/dev/null").ok();
        self.retry_at = Some(Instant::now() + TICK);
        shed && self.reserve_fd.is_some()
    }
}

/// Before an HTTP connection is dropped: no more writes, then what the client already sent is
/// read and thrown away (a bounded amount, without waiting). Closing a socket with unread
/// input sends a reset, which can destroy the refusal just written before the client reads
/// it (a 413 sent while the body is still arriving).
fn linger(stream: &mut TcpStream) {
    use std::io::Read;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..16 {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// EMFILE or ENFILE: this process, or the whole system, is out of descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
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
