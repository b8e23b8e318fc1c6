//! What a hostile network may cost the master: unauthenticated connections are capped in all
//! (past it the oldest is closed to make room) and per source address (past it a newcomer is
//! closed at once, with a log line), descriptors stay in
//! reserve for the CLIs and live minions, and pending keys are capped and rate-limited.
//! Many hosts are played from one machine by binding `127.0.0.x` source addresses.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::{hello_for, RawConn};
use std::net::Ipv4Addr;

/// Connects from `source` and sends a hello for `id`; the connection once the master has
/// answered it, or `None` when the master closed it before greeting.
fn pending_from(source: Ipv4Addr, master: &Master, id: &str) -> Option<RawConn> {
    let (mut conn, key) = RawConn::connect_from(source, master.addr)?;
    conn.send_frame(&hello_for(id, &key));
    conn.read_frame().map(|_| conn)
}

#[test]
fn connections_past_the_per_address_cap_are_closed_at_once() {
    let master = Master::start("max_pending_connections_per_ip: 4");
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held: Vec<RawConn> = (0..4)
        .map(|n| pending_from(attacker, &master, &format!("flood{n}")).expect("under the cap"))
        .collect();
    assert!(RawConn::connect_from(attacker, master.addr).is_none(), "fifth connection greeted");
    master.daemon.wait_for_line(
        concat!(
            r"refused connection from 127\.0\.0\.2:\d+: 4 connections from this address ",
            r"already await authentication \(max_pending_connections_per_ip\)"
        ),
        WAIT,
    );
    // Another host is not affected: a real minion from 127.0.0.1 gets its session.
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_pending();
    assert!(master.key(&["-a", "minion1", "-y"]).success());
    minion.wait_authenticated();
    let ping = master.halite(&["minion1", "test.ping", "--out", "json"]);
    assert!(ping.success(), "{ping:?}");
    // A closed connection gives its slot back.
    held.pop().unwrap().shutdown_write();
    master.daemon.wait_for_line(r"closed connection flood3@127\.0\.0\.2:\d+", WAIT);
    assert!(pending_from(attacker, &master, "flood4").is_some(), "slot not released");
}

#[test]
fn a_flood_holding_connections_leaves_descriptors_for_the_cli_and_live_minions() {
    // 200 descriptors: 136 for minion sockets, of which at most 68 unauthenticated.
    let master = Master::start_with_nofile("", 200);
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_pending();
    assert!(master.key(&["-a", "minion1", "-y"]).success());
    minion.wait_authenticated();

    let fds = || std::fs::read_dir(format!("/proc/{}/fd", master.daemon.pid())).unwrap().count();
    let before = fds();
    // 200 hosts' worth of pending hellos from four addresses (under every per-address limit),
    // each connection held open. Past 68 unauthenticated, each newcomer is greeted and an old
    // one (the oldest of the address holding the most) is closed to make room: the master
    // never holds more than 68, and a connection held open cannot keep later ones out.
    let mut held = Vec::new();
    for n in 0..200u8 {
        let source = Ipv4Addr::new(127, 0, 0, 2 + n % 4);
        let conn = pending_from(source, &master, &format!("flood{n}"));
        held.push(conn.unwrap_or_else(|| panic!("flood{n} was refused")));
    }
    assert!(held[0].closed_by_master(), "the first was not evicted");
    halite_tests::wait_until(WAIT, "at most 68 of them held", || fds() <= before + 68);
    master.daemon.wait_for_line(
        concat!(
            r"closed connection flood\d+@127\.0\.0\.\d:\d+: evicted: 68 connections await ",
            r"authentication \(max_pending_connections\), and this is the oldest from the address ",
            r"with the most"
        ),
        WAIT,
    );
    // While the flood holds its connections, the CLIs and the live minion are served.
    let listed = master.key(&["-L", "--out", "json"]);
    assert!(listed.success(), "{listed:?}");
    assert!(listed.stdout.contains("\"minion1\""), "{}", listed.stdout);
    assert!(listed.stdout.contains("\"flood67\""), "{}", listed.stdout);
    let ping = master.halite(&["minion1", "test.ping", "--out", "json"]);
    assert!(ping.success(), "{ping:?}");
    assert!(ping.stdout.contains("true"), "{}", ping.stdout);
    drop(held);
}

