//! Hostile input against the real master: oversized lengths, random bytes, truncated frames,
//! garbage, hellos sealed to the wrong key, path-like ids, replayed and bit-flipped session
//! frames, and garbage on the control socket. Each closes (or is refused on) that connection
//! only, leaves no file outside the pki dir, and the master keeps serving.

use halite_common::control::{Request, Response, SOCKET_NAME};
use halite_common::crypto::{self, CryptoError, KeyPair};
use halite_common::handshake::{HandshakeError, MinionHandshake};
use halite_common::proto::{ToMaster, ToMinion};
use halite_common::wire::encode_frame;
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::{hello_for, RawConn, RawMinion};
use halite_tests::wait_until;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Pseudo-random bytes without a dependency (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Does something hostile on a fresh connection, given the master key it presented.
type Attack = dyn Fn(&mut RawConn, &crypto::PublicKey);

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn hostile_connections_are_closed_and_the_master_keeps_serving() {
    let master = Master::start("auto_accept: True");
    let attacks: Vec<(&str, Box<Attack>)> = vec![
        ("4 GiB length prefix", Box::new(|c, _| c.send_raw(&[0xff, 0xff, 0xff, 0xff]))),
        ("random bytes", Box::new(|c, _| c.send_raw(&noise(4096, 7)))),
        (
            "truncated frame then EOF",
            Box::new(|c, _| {
                c.send_raw(&[0, 0, 0, 100, 1, 2, 3]);
                c.shutdown_write();
            }),
        ),
        ("garbage JSON in a frame", Box::new(|c, _| c.send_frame(b"{\"cmd\": \"_auth\", oops"))),
        (
            "Salt-style clear command",
            Box::new(|c, _| {
                c.send_frame(br#"{"cmd":"_send_pub","fun":"cmd.run","arg":["id"],"tgt":"*"}"#)
            }),
        ),
        (
            "hello sealed to the wrong key",
            Box::new(|c, _| c.send_frame(&hello_for("minion9", &KeyPair::generate().public))),
        ),
        ("path traversal id", Box::new(|c, m| c.send_frame(&hello_for("../../etc/passwd", m)))),
        ("NUL in id", Box::new(|c, m| c.send_frame(&hello_for("evil\0id", m)))),
        ("dot-dot id", Box::new(|c, m| c.send_frame(&hello_for("..", m)))),
    ];
    for (name, attack) in &attacks {
        let (mut conn, master_key) = RawConn::connect(master.addr);
        attack(&mut conn, &master_key);
        assert!(conn.closed_by_master(), "master kept the connection open after: {name}");
    }
    for expected in ["exceeds max_frame_bytes", "refused hello", "minion id contains forbidden"] {
        master.daemon.wait_for_line(expected, WAIT);
    }
    // Nothing was written for any hostile id, anywhere in the test's tree.
    let files = files_under(master.dir.path());
    assert!(!files.iter().any(|f| f.contains("passwd") || f.contains("evil")), "{files:?}");
    for dir in ["minions", "minions_pre", "minions_rejected", "minions_denied"] {
        assert_eq!(files_under(&master.pki().join(dir)), Vec::<String>::new(), "{dir}");
    }
    // The master still serves a real minion.
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    assert_eq!(master.presence(), ["minion1"]);
}

#[test]
fn replayed_reordered_and_forged_session_frames_end_the_session() {
    let master = Master::start("auto_accept: True");
    let mut raw = RawMinion::authenticate(master.addr, "raw1");
    let ping = raw.send(&ToMaster::Ping { seq: 1 });
    assert_eq!(raw.recv(), Some(ToMinion::Pong { seq: 1 }));
    halite_tests::wait_until(WAIT, "raw1 live", || master.presence() == ["raw1"]);
    raw.conn.send_frame(&ping);
    assert!(raw.conn.closed_by_master(), "a replayed frame was accepted");

    let mut raw = RawMinion::authenticate(master.addr, "raw2");
    let mut frame = raw.session.seal(&ToMaster::Ping { seq: 2 }).unwrap();
    frame[5] ^= 0x01;
    raw.conn.send_frame(&frame);
    assert!(raw.conn.closed_by_master(), "a bit-flipped frame was accepted");

    let mut raw = RawMinion::authenticate(master.addr, "raw3");
    let _skipped = raw.session.seal(&ToMaster::Ping { seq: 3 }).unwrap();
    let later = raw.session.seal(&ToMaster::Ping { seq: 4 }).unwrap();
    raw.conn.send_frame(&later);
    assert!(raw.conn.closed_by_master(), "a reordered frame was accepted");

    // A frame sealed under another session's key.
    let mut a = RawMinion::authenticate(master.addr, "raw4");
    let mut b = RawMinion::authenticate(master.addr, "raw5");
    let mut c = RawMinion::authenticate(master.addr, "raw6");
    let foreign = c.session.seal(&ToMaster::Ping { seq: 1 }).unwrap();
    drop(c);
    a.conn.send_frame(&foreign);
    assert!(a.conn.closed_by_master(), "a frame from another session was accepted");
    b.send(&ToMaster::Ping { seq: 1 });
    assert_eq!(b.recv(), Some(ToMinion::Pong { seq: 1 }), "the other session must live on");
    master.daemon.wait_for_line("bad session frame", WAIT);
    halite_tests::wait_until(WAIT, "only raw5 left", || master.presence() == ["raw5"]);
}

#[test]
fn a_forged_master_tag_from_a_minion_is_refused() {
    let master = Master::start("auto_accept: True");
    let mut raw = RawMinion::authenticate(master.addr, "raw1");
    let data = serde_json::json!({"act": "accept", "id": "someone", "result": true});
    raw.send(&ToMaster::Event { tag: "salt/auth".into(), data, ts: 0, ack: false, jid: None });
    match raw.recv() {
        Some(ToMinion::EventRefused { tag, reason }) => {
            assert_eq!(tag, "salt/auth");
            assert!(reason.contains("reserved"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let data = serde_json::json!({"k": "v", "id": "someone-else"});
    raw.send(&ToMaster::Event { tag: "myco/app/ok".into(), data, ts: 1, ack: false, jid: None });
    let event = master.wait_event("myco/app/ok", |_| true);
    assert_eq!(event["id"], "raw1", "the master stamps the authenticated id");
    assert_eq!(event["data"]["id"], "someone-else");
    let forged =
        master.events().into_iter().filter(|(t, d)| t == "salt/auth" && d["id"] == "someone");
    assert_eq!(forged.count(), 0);
}

/// Every refused request of an authenticated minion was a warning line of its own: a minion
/// sending refused events as fast as it can filled the master's log. Now 20 lines a second at
/// most, then one line with the count; and (found by review) one minion has a quarter of
/// those lines, so its flood does not hide the lines about another.
#[test]
fn a_minion_flooding_refused_requests_costs_the_log_a_few_lines() {
    let master = Master::start("auto_accept: True");
    let mut raw = RawMinion::authenticate(master.addr, "raw1");
    let mut other = RawMinion::authenticate(master.addr, "raw2");
    let data = serde_json::json!({"act": "accept", "id": "someone", "result": true});
    for ts in 0..200 {
        let data = data.clone();
        raw.send(&ToMaster::Event { tag: "salt/auth".into(), data, ts, ack: false, jid: None });
    }
    for _ in 0..200 {
        assert!(matches!(raw.recv(), Some(ToMinion::EventRefused { .. })), "each one refused");
    }
    let data = data.clone();
    other.send(&ToMaster::Event { tag: "salt/auth".into(), data, ts: 0, ack: false, jid: None });
    assert!(matches!(other.recv(), Some(ToMinion::EventRefused { .. })));
    let theirs = |l: &String| l.contains("refused event from minion raw2");
    halite_tests::wait_until(WAIT, "the other minion's line", || {
        master.daemon.lines().iter().any(theirs)
    });
    // Every refusal is either a line or counted in a summary line (one per window of a second
    // in which raw1 had more than its 5; a slow machine may spread the 200 over a few windows).
    let tally = || {
        let logged = master.daemon.lines();
        let lines = logged.iter().filter(|l| l.contains("refused event from minion raw1")).count();
        let summaries: Vec<usize> = logged
            .iter()
            .filter(|l| l.contains("more requests from minions were refused or ignored"))
            .map(|l| l.split_whitespace().find_map(|w| w.parse().ok()).unwrap())
            .collect();
        (lines, summaries)
    };
    halite_tests::wait_until(WAIT, "every refusal logged or counted", || {
        let (lines, summaries) = tally();
        lines + summaries.iter().sum::<usize>() == 200
    });
    let (lines, summaries) = tally();
    assert!(!summaries.is_empty(), "200 refusals, {lines} lines and no count");
    // The windows with a count, and perhaps a last one without: 5 lines each at most.
    assert!(lines <= 5 * (summaries.len() + 1), "{lines} lines, counts {summaries:?}");
    let named = master.daemon.lines().iter().any(|l| l.contains("of them from minion raw1"));
    assert!(named, "the count names the minion that flooded");
}

#[test]
fn a_hello_for_an_unknown_challenge_cannot_hijack_a_pending_minion() {
    // An attacker who replays a captured hello gets a reply it cannot open; the master does
    // not hand the real minion's session to anyone.
    let master = Master::start("auto_accept: True");
    let (mut conn, master_key) = RawConn::connect(master.addr);
    let keys = KeyPair::generate();
    let (_hs, hello) = MinionHandshake::start("victim", &keys, &master_key).unwrap();
    conn.send_frame(&hello);
    let reply = conn.read_frame().expect("reply");
    // The reply is boxed with the key the victim shares with the master: a stranger's own
    // shared key does not open it.
    let stranger = KeyPair::generate();
    let (theirs, _) = MinionHandshake::start("victim", &stranger, &master_key).unwrap();
    assert_eq!(theirs.on_reply(&reply).unwrap_err(), HandshakeError::Crypto(CryptoError::Open));
    // Without the session key, nothing the attacker sends opens: the session never goes live.
    conn.send_frame(&noise(64, 3));
    assert!(conn.closed_by_master());
    assert!(master.presence().is_empty());
}

#[test]
fn garbage_on_the_control_socket_gets_an_error_and_the_master_keeps_working() {
    let master = Master::start("");
    let socket = master.dir.join("master/var/run/halite/master").join(SOCKET_NAME);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let ask = |payload: &[u8]| -> Response {
        let mut stream = UnixStream::connect(&socket).unwrap();
        let mut frame = Vec::new();
        encode_frame(payload, &mut frame);
        stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    for bad in [&b"not json"[..], br#"{"cmd":"no_such_command"}"#, br#"{"cmd":"key_apply"}"#] {
        match ask(bad) {
            Response::Error { message } => assert!(message.starts_with("bad request"), "{message}"),
            other => panic!("expected an error for {bad:?}, got {other:?}"),
        }
    }
    let huge = format!(
        r#"{{"cmd":"key_apply","action":"accept","keys":[["{}","pending"]]}}"#,
        "x".repeat(100_000)
    );
    assert!(matches!(ask(huge.as_bytes()), Response::Error { .. } | Response::Applied { .. }));
    let traversal =
        r#"{"cmd":"key_apply","action":"delete","keys":[["../master.key","accepted"]]}"#;
    assert!(matches!(ask(traversal.as_bytes()), Response::Error { .. }));
    assert!(master.pki().join("master.key").exists());

    // An oversized length prefix closes that connection only.
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(stream.read(&mut buf).unwrap_or(0), 0);

    let listed = master.key(&["-L"]);
    assert!(listed.success(), "{listed:?}");
    let mut client = halite_cli::Client::connect(&socket).unwrap();
    assert_eq!(client.request(&Request::Presence).unwrap(), Response::Presence { up: vec![] });
}

#[test]
fn returns_are_acknowledged_once_stored_and_stray_or_repeated_ones_change_nothing() {
    use halite_common::proto::{JobReturn, ToMinion};
    let master = Master::start("auto_accept: True");
    let mut raw = RawMinion::authenticate(master.addr, "r1");
    let mut other = RawMinion::authenticate(master.addr, "r2");
    wait_until(WAIT, "both live", || master.presence() == ["r1", "r2"]);
    let out = master.halite(&["r1", "test.ping", "--async"]);
    let jid = out.stdout.trim().rsplit(' ').next().unwrap().to_string();
    let Some(ToMinion::Publish(publish)) = raw.recv() else { panic!("expected the job") };
    assert_eq!(publish.jid, jid);
    let ret = JobReturn {
        jid: jid.clone(),
        fun: "test.ping".into(),
        fun_args: vec![],
        ret: true.into(),
        retcode: 0,
        success: true,
        out: None,
        user: "root".into(),
    };
    for _ in 0..2 {
        raw.send(&ToMaster::Return(ret.clone()));
        assert_eq!(raw.recv(), Some(ToMinion::ReturnAck { jid: jid.clone() }));
    }
    // r2 was not sent the job: its return is acknowledged (so it stops) but not taken.
    other.send(&ToMaster::Return(ret.clone()));
    assert_eq!(other.recv(), Some(ToMinion::ReturnAck { jid: jid.clone() }));
    let tag = format!("salt/job/{jid}/ret/");
    let rets: Vec<String> =
        master.events().into_iter().filter(|(t, _)| t.starts_with(&tag)).map(|(t, _)| t).collect();
    assert_eq!(rets, [format!("{tag}r1")]);
    let looked = master.run(&["jobs.lookup_jid", &jid, "--out", "json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&looked.stdout).unwrap(),
        serde_json::json!({"r1": true})
    );
}
