//! Daemon lifecycle on the real binaries: restarts and reconnects, keepalive, clean shutdown,
//! configuration errors, and the minion's checks of the master's key.

use halite_common::proto::{ToMaster, ToMinion};
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::{bin, run, wait_until, TempDir};
use std::process::Command;

#[test]
fn the_minion_reconnects_after_master_restarts_and_keeps_its_key() {
    let master = Master::start("");
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_pending();
    assert!(master.key(&["-A", "-y"]).success());
    minion.wait_authenticated();
    master.wait_event("salt/minion/minion1/start", |_| true); // the last start event
    let port = master.addr.port();
    let socket = master.dir.join("master/var/run/halite/master/master.sock");

    // Clean stop: exit 0, control socket removed.
    let seen = minion.daemon.line_count();
    let dir = master.stop();
    assert!(!socket.exists(), "SIGTERM must remove the control socket");
    minion.daemon.wait_for_line_after(seen, "lost master", WAIT);

    let logged = master_events_len(&dir);
    // Counted before the master starts: the minion may reconnect before `start_in` returns.
    let seen = minion.daemon.line_count();
    let master = Master::start_in(dir, port, "");
    minion.daemon.wait_for_line_after(seen, "authenticated to master", WAIT);
    // The new auth event, not the one from before the restart (the minion can read its verdict
    // before the master's turn ends and writes the event to the log).
    let new_events = || master.events().split_off(logged);
    wait_until(WAIT, "salt/auth after the restart", || {
        new_events().iter().any(|(tag, _)| tag == "salt/auth")
    });
    let since_restart = new_events();
    let acts: Vec<_> = since_restart.iter().map(|(_, d)| d["act"].clone()).collect();
    assert_eq!(acts, ["accept"], "the accepted key must survive the restart");

    // Hard kill, restart again.
    let dir = master.kill();
    let master = Master::start_in(dir, port, "");
    let seen_after_kill = minion.daemon.line_count();
    minion.daemon.wait_for_line_after(seen_after_kill, "authenticated to master", WAIT);
    assert_eq!(master.presence(), ["minion1"]);
    assert_eq!(master.key(&["-l", "acc"]).stdout, "Accepted Keys:\nminion1\n");
    // Start events belong to the minion process, not to each reconnect.
    let starts = master.events().into_iter().filter(|(t, _)| t == "minion_start").count();
    assert_eq!(starts, 1, "one per minion process, not one per reconnect");
}

