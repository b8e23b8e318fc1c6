//! The reactor through the real binaries: the seed bootstrap, glob and regex patterns, both
//! `local` argument forms, key rejection, render and YAML errors beside a working file,
//! requisites and signature checks, loop protection, the dry-run tools, hostile event data
//! (also inside author quotes), and Salt's Jinja and YAML semantics.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::serde_json::{self, json, Value};
use halite_tests::{wait_until, TempDir};

/// The seed article's Minion.sls (DESIGN §1), byte for byte.
/// (Kept once, in the reactor corpus, where it is also checked against Salt.)
const MINION_SLS: &str = include_str!("../reactor-corpus/files/seed-minion.sls");

/// The seed article's auto.sls, with its output file moved into the test's dir.
fn auto_sls(cpis: &str) -> String {
    format!(
        "run_state:
  local.state.sls:
    - tgt: {{{{data['id']}}}}
    - arg:
      - test
run_init:
  local.cmd.run:
    - tgt: {{{{data['id']}}}}
    - arg:
      - echo initsok >> {cpis}
"
    )
}

fn json_out(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_seed_bootstrap_accepts_minion2_and_runs_its_jobs_while_other1_stays_pending() {
    let work = TempDir::new();
    let cpis = work.join("cpis").display().to_string();
    let rules =
        "  - 'salt/auth':\n    - SLS/Minion.sls\n  - 'salt/minion/Min*/start':\n    - SLS/auto.sls";
    // The seed's test.sls, managing the example file from salt://example.
    let roots = TempDir::new();
    let example = work.join("example").display().to_string();
    roots.write("test.sls", format!("{example}:\n  file.managed:\n    - source: salt://example\n"));
    roots.write("example", "managed by the reactor's state\n");
    let roots_cfg = format!("file_roots:\n  base: [{}]", roots.path().display());
    let auto = auto_sls(&cpis);
    let files = [("Minion.sls", MINION_SLS), ("auto.sls", auto.as_str())];
    let (master, _sls) = Master::with_reactor(rules, &files, &roots_cfg);
    let minion2 = Minion::start(&master, "Minion2", "m2", "acceptance_wait_time: 300");
    let other1 = Minion::start(&master, "other1", "o1", "");
    minion2.wait_authenticated();
    other1.wait_pending();
    wait_until(WAIT, "initsok written by the reactor's cmd.run", || {
        std::fs::read_to_string(&cpis).is_ok_and(|t| t.contains("initsok"))
    });
    let key = master.wait_event("salt/key", |d| d["id"] == "Minion2");
    assert_eq!(key["act"], "accepted");
    // Salt's wheel events around the reactor's key.accept (user "Reactor").
    let wheel_new = master
        .wait_event_where("wheel new", |t, _| t.starts_with("salt/wheel/") && t.ends_with("/new"));
    assert_eq!(wheel_new["fun"], "wheel.key.accept");
    assert_eq!(
        wheel_new["fun_args"],
        json!(["Minion2", {"include_denied": false, "include_rejected": false}])
    );
    assert_eq!(wheel_new["user"], "Reactor");
    let wheel_ret = master
        .wait_event_where("wheel ret", |t, _| t.starts_with("salt/wheel/") && t.ends_with("/ret"));
    assert_eq!(
        (&wheel_ret["return"], &wheel_ret["success"]),
        (&json!({"minions": ["Minion2"]}), &json!(true))
    );
    let state = master.wait_event_where("the state.sls job", |t, d| {
        t.ends_with("/new") && d["fun"] == "state.sls"
    });
    assert_eq!((state["tgt"].clone(), state["arg"].clone()), (json!("Minion2"), json!(["test"])));
    let ret = master.wait_event_where("the state's return", |t, d| {
        t.contains("/ret/Minion2") && d["fun"] == "state.sls"
    });
    assert_eq!(ret["retcode"], 0, "{ret}");
    let key = format!("file_|-{example}_|-{example}_|-managed");
    assert_eq!(ret["return"][&key]["changes"]["diff"], "New file", "{ret}");
    assert_eq!(std::fs::read_to_string(&example).unwrap(), "managed by the reactor's state\n");
    assert_eq!(
        master.key(&["-L"]).stdout,
        "Accepted Keys:\nMinion2\nDenied Keys:\nUnaccepted Keys:\nother1\nRejected Keys:\n"
    );
    let stats = json_out(&master.run(&["reactor.stats", "--out", "json"]).stdout);
    assert!(stats["reactions"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(stats["errors"], 0, "{stats}");
}

#[test]
fn glob_and_regex_patterns_both_local_forms_and_key_rejection() {
    let work = TempDir::new();
    let legacy = work.join("legacy").display().to_string();
    let newer = work.join("newer").display().to_string();
    let files = [
        ("legacy.sls", format!("touch:\n  local.cmd.run:\n    - tgt: '*'\n    - arg:\n      - touch {legacy}\n")),
        ("newer.sls", format!("touch:\n  local.cmd.run:\n    - tgt: minion1\n    - args:\n      - cmd: touch {newer}\n")),
        ("reject.sls", "{% if data.get('act') == 'pend' %}\nreject_it:\n  wheel.key.reject:\n    - match: {{ data['id'] }}\n{% endif %}\n".to_string()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let rules = "  - 'myco/*/glob':\n    - SLS/legacy.sls\n  - 'myco/(re|gex)/[0-9]+':\n    - SLS/newer.sls\n  - 'salt/auth':\n    - SLS/reject.sls";
    let (master, _sls) =
        Master::with_reactor(rules, &files, "autosign_file: /etc/halite/autosign.conf");
    master.dir.write("master/etc/halite/autosign.conf", "minion1\n");
    master.daemon.wait_for_line(r"read \S*autosign.conf: 1 entries", WAIT);
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    assert!(master.run(&["event.send", "myco/x/glob"]).success());
    assert!(master.run(&["event.send", "myco/re/42"]).success());
    wait_until(WAIT, "both reactions ran", || {
        std::path::Path::new(&legacy).exists() && std::path::Path::new(&newer).exists()
    });
    // A new key pends, and the reactor rejects it: that minion never gets a session.
    let mut intruder = Minion::start(&master, "intruder", "i", "");
    assert_eq!(intruder.daemon.wait_exit(WAIT).unwrap().code(), Some(77));
    assert_eq!(master.wait_event("salt/key", |d| d["id"] == "intruder")["act"], "rejected");
}

#[test]
fn render_and_yaml_errors_are_events_and_the_other_file_still_runs() {
    let files = [
        (
            "render.sls",
            "broken:\n  runner.event.send:\n    - tag: {{ data['x'] | nosuchfilter }}\n",
        ),
        ("yaml.sls", "bad: [unclosed\n  runner.event.send: x\n"),
        ("good.sls", "ok:\n  runner.event.send:\n    - args:\n      - tag: myco/good/ran\n"),
        ("client.sls", "fine:\n  runner.jobs.list_jobs: []\nodd:\n  nosuch.module.fun: []\n"),
        ("runtime.sls", "# a comment\n\nmissing:\n  runner.no.such: []\n"),
    ];
    let rules = "  - 'myco/go':\n    - SLS/render.sls\n    - SLS/yaml.sls\n    - SLS/good.sls\n    - SLS/client.sls\n    - SLS/runtime.sls";
    let (master, sls) = Master::with_reactor(rules, &files, "");
    assert!(master.run(&["event.send", "myco/go", "{x: 1}"]).success());
    master.wait_event("myco/good/ran", |_| true);
    let render = master.wait_event("salt/reactor/error", |d| d["kind"] == "render");
    assert_eq!(render["sls"], format!("{}/render.sls", sls.path().display()));
    assert_eq!(render["tag"], "myco/go");
    assert_eq!(render["line"], 3);
    let yaml = master.wait_event("salt/reactor/error", |d| d["kind"] == "yaml");
    assert!(yaml["line"].as_u64().is_some(), "{yaml}");
    assert!(yaml["message"].as_str().is_some_and(|m| !m.is_empty()));
    // A bad reaction names the line of its ID, whether found compiling or running it.
    let client = master
        .wait_event("salt/reactor/error", |d| d["sls"].as_str().unwrap().ends_with("client.sls"));
    assert_eq!((&client["kind"], &client["line"]), (&json!("reaction"), &json!(3)), "{client}");
    let runtime = master
        .wait_event("salt/reactor/error", |d| d["sls"].as_str().unwrap().ends_with("runtime.sls"));
    assert_eq!((&runtime["kind"], &runtime["line"]), (&json!("reaction"), &json!(3)), "{runtime}");
    assert_eq!(runtime["id"], "missing", "{runtime}");
    master.daemon.wait_for_line("reactor: .*render.sls for tag 'myco/go' failed", WAIT);
}

/// Requisites order the reactions (alphabetically `announce` would run first), and a call
/// that does not fit its function's signature is refused on its own.
const DEPLOY_SLS: &str = "announce:
  runner.event.send:
    - tag: myco/announce
    - watch:
      - runner: zz_first
zz_first:
  runner.event.send:
    - tag: myco/first
bad_kw:
  runner.event.send:
    - tag: myco/never
    - bogus: 1
orch:
  runner.cache.clear_grains:
    - args:
      - tgt: web1
";

#[test]
fn requisites_order_reactions_and_a_call_that_does_not_fit_is_refused_alone() {
    let (master, sls) = Master::with_reactor(
        "  - 'myco/deploy':\n    - SLS/deploy.sls",
        &[("deploy.sls", DEPLOY_SLS)],
        "",
    );
    let file = format!("{}/deploy.sls", sls.path().display());
    // The dry run shows the same order, warnings and refusals.
    let dry = json_out(&master.run(&["reactor.test", "myco/deploy", "--out", "json"]).stdout);
    let watch = "'watch' only orders the reactions: the reactor runs every reaction whatever happened to the others, as Salt does";
    assert_eq!(
        dry.as_array().unwrap()[..2],
        [
            json!({"id": "zz_first", "client": "runner", "fun": "event.send", "tgt": null, "tgt_type": null,
                   "arg": ["myco/first"], "kwarg": {"data": null}}),
            json!({"id": "announce", "client": "runner", "fun": "event.send", "tgt": null, "tgt_type": null,
                   "arg": ["myco/announce"], "kwarg": {"data": null}, "warnings": [watch]}),
        ],
        "{dry}"
    );
    let refused: Vec<(&str, u64)> = dry.as_array().unwrap()[2..]
        .iter()
        .map(|e| (e["error"]["id"].as_str().unwrap(), e["error"]["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(refused, [("bad_kw", 9), ("orch", 13)], "{dry}");

    assert!(master.run(&["event.send", "myco/deploy"]).success());
    master.wait_event("myco/announce", |_| true);
    let bad = master.wait_event("salt/reactor/error", |d| d["id"] == "bad_kw");
    assert_eq!(
        bad,
        json!({"sls": file, "tag": "myco/deploy", "kind": "reaction", "line": 9, "id": "bad_kw",
               "message": "ID 'bad_kw': 'bogus' is an invalid keyword argument for 'runner.event.send'; signature runner.event.send(tag, data=None)",
               "_stamp": bad["_stamp"]})
    );
    let orch = master.wait_event("salt/reactor/error", |d| d["id"] == "orch");
    assert!(
        orch["message"]
            .as_str()
            .unwrap()
            .contains("runner function 'cache.clear_grains' is not available"),
        "{orch}"
    );
    // Every reaction of the event ran in one turn: `myco/first` before `myco/announce`, and the
    // refused call never ran.
    let tags: Vec<String> = master
        .events()
        .into_iter()
        .map(|(tag, _)| tag)
        .filter(|t| t.starts_with("myco/"))
        .collect();
    assert_eq!(tags, ["myco/deploy", "myco/first", "myco/announce"]);
    master.daemon.wait_for_line("reactor: announce .*'watch' only orders the reactions", WAIT);
}

#[test]
fn a_reaction_loop_stops_at_the_depth_limit_and_a_short_chain_runs() {
    let files = [
        ("loop.sls", "again:\n  local.test.ping:\n    - tgt: minion1\n"),
        ("step1.sls", "next:\n  runner.event.send:\n    - args:\n      - tag: myco/step2\n"),
        ("step2.sls", "last:\n  runner.event.send:\n    - args:\n      - tag: myco/step3\n"),
    ];
    let rules = "  - 'salt/job/*/ret/*':\n    - SLS/loop.sls\n  - 'myco/step1':\n    - SLS/step1.sls\n  - 'myco/step2':\n    - SLS/step2.sls";
    let (master, _sls) =
        Master::with_reactor(rules, &files, "auto_accept: True\nreactor_max_depth: 4");
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    assert!(master.halite(&["minion1", "test.ping"]).success());
    let refused = master.wait_event("salt/reactor/refused", |d| d["reactor_max_depth"] == 4);
    let chain = refused["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 5, "{refused}");
    assert!(chain.iter().all(|t| t.as_str().unwrap().contains("/ret/minion1")), "{refused}");
    // Bounded: a handful of reaction jobs, not a storm; the master answers at once.
    let pings = master
        .events()
        .iter()
        .filter(|(t, d)| t.ends_with("/new") && d["fun"] == "test.ping")
        .count();
    assert!(pings <= 6, "{pings} pings");
    assert_eq!(
        master.halite(&["minion1", "test.echo", "still here"]).stdout,
        "minion1:\n    still here\n"
    );
    // A legitimate two-step chain, which Salt's user=Reactor guard would block.
    assert!(master.run(&["event.send", "myco/step1"]).success());
    master.wait_event("myco/step3", |_| true);
}

/// Wheel reactions that undo each other's key move: the chain goes on through the `salt/key`
/// events a reaction's key moves fire, so the ping-pong stops at the depth limit.
#[test]
fn a_key_ping_pong_between_wheel_reactions_stops_at_the_depth_limit() {
    let flip = "{% if data['act'] == 'accepted' %}\nflip:\n  wheel.key.reject:\n    - match: {{ data['id'] }}\n    - include_accepted: True\n{% elif data['act'] == 'rejected' %}\nflop:\n  wheel.key.accept:\n    - match: {{ data['id'] }}\n    - include_rejected: True\n{% endif %}\n";
    let rules = "  - 'salt/key':\n    - SLS/flip.sls";
    let (master, _sls) = Master::with_reactor(rules, &[("flip.sls", flip)], "reactor_max_depth: 3");
    let minion = Minion::start(&master, "pong", "p", "");
    minion.wait_pending();
    assert!(master.key(&["-a", "pong", "-y"]).success());
    let refused = master.wait_event("salt/reactor/refused", |d| d["reactor_max_depth"] == 3);
    assert_eq!(
        refused["chain"],
        json!(["salt/key", "salt/key", "salt/key", "salt/key"]),
        "{refused}"
    );
    let moves = master.events().iter().filter(|(t, _)| t == "salt/key").count();
    assert_eq!(moves, 4, "the CLI's accept and three reaction moves");
}

#[test]
fn dry_run_tools_show_the_seed_reactions_without_running_anything() {
    let work = TempDir::new();
    let cpis = work.join("cpis").display().to_string();
    let rules =
        "  - 'salt/auth':\n    - SLS/Minion.sls\n  - 'salt/minion/Min*/start':\n    - SLS/auto.sls";
    let (master, sls) = Master::with_reactor(
        rules,
        &[("Minion.sls", MINION_SLS), ("auto.sls", &auto_sls(&cpis))],
        "",
    );
    let dir = sls.path().display().to_string();
    let listed = json_out(&master.run(&["reactor.list", "--out", "json"]).stdout);
    assert_eq!(
        listed,
        json!([{"salt/auth": [format!("{dir}/Minion.sls")]}, {"salt/minion/Min*/start": [format!("{dir}/auto.sls")]}])
    );
    let pend = master.run(&[
        "reactor.test",
        "salt/auth",
        r#"data={"act": "pend", "id": "Minion2"}"#,
        "--out",
        "json",
    ]);
    assert_eq!(
        json_out(&pend.stdout),
        json!([{"id": "key_accept", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null,
                "arg": ["Minion2"], "kwarg": {"include_rejected": false, "include_denied": false}}])
    );
    let other = master.run(&[
        "reactor.test",
        "salt/auth",
        r#"data={"act": "pend", "id": "other1"}"#,
        "--out",
        "json",
    ]);
    assert_eq!(json_out(&other.stdout), json!([]));
    let start = json_out(
        &master
            .run(&[
                "reactor.test",
                "salt/minion/Minion2/start",
                r#"data={"id": "Minion2"}"#,
                "--out",
                "json",
            ])
            .stdout,
    );
    let funs: Vec<&str> =
        start.as_array().unwrap().iter().map(|r| r["fun"].as_str().unwrap()).collect();
    assert_eq!(funs, ["cmd.run", "state.sls"]);
    assert_eq!(start[1]["arg"], json!(["test"]));
    assert_eq!(start[0]["tgt"], "Minion2");

    // Replay a recorded log: only the pend event of a Min* id and the start event react.
    let log = work.write(
        "events.log",
        [
            r#"{"tag":"salt/auth","data":{"result":true,"act":"pend","id":"Minion2","_stamp":"2026-11-25T19:21:40.000000+00:00"}}"#,
            r#"{"tag":"salt/auth","data":{"result":true,"act":"pend","id":"other1","_stamp":"2026-11-25T19:21:41.000000+00:00"}}"#,
            r#"{"tag":"salt/minion/Minion2/start","data":{"id":"Minion2","_stamp":"2026-11-25T19:21:42.000000+00:00"}}"#,
            r#"{"tag":"myco/unrelated","data":{"_stamp":"2026-11-25T19:21:43.000000+00:00"}}"#,
        ]
        .join("\n"),
    );
    let replay = json_out(
        &master.run(&["reactor.replay", &log.display().to_string(), "--out", "json"]).stdout,
    );
    let replayed: Vec<(String, usize)> = replay
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["tag"].as_str().unwrap().to_string(), e["reactions"].as_array().unwrap().len()))
        .collect();
    assert_eq!(
        replayed,
        [("salt/auth".into(), 1), ("salt/auth".into(), 0), ("salt/minion/Minion2/start".into(), 2)]
    );
    let since = master.run(&[
        "reactor.replay",
        &log.display().to_string(),
        "since=2026-11-25T19:21:41",
        "--out",
        "json",
    ]);
    assert_eq!(json_out(&since.stdout).as_array().unwrap().len(), 2);
    // A space for the `T`, and a log whose last line a crash tore: the same two.
    let mut torn = std::fs::read_to_string(&log).unwrap();
    torn.push_str("\n{\"tag\":\"salt/au");
    let torn_log = work.write("torn.log", torn);
    let args = [&torn_log.display().to_string(), "since=2026-11-25 19:21:41", "--out", "json"];
    let since = master.run(&[&["reactor.replay"][..], &args[..]].concat());
    assert_eq!(json_out(&since.stdout).as_array().unwrap().len(), 2, "{since:?}");
    // Nothing ran: no key moved, no job, no file.
    assert!(!master.events().iter().any(|(t, _)| t == "salt/key" || t.starts_with("salt/job/")));
    assert!(!std::path::Path::new(&cpis).exists());
    // And the tools need no master at all.
    let dir = master.dir.join("master-conf");
    let stopped = master.stop();
    let out = halite_tests::run(
        std::process::Command::new(halite_tests::bin("halite-run"))
            .arg("-c")
            .arg(&dir)
            .arg("reactor.list"),
    );
    assert!(out.success(), "{out:?}");
    drop(stopped);
}

#[test]
fn hostile_event_data_cannot_inject_reactions_or_template_code() {
    let pending = "{% if data.get('act') == 'pend' %}\nnever:\n  runner.event.send:\n    - args:\n      - tag: myco/unexpected\n{% endif %}\n";
    let echo = "echo:\n  runner.event.send:\n    - args:\n      - tag: myco/echo\n      - data:\n          v: {{ data['v'] }}\n";
    let rules = "  - 'myco/hostile':\n    - SLS/echo.sls\n  - 'salt/auth':\n    - SLS/pending.sls";
    let (master, _sls) =
        Master::with_reactor(rules, &[("echo.sls", echo), ("pending.sls", pending)], "");
    let hostile = [
        "x\nkey_accept:\n  wheel.key.accept:\n    - match: '*'",
        "a: b",
        "{{ 7*7 }}",
        "{% for x in range(3) %}loop{% endfor %}",
        "- [list, injection]",
        "#comment",
    ];
    for value in hostile {
        let data = serde_json::to_string(&json!({"v": value})).unwrap();
        let out =
            master.run(&["reactor.test", "myco/hostile", &format!("data={data}"), "--out", "json"]);
        let reactions = json_out(&out.stdout);
        assert_eq!(reactions.as_array().unwrap().len(), 1, "{value:?}: {reactions}");
        assert_eq!(reactions[0]["kwarg"]["data"]["v"], value, "{value:?}");
    }
    // For real: a pending minion stays pending whatever an event carries.
    let minion = Minion::start(&master, "victim", "v", "");
    minion.wait_pending();
    let data = serde_json::to_string(&json!({"v": hostile[0]})).unwrap();
    assert!(master.run(&["event.send", "myco/hostile", &data]).success());
    let echoed = master.wait_event("myco/echo", |_| true);
    assert_eq!(echoed["v"], hostile[0]);
    assert_eq!(master.key(&["-l", "acc"]).stdout, "Accepted Keys:\n");
}

#[test]
fn sighup_reloads_the_reactor_rules_and_a_broken_config_keeps_the_old_ones() {
    let files = [
        ("old.sls", "mark:\n  runner.event.send:\n    - args:\n      - tag: myco/old/ran\n"),
        ("new.sls", "mark:\n  runner.event.send:\n    - args:\n      - tag: myco/new/ran\n"),
    ];
    let (master, sls) = Master::with_reactor("  - 'myco/go':\n    - SLS/old.sls", &files, "");
    let dir = sls.path().display().to_string();
    master.dir.write(
        "master-conf/master.d/reactor.conf",
        format!("reactor:\n  - 'myco/go':\n    - {dir}/new.sls\n"),
    );
    let seen = master.daemon.line_count();
    master.daemon.signal(1);
    master.daemon.wait_for_line_after(seen, "reactor reloaded: 1 rules", WAIT);
    assert!(master.run(&["event.send", "myco/go"]).success());
    master.wait_event("myco/new/ran", |_| true);

    master.dir.write("master-conf/master.d/reactor.conf", "reactor: [\n");
    let seen = master.daemon.line_count();
    master.daemon.signal(1);
    master.daemon.wait_for_line_after(seen, "reactor not reloaded", WAIT);
    // The CLIs need a readable config too; put back one that would change the rules if read.
    master.dir.write(
        "master-conf/master.d/reactor.conf",
        format!("reactor:\n  - 'myco/go':\n    - {dir}/old.sls\n"),
    );
    let before = master.events().iter().filter(|(t, _)| t == "myco/new/ran").count();
    assert!(master.run(&["event.send", "myco/go"]).success());
    wait_until(WAIT, "the kept rule still reacts", || {
        master.events().iter().filter(|(t, _)| t == "myco/new/ran").count() > before
    });
}

#[test]
fn salt_paths_resolve_inside_file_roots_only() {
    let roots = TempDir::new();
    roots.write(
        "reactor/mark.sls",
        "mark:\n  runner.event.send:\n    - args:\n      - tag: myco/from_roots\n",
    );
    let outside = TempDir::new();
    outside
        .write("evil.sls", "evil:\n  runner.event.send:\n    - args:\n      - tag: myco/escaped\n");
    let rules = format!(
        "reactor:\n  - 'myco/go':\n    - salt://reactor/mark.sls\n    - salt://../{}/evil.sls\nfile_roots:\n  base: [{}]\n",
        outside.path().file_name().unwrap().to_str().unwrap(),
        roots.path().display()
    );
    let master = Master::start(&rules);
    assert!(master.run(&["event.send", "myco/go"]).success());
    master.wait_event("myco/from_roots", |_| true);
    let refused = master.wait_event("salt/reactor/error", |d| d["kind"] == "missing");
    assert!(refused["sls"].as_str().unwrap().contains("evil.sls"), "{refused}");
    assert!(!master.events().iter().any(|(t, _)| t == "myco/escaped"));
}

#[test]
fn events_fired_by_a_reactions_job_carry_its_chain_and_stop_at_the_limit() {
    let pong =
        "again:\n  local.event.send:\n    - tgt: minion1\n    - arg:\n      - myco/pingpong\n";
    let (master, _sls) = Master::with_reactor(
        "  - 'myco/pingpong':\n    - SLS/pong.sls",
        &[("pong.sls", pong)],
        "auto_accept: True\nreactor_max_depth: 3",
    );
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    assert!(master.run(&["event.send", "myco/pingpong"]).success());
    let refused = master.wait_event("salt/reactor/refused", |d| d["tag"] == "myco/pingpong");
    assert_eq!(refused["depth"], 3, "{refused}");
    let sends = master.events().iter().filter(|(t, _)| t == "myco/pingpong").count();
    assert_eq!(sends, 4, "the script's event, then one per reaction below the limit");
}

#[test]
fn the_rate_limit_refuses_counts_per_file_and_reactor_reload_lifts_it() {
    let files =
        [("rate.sls", "mark:\n  runner.event.send:\n    - args:\n      - tag: myco/rate/ran\n")];
    let (master, sls) =
        Master::with_reactor("  - 'rate/*':\n    - SLS/rate.sls", &files, "reactor_rate_limit: 2");
    let path = sls.join("rate.sls").display().to_string();
    let ran = || master.events().iter().filter(|(t, _)| t == "myco/rate/ran").count();
    for i in 0..6 {
        assert!(master.run(&["event.send", &format!("rate/{i}")]).success());
    }
    let refused = master.wait_event("salt/reactor/refused", |_| true);
    assert_eq!((&refused["reactor_rate_limit"], &refused["sls"]), (&json!(2), &json!([path])));
    wait_until(WAIT, "six events through the reactor", || {
        let stats = json_out(&master.run(&["reactor.stats", "--out", "json"]).stdout);
        stats["sls"][&path]["matched"] == 6
    });
    let stats = json_out(&master.run(&["reactor.stats", "--out", "json"]).stdout);
    let per = &stats["sls"][&path];
    assert!(per["refused"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(per["rendered"].as_u64().unwrap() + per["refused"].as_u64().unwrap(), 6, "{stats}");
    assert_eq!(stats["refused"], per["refused"], "{stats}");
    wait_until(WAIT, "every admitted reaction ran", || ran() as u64 == per["reactions"]);

    // The limit lifted in the config and reloaded through halite-run: nothing is refused.
    master.dir.write("master-conf/master.d/rate.conf", "reactor_rate_limit: 0\n");
    let reload = master.run(&["reactor.reload", "--out", "json"]);
    assert!(reload.success(), "{reload:?}");
    assert_eq!(json_out(&reload.stdout), json!({"rules": 1, "problems": []}));
    let before = ran();
    for i in 0..6 {
        assert!(master.run(&["event.send", &format!("rate/again/{i}")]).success());
    }
    wait_until(WAIT, "all six reacted", || ran() == before + 6);
}

/// CVE-2025-22239's shape: a minion forging `salt/auth` to get a key accepted by a reactor
/// rule. The forged event is refused at the master and never reaches the rule.
#[test]
fn a_forged_salt_auth_from_a_minion_never_reaches_the_reactor() {
    // A minion's event would arrive wrapped: its payload under `data`.
    let accept = "{% if data.get('data') is mapping and data['data'].get('forged') %}\naccept:\n  wheel.key.accept:\n    - match: {{ data['data']['id'] }}\n{% endif %}\n";
    let (master, _sls) = Master::with_reactor(
        "  - 'salt/auth':\n    - SLS/accept.sls",
        &[("accept.sls", accept)],
        "",
    );
    let insider = Minion::start(&master, "insider", "i", "");
    insider.wait_pending();
    assert!(master.key(&["-a", "insider", "-y"]).success());
    insider.wait_authenticated();
    let victim = Minion::start(&master, "victim", "v", "");
    victim.wait_pending();
    let forged = "data={act: pend, id: victim, result: true, forged: true}";
    let out = insider.call(&["event.send", "salt/auth", forged]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let out = master.halite(&[
        "insider",
        "event.send",
        "salt/auth",
        "{act: pend, id: victim, forged: true}",
    ]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let stats = json_out(&master.run(&["reactor.stats", "--out", "json"]).stdout);
    assert!(
        !master.events().iter().any(|(t, d)| t == "salt/auth" && d["cmd"] == "_minion_event"),
        "no forged salt/auth on the bus"
    );
    assert_eq!(stats["reactions"], 0, "{stats}");
    assert_eq!(master.key(&["-l", "acc"]).stdout, "Accepted Keys:\ninsider\n");
}

/// Issue #11: Salt files quote the placeholder. A minion's value that would close those quotes
/// (`'}, {match: '*'}] #`) stays the one `match` value: the pending victim is not accepted.
#[test]
fn a_value_inside_author_quotes_cannot_close_them_and_accept_every_key() {
    let accept = "accept:\n  wheel.key.accept: [{match: '{{ data['data']['host'] }}'}]\n";
    let (master, _sls) =
        Master::with_reactor("  - 'myco/x':\n    - SLS/accept.sls", &[("accept.sls", accept)], "");
    let host = "web1'}, {match: '*'}] #";
    let dry = master.run(&[
        "reactor.test",
        "myco/x",
        &format!("data={}", json!({"data": {"host": host}})),
        "--out",
        "json",
    ]);
    assert_eq!(
        json_out(&dry.stdout),
        json!([{"id": "accept", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null,
                "arg": [host], "kwarg": {"include_rejected": false, "include_denied": false}}])
    );
    let attacker = Minion::start(&master, "attacker", "a", "");
    attacker.wait_pending();
    assert!(master.key(&["-a", "attacker", "-y"]).success());
    attacker.wait_authenticated();
    let victim = Minion::start(&master, "victim", "v", "");
    victim.wait_pending();
    let out = attacker.call(&["event.send", "myco/x", &format!("data={}", json!({"host": host}))]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let new = master.wait_event_where("wheel new", |t, d| {
        t.starts_with("salt/wheel/") && t.ends_with("/new") && d["fun"] == "wheel.key.accept"
    });
    assert_eq!(new["fun_args"][0], host);
    let ret = master
        .wait_event_where("wheel ret", |t, _| t.starts_with("salt/wheel/") && t.ends_with("/ret"));
    assert_eq!(ret["success"], true, "{ret}");
    assert_eq!(master.key(&["-l", "acc"]).stdout, "Accepted Keys:\nattacker\n");
}

#[test]
fn salt_jinja_and_yaml_semantics_hold_end_to_end() {
    // A file written for Salt: `do` on lists and dicts, YAML 1.1 scalars, a final block.
    let perms = "{% set webs = [] %}
{% for m in data['minions'] %}{% if m.startswith('web') %}{% do webs.append(m) %}{% endif %}{% endfor %}
{% set opts = {'owner': data.get('owner', 'root')} %}
{% do opts.update(group='www') %}
fix_perms:
  runner.event.send:
    - args:
      - tag: myco/perms/done
      - data:
          webs: {{ webs }}
          opts: {{ opts|json }}
          recurse: yes
          mode: 0664
          motd: |
            managed
";
    // Salt's StrictUndefined: a missing key is an error, not an empty target.
    let strict =
        "oops:\n  runner.event.send:\n    - args:\n      - tag: myco/{{ data['nosuch'] }}\n";
    let rules = "  - 'myco/perms':\n    - SLS/perms.sls\n    - SLS/strict.sls";
    let (master, _sls) =
        Master::with_reactor(rules, &[("perms.sls", perms), ("strict.sls", strict)], "");
    let data = r#"{"minions": ["web1", "db1", "web2"]}"#;
    let want = json!({"webs": ["web1", "web2"], "opts": {"owner": "root", "group": "www"},
                      "recurse": true, "mode": 664, "motd": "managed\n"});
    let out = master.run(&["reactor.test", "myco/perms", &format!("data={data}"), "--out", "json"]);
    let reactions = json_out(&out.stdout);
    assert_eq!(reactions.as_array().map(Vec::len), Some(2), "{reactions}");
    assert_eq!(reactions[0]["kwarg"]["data"], want, "{reactions}");
    assert_eq!(
        (&reactions[1]["error"]["kind"], &reactions[1]["error"]["line"]),
        (&json!("render"), &json!(4))
    );
    assert!(master.run(&["event.send", "myco/perms", data]).success());
    let mut done = master.wait_event("myco/perms/done", |_| true);
    done.as_object_mut().unwrap().remove("_stamp");
    assert_eq!(done, want);
    let error = master.wait_event("salt/reactor/error", |d| d["kind"] == "render");
    assert!(error["sls"].as_str().unwrap().ends_with("strict.sls"), "{error}");
    assert_eq!(error["line"], 4, "{error}");
    assert!(error["message"].as_str().unwrap().contains("undefined value"), "{error}");
}
