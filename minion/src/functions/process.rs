//! Runs one child process for `cmd.*`: stdin fed from a thread, stdout and stderr drained by
//! threads (or one shared pipe, so the two interleave as the process wrote them), an optional
//! deadline after which the child's whole process group is killed.
//!
//! The child leads its own process group, so a timeout also reaches what a shell started.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Most bytes kept from one output stream; the rest is read and dropped, so the child never
/// blocks on a full pipe.
pub(crate) const MAX_CAPTURE: usize = 8 * 1024 * 1024;
/// How long to wait for a killed child and its pipes before giving up on them.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// What to run and how.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Program and arguments (`/bin/sh -c <cmd>` for a shell command).
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The child's whole environment.
    pub env: Vec<(OsString, OsString)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    /// Send stderr into the stdout pipe (Salt's `stderr=subprocess.STDOUT`).
    pub merge_stderr: bool,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Finished {
    /// Exit code, or 128 + signal number for a child killed by a signal.
    Exited { pid: u32, code: i64, stdout: Vec<u8>, stderr: Vec<u8> },
    /// The deadline passed; the process group was killed.
    TimedOut { pid: u32 },
}

fn command(job: &Job) -> io::Result<Command> {
    let (program, args) = job
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&job.cwd)
        .env_clear()
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    Ok(cmd)
}

/// Starts the job and waits for it (and for its output) at most until the deadline.
pub(crate) fn run(job: &Job) -> io::Result<Finished> {
    let started = Instant::now();
    let deadline = job.timeout.map(|t| started + t);
    let mut cmd = command(job)?;
    cmd.stdin(if job.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let (tx, rx) = mpsc::channel();
    let mut child = if job.merge_stderr {
        let (reader, writer) = io::pipe()?;
        cmd.stdout(writer.try_clone()?).stderr(writer);
        let child = cmd.spawn()?;
        // The Command holds our copies of the write end; EOF comes only once they are gone.
        drop(cmd);
        drain(reader, Stream::Stdout, tx.clone());
        let _ = tx.send((Stream::Stderr, Vec::new()));
        child
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        drop(cmd);
        if let Some(out) = child.stdout.take() {
            drain(out, Stream::Stdout, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            drain(err, Stream::Stderr, tx.clone());
        }
        child
    };
    drop(tx);
    let pid = child.id();
    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), job.stdin.clone()) {
        // A child that exits without reading makes this fail with EPIPE; nothing to do then.
        thread::spawn(move || pipe.write_all(&data));
    }
    let status = wait_in_thread(child);
    let code = match deadline {
        None => status.recv().ok(),
        Some(deadline) => {
            match status.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(status) => Some(status),
                Err(RecvTimeoutError::Timeout) => {
                    kill_group(pid);
                    let _ = status.recv_timeout(KILL_GRACE);
                    return Ok(Finished::TimedOut { pid });
                }
                Err(RecvTimeoutError::Disconnected) => None,
            }
        }
    };
    let code = match code {
        Some(Ok(status)) => exit_code(status),
        Some(Err(e)) => return Err(e),
        None => return Err(io::Error::other("lost the child's exit status")),
    };
    // Output may still be in flight, or held open by something the command left running.
    match collect(&rx, deadline) {
        Some((stdout, stderr)) => Ok(Finished::Exited { pid, code, stdout, stderr }),
        None => {
            kill_group(pid);
            Ok(Finished::TimedOut { pid })
        }
    }
}

/// Starts the job detached (Salt's `bg=True`): no input, output discarded, reaped by a
/// thread. Returns its pid.
pub(crate) fn spawn_background(job: &Job) -> io::Result<u32> {
    let mut cmd = command(job)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn()?;
    let pid = child.id();
    drop(wait_in_thread(child));
    Ok(pid)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stream {
    Stdout,
    Stderr,
}

fn drain(mut pipe: impl Read + Send + 'static, which: Stream, tx: mpsc::Sender<(Stream, Vec<u8>)>) {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_CAPTURE.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send((which, kept));
    });
}