#[test]
fn keepalive_drops_silent_peers_and_keeps_live_ones() {
    let master = Master::start("auto_accept: True\nkeepalive_interval: 1");
    let minion = Minion::start(&master, "alive", "a", "keepalive_interval: 1");
    minion.wait_authenticated();
    let mut silent = RawMinion::authenticate(master.addr, "silent");
    // The master pings; the silent peer never answers and is cut off after 3 intervals.
    assert!(matches!(silent.recv(), Some(ToMinion::Ping { .. })));
    assert!(silent.conn.closed_by_master(), "a silent peer must be dropped");
    master.daemon.wait_for_line("silent.*keepalive timeout", WAIT);
    assert_eq!(master.presence(), ["alive"]);
    assert!(!minion.daemon.lines().iter().any(|l| l.contains("lost master")));
    // A peer that answers stays.
    let mut polite = RawMinion::authenticate(master.addr, "polite");
    for _ in 0..4 {
        match polite.recv() {
            Some(ToMinion::Ping { seq }) => {
                polite.send(&ToMaster::Pong { seq });
            }
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    assert_eq!(master.presence(), ["alive", "polite"]);
}

/// The race behind a flaky `keepalive_drops_silent_peers_and_keeps_live_ones`: a master loop
/// that stalls past three keepalive intervals right after a session went live (here SIGSTOP;
/// on a busy machine a slow fsync or a starved process) used to drop the peer at its next tick
/// without ever pinging it, so the first thing the minion saw was the socket closing.
#[test]
fn a_stalled_master_pings_before_it_drops() {
    let master = Master::start("auto_accept: True\nkeepalive_interval: 1");
    let mut silent = RawMinion::authenticate(master.addr, "silent");
    master.daemon.wait_for_line("minion silent@.* authenticated", WAIT);
    // SIGSTOP, then the stall itself (not a wait for anything), longer than three intervals.
    master.daemon.signal(19);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    master.daemon.signal(18); // SIGCONT
    assert!(matches!(silent.recv(), Some(ToMinion::Ping { .. })), "dropped before a ping");
    assert!(silent.conn.closed_by_master(), "a silent peer must still be dropped");
    master.daemon.wait_for_line("silent.*keepalive timeout", WAIT);
}

#[test]
fn bad_configuration_is_a_clear_error_naming_every_key() {
    let dir = TempDir::new();
    dir.write("m/master", "ret_port: 99999\nauto_accept: maybe\ninterface: nowhere\n");
    let out = run(Command::new(bin("halite-master")).arg("-c").arg(dir.join("m")));
    assert_eq!(out.status, Some(78));
    for key in ["ret_port", "auto_accept", "interface"] {
        assert!(out.stderr.contains(key), "{key} not named in: {}", out.stderr);
    }
    dir.write("n/minion", "id: ../../etc/passwd\nmaster: [a, b]\n");
    let out = run(Command::new(bin("halite-minion")).arg("-c").arg(dir.join("n")));
    assert_eq!(out.status, Some(78));
    assert!(
        out.stderr.contains("id: minion id contains forbidden character '/'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("master: several masters need master_type: failover"),
        "{}",
        out.stderr
    );
    dir.write("y/master", "reactor: [\n");
    let out = run(Command::new(bin("halite-master")).arg("-c").arg(dir.join("y")));
    assert_eq!(out.status, Some(78));
    assert!(out.stderr.contains("invalid YAML"), "{}", out.stderr);
}

/// `--log-level` names a level Salt knows, and the config's log file must open: each daemon
/// says which went wrong, with usage's status for the first.
#[test]
fn bad_log_level_or_log_file_is_a_clear_error() {
    let dir = TempDir::new();
    for (daemon, config) in [("halite-master", "master"), ("halite-minion", "minion")] {
        let file = format!("{config}/{config}");
        dir.write(&file, "id: m1\n");
        let out = run(Command::new(bin(daemon))
            .arg("-c")
            .arg(dir.join(config))
            .args(["--log-level", "loud"]));
        assert_eq!(out.status, Some(64), "{daemon}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{daemon}: unknown log level 'loud'")),
            "{daemon}: {}",
            out.stderr
        );
        // A directory: no file can be opened there, even as root.
        let log = dir.join(config);
        dir.write(&file, format!("id: m1\nlog_file: {}\n", log.display()));
        let out = run(Command::new(bin(daemon)).arg("-c").arg(dir.join(config)));
        assert_eq!(out.status, Some(1), "{daemon}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{daemon}: cannot log: ")),
            "{daemon}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_second_master_on_the_same_socket_refuses_to_start() {
    let master = Master::start("");
    let conf = master.conf_dir().to_path_buf();
    // Same config (so the same control socket), any port.
    let mut cmd = Command::new(bin("halite-master"));
    cmd.arg("-c").arg(&conf);
    let out = run(&mut cmd);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("another master is already serving"), "{}", out.stderr);
    assert!(master.key(&["-L"]).success());
}