#[test]
fn past_max_pending_keys_a_new_id_hears_full_as_in_salt() {
    let master = Master::start("max_pending_keys: 2");
    let _p1 = pending_from(Ipv4Addr::new(127, 0, 0, 2), &master, "p1").expect("pends");
    let _p2 = pending_from(Ipv4Addr::new(127, 0, 0, 3), &master, "p2").expect("pends");
    let (mut conn, key) = RawConn::connect_from(Ipv4Addr::new(127, 0, 0, 4), master.addr).unwrap();
    conn.send_frame(&hello_for("p3", &key));
    assert!(conn.closed_by_master(), "a third pending key was kept");
    let full = master.wait_event("salt/auth", |d| d["id"] == "p3");
    assert_eq!((&full["act"], &full["result"]), (&"full".into(), &false.into()));
    master.daemon.wait_for_line("refused new pending key p3: max_pending_keys reached", WAIT);
    assert!(!master.pki().join("minions_pre/p3").exists());
    let listed = master.key(&["-l", "un"]);
    assert_eq!(listed.stdout, "Unaccepted Keys:\np1\np2\n");
}

#[test]
fn one_address_creates_at_most_pending_key_rate_new_keys_a_minute() {
    let master = Master::start("pending_key_rate: 2");
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let _held: Vec<RawConn> = ["q1", "q2"]
        .iter()
        .map(|id| pending_from(attacker, &master, id).expect("under the rate"))
        .collect();
    let (mut conn, key) = RawConn::connect_from(attacker, master.addr).unwrap();
    conn.send_frame(&hello_for("q3", &key));
    assert!(conn.closed_by_master(), "a third key from one address was kept");
    master.daemon.wait_for_line("refused new pending key q3: pending_key_rate reached", WAIT);
    assert_eq!(master.wait_event("salt/auth", |d| d["id"] == "q3")["act"], "full");
    // Another address has its own allowance.
    assert!(pending_from(Ipv4Addr::new(127, 0, 0, 3), &master, "q4").is_some());
    assert_eq!(master.key(&["-l", "un"]).stdout, "Unaccepted Keys:\nq1\nq2\nq4\n");
}

#[test]
fn a_key_write_that_fails_reaches_the_minion_and_the_cli_as_an_error() {
    let master = Master::start("");
    let pre = master.pki().join("minions_pre");
    // A directory where the key file would go: the write (rename) fails.
    std::fs::create_dir_all(pre.join("victim/blocker")).unwrap();
    let (mut conn, key) = RawConn::connect(master.addr);
    conn.send_frame(&hello_for("victim", &key));
    assert!(conn.closed_by_master(), "no verdict is due before the key is stored");
    master.daemon.wait_for_line(
        r"closed connection victim@127\.0\.0\.1:\d+: cannot store the key of victim: .*minions_pre/victim",
        WAIT,
    );
    assert_eq!(master.key(&["-l", "un"]).stdout, "Unaccepted Keys:\n");

    // The CLI hears about its own failed write, and the key it tried to move is kept.
    let _p1 = pending_from(Ipv4Addr::new(127, 0, 0, 1), &master, "p1").expect("pends");
    std::fs::create_dir_all(master.pki().join("minions/p1/blocker")).unwrap();
    let accept = master.key(&["-a", "p1", "-y"]);
    assert!(!accept.success(), "{accept:?}");
    let said = format!("{}{}", accept.stdout, accept.stderr);
    assert!(said.contains("key store write failed: ") && said.contains("minions/p1"), "{said}");
    assert!(pre.join("p1").is_file(), "a failed accept lost the pending key");
    assert_eq!(master.key(&["-l", "un"]).stdout, "Unaccepted Keys:\np1\n");
}

