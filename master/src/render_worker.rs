//! The render worker: reactor SLS files are rendered in a child process (this binary run as
//! `halite-master --render-worker BYTES`) whose address space is capped with `RLIMIT_AS`, so a
//! render that allocates without bound aborts the worker, never the master, and the master
//! loop never waits for a render.
//!
//! minijinja has no allocation hook and Rust's global allocator cannot fail gracefully, hence a
//! process. The master talks to it over a socketpair (the child's stdin and stdout) with
//! `common::wire` frames of JSON: [`ToWorker`] one way, [`Rendered`] the other, one render at
//! a time, answered in order.

use halite_common::conn::Conn;
use halite_common::reactor::{Reaction, Reactions, Reactor, ReactorError, Rule};
use halite_common::wire::{encode_frame, Decoder};
use mio::{Interest, Registry, Token};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The hidden first argument that turns `halite-master` into a render worker.
pub const ARG: &str = "--render-worker";
/// A render still unanswered after this is killed with its worker (fuel keeps a render far
/// shorter; this catches whatever fuel does not count).
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Frames either way: event data and compiled reactions stay well below this.
const MAX_FRAME: usize = 64 << 20;

/// Master → worker.
#[derive(Debug, Serialize, Deserialize)]
enum ToWorker {
    /// The rules and roots to render with (first frame, and again after a reload).
    Rules { rules: Vec<(String, Vec<String>)>, file_roots: Vec<PathBuf> },
    /// Render every SLS the tag's rules name; answered by one [`Rendered`].
    Render { tag: String, data: Map<String, Value> },
}

/// Worker → master: `Reactor::react`'s outcome and how long the render took.
#[derive(Debug, Serialize, Deserialize)]
struct Rendered {
    reactions: Vec<Reaction>,
    errors: Vec<WireError>,
    matched: Vec<String>,
    micros: u64,
}

/// A [`ReactorError`] on the pipe.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    sls: String,
    tag: String,
    kind: String,
    line: Option<usize>,
    message: String,
    id: Option<Box<str>>,
}

impl From<ReactorError> for WireError {
    fn from(e: ReactorError) -> WireError {
        WireError {
            sls: e.sls,
            tag: e.tag,
            kind: e.kind.into(),
            line: e.line,
            message: e.message,
            id: e.id,
        }
    }
}

