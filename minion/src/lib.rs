//! The Halite minion: one `mio` loop that keeps a session with the master — connect, verify
//! the master's key, authenticate, wait while pending, keep alive, reconnect with capped
//! exponential backoff — and fires its start events once per process.

pub mod beacons;
pub mod call;
pub mod failover;
pub mod fileclient;
pub mod functions;
pub mod grains;
pub mod jobs;
pub mod link;
pub mod pillar;
pub mod states;

use halite_common::config::MinionConfig;
use halite_common::conn::Conn;
use halite_common::crypto::{KeyPair, PublicKey};
use halite_common::files::{
    create_private_dir, load_or_create_pair, read_cached_master_key, write_atomic,
};
use halite_common::handshake::{self, MasterTrust, MinionHandshake, Verdict};
use halite_common::proto::{ToMaster, ToMinion};
use halite_common::time::{unix_seconds, Utc};
use link::{Link, LinkPhase};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MASTER: Token = Token(0);
const SIGNALS: Token = Token(1);
const WAKER: Token = Token(2);
/// A connection that only checks whether the first master answers again (failback).
const PROBE: Token = Token(7);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKLOG: usize = 64 * 1024 * 1024;
/// Past this much unsent output, beacon events are dropped (and counted) rather than queued:
/// a flood of changes must not grow the minion's memory.
const BEACON_BACKLOG: usize = 1024 * 1024;
/// Most bytes of beacon events in one frame (well under any `max_frame_bytes`).
const BEACON_FRAME_BYTES: usize = 512 * 1024;

/// Room left in a frame for the session's sealing and the message's own fields.
const FRAME_HEADROOM: usize = 4096;

/// A return too big for one frame would be refused by the master and, sent again after every
/// reconnect, cut the minion off for good; it becomes a failed return that says so.
fn fit_return(msg: ToMaster, max_frame_bytes: usize) -> ToMaster {
    let size = serde_json::to_vec(&msg).map_or(0, |v| v.len());
    let ToMaster::Return(ret) = msg else { return msg };
    if size + FRAME_HEADROOM <= max_frame_bytes {
        return ToMaster::Return(ret);
    }
    log::error!("job {}: the return of {} is {size} bytes, too big to send", ret.jid, ret.fun);
    ToMaster::Return(halite_common::proto::JobReturn {
        ret: Value::String(format!(
            "The return of {} is {size} bytes, over what one message may carry \
             (max_frame_bytes: {max_frame_bytes}); it was not sent",
            ret.fun
        )),
        retcode: 1,
        success: false,
        out: Some("nested".into()),
        ..ret
    })
}

/// Salt's exit status for a minion whose key the master rejected.
pub const EXIT_REJECTED: u8 = 77;

/// Why the minion stopped for good.
#[derive(Debug)]
pub enum MinionError {
    Io {
        what: String,
        source: io::Error,
    },
    /// The master rejected or denied our key and `rejected_retry` is off.
    Rejected(String),
}

