//! A swarm of minions in one process: N connections on one `mio` loop, each with its own key
//! and id, doing the real handshake and answering `test.ping` / `test.echo` with real returns.
//!
//! Each member behaves as a real minion does on the wire: `Ready` carries a real minion's
//! grains with its own names and addresses (`grains`), the start events (`minion_start`, then
//! `salt/minion/<id>/start`) follow it, and a member whose key is pending waits on its
//! connection (the master answers it there once the key is accepted), sends a fresh hello
//! every `acceptance_wait_time`, and connects again a second later if the master closes that
//! connection. Any other closed connection loses the member (the benchmarks fail on that).
//!
//! It shares nothing with the master but the wire protocol (`halite_common`'s codec,
//! handshake and messages). With `threads` above one the members are dealt round-robin to
//! that many loops, each on its own thread with its own `Poll` (one loop could not keep up
//! with a master that does a handshake in tens of microseconds); the counters are shared.
//! Commands arrive as lines on stdin; status lines go to stdout:
//!
//! - `swarm ready: N live in MS ms (R handshakes/s; cpu C ms)` once every member is
//!   authenticated (C: the swarm's own CPU time, all loops, since its clock started);
//! - `events N` → fires N events (`bench/event/K`) round-robin over the live members (each
//!   loop its share), then `bench/events/done`, and prints `events sent: N in MS ms` once
//!   they are all written;
//! - `stats` → `stats: live=L returns=R lost=X pending=P rehellos=H reconnects=C` (P: members
//!   told their key is pending, H: hellos sent again while pending, C: pending connections the
//!   master closed, connected again);
//! - `quit` or end of input → exits.

use halite_common::conn::Conn;
use halite_common::crypto::{KeyPair, PublicKey, SharedKey};
use halite_common::files::write_cache;
use halite_common::handshake::{self, MinionHandshake, Session, Verdict};
use halite_common::proto::{JobReturn, Publish, ToMaster, ToMinion};
use halite_common::time::{unix_seconds, Utc};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(usize::MAX - 1);
const MAX_FRAME: usize = 16 << 20;
const MAX_OUT: usize = 256 << 20;
/// A real minion's `recon_default`: how long a member waits before connecting again.
const RECONNECT: Duration = Duration::from_secs(1);
/// Reconnections a pending member gets before it counts as lost.
const MAX_RECONNECTS: u32 = 5;

/// What the swarm is told to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub master: SocketAddr,
    /// Loops (threads) the members are dealt to.
    pub threads: usize,
    /// Most connections between connect and authenticated at once (the master's listen
    /// backlog is finite).
    pub in_flight: usize,
    /// How long a pending member waits before it sends its hello again (a real minion's
    /// `acceptance_wait_time`; the master refuses re-hellos faster than about a second).
    pub acceptance_wait_time: Duration,
    /// The master's public key, when known before connecting: each member's shared key is
    /// then computed before the clock starts, on every loop at once, as a real fleet's
    /// minions compute theirs on their own machines, not on the master's cores.
    pub master_pub: Option<PublicKey>,
}

/// The ids (`{prefix}{index:05}`) and key pairs of `count` members: loaded from `dir`, or
/// generated and stored there for the next run.
pub fn load_keys(dir: &Path, prefix: &str, count: usize) -> io::Result<Vec<(String, KeyPair)>> {
    std::fs::create_dir_all(dir)?;
    (0..count)
        .map(|i| {
            let id = format!("{prefix}{i:05}");
            let path = dir.join(format!("{id}.pem"));
            let keys = match std::fs::read_to_string(&path) {
                Ok(pem) => KeyPair::from_secret_pem(&pem)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let keys = KeyPair::generate();
                    write_cache(&path, keys.secret_pem().as_bytes(), 0o600)?;
                    keys
                }
                Err(e) => return Err(e),
            };
            Ok((id, keys))
        })
        .collect()
}