#[test]
fn key_state_comes_from_the_index_loaded_at_start() {
    let master = Master::start("");
    let _p1 = pending_from(Ipv4Addr::new(127, 0, 0, 1), &master, "p1").expect("pends");
    // A file dropped behind the master's back is not read until the next start.
    let pem = std::fs::read_to_string(master.pki().join("minions_pre/p1")).unwrap();
    std::fs::write(master.pki().join("minions_pre/byhand"), pem).unwrap();
    assert_eq!(master.key(&["-l", "un"]).stdout, "Unaccepted Keys:\np1\n");
    let master = Master::start_in(master.stop(), 0, "");
    assert_eq!(master.key(&["-l", "un"]).stdout, "Unaccepted Keys:\nbyhand\np1\n");
}

#[test]
fn out_of_descriptors_the_master_sheds_connections_instead_of_stalling() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    // 80 descriptors: the CLIs' side of the reserve is soon spent by idle control clients.
    let master = Master::start_with_nofile("", 80);
    let socket = master.dir.join("master/var/run/halite/master/master.sock");
    let held: Vec<UnixStream> = (0..100).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    master
        .daemon
        .wait_for_line(r"refused connection from a control client: out of file descriptors", WAIT);
    // The ones shed were closed (EOF), not left waiting in the listen queue.
    let eof = |s: &UnixStream| {
        s.set_nonblocking(true).unwrap();
        matches!((&*s).read(&mut [0u8; 1]), Ok(0))
    };
    halite_tests::wait_until(WAIT, "shed clients see EOF", || held.iter().any(eof));
    drop(held);
    // Descriptors back, the reserve taken again: the master serves as before.
    halite_tests::wait_until(WAIT, "halite-key -L answered", || master.key(&["-L"]).success());
    assert_eq!(master.key(&["-l", "acc"]).stdout, "Accepted Keys:\n");
}

/// Review of issue #10: every refused or failed unauthenticated connection wrote a warning, so a
/// flood of garbage hellos wrote one log line per connection, as fast as the attacker could
/// connect. Past 20 lines a second they are now counted and said in one line per second, and
/// nothing is lost: the lines plus the counts add up to every connection.
#[test]
fn a_flood_of_bad_hellos_costs_the_log_a_few_lines_a_second() {
    let master = Master::start("");
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    const N: usize = 600;
    for _ in 0..N {
        let (mut conn, _) = RawConn::connect_from(attacker, master.addr).expect("greeted");
        conn.send_frame(b"not a sealed hello");
        assert!(conn.closed_by_master(), "a bad hello must close the connection");
    }
    // Every connection is accounted for once the last window is said, in far fewer lines.
    let logged = wait_until_all_said(&master, N);
    assert!(logged < N / 2, "{logged} lines for {N} bad hellos");
}

/// Waits until the logged lines plus the suppressed counts say every one of `n` connections;
/// returns how many were logged one by one.
fn wait_until_all_said(master: &Master, n: usize) -> usize {
    let mut logged = 0;
    let re = regex::Regex::new(r"(\d+) more unauthenticated connections were refused").unwrap();
    halite_tests::wait_until(WAIT, "every bad hello logged or counted", || {
        let lines = master.daemon.lines();
        logged = lines.iter().filter(|l| l.contains("closed connection 127.0.0.2:")).count();
        let counted: usize = lines
            .iter()
            .filter_map(|l| re.captures(l))
            .map(|c| c[1].parse::<usize>().unwrap())
            .sum();
        assert!(logged + counted <= n, "{logged} + {counted} > {n}: a connection said twice");
        logged + counted == n
    });
    logged
}

