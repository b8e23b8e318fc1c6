//! Self-test of the integration-test support library: line waiting, kill-on-drop, `run`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use halite_tests::{run, run_with_stdin, wait_until, Daemon, TempDir};

const T: Duration = Duration::from_secs(10);

fn sh(dir: &TempDir, script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script).current_dir(dir.path());
    cmd
}

/// The message of the panic `f` raises (tests assert on it instead of using `should_panic`).
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

/// True once `pid` is gone or a zombie (an orphan's reaper may be slow, e.g. in a container).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn waits_for_lines_and_kills_on_drop() {
    let dir = TempDir::new();
    let script = "echo hello >&2; echo ready on 127.0.0.1:1234 >&2; sleep 30";
    let daemon = Daemon::spawn(sh(&dir, script), "sh");
    let pid = daemon.pid();

    let caps = daemon.wait_for_line(r"ready on (\S+)", T);
    assert_eq!(caps, [Some("ready on 127.0.0.1:1234".into()), Some("127.0.0.1:1234".into())]);
    // Earlier lines are still searched.
    assert_eq!(daemon.wait_for_line("hel+o", T)[0].as_deref(), Some("hello"));
    assert_eq!(daemon.lines(), ["hello", "ready on 127.0.0.1:1234"]);

    let from = daemon.line_count();
    let msg = panic_message(|| {
        daemon.wait_for_line_after(from, "hello", Duration::from_millis(50));
    });
    assert!(msg.contains("timed out") && msg.contains("/hello/"), "{msg}");
    assert!(msg.contains("1: ready on 127.0.0.1:1234"), "{msg}");

    let log = std::fs::read_to_string(dir.path().join("sh.log")).unwrap();
    assert_eq!(log, "err| hello\nerr| ready on 127.0.0.1:1234\n");

    assert!(!dead(pid));
    drop(daemon);
    assert!(dead(pid), "pid {pid} survived drop");
}

#[test]
fn drop_kills_grandchildren() {
    let dir = TempDir::new();
    let daemon = Daemon::spawn(sh(&dir, "sleep 30 & echo child $!; wait"), "parent");
    let caps = daemon.wait_for_line(r"^child (\d+)$", T);
    let grandchild: u32 = caps[1].as_deref().unwrap().parse().unwrap();
    drop(daemon);
    wait_until(T, "the grandchild dies", || dead(grandchild));
}

#[test]
fn signal_and_exit_status() {
    let dir = TempDir::new();
    let script = "trap 'echo got term; exit 3' TERM; echo ready; while :; do sleep 0.01; done";
    let mut daemon = Daemon::spawn(sh(&dir, script), "trap");
    daemon.wait_for_line("^ready$", T);
    assert_eq!(daemon.wait_exit(Duration::from_millis(20)), None);
    daemon.signal(15);
    daemon.wait_for_line("got term", T);
    assert_eq!(daemon.wait_exit(T).and_then(|s| s.code()), Some(3));
}

#[test]
fn wait_fails_fast_when_output_ends() {
    let dir = TempDir::new();
    let daemon = Daemon::spawn(sh(&dir, "echo bye"), "short");
    let msg = panic_message(|| {
        daemon.wait_for_line("never", Duration::from_secs(60));
    });
    assert!(msg.contains("output ended") && msg.contains("0: bye"), "{msg}");
}

#[test]
fn run_captures_output_and_status() {
    let out = run(Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 7"]));
    assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (Some(7), "out\n", "err\n"));

    let out = run_with_stdin(&mut Command::new("cat"), "line one\nline two\n");
    assert!(out.success());
    assert_eq!(out.stdout, "line one\nline two\n");
}

#[test]
fn temp_dir_writes_and_cleans_up() {
    let dir = TempDir::new();
    let path = dir.write("a/b/c.txt", "hi");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hi");
    assert_ne!(TempDir::new().path(), dir.path());
    let root = dir.path().to_path_buf();
    drop(dir);
    if std::env::var_os("HALITE_KEEP_TMP").is_none() {
        assert!(!root.exists());
    }
}

#[test]
fn missing_binary_says_how_to_build() {
    let msg = panic_message(|| {
        halite_tests::bin("halite-no-such-binary");
    });
    assert!(msg.contains("cargo build --workspace"), "{msg}");
}
