//! Pillar from `pillar_roots` through the real binaries: compiled on the master per minion,
//! sent only on that minion's session, used by state runs and the `pillar.*` functions,
//! `I@` targets, refreshes; and the attacks: another minion's pillar, paths out of
//! `pillar_roots`, a pillar too big to send, secrets in events and logs.

use halite_common::proto::{ToMaster, ToMinion};
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::serde_json::{self, json, Value};
use halite_tests::TempDir;

const SECRET: &str = "s3cr3t-pillar-value";
const INLINE_SECRET: &str = "inline-s3cr3t-value";

const TOP: &str = "base:\n  '*':\n    - common\n  minion1:\n    - web\n";

/// A master with `pillar` as pillar_roots and `states` as file_roots.
fn master(pillar: &TempDir, states: &TempDir, extra: &str) -> Master {
    Master::start(&format!(
        "auto_accept: True\nfile_roots:\n  base: [{}]\npillar_roots:\n  base: [{}]\n{extra}",
        states.path().display(),
        pillar.path().display()
    ))
}

fn json_out(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Starts `id` and waits until the master has compiled its pillar.
fn minion(master: &Master, id: &str) -> Minion {
    let minion = Minion::start(master, id, id, "");
    minion.wait_authenticated();
    master.daemon.wait_for_line(&format!(r"pillar for minion {id}: \d+ keys"), WAIT);
    minion
}

/// The `(id, comment)` of each state in a `state.sls` return, by `__run_num__`.
fn names(ret: &Value) -> Vec<String> {
    let mut states: Vec<&Value> = ret.as_object().map(|m| m.values().collect()).unwrap_or_default();
    states.sort_by_key(|s| s["__run_num__"].as_i64());
    states.iter().map(|s| s["name"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn pillar_roots_reach_only_their_minion_and_never_the_events() {
    let pillar = TempDir::new();
    let states = TempDir::new();
    pillar.write("top.sls", TOP);
    pillar.write("common.sls", "common: everyone\n");
    pillar.write("web.sls", format!("role: web\nsecret: {SECRET}\n"));
    states.write(
        "show.sls",
        "role-{{ pillar.get('role', 'none') }}:\n  test.succeed_without_changes\n\
         {% if pillar.get('secret') == '"
            .to_string()
            + SECRET
            + "' %}\nsecret-seen:\n  test.succeed_without_changes\n{% endif %}\n",
    );
    let master = master(&pillar, &states, "");
    let _m1 = minion(&master, "minion1");
    let _m2 = minion(&master, "minion2");

    // State runs see the compiled pillar; only minion1 has the role and the secret.
    let out = master.halite(&["*", "state.sls", "show", "--out", "json", "--static"]);
    let ret = json_out(&out.stdout);
    assert_eq!(names(&ret["minion1"]), ["role-web", "secret-seen"], "{ret}");
    assert_eq!(names(&ret["minion2"]), ["role-none"], "{ret}");

    // Inline pillar merges over it and wins.
    let inline = format!(r#"pillar={{"role": "db", "token": "{INLINE_SECRET}"}}"#);
    let out = master.halite(&["minion1", "state.sls", "show", &inline, "--out", "json"]);
    assert_eq!(names(&json_out(&out.stdout)["minion1"]), ["role-db", "secret-seen"]);

    // I@ and -I target by the pillar the master compiled.
    for args in [&["-C", "I@role:web", "test.ping"][..], &["-I", "role:w*", "test.ping"][..]] {
        let out = master.halite(&[args, &["--out", "json", "--static"]].concat());
        assert_eq!(json_out(&out.stdout), json!({"minion1": true}), "{args:?}");
    }
    let out = master.halite(&["-C", "minion* and not I@role:web", "test.ping", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion2": true}));

    // Neither secret is in an event (the job's `new`, `publish` and `ret` events included),
    // nor in any daemon's log.
    let log = std::fs::read_to_string(master.event_log()).expect("event log");
    assert!(log.contains("salt/job/"), "no job events logged");
    assert!(log.contains("<pillar hidden>"), "the inline pillar is not shown as hidden");
    for secret in [SECRET, INLINE_SECRET] {
        assert!(!log.contains(secret), "{secret} in the event log");
        for daemon in [&master.daemon, &_m1.daemon, &_m2.daemon] {
            let leaked: Vec<String> =
                daemon.lines().into_iter().filter(|l| l.contains(secret)).collect();
            assert!(leaked.is_empty(), "{secret} in the log of {}: {leaked:?}", daemon.name());
        }
    }

    // The pillar functions (whose returns do carry the values asked for).
    let out = master.halite(&["*", "pillar.items", "--out", "json", "--static"]);
    assert_eq!(
        json_out(&out.stdout),
        json!({"minion1": {"common": "everyone", "role": "web", "secret": SECRET},
               "minion2": {"common": "everyone"}})
    );
    let out = master.halite(&["minion1", "pillar.item", "role", "nope", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion1": {"role": "web", "nope": ""}}));
    let out = master.halite(&["minion1", "pillar.ls", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion1": ["common", "role", "secret"]}));

    // An edit is seen after saltutil.refresh_pillar, and not before.
    pillar.write("web.sls", "role: web2\n");
    let out = master.halite(&["minion1", "pillar.get", "role", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion1": "web"}));
    let out = master.halite(&["minion1", "saltutil.refresh_pillar", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion1": true}));
    let out = master.halite(&["minion1", "pillar.get", "role", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion1": "web2"}));
    let out = master.halite(&["-I", "role:web2", "test.ping", "--out", "json"]);
    assert_eq!(json_out(&out.stdout), json!({"minion1": true}));
}

#[test]
fn a_minion_cannot_ask_for_another_minions_pillar() {
    let pillar = TempDir::new();
    let states = TempDir::new();
    pillar.write("top.sls", TOP);
    pillar.write("common.sls", "common: everyone\n");
    pillar.write("web.sls", format!("secret: {SECRET}\n"));
    let master = master(&pillar, &states, "");
    let _m1 = minion(&master, "minion1");

    // minion2 names minion1 in its request: the master compiles for the session's id.
    let mut raw = RawMinion::authenticate(master.addr, "minion2");
    let frame = raw
        .session
        .seal(&json!({"type": "pillar_request", "req": 5, "id": "minion1", "tgt": "minion1"}))
        .expect("seal");
    raw.conn.send_frame(&frame);
    let reply = loop {
        match raw.recv().expect("the master answers") {
            ToMinion::PillarReply { req, pillar } => break (req, pillar),
            _ => continue,
        }
    };
    assert_eq!(reply.0, 5);
    assert_eq!(Value::Object(reply.1), json!({"common": "everyone"}));
    master.daemon.wait_for_line(r"pillar for minion minion2: 1 keys, 0 errors", WAIT);
    // An ordinary request gets the same.
    raw.send(&ToMaster::PillarRequest { req: 6, max_frame: None });
    let again = loop {
        if let ToMinion::PillarReply { req, pillar } = raw.recv().expect("answer") {
            break (req, pillar);
        }
    };
    assert_eq!((again.0, Value::Object(again.1)), (6, json!({"common": "everyone"})));
    // A minion with tiny frames gets an error that fits them, not a frame that closes its
    // session every time it asks.
    raw.send(&ToMaster::PillarRequest { req: 7, max_frame: Some(30) });
    let small = loop {
        if let ToMinion::PillarReply { req, pillar } = raw.recv().expect("answer") {
            break (req, pillar);
        }
    };
    assert_eq!(small.0, 7);
    let error = small.1["_errors"][0].as_str().unwrap_or_default().to_string();
    assert!(error.ends_with("more than the 15 allowed"), "{error}");
}

#[test]
fn hostile_pillar_files_are_refused_and_fail_state_runs_like_salt() {
    let pillar = TempDir::new();
    let states = TempDir::new();
    let outside = TempDir::new();
    outside.write("stolen.sls", "stolen: yes\n");
    std::os::unix::fs::symlink(outside.join("stolen.sls"), pillar.join("link.sls")).unwrap();
    pillar.write(
        "top.sls",
        "base:\n  minion1:\n    - ../../etc/shadow\n    - /etc/passwd\n    - link\n  \
         minion2:\n    - big\n",
    );
    // Over half of max_frame_bytes: too big to send.
    pillar.write("big.sls", format!("blob: {}\n", "x".repeat(40_000)));
    states.write("noop.sls", "nothing:\n  test.nop\n");
    let master = master(&pillar, &states, "max_frame_bytes: 65536\n");
    let _m1 = minion(&master, "minion1");
    let _m2 = minion(&master, "minion2");

    let out = master.halite(&["minion1", "pillar.items", "--out", "json"]);
    let errors = &json_out(&out.stdout)["minion1"]["_errors"];
    let not_available = |sls: &str| {
        format!("Specified SLS '{sls}' in environment 'base' is not available on the salt master")
    };
    assert_eq!(
        errors,
        &json!([
            not_available("../../etc/shadow"),
            not_available("/etc/passwd"),
            not_available("link")
        ]),
        "{out:?}"
    );
    assert!(!out.stdout.contains("stolen") && !out.stdout.contains("root:"), "{out:?}");

    let out = master.halite(&["minion2", "pillar.items", "--out", "json"]);
    let pillar2 = &json_out(&out.stdout)["minion2"];
    let error = pillar2["_errors"][0].as_str().unwrap_or("");
    assert!(error.starts_with("Pillar data is ") && error.ends_with("more than the 32768 allowed"));
    assert!(pillar2.get("blob").is_none());

    // A state run refuses to run with a broken pillar, with Salt's text and retcode 5.
    let out = master.halite(&["minion1", "state.sls", "noop", "--out", "json"]);
    let ret = &json_out(&out.stdout)["minion1"];
    assert_eq!(ret[0], "Pillar failed to render with the following messages:", "{out:?}");
    assert_eq!(ret[1], json!(not_available("../../etc/shadow")));
    let out = master.halite(&["minion1", "state.sls", "noop", "--retcode-passthrough"]);
    assert_eq!(out.status, Some(5), "{out:?}");
    // The master's log names the refusals, not the files' contents.
    master.daemon.wait_for_line(r"salt://link\.sls: refused \(outside pillar_roots\)", WAIT);
    master
        .daemon
        .wait_for_line(r"pillar for minion1: SLS 'link' is not available in pillar_roots", WAIT);
}