#[test]
fn the_minion_refuses_a_master_whose_key_changed_or_does_not_match_the_pin() {
    let first = Master::start("auto_accept: True");
    let minion = Minion::start(&first, "minion1", "a", "");
    minion.wait_authenticated();
    drop(minion);

    // Another master (another key) where the cached one was expected.
    let other = Master::start("auto_accept: True");
    let minion = Minion::start_for(&first.dir, other.addr, "minion1", "a", "");
    minion.daemon.wait_for_line("does not match the expected", WAIT);
    assert!(other.presence().is_empty());
    assert!(!other.events().iter().any(|(tag, _)| tag == "salt/auth"));
    drop(minion);

    // A wrong pin refuses even on first contact; the right one is trusted.
    let wrong = "aa:".repeat(31) + "aa";
    let pinned = Minion::start(&other, "minion2", "b", &format!("master_finger: '{wrong}'"));
    pinned.daemon.wait_for_line("does not match the expected", WAIT);
    drop(pinned);
    let ready = other.daemon.wait_for_line(r"halite-master ready: .* fingerprint (\S+)$", WAIT);
    let finger = ready[1].clone().unwrap();
    let pinned = Minion::start(&other, "minion3", "c", &format!("master_finger: '{finger}'"));
    pinned.wait_authenticated();
    wait_until(WAIT, "minion3 live", || other.presence() == ["minion3"]);
}

/// Lines in the event log of the master tree in `dir`.
fn master_events_len(dir: &TempDir) -> usize {
    let log = dir.join("master/var/log/halite/events.log");
    std::fs::read_to_string(log).unwrap().lines().count()
}

#[test]
fn a_minion_with_large_grains_still_gets_its_session() {
    let master = Master::start("auto_accept: True");
    let big = "x".repeat(100_000);
    let minion = Minion::start(&master, "biggrains", "a", &format!("grains:\n  blob: {big}\n"));
    minion.wait_authenticated();
    wait_until(WAIT, "biggrains live", || master.presence() == ["biggrains"]);
    let out = master.halite(&["-G", "blob:xxx*", "test.ping"]);
    assert_eq!(out.stdout, "biggrains:\n    True\n", "{out:?}");
}

/// Ctrl-C in a terminal: SIGINT stops the master as cleanly as SIGTERM.
#[test]
fn sigint_stops_the_master_cleanly() {
    let mut master = Master::start("");
    let socket = master.dir.join("master/var/run/halite/master/master.sock");
    assert!(socket.exists());
    master.daemon.signal(2);
    let status = master.daemon.wait_exit(WAIT).expect("the master stops on SIGINT");
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "SIGINT must remove the control socket");
}

/// An emptied or corrupt `minion_master.pub` is not first use: trusting whoever answers on the
/// port because the file was truncated would hand a rogue master a root minion. The minion
/// names the file, keeps it as it is, and never says hello.
#[test]
fn a_corrupt_cached_master_key_is_refused_not_trusted_on_first_use() {
    let master = Master::start("auto_accept: True");
    for (name, content) in [("empty", ""), ("garbage", "-----BEGIN PUBLIC KEY-----\nxx\n")] {
        let cached = master.dir.join(format!("minion-{name}/etc/halite/pki/minion"));
        std::fs::create_dir_all(&cached).unwrap();
        let cached = cached.join("minion_master.pub");
        std::fs::write(&cached, content).unwrap();
        let minion = Minion::start(&master, name, name, "");
        let refusal = format!(
            "cannot read the cached master key {}: .*; refusing the master",
            regex::escape(&cached.display().to_string())
        );
        minion.daemon.wait_for_line(&refusal, WAIT);
        assert_eq!(std::fs::read_to_string(&cached).unwrap(), content, "{name}: key replaced");
        assert!(!minion.daemon.lines().iter().any(|l| l.contains("trusting master key")));
        // `halite-minion call` reads the same file the same way.
        let out = minion.call(&["event.send", "myco/x"]);
        assert_ne!(out.status, Some(0), "{out:?}");
        assert!(out.stderr.contains("cannot read the cached master key"), "{out:?}");
    }
    assert!(!master.events().iter().any(|(tag, _)| tag == "salt/auth"), "a hello was sent");
    assert!(master.presence().is_empty());
}