impl From<WireError> for ReactorError {
    fn from(e: WireError) -> ReactorError {
        let kind = match e.kind.as_str() {
            "missing" => "missing",
            "yaml" => "yaml",
            "reaction" => "reaction",
            _ => "render",
        };
        ReactorError { sls: e.sls, tag: e.tag, kind, line: e.line, message: e.message, id: e.id }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker process

/// Runs the worker: caps its address space at `max_bytes`, then answers frames on stdin
/// (a socket) until the master hangs up.
pub fn serve(max_bytes: Option<String>) -> ExitCode {
    let Some(max_bytes) = max_bytes.and_then(|b| b.parse::<u64>().ok()) else {
        eprintln!("halite-master {ARG}: needs the address space limit in bytes");
        return ExitCode::from(64);
    };
    if let Err(e) = limit_address_space(max_bytes) {
        eprintln!("halite-master {ARG}: cannot set RLIMIT_AS: {e}");
        return ExitCode::FAILURE;
    }
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return ExitCode::FAILURE;
    };
    let mut pipe = std::os::unix::net::UnixStream::from(fd);
    let mut decoder = Decoder::new(MAX_FRAME);
    let mut reactor = Reactor::new(Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let frame = match decoder.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => match pipe.read(&mut buf) {
                Ok(0) => return ExitCode::SUCCESS,
                Ok(n) => {
                    decoder.push(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return ExitCode::FAILURE,
            },
            Err(_) => return ExitCode::FAILURE,
        };
        let Ok(msg) = serde_json::from_slice::<ToWorker>(&frame) else {
            return ExitCode::FAILURE;
        };
        if let Some(answer) = handle(&mut reactor, msg) {
            let mut out = Vec::new();
            encode_frame(&answer, &mut out);
            if pipe.write_all(&out).is_err() {
                return ExitCode::FAILURE;
            }
        }
    }
}

/// One message: new rules (no answer), or a render answered with a [`Rendered`] payload.
fn handle(reactor: &mut Reactor, msg: ToWorker) -> Option<Vec<u8>> {
    match msg {
        ToWorker::Rules { rules, file_roots } => {
            let rules = rules.into_iter().map(|(pattern, sls)| Rule { pattern, sls }).collect();
            *reactor = Reactor::new(rules).with_file_roots(file_roots);
            None
        }
        ToWorker::Render { tag, data } => {
            let started = Instant::now();
            let outcome = render(reactor, &tag, &data);
            let rendered = Rendered {
                reactions: outcome.reactions,
                errors: outcome.errors.into_iter().map(WireError::from).collect(),
                matched: outcome.matched,
                micros: started.elapsed().as_micros().try_into().unwrap_or(u64::MAX),
            };
            Some(serde_json::to_vec(&rendered).expect("serialisable"))
        }
    }
}

/// A [`Rendered`] payload back into `Reactor::react`'s outcome and the render time.
fn decode(payload: &[u8]) -> Result<(Reactions, Duration), serde_json::Error> {
    let r: Rendered = serde_json::from_slice(payload)?;
    let errors = r.errors.into_iter().map(ReactorError::from).collect();
    let outcome = Reactions { reactions: r.reactions, errors, matched: r.matched };
    Ok((outcome, Duration::from_micros(r.micros)))
}

/// `Reactor::react`, a panic turned into a render error.
fn render(reactor: &Reactor, tag: &str, data: &Map<String, Value>) -> Reactions {
    let run = std::panic::AssertUnwindSafe(|| reactor.react(tag, data));
    std::panic::catch_unwind(run).unwrap_or_else(|_| Reactions {
        errors: vec![ReactorError {
            sls: String::new(),
            tag: tag.to_string(),
            kind: "render",
            line: None,
            message: "the renderer panicked".into(),
            id: None,
        }],
        ..Reactions::default()
    })
}

fn limit_address_space(bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: `setrlimit` reads the struct we pass, which lives across the call.
    match unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

// ---------------------------------------------------------------------------------------------
// The master's handle

/// What a read of the worker's socket brought.
pub enum Reply {
    /// Nothing complete yet.
    Nothing,
    /// The answer to the render in flight: `Reactor::react`'s outcome, and the render time.
    Rendered(Reactions, Duration),
    /// The worker is gone (and reaped); why, for the render that was in flight.
    Died(String),
}

/// The master's side: the child, its socket, and the render in flight. The worker is started
/// on the first render and again after it dies.
pub struct RenderWorker {
    registry: Registry,
    token: Token,
    max_bytes: u64,
    rules: Vec<(String, Vec<String>)>,
    file_roots: Vec<PathBuf>,
    running: Option<(Child, Conn<mio::net::UnixStream>)>,
    /// When the render in flight was sent.
    sent: Option<Instant>,
    /// The binary re-run as the worker (`/proc/self/exe`).
    exe: PathBuf,
    /// The last failed start and why: no new start is tried for `SPAWN_RETRY` after it, so a
    /// queue of events meeting a failing fork fails fast instead of forking once per event.
    spawn_failed: Option<(Instant, String)>,
}

/// How long after a failed start the next one is tried.
const SPAWN_RETRY: Duration = Duration::from_secs(1);

impl RenderWorker {
    /// A handle on `registry` (a clone of the loop's) under `token`; no process yet.
    pub fn new(
        registry: Registry,
        token: Token,
        max_bytes: u64,
        rules: &[Rule],
        roots: Vec<PathBuf>,
    ) -> RenderWorker {
        let rules = rules.iter().map(|r| (r.pattern.clone(), r.sls.clone())).collect();
        RenderWorker {
            registry,
            token,
            max_bytes,
            rules,
            file_roots: roots,
            running: None,
            sent: None,
            exe: PathBuf::from("/proc/self/exe"),
            spawn_failed: None,
        }
    }

    /// Whether a render waits for its answer.
    pub fn busy(&self) -> bool {
        self.sent.is_some()
    }

    /// New rules (a reload): the running worker gets them before its next render.
    pub fn set_rules(&mut self, rules: &[Rule], roots: Vec<PathBuf>) {
        self.rules = rules.iter().map(|r| (r.pattern.clone(), r.sls.clone())).collect();
        self.file_roots = roots;
        let msg = self.rules_msg();
        if let Some((_, conn)) = &mut self.running {
            // A worker that cannot take them is dead: its socket's EOF reports it.
            if conn.send(&msg).is_ok() {
                let _ = conn.flush();
            }
            self.reregister();
        }
    }

    fn rules_msg(&self) -> Vec<u8> {
        let msg =
            ToWorker::Rules { rules: self.rules.clone(), file_roots: self.file_roots.clone() };
        serde_json::to_vec(&msg).expect("serialisable")
    }

    /// Sends one render at `now`, starting a worker first if none runs.
    pub fn render(
        &mut self,
        tag: &str,
        data: &Map<String, Value>,
        now: Instant,
    ) -> Result<(), String> {
        if self.running.is_none() {
            if let Some((at, why)) = &self.spawn_failed {
                if now.saturating_duration_since(*at) < SPAWN_RETRY {
                    return Err(format!("{why} (the next start is tried within a second)"));
                }
            }
            match self.spawn() {
                Ok(running) => self.running = Some(running),
                Err(why) => {
                    self.spawn_failed = Some((now, why.clone()));
                    return Err(why);
                }
            }
        }
        let msg = ToWorker::Render { tag: tag.to_string(), data: data.clone() };
        let bytes = serde_json::to_vec(&msg).map_err(|e| e.to_string())?;
        let (_, conn) = self.running.as_mut().expect("started above");
        let sent = conn.send(&bytes).and_then(|()| conn.flush());
        if let Err(why) = sent {
            self.stop();
            return Err(format!("cannot reach the render worker: {why}"));
        }
        self.reregister();
        self.sent = Some(now);
        Ok(())
    }

    fn spawn(&self) -> Result<(Child, Conn<mio::net::UnixStream>), String> {
        let why = |e: std::io::Error| format!("cannot start the render worker: {e}");
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(why)?;
        let theirs_out = theirs.try_clone().map_err(why)?;
        // `/proc/self/exe`: the running binary even if a package upgrade replaced the file.
        let child = Command::new(&self.exe)
            .arg0("halite-master")
            .arg(ARG)
            .arg(self.max_bytes.to_string())
            // Its allocator: the system's, whose address space is what it holds (RLIMIT_AS).
            .env(crate::allocator::WORKER_ENV, "1")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(theirs_out)))
            .spawn()
            .map_err(why)?;
        log::info!("render worker {} started (RLIMIT_AS {} bytes)", child.id(), self.max_bytes);
        ours.set_nonblocking(true).map_err(why)?;
        let mut stream = mio::net::UnixStream::from_std(ours);
        self.registry.register(&mut stream, self.token, Interest::READABLE).map_err(why)?;
        let mut conn = Conn::new(stream, MAX_FRAME, MAX_FRAME);
        conn.send(&self.rules_msg())?;
        Ok((child, conn))
    }

    /// Reads what the worker sent (after a readiness event on its token).
    pub fn on_ready(&mut self) -> Reply {
        let Some((_, conn)) = &mut self.running else { return Reply::Nothing };
        let _ = conn.flush();
        let mut frames = Vec::new();
        let closed = loop {
            let turn = conn.read();
            frames.extend(turn.frames);
            if turn.closed.is_some() || !turn.more {
                break turn.closed;
            }
        };
        let Some(frame) = frames.into_iter().next() else {
            return match closed {
                Some(why) => Reply::Died(self.died(&why.to_string())),
                None => {
                    self.reregister();
                    Reply::Nothing
                }
            };
        };
        self.sent = None;
        let reply = match decode(&frame) {
            Ok((outcome, took)) => Reply::Rendered(outcome, took),
            Err(e) => {
                self.stop();
                return Reply::Died(format!("the render worker answered garbage ({e})"));
            }
        };
        match closed {
            // Answered, then gone: the next render starts a new one.
            Some(why) => log::warn!("render worker exited ({why}; {})", self.stop()),
            None => self.reregister(),
        }
        reply
    }

    /// Kills a worker whose render passed [`DEADLINE`]; `Some(why)` when it did.
    pub fn check_deadline(&mut self, now: Instant) -> Option<String> {
        let sent = self.sent?;
        if now.duration_since(sent) < DEADLINE {
            return None;
        }
        self.stop();
        log::error!("render worker killed: a render took longer than {DEADLINE:?}");
        Some(format!("the render took longer than {} s; its worker was killed", DEADLINE.as_secs()))
    }

    /// The worker closed its socket: reaps it and says why, naming the memory limit when it
    /// aborted (what Rust does when an allocation fails).
    fn died(&mut self, why: &str) -> String {
        let status = self.stop();
        log::error!("render worker died ({why}; {status})");
        match status.contains("SIGABRT") {
            true => format!(
                "the render ran out of memory: its worker may allocate reactor_render_max_bytes \
                 ({}) and was killed",
                self.max_bytes
            ),
            false => format!("the render worker died during the render ({status})"),
        }
    }

    /// Kills and reaps the worker (if any); returns how it ended.
    fn stop(&mut self) -> String {
        self.sent = None;
        let Some((mut child, mut conn)) = self.running.take() else { return String::new() };
        let _ = self.registry.deregister(&mut conn.stream);
        let _ = child.kill();
        match child.wait() {
            Ok(status) => describe(status),
            Err(e) => format!("not reaped: {e}"),
        }
    }

    fn reregister(&mut self) {
        let Some((_, conn)) = &mut self.running else { return };
        let interest = match conn.wants_write() {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        let _ = self.registry.reregister(&mut conn.stream, self.token, interest);
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGABRT) => "SIGABRT".into(),
        Some(libc::SIGKILL) => "SIGKILL".into(),
        Some(signal) => format!("signal {signal}"),
        None => format!("exit status {}", status.code().unwrap_or(-1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render_msg(tag: &str) -> ToWorker {
        ToWorker::Render { tag: tag.into(), data: Map::new() }
    }

    #[test]
    fn rules_then_renders_round_trip_through_the_wire_shapes() {
        let mut reactor = Reactor::new(Vec::new());
        let rules = vec![("my/*".to_string(), vec!["/nonexistent/halite/x.sls".to_string()])];
        let msg = ToWorker::Rules { rules, file_roots: Vec::new() };
        // Through JSON, as on the socket.
        let msg = serde_json::from_slice(&serde_json::to_vec(&msg).unwrap()).unwrap();
        assert!(handle(&mut reactor, msg).is_none(), "rules are not answered");
        let answer = handle(&mut reactor, render_msg("my/tag")).expect("a render is answered");
        let (outcome, _) = decode(&answer).unwrap();
        assert_eq!(outcome.matched, ["/nonexistent/halite/x.sls"]);
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!((outcome.errors[0].kind, outcome.errors[0].tag.as_str()), ("missing", "my/tag"));
        let (nothing, _) = decode(&handle(&mut reactor, render_msg("other")).unwrap()).unwrap();
        assert!(nothing.matched.is_empty() && nothing.errors.is_empty());
    }

    #[test]
    fn a_worker_that_cannot_start_is_not_retried_per_event() {
        let poll = mio::Poll::new().unwrap();
        let registry = poll.registry().try_clone().unwrap();
        let mut worker = RenderWorker::new(registry, Token(3), 1 << 28, &[], Vec::new());
        worker.exe = PathBuf::from("/nonexistent/halite-master");
        let t0 = Instant::now();
        let first = worker.render("t", &Map::new(), t0).unwrap_err();
        assert!(first.starts_with("cannot start the render worker"), "{first}");
        let failed_at = worker.spawn_failed.as_ref().map(|(at, _)| *at);
        // A queue of events right behind it: refused at once, without trying to fork again.
        for ms in 0..100 {
            let at = t0 + Duration::from_millis(ms * 9);
            let again = worker.render("t", &Map::new(), at).unwrap_err();
            assert!(again.ends_with("(the next start is tried within a second)"), "{again}");
        }
        assert_eq!(worker.spawn_failed.as_ref().map(|(at, _)| *at), failed_at);
        assert!(!worker.busy());
        // A second later, the next render tries to start it again.
        let later = worker.render("t", &Map::new(), t0 + SPAWN_RETRY).unwrap_err();
        assert!(later.starts_with("cannot start the render worker"), "{later}");
    }

    #[test]
    fn reactions_keep_every_field_on_the_wire() {
        let mut kwarg = Map::new();
        kwarg.insert("match".into(), json!("Min*"));
        let reaction = Reaction {
            id: "key_accept".into(),
            name: "accept it".into(),
            sls: "/srv/reactor/Minion.sls".into(),
            client: halite_common::reactor::Client::Wheel,
            fun: "key.accept".into(),
            tgt: Some(json!("x")),
            tgt_type: "glob".into(),
            arg: vec![json!(1)],
            kwarg,
            ret: Some("mongo".into()),
            line: Some(2),
            warnings: vec!["ignored".into()],
        };
        let rendered = Rendered {
            reactions: vec![reaction.clone()],
            errors: Vec::new(),
            matched: vec![reaction.sls.clone()],
            micros: 1500,
        };
        let (outcome, took) = decode(&serde_json::to_vec(&rendered).unwrap()).unwrap();
        assert_eq!(outcome.reactions, [reaction]);
        assert_eq!(took, Duration::from_micros(1500));
        // A client the master does not know fails the answer, not guessed.
        let bad = json!({"reactions": [{"id": "x", "sls": "s", "client": "ssh", "fun": "f",
            "tgt": null, "tgt_type": "glob", "arg": [], "kwarg": {}, "ret": null, "line": null}],
            "errors": [], "matched": [], "micros": 0});
        assert!(decode(bad.to_string().as_bytes()).is_err());
    }
}