/// Review of issues #10 and #14: each HTTP listener counted only its own connections against
/// the descriptor budget, so a fleet at the budget plus webhook (and metrics) clients could
/// take the descriptors kept in reserve, and the control socket then shed `halite-key` for
/// want of one. Every network connection now counts against the one budget.
#[test]
fn webhook_connections_share_the_descriptor_budget_with_minion_connections() {
    use halite_tests::raw::{tcp_from, RawMinion};
    use std::io::{Read, Write};
    const SECRET: &str = "ops-secret-0123456789abcdef";
    let extra = format!(
        "autosign_file: /etc/halite/autosign.conf\nmetrics_port: 0\nwebhook_port: 0\n\
         webhook_timeout: 3600\nwebhook_tokens:\n  ops: {{secret: {SECRET}, tags: ['salt/netapi/hook/x']}}\n"
    );
    // 160 descriptors: 96 for network connections, at most 48 of them unauthenticated.
    let master = Master::start_with_nofile(&extra, 160);
    master.dir.write("master/etc/halite/autosign.conf", "live*\n");
    master.daemon.wait_for_line(r"read \S*autosign.conf: 1 entries", WAIT);
    let line = master.daemon.wait_for_line(r"webhooks on (\S+)", WAIT);
    let hook: std::net::SocketAddr = line[1].as_deref().unwrap().parse().unwrap();
    let line = master.daemon.wait_for_line(r"metrics on http://(\S+)/metrics", WAIT);
    let metrics: std::net::SocketAddr = line[1].as_deref().unwrap().parse().unwrap();
    // The budget full: 48 live minions and 48 pending ones.
    let live: Vec<RawMinion> =
        (0..48).map(|n| RawMinion::authenticate(master.addr, &format!("live{n}"))).collect();
    halite_tests::wait_until(WAIT, "48 live", || master.presence().len() == 48);
    let pending: Vec<RawConn> = (0..48u8)
        .map(|n| {
            let source = Ipv4Addr::new(127, 0, 0, 2 + n % 4);
            pending_from(source, &master, &format!("flood{n}")).expect("under the caps")
        })
        .collect();
    // Webhook and metrics clients (16 and 4 an address, their per-address caps), each sent a
    // keep-alive request, so that an admitted one is known by its answer.
    let hook_request = format!(
        "POST /hook/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let scrape = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n".to_string();
    let mut hooks = Vec::new();
    for (addr, request, per_address, third) in
        [(hook, hook_request, 16, 1), (metrics, scrape, 4, 2)]
    {
        for n in 0..64u32 {
            let source = Ipv4Addr::new(127, third, 1 + (n / per_address) as u8, 1);
            let mut stream = tcp_from(source, addr);
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut first = [0u8; 1];
            if let Ok(1) = stream.read(&mut first) {
                hooks.push(stream);
            }
        }
    }
    assert_eq!(hooks.len(), 0, "HTTP connections admitted beside a full budget");
    master.daemon.wait_for_line(
        concat!(
            r"refused webhook connection from 127\.1\.\d+\.1:\d+: all 96 file descriptors for ",
            r"network connections are in use \(RLIMIT_NOFILE\)"
        ),
        WAIT,
    );
    // The reserve is intact: the CLI is served while every connection is held.
    let listed = master.key(&["-l", "un"]);
    assert!(listed.success(), "{listed:?}");
    assert!(listed.stdout.contains("flood47"), "{}", listed.stdout);
    drop((live, pending, hooks));
}

/// Review of issue #10: a close the core decides is held, like a send, until the events fired
/// before it are logged; so was the close of a connection refused at accept, which has been
/// told nothing and released its count at once. While the log lagged (a busy master; a slow
/// disk) every refused connection kept its descriptor, past every cap, until the master ran
/// out. A connection refused at accept is now closed at once.
#[test]
fn connections_refused_at_accept_are_closed_at_once_while_the_log_lags() {
    use halite_common::proto::ToMaster;
    use halite_tests::raw::{tcp_from, RawMinion};
    use halite_tests::serde_json::json;
    use halite_tests::TempDir;
    // The event log is a FIFO no one reads: 64 KiB in, its writes block (a stalled disk,
    // well under the 16 MiB past which nothing is read at all).
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.join("master/var/log/halite")).unwrap();
    let fifo = dir.join("master/var/log/halite/events.log");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let master = Master::start_in(dir, 0, "auto_accept: True\nmax_pending_connections_per_ip: 16");
    let mut raw = RawMinion::authenticate(master.addr, "filler");
    let data = json!({"pad": "x".repeat(64 * 1024)});
    for _ in 0..4 {
        let (tag, data) = ("fill/x".to_string(), data.clone());
        raw.send(&ToMaster::Event { tag, data, ts: 0, ack: false, jid: None });
    }
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", master.daemon.pid())).unwrap().count();
    let before = fds();
    // From one address, 16 connections are admitted (their greeting waits for the log);
    // 200 more are refused.
    let held: Vec<_> =
        (0..216u32).map(|_| tcp_from(Ipv4Addr::new(127, 0, 2, 1), master.addr)).collect();
    // Every refusal said (one line each, or counted past 20 a second).
    let re = regex::Regex::new(r"(\d+) more unauthenticated connections were refused").unwrap();
    halite_tests::wait_until(WAIT, "200 refusals said", || {
        let lines = master.daemon.lines();
        let one_by_one =
            lines.iter().filter(|l| l.contains("refused connection from 127.0.2.")).count();
        let counted: usize = lines
            .iter()
            .filter_map(|l| re.captures(l))
            .map(|c| c[1].parse::<usize>().unwrap())
            .sum();
        one_by_one + counted >= 200
    });
    // The refused hold no descriptor (the log is still stalled).
    halite_tests::wait_until(WAIT, "the refused connections closed", || fds() <= before + 16 + 8);
    drop(held);
}