/// Accepts the members' keys the way an operator pre-seeds them: one public key file per id
/// in the master's `pki_dir/minions/` (what `halite-key -a` leaves there).
pub fn pre_accept(pki_dir: &Path, members: &[(String, KeyPair)]) -> io::Result<()> {
    let dir = pki_dir.join("minions");
    std::fs::create_dir_all(&dir)?;
    for (id, keys) in members {
        write_cache(&dir.join(id), keys.public.to_pem().as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Where one member stands.
enum Phase {
    NotStarted,
    Connecting,
    AwaitGreeting,
    AwaitVerdict(MinionHandshake),
    Live(Session),
    Gone,
}

struct Member {
    /// Its number in the whole swarm (grains vary by it).
    index: usize,
    id: String,
    keys: KeyPair,
    /// The key it shares with a master key, computed once (`--master-pub`: before starting).
    shared: Option<(PublicKey, SharedKey)>,
    conn: Option<Conn<TcpStream>>,
    phase: Phase,
    writing: bool,
    /// When to send the hello again while the key is pending.
    rehello_at: Option<Instant>,
    /// Told its key is pending (on this connection or an earlier one).
    told_pending: bool,
    reconnects: u32,
}

/// Stdin commands, read on the main thread and handed to each loop through its waker.
#[derive(Clone, Copy)]
enum Command {
    /// Fire the loop's share of N events and the closing `bench/events/done` (number N):
    /// those whose number is the loop's modulo the loop count.
    Events(usize),
    Quit,
}

/// The counters every loop adds to, and what the status lines need.
struct Shared {
    total: usize,
    threads: usize,
    started: Instant,
    /// The process's CPU time when the clock started (the keys' work done before it).
    cpu_at_start: Duration,
    live: AtomicUsize,
    lost: AtomicUsize,
    returns: AtomicUsize,
    /// Members told their key is pending, and hellos sent again while pending.
    pending: AtomicUsize,
    rehellos: AtomicUsize,
    reconnects: AtomicUsize,
    ready_said: AtomicBool,
    /// Loops still writing their share of an `events` command.
    sending: AtomicUsize,
}

impl Shared {
    fn stats(&self) -> String {
        format!(
            "stats: live={} returns={} lost={} pending={} rehellos={} reconnects={}",
            self.live.load(SeqCst),
            self.returns.load(SeqCst),
            self.lost.load(SeqCst),
            self.pending.load(SeqCst),
            self.rehellos.load(SeqCst),
            self.reconnects.load(SeqCst)
        )
    }
}

/// Runs the swarm until `quit` or the end of stdin: the members dealt round-robin to
/// `opts.threads` loops (the in-flight handshakes shared out too), commands read here.
pub fn run(opts: Options, members: Vec<(String, KeyPair)>) -> io::Result<()> {
    let threads = opts.threads.clamp(1, members.len().max(1));
    let total = members.len();
    let mut shards: Vec<Vec<(usize, String, KeyPair)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (id, keys)) in members.into_iter().enumerate() {
        shards[i % threads].push((i, id, keys));
    }
    let precomputed = match &opts.master_pub {
        Some(master) => precompute(&shards, master)?,
        None => shards.iter().map(|shard| vec![None; shard.len()]).collect(),
    };
    let shared = Arc::new(Shared {
        total,
        threads,
        started: Instant::now(),
        cpu_at_start: crate::procs::cpu_times(std::process::id()).0,
        live: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        returns: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
        rehellos: AtomicUsize::new(0),
        reconnects: AtomicUsize::new(0),
        ready_said: AtomicBool::new(false),
        sending: AtomicUsize::new(0),
    });
    let mut loops: Vec<(Sender<Command>, Arc<Waker>)> = Vec::new();
    let mut handles = Vec::new();
    for (k, (shard, precomputed)) in shards.into_iter().zip(precomputed).enumerate() {
        let mut opts = opts.clone();
        // The in-flight cap is the swarm's, shared out.
        opts.in_flight =
            (opts.in_flight / threads + usize::from(k < opts.in_flight % threads)).max(1);
        let (tx, rx) = mpsc::channel();
        let mut swarm = Swarm::new(opts, k, shard, precomputed, Arc::clone(&shared), rx)?;
        loops.push((tx, Arc::clone(&swarm.waker)));
        let handle = std::thread::Builder::new().name(format!("swarm{k}")).spawn(move || {
            if let Err(e) = swarm.run() {
                // As the single loop did: the whole swarm fails.
                eprintln!("halite-swarm: {e}");
                std::process::exit(1);
            }
        })?;
        handles.push(handle);
    }
    let tell = |command: Command| {
        for (tx, waker) in &loops {
            let _ = tx.send(command);
            let _ = waker.wake();
        }
    };
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match (words.next(), words.next().map(str::parse::<usize>)) {
            (Some("events"), Some(Ok(n))) => {
                shared.sending.store(threads, SeqCst);
                tell(Command::Events(n));
            }
            (Some("stats"), _) => say(&shared.stats()),
            (Some("quit"), _) => break,
            _ => eprintln!("halite-swarm: unknown command {line:?}"),
        }
    }
    tell(Command::Quit);
    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}

/// A shard's members' shared keys, in its order (`None`: computed at the first hello).
type Precomputed = Vec<Option<(PublicKey, SharedKey)>>;

/// Every member's shared key with `master`, computed one thread per shard.
fn precompute(
    shards: &[Vec<(usize, String, KeyPair)>],
    master: &PublicKey,
) -> io::Result<Vec<Precomputed>> {
    std::thread::scope(|scope| {
        let computing: Vec<_> = shards
            .iter()
            .map(|shard| {
                scope.spawn(move || -> io::Result<Precomputed> {
                    shard
                        .iter()
                        .map(|(_, _, keys)| match keys.shared_with(master) {
                            Ok(shared) => Ok(Some((master.clone(), shared))),
                            Err(e) => Err(io::Error::other(e.to_string())),
                        })
                        .collect()
                })
            })
            .collect();
        computing.into_iter().map(|t| t.join().expect("precompute thread panicked")).collect()
    })
}

/// One loop of the swarm: its share of the members.
struct Swarm {
    opts: Options,
    /// Which loop this is (of `shared.threads`).
    shard: usize,
    poll: Poll,
    waker: Arc<Waker>,
    members: Vec<Member>,
    master_key: Option<PublicKey>,
    next: usize,
    connecting: usize,
    shared: Arc<Shared>,
    /// Re-hello deadlines in the order they fall (the wait is the same for every member).
    rehello_queue: VecDeque<(Instant, usize)>,
    /// Pending members to connect again, in the order they are due.
    reconnect_queue: VecDeque<(Instant, usize)>,
    /// This machine's core grains, which each member varies (`grains::member`).
    grains: Map<String, Value>,
    /// `events` in progress: when it started and how many.
    sending: Option<(Instant, usize)>,
    commands: Receiver<Command>,
}

impl Swarm {
    fn new(
        opts: Options,
        shard: usize,
        members: Vec<(usize, String, KeyPair)>,
        precomputed: Precomputed,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
    ) -> io::Result<Swarm> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let members = members
            .into_iter()
            .zip(precomputed)
            .map(|((index, id, keys), shared)| Member {
                index,
                id,
                keys,
                shared,
                conn: None,
                phase: Phase::NotStarted,
                writing: false,
                rehello_at: None,
                told_pending: false,
                reconnects: 0,
            })
            .collect();
        Ok(Swarm {
            opts,
            shard,
            poll,
            waker,
            members,
            master_key: None,
            next: 0,
            connecting: 0,
            shared,
            rehello_queue: VecDeque::new(),
            reconnect_queue: VecDeque::new(),
            grains: crate::grains::base(),
            sending: None,
            commands,
        })
    }

    /// Runs until `quit` or the end of stdin.
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            self.start_connections()?;
            self.rehello_due(Instant::now());
            let next = [self.rehello_queue.front(), self.reconnect_queue.front()];
            let timeout = next
                .into_iter()
                .flatten()
                .map(|(at, _)| at.saturating_duration_since(Instant::now()))
                .min();
            self.poll.poll(&mut events, timeout)?;
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                self.on_ready(token.0, event.is_writable());
            }
            while let Ok(command) = self.commands.try_recv() {
                match command {
                    Command::Events(n) => self.fire_events(n),
                    Command::Quit => return Ok(()),
                }
            }
            self.check_progress();
        }
    }

    /// Opens connections until `in_flight` handshakes are under way: members due to connect
    /// again first, then new ones.
    fn start_connections(&mut self) -> io::Result<()> {
        let now = Instant::now();
        while self.connecting < self.opts.in_flight {
            let i = match self.reconnect_queue.front() {
                Some(&(at, i)) if at <= now => {
                    self.reconnect_queue.pop_front();
                    i
                }
                _ if self.next < self.members.len() => {
                    self.next += 1;
                    self.next - 1
                }
                _ => return Ok(()),
            };
            let mut stream = TcpStream::connect(self.opts.master)?;
            self.poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let member = &mut self.members[i];
            member.conn = Some(Conn::new(stream, MAX_FRAME, MAX_OUT));
            member.phase = Phase::Connecting;
            member.writing = true;
            self.connecting += 1;
        }
        Ok(())
    }

    fn on_ready(&mut self, i: usize, writable: bool) {
        if let Err(why) = self.turn(i, writable) {
            self.drop_member(i, &why);
        }
    }

    /// One readiness event for member `i`: finish connecting, read frames, flush.
    fn turn(&mut self, i: usize, writable: bool) -> Result<(), String> {
        let member = &mut self.members[i];
        let Some(conn) = member.conn.as_mut() else { return Ok(()) };
        if matches!(member.phase, Phase::Connecting) {
            if !writable {
                return Ok(());
            }
            if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                return Err(format!("connect failed: {e}"));
            }
            if let Err(e) = conn.stream.peer_addr() {
                return match e.kind() {
                    io::ErrorKind::NotConnected => Ok(()),
                    _ => Err(format!("connect failed: {e}")),
                };
            }
            member.phase = Phase::AwaitGreeting;
        }
        loop {
            let conn = self.members[i].conn.as_mut().expect("connected");
            let turn = conn.read();
            for frame in turn.frames {
                self.on_frame(i, &frame)?;
            }
            if let Some(why) = turn.closed {
                return Err(why.into());
            }
            if !turn.more {
                break;
            }
        }
        self.flush(i)
    }

    fn on_frame(&mut self, i: usize, frame: &[u8]) -> Result<(), String> {
        let member = &mut self.members[i];
        match std::mem::replace(&mut member.phase, Phase::Gone) {
            Phase::AwaitGreeting => {
                let key = handshake::parse_greeting(frame).map_err(|e| e.to_string())?;
                match &self.master_key {
                    Some(known) if *known != key => {
                        return Err("the master presented another key".into());
                    }
                    Some(_) => {}
                    None => self.master_key = Some(key.clone()),
                }
                send_hello(member, &key)
            }
            Phase::AwaitVerdict(hs) => match hs.on_reply(frame) {
                Ok(Verdict::Accepted(session)) => {
                    member.phase = Phase::Live(session);
                    member.rehello_at = None;
                    let grains = crate::grains::member(&self.grains, &member.id, member.index);
                    send(member, &ToMaster::Ready { grains, transient: false })?;
                    fire_start_events(member)?;
                    self.connecting -= 1;
                    self.shared.live.fetch_add(1, SeqCst);
                    Ok(())
                }
                Ok(Verdict::Pending) => {
                    member.phase = Phase::AwaitVerdict(hs);
                    if !member.told_pending {
                        member.told_pending = true;
                        // Told so the first time, not on every re-hello.
                        self.shared.pending.fetch_add(1, SeqCst);
                    }
                    let at = Instant::now() + self.opts.acceptance_wait_time;
                    member.rehello_at = Some(at);
                    self.rehello_queue.push_back((at, i));
                    Ok(())
                }
                Ok(other) => Err(format!("not accepted: {other:?}")),
                Err(e) => Err(e.to_string()),
            },
            Phase::Live(mut session) => {
                let opened = session.open(frame);
                member.phase = Phase::Live(session); // still live when `drop_member` counts
                let msg: ToMinion = opened.map_err(|e| e.to_string())?;
                match msg {
                    ToMinion::Ping { seq } => send(member, &ToMaster::Pong { seq }),
                    ToMinion::Publish(job) => {
                        self.shared.returns.fetch_add(1, SeqCst);
                        send(member, &ToMaster::Return(answer(job)))
                    }
                    _ => Ok(()),
                }
            }
            other => {
                member.phase = other;
                Ok(())
            }
        }
    }

    /// Sends a fresh hello for every pending member whose `acceptance_wait_time` is over, as a
    /// real minion does (the master answers the waiting connection itself when the key is
    /// accepted, so with a reactor that accepts at once this never runs).
    fn rehello_due(&mut self, now: Instant) {
        while let Some(&(at, i)) = self.rehello_queue.front() {
            if at > now {
                return;
            }
            self.rehello_queue.pop_front();
            let member = &mut self.members[i];
            // A member accepted (or answered again) since this was queued has no business here.
            if member.rehello_at != Some(at) || !matches!(member.phase, Phase::AwaitVerdict(_)) {
                continue;
            }
            member.rehello_at = None;
            let Some(key) = self.master_key.clone() else { continue };
            self.shared.rehellos.fetch_add(1, SeqCst);
            let sent = send_hello(member, &key).and_then(|()| self.flush(i));
            if let Err(why) = sent {
                self.drop_member(i, &why);
            }
        }
    }

    /// Writes what the socket takes and keeps WRITABLE interest in step.
    fn flush(&mut self, i: usize) -> Result<(), String> {
        let member = &mut self.members[i];
        let Some(conn) = member.conn.as_mut() else { return Ok(()) };
        if matches!(member.phase, Phase::Connecting) {
            return Ok(());
        }
        conn.flush()?;
        let want = conn.wants_write();
        if want != member.writing {
            let interest = match want {
                true => Interest::READABLE | Interest::WRITABLE,
                false => Interest::READABLE,
            };
            self.poll
                .registry()
                .reregister(&mut conn.stream, Token(i), interest)
                .map_err(|e| e.to_string())?;
            member.writing = want;
        }
        Ok(())
    }

    fn drop_member(&mut self, i: usize, why: &str) {
        let member = &mut self.members[i];
        // A frame that failed mid-handshake has left the phase `Gone`, the connection open.
        let was_live = matches!(member.phase, Phase::Live(_));
        match (was_live, member.conn.is_some()) {
            (true, _) => {
                self.shared.live.fetch_sub(1, SeqCst);
            }
            (false, true) => self.connecting -= 1,
            (false, false) => {}
        }
        // A pending minion whose handshake fails or whose connection closes connects again,
        // as a real one does.
        let again = member.told_pending
            && !was_live
            && member.conn.is_some()
            && member.reconnects < MAX_RECONNECTS;
        member.phase = if again { Phase::NotStarted } else { Phase::Gone };
        member.rehello_at = None;
        if let Some(mut conn) = member.conn.take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        if again {
            member.reconnects += 1;
            self.shared.reconnects.fetch_add(1, SeqCst);
            self.reconnect_queue.push_back((Instant::now() + RECONNECT, i));
            say(&format!("reconnecting {}: {why}", member.id));
            return;
        }
        self.shared.lost.fetch_add(1, SeqCst);
        say(&format!("lost {}: {why}", member.id));
    }

    /// Fires `n` events round-robin over the live members, then `bench/events/done`.
    fn fire_events(&mut self, n: usize) {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&i| matches!(self.members[i].phase, Phase::Live(_)))
            .collect();
        self.sending = Some((Instant::now(), n));
        if live.is_empty() {
            return self.check_progress(); // this loop's share is nothing
        }
        let ts = unix_seconds();
        let threads = self.shared.threads;
        for (j, k) in (self.shard..=n).step_by(threads).enumerate() {
            let i = live[j % live.len()];
            if !matches!(self.members[i].phase, Phase::Live(_)) {
                continue; // dropped earlier in this loop: counted lost once
            }
            let tag = match k == n {
                true => "bench/events/done".to_string(),
                false => format!("bench/event/{k}"),
            };
            let event = ToMaster::Event { tag, data: json!({"n": k}), ts, ack: false, jid: None };
            if let Err(why) = send(&mut self.members[i], &event) {
                self.drop_member(i, &why);
            }
        }
        for i in live {
            if let Err(why) = self.flush(i) {
                self.drop_member(i, &why);
            }
        }
    }

    /// Says `ready` once every member of the swarm is live (or lost), and `events sent` once
    /// every loop's share of the output is out (the last loop to finish says it).
    fn check_progress(&mut self) {
        let shared = &self.shared;
        let (live, lost) = (shared.live.load(SeqCst), shared.lost.load(SeqCst));
        if live + lost == shared.total && !shared.ready_said.swap(true, SeqCst) {
            let ms = shared.started.elapsed().as_secs_f64() * 1000.0;
            let rate = live as f64 / (ms / 1000.0).max(1e-9);
            let now = crate::procs::cpu_times(std::process::id()).0;
            let cpu = now.saturating_sub(shared.cpu_at_start);
            let cpu = cpu.as_millis();
            say(&format!(
                "swarm ready: {live} live in {ms:.1} ms ({rate:.0} handshakes/s; cpu {cpu} ms)"
            ));
        }
        if let Some((since, n)) = self.sending {
            if self.members.iter().all(|m| !m.writing || m.conn.is_none()) {
                self.sending = None;
                if shared.sending.fetch_sub(1, SeqCst) == 1 {
                    let ms = since.elapsed().as_secs_f64() * 1000.0;
                    say(&format!("events sent: {n} in {ms:.1} ms"));
                }
            }
        }
    }
}

