//! Event forwarding (`event_return: redis`): a thread that reads the event log from this
//! master's checkpoint in Redis and adds each event to a Redis stream, the entries and the new
//! checkpoint in one `MULTI`/`EXEC`, so every logged event arrives once: across Redis outages
//! and master restarts alike. The loop only wakes it after writing the log.

mod redis;
pub mod tail;

use halite_common::config::EventReturn;
use halite_common::glob::Glob;
use redis::{Entry, Redis};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tail::{Position, Resume, Tail};

/// Events per `MULTI`/`EXEC`, and about how many bytes of log.
const BATCH_EVENTS: usize = 1000;
const BATCH_BYTES: usize = 4 << 20;
/// The longest wait between two tries to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle forwarder looks at the log anyway (a wake-up is never needed for safety).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What `event_return.status` shows.
#[derive(Debug, Default, Clone)]
struct Status {
    connected: bool,
    forwarded: u64,
    skipped: u64,
    /// Whole lines in the log not forwarded yet, and their bytes (as of the last look).
    behind_events: u64,
    behind_bytes: u64,
    failures: u64,
    last_error: Option<String>,
    position: Option<Position>,
}

/// Where forwarding stands, in numbers (`Forwarder::counts`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ForwardCounts {
    pub connected: bool,
    pub forwarded: u64,
    pub skipped: u64,
    pub failures: u64,
    /// Whole lines in the log not forwarded yet, and their bytes (as of the last look).
    pub behind_events: u64,
    pub behind_bytes: u64,
}

/// The loop's handle on the forwarding thread.
#[derive(Debug)]
pub struct Forwarder {
    wake: SyncSender<()>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    target: String,
}

impl Forwarder {
    /// Starts forwarding the log at `log` (kept as `log.1` … `log.<keep>`); with no checkpoint
    /// in Redis yet, from the log's end as it is now.
    pub fn spawn(
        cfg: EventReturn,
        master: String,
        log: &Path,
        keep: u32,
    ) -> std::io::Result<Forwarder> {
        let start = Tail::end_of(log)?;
        let (wake, woken) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Status::default()));
        let target = match &cfg.unix_socket_path {
            Some(path) => format!("redis {}", path.display()),
            None => format!("redis {}:{}", cfg.host, cfg.port),
        };
        let mut worker = Worker {
            cfg,
            master,
            log: log.to_path_buf(),
            keep,
            start,
            stop: Arc::clone(&stop),
            status: Arc::clone(&status),
            target: target.clone(),
            whitelist: Vec::new(),
            blacklist: Vec::new(),
        };
        worker.whitelist = worker.cfg.whitelist.iter().map(|g| Glob::new(g)).collect();
        worker.blacklist = worker.cfg.blacklist.iter().map(|g| Glob::new(g)).collect();
        std::thread::Builder::new().name("forward".into()).spawn(move || worker.run(woken))?;
        Ok(Forwarder { wake, stop, status, target })
    }

    /// The log was written: look for new lines now rather than at the next idle check.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// `event_return.status`: where forwarding stands.
    pub fn status(&self) -> Value {
        let s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        serde_json::json!({
            "target": self.target,
            "connected": s.connected,
            "forwarded": s.forwarded,
            "skipped": s.skipped,
            "behind_events": s.behind_events,
            "behind_bytes": s.behind_bytes,
            "failures": s.failures,
            "last_error": s.last_error,
            "checkpoint": s.position,
        })
    }

    /// The status as numbers, for the metrics endpoint. The thread holds the lock only to
    /// copy numbers in, never across I/O, so the loop does not wait on Redis here.
    pub fn counts(&self) -> ForwardCounts {
        let counts = |s: &Status| ForwardCounts {
            connected: s.connected,
            forwarded: s.forwarded,
            skipped: s.skipped,
            failures: s.failures,
            behind_events: s.behind_events,
            behind_bytes: s.behind_bytes,
        };
        self.status.lock().map(|s| counts(&s)).unwrap_or_default()
    }

    /// Tells the thread to stop, without waiting: it may be inside a Redis timeout, and a
    /// batch cut off there is undone with its checkpoint (what is logged and not forwarded yet
    /// goes out after the next start).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's side.
struct Worker {
    cfg: EventReturn,
    master: String,
    log: PathBuf,
    keep: u32,
    start: Position,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    target: String,
    whitelist: Vec<Glob>,
    blacklist: Vec<Glob>,
}

/// A connection and the log read from its checkpoint.
struct Session {
    redis: Redis,
    tail: Tail,
}

/// How far behind forwarding is: `ahead` reads on past the checkpoint `at` to count the
/// lines written since (kept through outages, started afresh at each checkpoint read).
struct Lag {
    ahead: Tail,
    at: Position,
    counted: u64,
    consumed: u64,
}

