//! Key workflow through the real binaries: pending → accepted with `halite-key`, auto-accept,
//! autosign, reject, deny, delete, and the events each one fires.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::serde_json::Value;
use halite_tests::{bin, run, TempDir};
use regex::Regex;
use std::process::Command;

fn tags(master: &Master) -> Vec<String> {
    master.events().into_iter().map(|(tag, _)| tag).collect()
}

fn keys_of(data: &Value) -> Vec<&str> {
    data.as_object().unwrap().keys().map(String::as_str).collect()
}

#[track_caller]
fn assert_stamp(data: &Value) {
    let stamp = data["_stamp"].as_str().expect("_stamp");
    let re = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$").unwrap();
    assert!(re.is_match(stamp), "bad _stamp {stamp}");
}

#[test]
fn new_minion_pends_is_accepted_by_halite_key_and_the_events_are_salts() {
    let master = Master::start("");
    // A long acceptance wait: only the master's push can bring the session up in time.
    let minion = Minion::start(&master, "minion1", "a", "acceptance_wait_time: 300");
    minion.wait_pending();
    let listed = master.key(&["-L"]);
    assert_eq!(
        listed.stdout,
        "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\nminion1\nRejected Keys:\n"
    );
    let accepted = master.key(&["-a", "minion1", "-y"]);
    assert!(accepted.success(), "{accepted:?}");
    assert_eq!(
        accepted.stdout,
        "The following keys are going to be accepted:\nUnaccepted Keys:\nminion1\n\
         Key for minion minion1 accepted.\n"
    );
    minion.wait_authenticated();
    master.wait_event("salt/minion/minion1/start", |_| true);
    // Salt's order: the legacy `minion_start` first.
    assert_eq!(
        tags(&master),
        ["salt/auth", "salt/key", "salt/auth", "minion_start", "salt/minion/minion1/start"]
    );
    let events = master.events();
    let minion_pub = std::fs::read_to_string(minion.pki().join("minion.pub")).unwrap();

    let pend = &events[0].1;
    assert_eq!(keys_of(pend), ["result", "act", "id", "pub", "_stamp"]);
    assert_eq!(pend["result"], true);
    assert_eq!(pend["act"], "pend");
    assert_eq!(pend["id"], "minion1");
    assert_eq!(pend["pub"], minion_pub.trim_end());
    assert!(pend["pub"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let key = &events[1].1;
    assert_eq!(keys_of(key), ["result", "act", "id", "pub", "_stamp"]);
    assert_eq!(key["act"], "accepted");
    assert_eq!(events[2].1["act"], "accept");
    assert_eq!(events[2].1["result"], true);
    let started =
        Regex::new(r"^Minion minion1 started at \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$");
    let started = started.unwrap();
    for (tag, start) in &events[3..] {
        assert_eq!(keys_of(start), ["cmd", "data", "id", "pretag", "tag", "ts", "_stamp"]);
        assert_eq!(start["cmd"], "_minion_event");
        assert_eq!(start["id"], "minion1");
        assert_eq!(start["tag"], tag.as_str());
        assert_eq!(start["pretag"], Value::Null);
        assert!(start["ts"].is_u64());
        assert!(started.is_match(start["data"].as_str().unwrap()), "{start}");
    }
    for (_, data) in &events {
        assert_stamp(data);
    }
    assert!(master.pki().join("minions/minion1").is_file());
    assert!(!master.pki().join("minions_pre/minion1").exists());
    assert_eq!(master.presence(), ["minion1"]);
}

#[test]
fn auto_accept_and_autosign_file_need_no_human() {
    let master = Master::start("auto_accept: True");
    let minion = Minion::start(&master, "any1", "a", "");
    minion.wait_authenticated();
    let auth = master.wait_event("salt/auth", |d| d["id"] == "any1");
    assert_eq!(auth["act"], "accept");
    // Salt fires no salt/key for auto-accepted keys.
    assert!(!tags(&master).contains(&"salt/key".to_string()));

    // Like every path, autosign_file lives under root_dir.
    let master = Master::start("autosign_file: /etc/halite/autosign.conf");
    master.dir.write("master/etc/halite/autosign.conf", "# web servers\nweb*\n");
    // Read again off the loop within a tick of the change.
    master.daemon.wait_for_line(r"read \S*autosign.conf: 1 entries", WAIT);
    let web = Minion::start(&master, "web1", "web", "");
    let db = Minion::start(&master, "db1", "db", "");
    web.wait_authenticated();
    db.wait_pending();
    assert_eq!(master.presence(), ["web1"]);
    assert_eq!(master.key(&["-l", "un"]).stdout, "Unaccepted Keys:\ndb1\n");
}

#[test]
fn a_rejected_key_never_gets_a_session() {
    let master = Master::start("");
    let mut minion = Minion::start(&master, "other1", "a", "");
    minion.wait_pending();
    let out = master.key(&["-r", "other1", "-y"]);
    assert_eq!(
        out.stdout,
        "The following keys are going to be rejected:\nUnaccepted Keys:\nother1\n\
         Key for minion other1 rejected.\n"
    );
    let status = minion.daemon.wait_exit(halite_tests::cluster::WAIT).expect("minion exits");
    assert_eq!(status.code(), Some(77));
    minion.daemon.wait_for_line("rejected this minion's public key", halite_tests::cluster::WAIT);
    let key = master.wait_event("salt/key", |d| d["act"] == "rejected");
    assert_eq!(key["id"], "other1");

    // Started again, it is refused at once: result false and no act, as Salt.
    let mut again = Minion::start(&master, "other1", "a", "");
    assert_eq!(again.daemon.wait_exit(halite_tests::cluster::WAIT).unwrap().code(), Some(77));
    let auth = master.wait_event("salt/auth", |d| d["result"] == false);
    assert!(auth.get("act").is_none(), "{auth}");
    assert!(!again.daemon.lines().iter().any(|l| l.contains("authenticated to master")));
    assert!(master.presence().is_empty());
    assert_eq!(
        master.key(&["-L"]).stdout,
        "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\nRejected Keys:\nother1\n"
    );
}

#[test]
fn a_known_id_with_another_key_is_denied_and_the_first_keeps_working() {
    let master = Master::start("auto_accept: True");
    let first = Minion::start(&master, "minion1", "first", "");
    first.wait_authenticated();
    let mut impostor = Minion::start(&master, "minion1", "impostor", "");
    assert_eq!(impostor.daemon.wait_exit(halite_tests::cluster::WAIT).unwrap().code(), Some(77));
    let denied = master.wait_event("salt/auth", |d| d["act"] == "denied");
    assert_eq!(denied["result"], false);
    let impostor_pub = std::fs::read_to_string(impostor.pki().join("minion.pub")).unwrap();
    assert_eq!(denied["pub"], impostor_pub.trim_end());
    let stored = std::fs::read_to_string(master.pki().join("minions_denied/minion1")).unwrap();
    assert_eq!(stored, impostor_pub);
    assert_eq!(
        master.key(&["-L"]).stdout,
        "Accepted Keys:\nminion1\nDenied Keys:\nminion1\nUnaccepted Keys:\nRejected Keys:\n"
    );
    assert_eq!(master.presence(), ["minion1"]);
    assert!(!first.daemon.lines().iter().any(|l| l.contains("lost master")));
}

#[test]
fn halite_key_prompts_deletes_prints_json_and_fingerprints() {
    let master = Master::start("auto_accept: True");
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();

    let json = master.key(&["-L", "--out", "json"]);
    let parsed: Value = halite_tests::serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(keys_of(&parsed), ["minions_pre", "minions_rejected", "minions", "minions_denied"]);
    assert_eq!(parsed["minions"], halite_tests::serde_json::json!(["minion1"]));
    assert!(json.stdout.contains("\n    \"minions\": [\n        \"minion1\"\n    ],\n"));

    let finger = master.key(&["-F"]);
    let ready = master
        .daemon
        .wait_for_line(r"halite-master ready: .* fingerprint (\S+)$", halite_tests::cluster::WAIT);
    let master_finger = ready[1].clone().unwrap();
    assert!(finger.stdout.starts_with(&format!("Local Keys:\nmaster.pub:  {master_finger}\n")));
    assert!(finger.stdout.contains("Accepted Keys:\nminion1:  "));

    // Delete defaults to "no": an empty answer keeps the key.
    let kept = master.key_answering(&["-d", "minion1"], "\n");
    assert_eq!(
        kept.stdout,
        "The following keys are going to be deleted:\nAccepted Keys:\nminion1\nProceed? [N/y] "
    );
    assert!(master.pki().join("minions/minion1").exists());
    let deleted = master.key_answering(&["-d", "minion1"], "y\n");
    assert!(deleted.stdout.ends_with("Proceed? [N/y] Key for minion minion1 deleted.\n"));
    assert!(!master.pki().join("minions/minion1").exists());
    let event = master.wait_event("salt/key", |d| d["act"] == "delete");
    assert_eq!(keys_of(&event), ["result", "act", "id", "_stamp"]);
    // The deleted minion loses its session at once.
    halite_tests::wait_until(halite_tests::cluster::WAIT, "session closed", || {
        !master.presence().contains(&"minion1".to_string())
    });

    let none = master.key(&["-a", "nobody", "-y"]);
    assert_eq!(none.status, Some(1));
    assert_eq!(none.stdout, "The key glob 'nobody' does not match any unaccepted keys.\n");
    let bad = master.key(&["-l", "sideways"]);
    assert_eq!(bad.status, Some(64));
    assert!(bad.stderr.contains("unknown key status"));
}

#[test]
fn halite_key_refuses_clearly_when_the_master_is_not_running() {
    let dir = TempDir::new();
    let conf = dir.join("conf");
    dir.write("conf/master", format!("root_dir: {}\n", dir.join("root").display()));
    let out = run(Command::new(bin("halite-key")).arg("-c").arg(&conf).arg("-L"));
    assert_eq!(out.status, Some(2));
    assert!(out.stderr.contains("the master is not running"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

/// Ids that would spoof `halite-key -L` (U+202E turns `evil<U+202E>gnp.exe` into
/// `evilexe.png`, a line separator printing as two minions, invisible or edge whitespace) are
/// refused at hello time, and a key file with such a name is neither listed nor accepted.
#[test]
fn spoofing_ids_are_refused_at_hello_and_never_listed_or_accepted() {
    use halite_common::crypto::KeyPair;
    use halite_common::handshake::MinionHandshake;
    use halite_tests::raw::RawConn;
    let master = Master::start("");
    let spoofs = ["evil\u{202e}gnp.exe", "web1\u{2028}web2", "zero\u{200b}width", "trailing "];
    for id in spoofs {
        let (mut conn, master_key) = RawConn::connect(master.addr);
        let (_hs, hello) = MinionHandshake::start(id, &KeyPair::generate(), &master_key)
            .expect("a real master key");
        conn.send_frame(&hello);
        assert!(conn.closed_by_master(), "the master kept {id:?} connected");
    }
    for refusal in [
        r"refused hello: minion id contains forbidden character '\\\\u\{202e\}'",
        r"refused hello: minion id contains forbidden character '\\\\u\{2028\}'",
        r"refused hello: minion id contains forbidden character '\\\\u\{200b\}'",
        r"refused hello: minion id starts or ends with whitespace",
    ] {
        master.daemon.wait_for_line(refusal, halite_tests::cluster::WAIT);
    }
    assert!(!tags(&master).contains(&"salt/auth".to_string()), "no auth event for a spoof");
    // Key files with such names (left from an older master, or dropped by hand) stay out of
    // the listing and out of reach of `-A`.
    let pem = std::fs::read_to_string(master.pki().join("master.pub")).unwrap();
    for id in spoofs.into_iter().chain(["good"]) {
        std::fs::write(master.pki().join("minions_pre").join(id), &pem).unwrap();
    }
    // The key index is read at start.
    let port = master.addr.port();
    let master = Master::start_in(master.stop(), port, "");
    let listed = master.key(&["-L"]);
    assert_eq!(
        listed.stdout,
        "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\ngood\nRejected Keys:\n"
    );
    master.daemon.wait_for_line(
        r#"key store: ignoring .*minions_pre/"evil\\u\{202e\}gnp.exe": minion id contains forbidden"#,
        halite_tests::cluster::WAIT,
    );
    let accepted = master.key(&["-A", "-y"]);
    assert!(accepted.success(), "{accepted:?}");
    assert!(accepted.stdout.ends_with("Key for minion good accepted.\n"), "{accepted:?}");
    for id in spoofs {
        assert!(master.pki().join("minions_pre").join(id).exists(), "{id:?} moved");
        assert!(!master.pki().join("minions").join(id).exists(), "{id:?} accepted");
    }
}

/// Issue #10: a key rejected or deleted after the Accepted verdict but before the minion's
/// `Ready` must not get a session: the master closes the connection, and `Ready` sent after
/// the key move finds nobody to make live.
#[test]
fn a_key_rejected_or_deleted_before_ready_gets_no_session() {
    use halite_common::proto::ToMaster;
    use halite_tests::cluster::WAIT;
    use halite_tests::raw::RawMinion;
    let master = Master::start("auto_accept: true");
    let reject = ["-r", "late-r", "--include-accepted", "-y"];
    for (id, args) in [("late-r", &reject[..]), ("late-d", &["-d", "late-d", "-y"][..])] {
        let mut raw = RawMinion::accepted(master.addr, id);
        let moved = master.key(args);
        assert!(moved.success(), "{moved:?}");
        raw.send(&ToMaster::Ready { grains: Default::default(), transient: false });
        assert!(raw.conn.closed_by_master(), "{id} kept its connection after its key moved");
        master.daemon.wait_for_line(
            &format!(r"closed connection {id}@127\.0\.0\.1:\d+: key no longer accepted"),
            WAIT,
        );
        assert!(!master.presence().contains(&id.to_string()), "{id} is present");
        let ping = master.halite(&["*", "test.ping"]);
        assert!(!ping.stdout.contains(id), "{id} answered: {ping:?}");
    }
}
