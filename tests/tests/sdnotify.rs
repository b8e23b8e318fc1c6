//! Both daemons speak systemd's notify protocol to `$NOTIFY_SOCKET` (a datagram socket the
//! test binds): `READY=1` once serving (the master listening; the minion authenticated or
//! pending), `RELOADING=1` then `READY=1` on SIGHUP, `STOPPING=1` on SIGTERM, `STATUS=` lines.
//! One test in this file: it sets the variable for the daemons it starts.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::TempDir;
use std::os::unix::net::UnixDatagram;

/// Datagrams until one starts with `prefix`; returns it (and what came before, for messages).
#[track_caller]
fn until(socket: &UnixDatagram, prefix: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = vec![0; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no datagram starting with {prefix:?} ({e}); got {seen:?}"));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(prefix) {
            return text;
        }
        seen.push(text);
    }
}

#[test]
fn master_and_minion_tell_systemd_ready_reloading_and_stopping() {
    let sockets = TempDir::new();
    let bind = |name: &str| {
        let socket = UnixDatagram::bind(sockets.join(name)).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket
    };
    let for_master = bind("master.sock");
    std::env::set_var("NOTIFY_SOCKET", sockets.join("master.sock"));
    let mut master = Master::start("auto_accept: true\n");
    let ready = until(&for_master, "READY=1");
    assert!(ready.contains("\nSTATUS=0 minions connected"), "{ready:?}");

    let for_minion = bind("minion.sock");
    std::env::set_var("NOTIFY_SOCKET", sockets.join("minion.sock"));
    let mut minion = Minion::start(&master, "minion1", "m1", "");
    std::env::remove_var("NOTIFY_SOCKET");
    let ready = until(&for_minion, "READY=1");
    assert!(ready.contains("STATUS=connected to master 127.0.0.1:"), "{ready:?}");
    until(&for_master, "STATUS=1 minions connected, 1 accepted, 0 pending");
    // The variable does not reach the minion's jobs: they cannot speak for it.
    let env = master.halite(&["minion1", "cmd.run", "echo \"[${NOTIFY_SOCKET:-unset}]\""]);
    assert!(env.stdout.contains("[unset]"), "{env:?}");

    for (daemon, socket) in [(&minion.daemon, &for_minion), (&master.daemon, &for_master)] {
        daemon.signal(1);
        assert!(until(socket, "RELOADING=1").contains("\nMONOTONIC_USEC="));
        until(socket, "READY=1");
    }
    minion.daemon.signal(15);
    until(&for_minion, "STOPPING=1");
    minion.daemon.wait_exit(WAIT).expect("the minion stops");
    master.daemon.signal(15);
    until(&for_master, "STOPPING=1");
    master.daemon.wait_exit(WAIT).expect("the master stops");
}
