//! Support code for Halite's integration tests: locate the workspace binaries, give each test a
//! fresh temp dir, run daemons whose output lines can be awaited, and run one-shot commands.
//!
//! Tests start the real binaries on `127.0.0.1:0` and wait for a "ready" line that carries the
//! bound address; nothing here sleeps to wait for readiness. Every wait polls against a deadline
//! and panics with the tail of the captured output, so a failing test says what the daemon did.
//! Children are killed on `Drop`, so a panicking test leaves no process behind.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use serde_json;

/// How often the polling helpers re-check their condition.
const POLL: Duration = Duration::from_millis(10);
/// How long [`run`] lets a one-shot command take before killing it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How many captured lines a timeout panic shows.
const TAIL: usize = 50;

/// Path of the workspace binary `name` (`halite-master`, `halite-minion`, `halite-key`, ...).
///
/// Integration-test executables live in `target/<profile>/deps/`, the binaries one level up, so
/// the directory is found from the running test itself. `HALITE_BIN_DIR` overrides it (to test
/// e.g. the static release build). Panics if the binary has not been built: cargo only builds
/// a package's binaries for that package's own tests, so run `cargo build --workspace` first.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("HALITE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("cannot locate the test executable");
            let mut dir = exe.parent().expect("test executable has no parent").to_path_buf();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "binary {} not found: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Polls `f` every 10 ms until it returns true; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
        thread::sleep(POLL);
    }
}

/// A fresh, unique directory under the system temp dir, removed with its contents on `Drop`
/// unless `HALITE_KEEP_TMP` is set (then its path is printed, for inspecting a failure).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory; its name holds the pid, a per-process counter and a timestamp.
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("halite-test-{}-{n}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        // `create_dir`, not `create_dir_all`: an existing directory would not be fresh.
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` resolved inside the directory (nothing is created).
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Writes `contents` to `rel` inside the directory, creating parent directories; returns
    /// the full path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("HALITE_KEEP_TMP").is_some() {
            eprintln!("HALITE_KEEP_TMP: keeping {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Output captured from a daemon, shared with the threads reading its pipes.
#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    /// Pipes not yet at end of file; at zero no further line can arrive.
    open: usize,
    log: Option<File>,
}

/// A running child process whose stdout and stderr lines are captured (in arrival order, both
/// streams in one list) and, when a log directory is known, appended to `<dir>/<name>.log`.
///
/// The child runs in its own process group; `Drop` SIGKILLs the whole group (so processes it
/// started die too) and reaps the child.
pub struct Daemon {
    name: String,
    child: Child,
    shared: Arc<(Mutex<Captured>, Condvar)>,
    log_path: Option<PathBuf>,
}

impl Daemon {
    /// Spawns `cmd` with stdin closed and its output captured. The log file goes into the
    /// command's `current_dir` when one is set (tests point that at their [`TempDir`]).
    pub fn spawn(cmd: Command, name: &str) -> Daemon {
        let dir = cmd.get_current_dir().map(Path::to_path_buf);
        Daemon::spawn_logged(cmd, name, dir.as_deref())
    }

    /// Like [`Daemon::spawn`], with the log file written to `<log_dir>/<name>.log` (none if
    /// `log_dir` is `None`).
    pub fn spawn_logged(mut cmd: Command, name: &str, log_dir: Option<&Path>) -> Daemon {
        let log_path = log_dir.map(|d| d.join(format!("{name}.log")));
        let log = log_path.as_ref().map(|p| {
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .unwrap_or_else(|e| panic!("open log {}: {e}", p.display()))
        });
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let captured = Captured { lines: Vec::new(), open: 2, log };
        let shared = Arc::new((Mutex::new(captured), Condvar::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // The readers are detached, not joined: a grandchild may hold a pipe open.
        spawn_reader(stdout, "out", Arc::clone(&shared));
        spawn_reader(stderr, "err", Arc::clone(&shared));
        Daemon { name: name.to_string(), child, shared, log_path }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the output is logged, if anywhere.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Number of lines captured so far; pass it to [`Daemon::wait_for_line_after`] to wait only
    /// for output produced after this point.
    pub fn line_count(&self) -> usize {
        self.lock().lines.len()
    }

    /// A copy of all lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// Waits for the first line, from the very start of the output, matching the regex
    /// `pattern`; returns its capture groups (group 0 is the whole match).
    #[track_caller]
    pub fn wait_for_line(&self, pattern: &str, timeout: Duration) -> Vec<Option<String>> {
        self.wait_for_line_after(0, pattern, timeout)
    }

    /// Like [`Daemon::wait_for_line`], considering only lines with index `>= from`.
    ///
    /// Panics with the pattern and the last 50 lines on timeout, or as soon as both output
    /// pipes are closed without a match (the process exited; waiting longer cannot help).
    #[track_caller]
    pub fn wait_for_line_after(
        &self,
        from: usize,
        pattern: &str,
        timeout: Duration,
    ) -> Vec<Option<String>> {
        let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern: {e}"));
        let deadline = Instant::now() + timeout;
        let (_, cond) = &*self.shared;
        let mut next = from;
        let mut guard = self.lock();
        let why = loop {
            if let Some(caps) = guard.lines.iter().skip(next).find_map(|l| re.captures(l)) {
                return caps.iter().map(|m| m.map(|m| m.as_str().to_string())).collect();
            }
            next = next.max(guard.lines.len());
            if guard.open == 0 {
                break "its output ended";
            }
            let now = Instant::now();
            if now >= deadline {
                break "timed out";
            }
            guard =
                cond.wait_timeout(guard, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        };
        let tail = tail(&guard.lines);
        drop(guard);
        panic!(
            "{}: {why} waiting {timeout:?} for a line matching /{pattern}/ (from line {from}); \
             log: {}; last {TAIL} lines:\n{tail}",
            self.name,
            self.log_path.as_ref().map_or("none".into(), |p| p.display().to_string()),
        );
    }

    /// Sends signal number `sig` to the child only (not its group), e.g. 15 for SIGTERM.
    #[track_caller]
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -{sig} {} ({}) failed: {status}", self.pid(), self.name);
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running. Once it
    /// has exited, also waits (within the same deadline) until its output is read to the end:
    /// the reader threads may lag behind a process that wrote a lot just before exiting, and
    /// `lines()` must then hold everything it wrote.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let (lock, cond) = &*self.shared;
                    let mut captured = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    // A grandchild holding a pipe open keeps it from closing: bounded wait.
                    while captured.open > 0 && Instant::now() < deadline {
                        let left = deadline.saturating_duration_since(Instant::now());
                        captured = cond
                            .wait_timeout(captured, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) => return None,
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group first, so grandchildren die too; best effort, as `kill` may be missing.
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", self.pid())])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Reads `pipe` line by line into `shared` until end of file, on a detached thread.
fn spawn_reader(
    pipe: impl Read + Send + 'static,
    tag: &'static str,
    shared: Arc<(Mutex<Captured>, Condvar)>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
            let (lock, cond) = &*shared;
            let mut captured = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if n == 0 {
                captured.open -= 1;
                cond.notify_all();
                return;
            }
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
            if let Some(log) = &mut captured.log {
                let _ = writeln!(log, "{tag}| {line}");
            }
            captured.lines.push(line);
            cond.notify_all();
        }
    });
}

/// The last [`TAIL`] lines, indented and numbered by their index in the full output.
fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(TAIL);
    let shown: Vec<String> = lines[start..]
        .iter()
        .enumerate()
        .map(|(i, l)| format!("  {:>4}: {l}", start + i))
        .collect();
    if shown.is_empty() {
        "  (no output)".to_string()
    } else {
        shown.join("\n")
    }
}

/// What a one-shot command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` if the process was ended by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// True if the command exited with code 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs `cmd` to completion with stdin closed, capturing its output. Panics if it takes longer
/// than 60 s (after killing it).
#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    run_inner(cmd, None)
}