/// The return a real minion gives for the functions the swarm knows.
fn answer(job: Publish) -> JobReturn {
    let (ret, retcode) = match job.fun.as_str() {
        "test.ping" => (Value::Bool(true), 0),
        "test.echo" => (job.arg.first().cloned().unwrap_or(Value::String(String::new())), 0),
        fun => (Value::String(format!("'{fun}' is not available.")), 1),
    };
    JobReturn {
        jid: job.jid,
        fun: job.fun,
        fun_args: job.arg,
        ret,
        retcode,
        success: retcode == 0,
        out: None,
        user: job.user,
    }
}

/// Starts a handshake: a hello sealed to the master's key, waiting for its verdict.
fn send_hello(member: &mut Member, master: &PublicKey) -> Result<(), String> {
    let shared = match &member.shared {
        Some((key, shared)) if key == master => shared.clone(),
        _ => {
            let shared = member.keys.shared_with(master).map_err(|e| e.to_string())?;
            member.shared = Some((master.clone(), shared.clone()));
            shared
        }
    };
    let (hs, hello) = MinionHandshake::start_shared(&member.id, &member.keys.public, shared);
    member.phase = Phase::AwaitVerdict(hs);
    send_raw(member, &hello)
}

/// A real minion's start events, in Salt's order: the legacy `minion_start`, then
/// `salt/minion/<id>/start` (what the seed's reactor reacts to).
fn fire_start_events(member: &mut Member) -> Result<(), String> {
    let text = format!("Minion {} started at {}", member.id, Utc::now().asctime());
    let ts = unix_seconds();
    for tag in ["minion_start".to_string(), format!("salt/minion/{}/start", member.id)] {
        let data = Value::String(text.clone());
        send(member, &ToMaster::Event { tag, data, ts, ack: false, jid: None })?;
    }
    Ok(())
}

fn send(member: &mut Member, msg: &ToMaster) -> Result<(), String> {
    let Phase::Live(session) = &mut member.phase else {
        return Err("not live".into());
    };
    let frame = session.seal(msg).map_err(|e| e.to_string())?;
    send_raw(member, &frame)
}

fn send_raw(member: &mut Member, frame: &[u8]) -> Result<(), String> {
    Ok(member.conn.as_mut().ok_or("not connected")?.send(frame)?)
}

/// One status line on stdout, flushed at once (the driver waits for these).
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