/// One event-log line as the bus writes it.
#[derive(Deserialize)]
struct LoggedEvent<'a> {
    #[serde(borrow)]
    tag: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Worker {
    fn run(&mut self, woken: Receiver<()>) {
        let mut session: Option<Session> = None;
        let mut lag: Option<Lag> = None;
        let mut backoff = Duration::from_secs(1);
        let mut next_try = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let Some(open) = session.as_mut() else {
                let now = Instant::now();
                if now < next_try {
                    self.wait(&woken, next_try - now);
                    continue;
                }
                match self.resume() {
                    Ok((s, l)) => {
                        backoff = Duration::from_secs(1);
                        session = Some(s);
                        lag = Some(l);
                    }
                    Err(e) => {
                        self.failed(&format!("cannot forward events to {}: {e}", self.target));
                        log::error!(
                            "event_return: cannot forward events to {}: {e}; next try in {}s",
                            self.target,
                            backoff.as_secs()
                        );
                        next_try = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        self.note_lag(lag.as_mut());
                    }
                }
                continue;
            };
            let forwarded = self.forward_batch(open);
            if let (Ok(n), Some(lag)) = (&forwarded, lag.as_mut()) {
                lag.consumed += *n as u64;
                lag.at = open.tail.position();
            }
            self.note_lag(lag.as_mut());
            match forwarded {
                Ok(0) => self.wait(&woken, IDLE_CHECK),
                Ok(_) => {}
                Err(e) => {
                    self.failed(&e);
                    log::error!("event_return: {e}; reconnecting in {}s", backoff.as_secs());
                    session = None;
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn wait(&self, woken: &Receiver<()>, at_most: Duration) {
        match woken.recv_timeout(at_most) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            // The master is gone; `stop` says so too.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(at_most.min(IDLE_CHECK)),
        }
    }

    /// Connects and opens the log at this master's checkpoint (or where this run started).
    fn resume(&self) -> Result<(Session, Lag), String> {
        let mut redis = Redis::connect(&self.cfg, &self.master).map_err(|e| e.to_string())?;
        let checkpoint = redis.checkpoint().map_err(|e| e.to_string())?;
        let at = checkpoint.unwrap_or(self.start);
        let (tail, resume) = Tail::open(&self.log, self.keep, at).map_err(|e| e.to_string())?;
        if checkpoint.is_none() {
            // Where this run started, kept at once: a restart before the first batch goes on
            // from here, not from its own start.
            redis.store(&[], tail.position()).map_err(|e| e.to_string())?;
        }
        match resume {
            Resume::Exact => {}
            Resume::FileGone => log::error!(
                "event_return: the event log file of the checkpoint was rotated away before it \
                 was forwarded: events were lost; going on from the oldest kept file"
            ),
            Resume::Truncated => log::error!(
                "event_return: the event log is shorter than the checkpoint (truncated?); \
                 going on from its start"
            ),
        }
        let (ahead, _) =
            Tail::open(&self.log, self.keep, tail.position()).map_err(|e| e.to_string())?;
        log::info!(
            "event_return: forwarding events to {} stream {} from {} (checkpoint {})",
            self.target,
            self.cfg.stream,
            self.log.display(),
            if checkpoint.is_some() { "found" } else { "new: from this start" }
        );
        if let Ok(mut s) = self.status.lock() {
            s.connected = true;
            s.position = Some(tail.position());
        }
        let at = tail.position();
        Ok((Session { redis, tail }, Lag { ahead, at, counted: 0, consumed: 0 }))
    }

    /// Forwards the next batch: how many log lines it covered (0 when caught up).
    fn forward_batch(&self, open: &mut Session) -> Result<usize, String> {
        let lines =
            open.tail.read(BATCH_EVENTS, BATCH_BYTES).map_err(|e| log_error(&self.log, e))?;
        let Some(last) = lines.last() else { return Ok(0) };
        let to = last.next;
        let mut entries = Vec::with_capacity(lines.len());
        let mut skipped = 0;
        for line in &lines {
            match serde_json::from_slice::<LoggedEvent<'_>>(&line.text) {
                Ok(event) if self.wanted(&event.tag) => entries.push(event),
                Ok(_) => skipped += 1,
                Err(e) => {
                    skipped += 1;
                    log::warn!("event_return: an event-log line that is not an event skipped: {e}");
                }
            }
        }
        let batch: Vec<Entry<'_>> =
            entries.iter().map(|e| Entry { tag: &e.tag, data: e.data.get() }).collect();
        open.redis.store(&batch, to).map_err(|e| format!("{}: {e}", self.target))?;
        if let Ok(mut s) = self.status.lock() {
            s.forwarded += batch.len() as u64;
            s.skipped += skipped;
            s.position = Some(to);
            s.last_error = None;
        }
        Ok(lines.len())
    }

    /// Salt's `event_return_whitelist` then `event_return_blacklist`.
    fn wanted(&self, tag: &str) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|g| g.is_match(tag)))
            && !self.blacklist.iter().any(|g| g.is_match(tag))
    }

    /// Counts the lines written since the last look, for `behind_events`.
    fn note_lag(&self, lag: Option<&mut Lag>) {
        let Some(lag) = lag else { return };
        match lag.ahead.skip(BATCH_BYTES) {
            Ok(n) => lag.counted += n,
            Err(e) => log::warn!("event_return: {}", log_error(&self.log, e)),
        }
        let behind_bytes = tail::behind_bytes(&self.log, self.keep, lag.at);
        if let Ok(mut s) = self.status.lock() {
            s.behind_events = lag.counted.saturating_sub(lag.consumed);
            s.behind_bytes = behind_bytes;
        }
    }

    fn failed(&self, message: &str) {
        if let Ok(mut s) = self.status.lock() {
            s.connected = false;
            s.failures += 1;
            s.last_error = Some(message.to_string());
        }
    }
}

fn log_error(log: &Path, e: std::io::Error) -> String {
    format!("cannot read the event log {}: {e}", log.display())
}