/// A minion flooding events while the event log's disk is stalled: the log thread blocks,
/// and past `event_log_backlog_bytes` not yet written the master stops reading minions (the
/// flood waits in the kernel's buffers and its sender blocks) instead of holding every event
/// in memory. Once the disk answers, every event is logged and the sender goes on.
#[test]
fn a_stalled_event_log_stops_the_reading_instead_of_growing_memory() {
    use halite_common::proto::ToMaster;
    use halite_tests::raw::RawMinion;
    use halite_tests::serde_json::json;
    use halite_tests::TempDir;
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // 64 MiB of events, 64 KiB each, against a 1 MiB backlog.
    const EVENTS: usize = 1024;
    // The event log is a FIFO nobody reads yet: once its 64 KiB buffer is full, every write
    // of the log thread blocks, as on a disk that stopped answering. (The master opens it
    // read-write, so the open itself does not wait for a reader.)
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.join("master/var/log/halite")).unwrap();
    let fifo = dir.join("master/var/log/halite/events.log");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    // Not rotated (which would open a new file) on the way.
    let config = "auto_accept: True\nevent_log_max_bytes: 1073741824\n\
                  event_log_backlog_bytes: 1048576";
    let master = Master::start_in(dir, 0, config);
    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    let sender = std::thread::spawn(move || {
        let data = json!({"pad": "x".repeat(64 * 1024)});
        for _ in 0..EVENTS {
            let (tag, data) = ("flood/x".to_string(), data.clone());
            raw.send(&ToMaster::Event { tag, data, ts: 0, ack: false, jid: None });
        }
        raw
    });
    master.daemon.wait_for_line(
        r"the event log is \d+ MiB behind: not reading minions until it catches up",
        WAIT,
    );
    assert!(!sender.is_finished(), "the whole flood was taken while the log was stalled");
    // The disk answers again: every event is logged and the sender finishes.
    let flood = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&flood);
    std::thread::spawn(move || {
        // Ends at EOF, once the master is gone.
        for line in BufReader::new(std::fs::File::open(fifo).unwrap()).lines() {
            if line.is_ok_and(|l| l.starts_with(r#"{"tag":"flood/x""#)) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    master.daemon.wait_for_line("the event log caught up: reading minions again", WAIT);
    let _raw = sender.join().unwrap();
    halite_tests::wait_until(WAIT, "every flood event logged", || {
        flood.load(Ordering::Relaxed) == EVENTS
    });
    // The most the master ever held: about the backlog (11 MiB resident here in all), not
    // what is sent (50 MiB within half a second when the reading is not paused).
    let hwm_mib = peak_mib(&master);
    assert!(hwm_mib < 32, "{hwm_mib} MiB resident at the most");
}

/// The most memory `master` has held (`VmHWM`), in MiB.
fn peak_mib(master: &Master) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", master.daemon.pid()));
    let status = status.expect("the master's /proc status");
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM");
    hwm.trim().trim_end_matches(" kB").parse::<u64>().expect("VmHWM in kB") / 1024
}

/// The master's heap holds no transparent huge pages: mimalloc asks for them, and each would
/// keep 2 MiB resident for a few bytes in use (and be zeroed whole again after each purge).
#[test]
fn the_master_runs_without_transparent_huge_pages() {
    let master = Master::start("");
    let status = std::fs::read_to_string(format!("/proc/{}/status", master.daemon.pid()));
    let status = status.expect("the master's /proc status");
    assert!(status.lines().any(|l| l == "THP_enabled:\t0"), "{status}");
}

/// A minion flooding returns while the job cache's disk is stalled: every return waits for
/// the job thread (looked up there, then stored), and past `job_cache_backlog_bytes` of them
/// the master stops reading minions (the flood waits in the kernel's buffers and its sender
/// blocks) instead of holding every return in memory. Once the disk answers, every return
/// is handled and the sender goes on.
#[test]
fn a_stalled_job_cache_stops_the_reading_instead_of_growing_memory() {
    use halite_common::proto::{JobReturn, ToMaster, ToMinion};
    use halite_tests::raw::RawMinion;
    use halite_tests::serde_json::json;
    use halite_tests::TempDir;
    // 64 MiB of returns, 64 KiB each, against a 1 MiB backlog; jids in the future, so that
    // no pruning of the cache touches them.
    const RETURNS: usize = 1024;
    const STALLED: &str = "20990101000000000000";
    // The first return's job has a FIFO for its load: the job thread's lookup opens it and
    // blocks until someone writes, as on a disk that stopped answering.
    let dir = TempDir::new();
    let job = dir.join(format!("master/var/cache/halite/master/jobs/{STALLED}"));
    std::fs::create_dir_all(&job).unwrap();
    let fifo = job.join("load.json");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let master = Master::start_in(dir, 0, "auto_accept: True\njob_cache_backlog_bytes: 1048576");
    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    let sender = std::thread::spawn(move || {
        let output = json!("x".repeat(64 * 1024));
        for n in 0..=RETURNS {
            raw.send(&ToMaster::Return(JobReturn {
                jid: format!("{}{n:04}", &STALLED[..16]),
                fun: "test.echo".into(),
                fun_args: vec![],
                ret: output.clone(),
                retcode: 0,
                success: true,
                out: None,
                user: "root".into(),
            }));
        }
        raw
    });
    master.daemon.wait_for_line(
        r"the job cache is \d+ MiB behind: not reading minions until it catches up",
        WAIT,
    );
    assert!(!sender.is_finished(), "the whole flood was taken while the job cache was stalled");
    // The disk answers again: the stalled job is one this minion was not sent, and every
    // other jid is unknown to the cache.
    std::fs::write(&fifo, r#"{"minions": []}"#).unwrap();
    std::fs::remove_dir_all(&job).unwrap();
    master.daemon.wait_for_line("the job cache caught up: reading minions again", WAIT);
    let mut raw = sender.join().unwrap();
    // Every return is handled (an unknown job's is acked, its warning counted in a line a
    // second): the last one's ack says the master read them all.
    let last = format!("{}{RETURNS:04}", &STALLED[..16]);
    loop {
        match raw.recv() {
            Some(ToMinion::ReturnAck { jid }) if jid == last => break,
            Some(_) => continue,
            None => panic!("the connection closed before the last return was acked"),
        }
    }
    // The most the master ever held: about the backlog (a debug master of ~10 MiB), not the
    // 64 MiB sent.
    let hwm_mib = peak_mib(&master);
    assert!(hwm_mib < 32, "{hwm_mib} MiB resident at the most");
}