/// Both streams, or `None` if the deadline passed first.
fn collect(
    rx: &Receiver<(Stream, Vec<u8>)>,
    deadline: Option<Instant>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let got = match deadline {
            None => rx.recv().ok(),
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(got) => Some(got),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        match got {
            Some((Stream::Stdout, data)) => stdout = Some(data),
            Some((Stream::Stderr, data)) => stderr = Some(data),
            // Every reader is gone (one could not be started): what we have is all there is.
            None => break,
        }
    }
    Some((stdout.unwrap_or_default(), stderr.unwrap_or_default()))
}

fn wait_in_thread(mut child: Child) -> Receiver<io::Result<ExitStatus>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx
}

/// The exit code, or 128 + the signal number as a shell reports it.
fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => 1,
    }
}

/// Sends SIGKILL to the process group `pgid` (the child and everything it started that stayed
/// in its group).
fn kill_group(pgid: u32) {
    // std has no way to signal a process group; kill(2) is in every libc we link against.
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    match i32::try_from(pgid) {
        Ok(pgid) if pgid > 1 => {
            // SAFETY: kill(2) takes two integers and touches no memory of ours; a negative pid
            // addresses the process group our own child leads.
            let rc = unsafe { kill(-pgid, SIGKILL) };
            if rc != 0 {
                log::debug!("kill(-{pgid}): {}", io::Error::last_os_error());
            }
        }
        _ => log::warn!("not killing process group {pgid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(script: &str) -> Job {
        Job {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            cwd: "/".into(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            stdin: None,
            timeout: None,
            merge_stderr: false,
        }
    }

    #[track_caller]
    fn check(job: &Job, code: i64, stdout: &str, stderr: &str) {
        match run(job) {
            Ok(Finished::Exited { code: c, stdout: o, stderr: e, pid }) => {
                assert!(pid > 0);
                let got = (
                    c,
                    String::from_utf8_lossy(&o).into_owned(),
                    String::from_utf8_lossy(&e).into_owned(),
                );
                assert_eq!(got, (code, stdout.to_string(), stderr.to_string()), "{:?}", job.argv);
            }
            other => panic!("{:?}: {other:?}", job.argv),
        }
    }

    #[test]
    fn captures_exit_code_and_streams() {
        check(&job("echo out; echo err >&2; exit 3"), 3, "out\n", "err\n");
        check(&job("kill -9 $$"), 137, "", "");
        let mut merged = job("echo one; echo two >&2; echo three");
        merged.merge_stderr = true;
        check(&merged, 0, "one\ntwo\nthree\n", "");
        let mut fed = job("tr a-z A-Z");
        fed.stdin = Some(b"shout\n".to_vec());
        check(&fed, 0, "SHOUT\n", "");
        // Input the child never reads is no problem.
        let mut ignored = job("true");
        ignored.stdin = Some(vec![b'x'; 1024 * 1024]);
        check(&ignored, 0, "", "");
    }

    #[test]
    fn output_beyond_the_cap_is_dropped_without_blocking_the_child() {
        let mut big = job("head -c 9000000 /dev/zero");
        big.timeout = Some(Duration::from_secs(20));
        match run(&big) {
            Ok(Finished::Exited { code: 0, stdout, .. }) => assert_eq!(stdout.len(), MAX_CAPTURE),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let mut slow = job("sleep 5 & sleep 5; echo never");
        slow.timeout = Some(Duration::from_millis(300));
        let start = Instant::now();
        assert!(matches!(run(&slow), Ok(Finished::TimedOut { .. })));
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
        // A background child that keeps the pipe open past the deadline is a timeout too.
        let mut lingering = job("sleep 5 & echo started");
        lingering.timeout = Some(Duration::from_millis(300));
        assert!(matches!(run(&lingering), Ok(Finished::TimedOut { .. })));
    }

    #[test]
    fn spawn_errors_are_errors() {
        let mut missing = job("true");
        missing.argv = vec!["/nonexistent/program".into()];
        assert!(run(&missing).is_err());
        missing.argv.clear();
        assert!(run(&missing).is_err());
        let mut bad_cwd = job("true");
        bad_cwd.cwd = "/nonexistent/dir".into();
        assert!(run(&bad_cwd).is_err());
    }

    #[test]
    fn background_jobs_return_at_once() {
        let start = Instant::now();
        let pid = spawn_background(&job("sleep 1")).expect("spawned");
        assert!(pid > 0);
        assert!(start.elapsed() < Duration::from_millis(500));
    }
}