impl fmt::Display for MinionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinionError::Io { what, source } => write!(f, "{what}: {source}"),
            MinionError::Rejected(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for MinionError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> MinionError {
    let what = what.into();
    move |source| MinionError::Io { what, source }
}

/// The first address of a master.
fn resolve(master: &halite_common::config::MasterAddress) -> io::Result<SocketAddr> {
    (master.host.as_str(), master.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

/// `random_master`: the masters in a random order (Fisher–Yates over libsodium's randomness).
fn shuffle(list: &mut [halite_common::config::MasterAddress]) {
    for i in (1..list.len()).rev() {
        let r = halite_common::crypto::random_bytes(4);
        let j = u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize % (i + 1);
        list.swap(i, j);
    }
}

/// The running minion.
pub struct Minion {
    cfg: MinionConfig,
    keys: KeyPair,
    master_pub_path: PathBuf,
    poll: Poll,
    signals: Signals,
    link: Option<Link>,
    /// When to try connecting again (no link).
    reconnect_at: Instant,
    backoff: Duration,
    /// Current wait between hellos while pending (grows to `acceptance_wait_time_max`).
    pending_wait: Duration,
    jobs: jobs::Jobs,
    /// Job threads' questions for the master's file server, and those awaiting an answer.
    file_calls: std::sync::mpsc::Receiver<fileclient::FileCall>,
    in_flight: fileclient::InFlight,
    /// The pillar the master compiled for this minion, job threads' refresh requests, and
    /// the request in flight.
    pillar: std::sync::Arc<pillar::Pillar>,
    pillar_refreshes: std::sync::mpsc::Receiver<pillar::Refresh>,
    pillar_fetch: pillar::Fetch,
    grains: serde_json::Map<String, Value>,
    /// Session messages waiting for a live session (job returns survive reconnects).
    outbox: std::collections::VecDeque<ToMaster>,
    /// Returns sent but not yet acknowledged: sent again after a reconnect.
    unacked: Vec<ToMaster>,
    /// The master key accepted from the greeting, for re-hellos while pending.
    master_key: Option<PublicKey>,
    /// Which master is current (failover moves on, failback comes back).
    masters: failover::Masters,
    /// A failback check in flight, and when it is given up.
    probe: Option<(TcpStream, Instant)>,
    beacons: beacons::Beacons,
    /// Salt's `log_file`, reopened on SIGHUP.
    log_file: Option<halite_common::logging::LogFile>,
    /// systemd's notify socket, and whether `READY=1` went out yet.
    notifier: halite_common::sdnotify::Notifier,
    ready: bool,
    stopping: bool,
}

impl Minion {
    /// Loads or creates the minion's keys; nothing touches the network yet.
    pub fn new(cfg: MinionConfig) -> Result<Minion, MinionError> {
        halite_common::crypto::init();
        create_private_dir(&cfg.pki_dir).map_err(io_err("pki_dir"))?;
        create_private_dir(&cfg.cachedir).map_err(io_err("cachedir"))?;
        let keys =
            load_or_create_pair(&cfg.pki_dir.join("minion.key"), &cfg.pki_dir.join("minion.pub"))
                .map_err(io_err("minion key"))?;
        let poll = Poll::new().map_err(io_err("poll"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(io_err("signals"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(io_err("poll"))?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).map_err(io_err("waker"))?);
        let grains = grains::collect(&cfg.id, &cfg.grains);
        let beacons =
            beacons::Beacons::new(&cfg.id, &cfg.beacons, poll.registry(), Arc::clone(&waker));
        let (files, file_calls) = fileclient::RemoteFiles::new(waker.clone(), &cfg.cachedir);
        let (pillar, pillar_refreshes) = pillar::Pillar::new(waker.clone());
        let ctx = functions::Context {
            id: cfg.id.clone(),
            grains: grains.clone(),
            fileserver: Some(std::sync::Arc::new(files)),
            pillar: Some(pillar.clone()),
        };
        let masters = failover::Masters::new(&cfg, shuffle);
        Ok(Minion {
            jobs: jobs::Jobs::new(ctx, waker),
            file_calls,
            in_flight: fileclient::InFlight::default(),
            pillar,
            pillar_refreshes,
            pillar_fetch: pillar::Fetch::default(),
            grains,
            outbox: std::collections::VecDeque::new(),
            unacked: Vec::new(),
            master_pub_path: cfg.pki_dir.join("minion_master.pub"),
            backoff: cfg.recon_default,
            pending_wait: cfg.acceptance_wait_time,
            cfg,
            keys,
            poll,
            signals,
            link: None,
            reconnect_at: Instant::now(),
            master_key: None,
            masters,
            probe: None,
            beacons,
            notifier: halite_common::sdnotify::Notifier::none(),
            ready: false,
            log_file: None,
            stopping: false,
        })
    }

    /// Tells systemd about readiness (authenticated or pending), reloads and stopping.
    pub fn with_notifier(mut self, notifier: halite_common::sdnotify::Notifier) -> Minion {
        self.notifier = notifier;
        self
    }

    /// The log file to reopen on SIGHUP.
    pub fn with_log_file(mut self, log_file: Option<halite_common::logging::LogFile>) -> Minion {
        self.log_file = log_file;
        self
    }

    /// `READY=1` the first time, `STATUS=` every time the link's state changes.
    fn notify_status(&mut self, status: &str) {
        match std::mem::replace(&mut self.ready, true) {
            false => self.notifier.notify(&format!("READY=1\nSTATUS={status}")),
            true => self.notifier.notify(&format!("STATUS={status}")),
        }
    }

    /// Runs until SIGTERM/SIGINT, or until the master rejects this minion's key.
    pub fn run(mut self) -> Result<(), MinionError> {
        let masters: Vec<String> = self.masters.all().iter().map(|m| m.to_string()).collect();
        log::info!(
            "halite-minion {} starting; master {}{}",
            self.cfg.id,
            masters.join(", "),
            if self.cfg.failover { " (failover)" } else { "" }
        );
        let mut events = Events::with_capacity(64);
        while !self.stopping {
            let now = Instant::now();
            let timeout = self.next_deadline().saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(io_err("poll")(e));
            }
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signals(),
                    WAKER => {
                        for ret in self.jobs.finished() {
                            self.queue(ToMaster::Return(ret));
                        }
                        self.forward_file_calls();
                        let fired = self.beacons.collect();
                        self.send_beacons(fired);
                    }
                    MASTER => self.on_master(event.is_writable())?,
                    PROBE => self.on_probe(),
                    token => self.beacons.on_ready(token),
                }
            }
            self.on_timers(Instant::now())?;
        }
        log::info!("halite-minion {} stopping", self.cfg.id);
        Ok(())
    }

    fn next_deadline(&self) -> Instant {
        let link = self.link_deadline();
        self.beacons.next_deadline().map_or(link, |b| b.min(link))
    }

    fn link_deadline(&self) -> Instant {
        let Some(link) = &self.link else {
            return self.reconnect_at;
        };
        let keepalive = self.keepalive();
        match &link.phase {
            LinkPhase::Live(_) => {
                let checks = [self.probe.as_ref().map(|p| p.1), self.masters.next_deadline()];
                let keep = (link.pinged + keepalive).min(link.heard + keepalive * 3);
                checks.into_iter().flatten().fold(keep, Instant::min)
            }
            LinkPhase::AwaitVerdict { rehello: Some(at), .. } => *at,
            LinkPhase::AwaitVerdict { rehello: None, .. }
            | LinkPhase::Connecting
            | LinkPhase::AwaitGreeting => link.since + HANDSHAKE_TIMEOUT,
        }
    }

    fn on_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            if signal == SIGHUP {
                // The log file is reopened; nothing else of the minion's is re-read yet.
                log::info!("received SIGHUP");
                self.notifier.reloading();
                if let Some(file) = &self.log_file {
                    file.reopen();
                }
                self.notifier.notify("READY=1");
                continue;
            }
            log::info!("received signal {signal}, shutting down");
            self.notifier.notify("STOPPING=1");
            self.stopping = true;
        }
    }

    fn on_timers(&mut self, now: Instant) -> Result<(), MinionError> {
        let fired = self.beacons.tick(now, self.jobs.state_running());
        self.send_beacons(fired);
        let keepalive = self.keepalive();
        if matches!(&self.link, Some(link) if matches!(link.phase, LinkPhase::Live(_))) {
            self.failback_check(now);
        }
        let Some(link) = &mut self.link else {
            if now >= self.reconnect_at {
                self.connect(now);
            }
            return Ok(());
        };
        match &link.phase {
            LinkPhase::Live(_) => {
                if now.duration_since(link.heard) > keepalive * 3 {
                    self.drop_link("master stopped answering keepalives");
                } else if now.duration_since(link.pinged) >= keepalive {
                    link.pinged = now;
                    link.ping_seq += 1;
                    let seq = link.ping_seq;
                    self.send(&ToMaster::Ping { seq });
                }
            }
            LinkPhase::AwaitVerdict { rehello: Some(at), .. } => {
                if now >= *at {
                    self.send_hello(now);
                }
            }
            _ => {
                if now.duration_since(link.since) > HANDSHAKE_TIMEOUT {
                    self.drop_link("handshake with the master timed out");
                }
            }
        }
        Ok(())
    }

    /// The keepalive interval, shortened to `master_alive_interval` when that is set.
    fn keepalive(&self) -> Duration {
        match self.cfg.master_alive_interval {
            alive if alive.is_zero() => self.cfg.keepalive_interval,
            alive => alive.min(self.cfg.keepalive_interval),
        }
    }

    fn connect(&mut self, now: Instant) {
        let master = self.masters.current().clone();
        let addr = match resolve(&master) {
            Ok(addr) => addr,
            Err(e) => {
                log::warn!("cannot resolve master '{}': {e}", master.host);
                self.next_master(now);
                return;
            }
        };
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("cannot connect to master {addr}: {e}");
                self.next_master(now);
                return;
            }
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut stream, MASTER, interest) {
            log::error!("cannot register master connection: {e}");
            self.schedule_reconnect(now);
            return;
        }
        log::debug!("connecting to master {addr}");
        let conn = Conn::new(stream, self.cfg.max_frame_bytes, MAX_BACKLOG);
        self.link = Some(Link::new(conn, addr, now));
    }

    /// After the current master failed: the next one at once (failover), or the backoff.
    fn next_master(&mut self, now: Instant) {
        let from = self.masters.current().to_string();
        match self.masters.lost() {
            failover::Next::Now => {
                log::warn!("failing over from master {from} to {}", self.masters.current());
                self.reconnect_at = now;
            }
            failover::Next::Backoff => self.schedule_reconnect(now),
        }
    }

    /// With `master_failback`, on another master: every interval, a plain TCP connection to
    /// the first master; once it connects, the session moves back there.
    fn failback_check(&mut self, now: Instant) {
        if let Some((_, give_up)) = &self.probe {
            if now >= *give_up {
                self.end_probe(false, now);
            }
            return;
        }
        let Some(first) = self.masters.failback_due(now).cloned() else { return };
        let started = resolve(&first).and_then(|addr| {
            let mut stream = TcpStream::connect(addr)?;
            self.poll.registry().register(&mut stream, PROBE, Interest::WRITABLE)?;
            Ok(stream)
        });
        match started {
            Ok(stream) => self.probe = Some((stream, now + HANDSHAKE_TIMEOUT)),
            Err(e) => {
                log::debug!("failback check of master {first}: {e}");
                self.masters.probe_failed(now);
            }
        }
    }

    fn on_probe(&mut self) {
        let Some((stream, _)) = &self.probe else { return };
        let answered = match stream.take_error() {
            Ok(None) if stream.peer_addr().is_ok() => true,
            Ok(None) => return, // still connecting
            Ok(Some(_)) | Err(_) => false,
        };
        self.end_probe(answered, Instant::now());
    }

    fn end_probe(&mut self, answered: bool, now: Instant) {
        if let Some((mut stream, _)) = self.probe.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        if !answered {
            self.masters.probe_failed(now);
            return;
        }
        if let Some(mut link) = self.link.take() {
            let _ = self.poll.registry().deregister(&mut link.conn.stream);
            self.in_flight.fail_all("the minion is failing back to its first master");
            self.pillar_fetch.fail_all("the minion is failing back to its first master");
        }
        self.masters.fail_back();
        log::info!("master {} answers again: failing back to it", self.masters.current());
        self.reconnect_at = now;
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        // Up to half a backoff of jitter, so that minions of a restarted master do not all
        // come back in the same instant (Salt's recon_randomize).
        let random = halite_common::crypto::random_bytes(2);
        let fraction = u16::from_be_bytes([random[0], random[1]]) as u32;
        let jitter = self.backoff / 2 * fraction / u32::from(u16::MAX);
        self.reconnect_at = now + self.backoff + jitter;
        log::debug!("reconnecting in {:?}", self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.recon_max.max(self.cfg.recon_default));
    }

    fn drop_link(&mut self, reason: &str) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut link.conn.stream);
        self.in_flight.fail_all("the connection to the master was lost");
        self.pillar_fetch.fail_all("the connection to the master was lost");
        match link.phase {
            LinkPhase::Live(_) => log::warn!("lost master {}: {reason}", link.addr),
            _ => log::warn!("master {}: {reason}", link.addr),
        }
        self.notifier.notify(&format!("STATUS=no master: {}: {reason}", link.addr));
        if let Some((mut probe, _)) = self.probe.take() {
            let _ = self.poll.registry().deregister(&mut probe);
        }
        self.next_master(Instant::now());
    }

    fn on_master(&mut self, writable: bool) -> Result<(), MinionError> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        if writable && matches!(link.phase, LinkPhase::Connecting) {
            match link.conn.stream.take_error() {
                Ok(None) if link.conn.stream.peer_addr().is_ok() => {
                    link.phase = LinkPhase::AwaitGreeting;
                    link.since = Instant::now();
                }
                Ok(None) => return Ok(()), // spurious wake-up; still connecting
                Ok(Some(e)) | Err(e) => {
                    let reason = format!("connect failed: {e}");
                    self.drop_link(&reason);
                    return Ok(());
                }
            }
        }
        let turn = link.conn.read();
        if !turn.frames.is_empty() {
            link.heard = Instant::now();
        }
        for frame in turn.frames {
            if let Err(reason) = self.on_frame(&frame)? {
                self.drop_link(&reason);
                return Ok(());
            }
        }
        if let Some(reason) = turn.closed {
            self.drop_link(&reason.to_string());
            return Ok(());
        }
        if turn.more {
            // Edge-triggered: nothing will wake us for bytes already waiting.
            return self.on_master(false);
        }
        self.flush();
        Ok(())
    }

    /// Handles one frame. The outer `Err` stops the minion; the inner one drops the link.
    fn on_frame(&mut self, frame: &[u8]) -> Result<Result<(), String>, MinionError> {
        let Some(link) = &mut self.link else {
            return Ok(Ok(()));
        };
        match &mut link.phase {
            LinkPhase::Connecting => Ok(Err("data before connect completed".into())),
            LinkPhase::AwaitGreeting => Ok(self.on_greeting(frame)),
            LinkPhase::AwaitVerdict { handshake, previous, .. } => {
                let verdict = match crate::link::verdict(handshake, previous.as_ref(), frame) {
                    Ok(verdict) => verdict,
                    Err(e) => return Ok(Err(format!("bad reply from master: {e}"))),
                };
                self.on_verdict(verdict)
            }
            LinkPhase::Live(session) => match session.open::<ToMinion>(frame) {
                Ok(msg) => Ok(self.on_message(msg)),
                Err(e) => Ok(Err(format!("bad session frame: {e}"))),
            },
        }
    }

    fn on_greeting(&mut self, frame: &[u8]) -> Result<(), String> {
        let presented =
            handshake::parse_greeting(frame).map_err(|e| format!("bad greeting: {e}"))?;
        // Only a missing file is first use; a broken one trusts nobody until it is fixed or
        // removed (the minion keeps retrying, so fixing the file is enough).
        let cached = match read_cached_master_key(&self.master_pub_path) {
            Ok(cached) => cached,
            Err(e) => {
                log::error!("{e}; refusing the master until the file is fixed or removed");
                return Err("master key refused".into());
            }
        };
        match handshake::check_master_key(
            &presented,
            cached.as_ref(),
            self.cfg.master_finger.as_deref(),
        ) {
            Ok(MasterTrust::Known) => {}
            Ok(MasterTrust::FirstUse) => {
                write_atomic(&self.master_pub_path, presented.to_pem().as_bytes(), 0o644)
                    .map_err(|e| format!("cannot cache master key: {e}"))?;
                log::info!(
                    "trusting master key on first use (fingerprint {}), cached in {}",
                    presented.fingerprint(),
                    self.master_pub_path.display()
                );
            }
            Err(e) => {
                log::error!("{e}");
                return Err("master key refused".into());
            }
        }
        let link = self.link.as_mut().ok_or("no link")?;
        let (hs, hello) = MinionHandshake::start(&self.cfg.id, &self.keys, &presented)
            .map_err(|e| format!("cannot greet the master: {e}"))?;
        link.conn.send(&hello)?;
        link.phase = LinkPhase::AwaitVerdict { handshake: hs, previous: None, rehello: None };
        link.since = Instant::now();
        // Remember the master key for re-hellos while pending.
        self.master_key = Some(presented);
        Ok(())
    }

    fn on_verdict(&mut self, verdict: Verdict) -> Result<Result<(), String>, MinionError> {
        let now = Instant::now();
        let Some(link) = &mut self.link else {
            return Ok(Ok(()));
        };
        match verdict {
            Verdict::Accepted(session) => {
                link.phase = LinkPhase::Live(session);
                link.since = now;
                link.pinged = now;
                self.backoff = self.cfg.recon_default;
                self.pending_wait = self.cfg.acceptance_wait_time;
                let addr = link.addr;
                self.send(&ToMaster::Ready { grains: self.grains.clone(), transient: false });
                log::info!("halite-minion {} authenticated to master {addr}", self.cfg.id);
                // Salt's minion compiles its pillar when it starts; every new session asks
                // again, so a restarted master (or a failover master) knows it for `I@`.
                if let Some(req) = self.pillar_fetch.ask(None) {
                    self.send(&ToMaster::PillarRequest {
                        req,
                        max_frame: Some(self.cfg.max_frame_bytes as u64),
                    });
                }
                self.notify_status(&format!("connected to master {addr}"));
                if self.masters.live(now) {
                    self.fire_start_events();
                }
                // Returns the last master never acknowledged go first, then the ones of jobs
                // that finished while it was away.
                for msg in self.unacked.drain(..).rev() {
                    self.outbox.push_front(msg);
                }
                self.flush_outbox();
                Ok(Ok(()))
            }
            Verdict::Pending => {
                let wait = self.pending_wait;
                self.pending_wait = (wait + self.cfg.acceptance_wait_time)
                    .min(self.cfg.acceptance_wait_time_max)
                    .max(Duration::from_secs(1));
                if let LinkPhase::AwaitVerdict { rehello, .. } = &mut link.phase {
                    *rehello = Some(now + wait.max(Duration::from_secs(1)));
                }
                log::info!(
                    "halite-minion {} key pending acceptance on master {} (asking again in {:?})",
                    self.cfg.id,
                    link.addr,
                    wait
                );
                let status = format!("key pending acceptance on master {}", link.addr);
                self.notify_status(&status);
                Ok(Ok(()))
            }
            Verdict::Rejected | Verdict::Denied => {
                let why = "The Halite master has rejected this minion's public key! To repair \
                           this, delete the minion's key on the master (halite-key -d) and restart \
                           this minion";
                log::error!("{why}");
                if self.cfg.rejected_retry {
                    return Ok(Err("key rejected; retrying (rejected_retry)".into()));
                }
                Err(MinionError::Rejected(why.into()))
            }
            Verdict::Full => Ok(Err("master is full (max_minions); retrying".into())),
        }
    }

    /// Sends a fresh hello on the current link (while pending).
    fn send_hello(&mut self, now: Instant) {
        let (Some(link), Some(master)) = (&mut self.link, &self.master_key) else {
            return;
        };
        let sent = match MinionHandshake::start(&self.cfg.id, &self.keys, master) {
            Ok((hs, hello)) => link.conn.send(&hello).map(|()| hs).map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot greet the master: {e}")),
        };
        match sent {
            Ok(hs) => {
                let previous = match std::mem::replace(&mut link.phase, LinkPhase::AwaitGreeting) {
                    LinkPhase::AwaitVerdict { handshake, .. } => Some(handshake),
                    _ => None,
                };
                link.phase = LinkPhase::AwaitVerdict { handshake: hs, previous, rehello: None };
                link.since = now;
                self.flush();
            }
            Err(reason) => self.drop_link(&reason),
        }
    }

    fn on_message(&mut self, msg: ToMinion) -> Result<(), String> {
        match msg {
            ToMinion::Ping { seq } => self.send(&ToMaster::Pong { seq }),
            ToMinion::Pong { .. } => {}
            ToMinion::EventRefused { tag, reason } => {
                log::warn!("master refused event '{tag}': {reason}");
            }
            ToMinion::Publish(publish) if functions::beacons::on_loop(&publish.fun) => {
                if self.jobs.fresh(&publish.jid) {
                    log::info!("job {}: {} (on the loop)", publish.jid, publish.fun);
                    let outcome = match functions::bind_on_loop(&publish.fun, &publish.arg) {
                        Ok(bound) => self.beacons.call(&publish.fun, &bound),
                        Err(failed) => failed,
                    };
                    self.queue(ToMaster::Return(jobs::to_return(&publish, outcome)));
                }
            }
            ToMinion::Publish(publish) => {
                for msg in self.jobs.start(publish) {
                    self.queue(msg);
                }
            }
            ToMinion::EventAck { tag } => log::debug!("master took event '{tag}'"),
            ToMinion::FileReply { req, reply } => self.in_flight.finish(req, reply),
            ToMinion::PillarReply { req, pillar } => {
                if self.pillar_fetch.in_flight == Some(req) {
                    log::debug!("pillar from the master: {} keys", pillar.len());
                    self.pillar.store(pillar);
                }
                if let Some(req) = self.pillar_fetch.answered(req) {
                    self.send(&ToMaster::PillarRequest {
                        req,
                        max_frame: Some(self.cfg.max_frame_bytes as u64),
                    });
                }
            }
            ToMinion::ReturnAck { jid } => {
                self.unacked.retain(|m| !matches!(m, ToMaster::Return(r) if r.jid == jid));
            }
        }
        Ok(())
    }

    /// Sends the job threads' file server questions and pillar refreshes, or fails them when
    /// there is no session.
    fn forward_file_calls(&mut self) {
        while let Ok(call) = self.file_calls.try_recv() {
            let live = matches!(self.link.as_ref().map(|l| &l.phase), Some(LinkPhase::Live(_)));
            if !live {
                let message = "not connected to the master".to_string();
                let _ = call.reply.send(halite_common::proto::FileReply::Error { message });
                continue;
            }
            let req = self.in_flight.start(call.reply);
            self.send(&ToMaster::FileRequest { req, op: call.op });
        }
        while let Ok(refresh) = self.pillar_refreshes.try_recv() {
            let live = matches!(self.link.as_ref().map(|l| &l.phase), Some(LinkPhase::Live(_)));
            if !live {
                let _ = refresh.send(Err("not connected to the master".into()));
                continue;
            }
            if let Some(req) = self.pillar_fetch.ask(Some(refresh)) {
                self.send(&ToMaster::PillarRequest {
                    req,
                    max_frame: Some(self.cfg.max_frame_bytes as u64),
                });
            }
        }
    }

    /// Queues a message that must not be lost (a job return) and sends what it can.
    fn queue(&mut self, msg: ToMaster) {
        self.outbox.push_back(fit_return(msg, self.cfg.max_frame_bytes));
        self.flush_outbox();
    }

    /// Sends queued messages while the session is live; what cannot be sent stays queued.
    fn flush_outbox(&mut self) {
        while let Some(msg) = self.outbox.pop_front() {
            let Some(link) = &mut self.link else {
                self.outbox.push_front(msg);
                return;
            };
            let LinkPhase::Live(session) = &mut link.phase else {
                self.outbox.push_front(msg);
                return;
            };
            let sent = session
                .seal(&msg)
                .map_err(|e| e.to_string())
                .and_then(|f| Ok(link.conn.send(&f)?));
            if let Err(reason) = sent {
                self.outbox.push_front(msg);
                self.drop_link(&reason);
                return;
            }
            if matches!(msg, ToMaster::Return(_)) {
                self.unacked.push(msg);
            }
        }
        self.flush();
    }

    /// Salt's start events, in Salt's order: the legacy `minion_start`, then
    /// `salt/minion/<id>/start`.
    fn fire_start_events(&mut self) {
        let text = format!("Minion {} started at {}", self.cfg.id, Utc::now().asctime());
        let ts = unix_seconds();
        for tag in ["minion_start".to_string(), format!("salt/minion/{}/start", self.cfg.id)] {
            self.send(&ToMaster::Event {
                tag,
                data: Value::String(text.clone()),
                ts,
                ack: false,
                jid: None,
            });
        }
    }

    /// Sends beacon events while the session is live and its output keeps up; otherwise they
    /// are dropped and counted (Salt's minion, too, loses beacon events it cannot send).
    fn send_beacons(&mut self, events: Vec<halite_common::proto::BeaconEvent>) {
        if events.is_empty() {
            return;
        }
        let live = matches!(self.link.as_ref().map(|l| &l.phase), Some(LinkPhase::Live(_)));
        let backlog = self.link.as_ref().map_or(0, |l| l.conn.backlog());
        if !live || backlog > BEACON_BACKLOG {
            self.beacons.count_dropped(events.len());
            return;
        }
        let limit = BEACON_FRAME_BYTES.min(self.cfg.max_frame_bytes / 2);
        let (mut batch, mut bytes) = (Vec::new(), 0);
        for event in events {
            let size = serde_json::to_vec(&event).map_or(usize::MAX, |v| v.len());
            if size > limit {
                self.beacons.count_dropped(1);
                continue;
            }
            if bytes + size > limit {
                self.send(&ToMaster::Beacons { events: std::mem::take(&mut batch) });
                bytes = 0;
            }
            bytes += size;
            batch.push(event);
        }
        if !batch.is_empty() {
            self.send(&ToMaster::Beacons { events: batch });
        }
    }

    /// Seals and queues a session message; a failure drops the link.
    fn send(&mut self, msg: &ToMaster) {
        let Some(link) = &mut self.link else { return };
        let LinkPhase::Live(session) = &mut link.phase else {
            return;
        };
        let result =
            session.seal(msg).map_err(|e| e.to_string()).and_then(|f| Ok(link.conn.send(&f)?));
        match result {
            Ok(()) => self.flush(),
            Err(reason) => self.drop_link(&reason),
        }
    }

    fn flush(&mut self) {
        let Some(link) = &mut self.link else { return };
        if matches!(link.phase, LinkPhase::Connecting) {
            return;
        }
        if let Err(e) = link.conn.flush() {
            let reason = e.to_string();
            self.drop_link(&reason);
            return;
        }
        let wants = link.conn.wants_write();
        if wants != link.writing {
            let interest = match wants {
                true => Interest::READABLE | Interest::WRITABLE,
                false => Interest::READABLE,
            };
            let _ = self.poll.registry().reregister(&mut link.conn.stream, MASTER, interest);
            link.writing = wants;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::proto::JobReturn;

    fn ret(value: Value) -> ToMaster {
        ToMaster::Return(JobReturn {
            jid: "20260101000000000000".into(),
            fun: "cmd.run".into(),
            fun_args: vec![],
            ret: value,
            retcode: 0,
            success: true,
            out: None,
            user: "root".into(),
        })
    }

    #[test]
    fn a_return_too_big_for_a_frame_becomes_a_failed_return() {
        let small = ret(Value::String("x".repeat(1000)));
        assert_eq!(fit_return(small.clone(), 8192), small);
        let ToMaster::Return(big) = fit_return(ret(Value::String("x".repeat(10_000))), 8192) else {
            panic!("still a return");
        };
        assert_eq!(
            (big.retcode, big.success, big.jid.as_str()),
            (1, false, "20260101000000000000")
        );
        let text = big.ret.as_str().unwrap();
        assert!(text.starts_with("The return of cmd.run is 101"), "{text}");
        let event = ToMaster::Pong { seq: 1 };
        assert_eq!(fit_return(event.clone(), 10), event);
    }
}
