//! Salt's `log_file`: the daemons log to it beside stderr, at `log_level_logfile`, 0600, and
//! reopen it on SIGHUP.

use halite_tests::cluster::{Master, WAIT};
use halite_tests::raw::RawConn;
use halite_tests::wait_until;

/// Salt's `log_file` beside stderr, at `log_level_logfile`, reopened on SIGHUP after a
/// logrotate-style move, 0600.
#[test]
fn log_file_is_written_at_its_level_and_reopened_on_sighup() {
    use std::os::unix::fs::PermissionsExt;
    // stderr at debug (the harness's log_level), the file at info; under root_dir, as Salt.
    let master = Master::start("log_file: /var/log/halite/master.log\nlog_level_logfile: info\n");
    let logs = master.dir.join("master/var/log/halite");
    let path = logs.join("master.log");
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    wait_until(WAIT, "the ready line in the log file", || read().contains("halite-master ready"));
    // A connection that says nothing useful: debug lines on stderr, none in the file.
    let (mut raw, _) = RawConn::connect(master.addr);
    raw.send_frame(b"not a hello");
    assert!(raw.closed_by_master());
    master.daemon.wait_for_line("DEBUG", WAIT);
    let text = read();
    assert!(text.contains("[INFO ] halite_master"), "{text}");
    assert!(!text.contains("DEBUG"), "debug lines stay out of an info-level file: {text}");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // logrotate moves it; SIGHUP opens a new one at the path.
    std::fs::rename(&path, logs.join("master.log.1")).unwrap();
    master.daemon.signal(1);
    wait_until(WAIT, "the reload's lines in a new log file", || read().contains("(re)opened"));
    assert!(std::fs::read_to_string(logs.join("master.log.1")).unwrap().contains("ready"));
}