/// Like [`run`], feeding `input` to the command's stdin and then closing it.
#[track_caller]
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    run_inner(cmd, Some(input))
}

#[track_caller]
fn run_inner(cmd: &mut Command, input: Option<&str>) -> Output {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Each pipe gets its own thread so a full pipe never blocks the child.
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_string();
        thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel();
    let read = |pipe: Option<Box<dyn Read + Send>>, tx: mpsc::Sender<(bool, String)>, is_out| {
        let mut pipe = pipe.expect("piped");
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((is_out, String::from_utf8_lossy(&buf).into_owned()));
        });
    };
    read(child.stdout.take().map(|p| Box::new(p) as _), tx.clone(), true);
    read(child.stderr.take().map(|p| Box::new(p) as _), tx, false);

    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} still running after {RUN_TIMEOUT:?}; killed it");
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let mut out = Output { status: status.code(), stdout: String::new(), stderr: String::new() };
    for _ in 0..2 {
        // A grandchild may keep a pipe open after the child exits; don't wait for it forever.
        let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        match rx.recv_timeout(wait) {
            Ok((true, s)) => out.stdout = s,
            Ok((false, s)) => out.stderr = s,
            Err(_) => panic!("{cmd:?} exited ({status}) but its output pipes stayed open"),
        }
    }
    if let Some(sig) = status.signal() {
        out.stderr.push_str(&format!("\n[killed by signal {sig}]"));
    }
    out
}
pub mod cluster;
pub mod docs;
pub mod http;
pub mod raw;
pub mod redis;
