//! Beacons through the real binaries: an inotify change reaching the master and its reactor
//! (Salt's revert example), the log beacon across rotation, a minion that tries to fire
//! another minion's beacon events, a bad beacon config, and `beacons.*` at runtime.

use halite_common::proto::{BeaconEvent, ToMaster, ToMinion};
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::serde_json::{self, json, Value};
use halite_tests::{wait_until, TempDir};

fn started(master: &Master, extra: &str) -> Minion {
    let minion = Minion::start(master, "minion1", "a", extra);
    minion.wait_authenticated();
    wait_until(WAIT, "minion1 live", || master.presence() == ["minion1"]);
    minion
}

#[test]
fn a_watched_file_change_fires_inotify_and_the_reactor_reverts_it() {
    let watched = TempDir::new();
    let file = watched.write("important_file", "original\n");
    let backup = watched.write("important_file.orig", "original\n");
    let (file, backup) = (file.display().to_string(), backup.display().to_string());
    // Salt's documented revert example, as cmd.run: restore the file unless it is intact (the
    // restore is itself a change, which then finds the file intact: no loop).
    let sls = format!(
        "revert-file:\n  local.cmd.run:\n    - tgt: {{{{ data['id'] }}}}\n    - arg:\n      \
         - cmp -s {backup} {file} || cp {backup} {file}\n"
    );
    let rules = format!("  - 'salt/beacon/*/inotify/{file}':\n    - SLS/revert.sls\n");
    let (master, _sls) =
        Master::with_reactor(&rules, &[("revert.sls", sls.as_str())], "auto_accept: True");
    let config = format!(
        "beacons:\n  inotify:\n    - files:\n        {file}:\n          mask:\n            - modify\n    \
         - disable_during_state_run: True\n"
    );
    let minion = started(&master, &config);
    minion.daemon.wait_for_line("beacon inotify on", WAIT);

    std::fs::write(&file, "tampered\n").unwrap();
    let tag = format!("salt/beacon/minion1/inotify/{file}");
    let event = master.wait_event(&tag, |_| true);
    assert_eq!(event["path"], file.as_str());
    assert_eq!(event["change"], "IN_MODIFY");
    assert_eq!(event["id"], "minion1");
    assert!(event["_stamp"].is_string());
    let ret = master.wait_event_where("the reaction's cmd.run return", |t, d| {
        t.starts_with("salt/job/") && t.ends_with("/ret/minion1") && d["fun"] == "cmd.run"
    });
    assert_eq!(ret["retcode"], 0, "{ret}");
    // Writing the file may have fired twice (truncate, then write): the last reaction wins.
    wait_until(WAIT, "the file reverted", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t == "original\n")
    });
}

/// Files created at once in a watched directory.
const FLOOD: usize = 5_000;

#[test]
fn an_inotify_flood_is_capped_counted_and_logged() {
    let watched = TempDir::new();
    let dir = watched.path().display().to_string();
    let master = Master::start("auto_accept: True");
    let config =
        format!("beacons:\n  inotify:\n    - files:\n        {dir}:\n          mask: [create]\n");
    let minion = started(&master, &config);
    minion.daemon.wait_for_line("beacon inotify on", WAIT);
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", minion.daemon.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().to_string();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    let before = rss();
    for i in 0..FLOOD {
        std::fs::File::create(watched.join(format!("f{i}"))).unwrap();
    }
    // Either the minion kept up and every change reached the master, or what it could not
    // hold was dropped and logged; never an unbounded queue.
    let log = master.event_log();
    let fired = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("{\"tag\":\"salt/beacon/").count()
    };
    wait_until(WAIT * 3, "every change delivered or the drops logged", || {
        fired() == FLOOD || minion.daemon.lines().iter().any(|l| l.contains("beacon events ("))
    });
    let after = rss();
    assert!(after < before + 4096, "RSS grew from {before} kB to {after} kB");
    assert_eq!(master.halite(&["minion1", "test.ping"]).status, Some(0));
}

#[test]
fn a_log_beacon_fires_on_matching_lines_and_again_after_rotation() {
    let logs = TempDir::new();
    let log = logs.write("app.log", "ERROR before the minion started\n");
    let master = Master::start("auto_accept: True");
    let config = format!(
        "beacons:\n  log:\n    - file: {}\n    - tags:\n        error:\n          regex: 'ERROR'\n",
        log.display()
    );
    let minion = started(&master, &config);
    minion.daemon.wait_for_line("log beacon: watching .* from byte 32", WAIT);

    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append("INFO all is well\nERROR disk on fire\n");
    let event =
        master.wait_event("salt/beacon/minion1/log/error", |d| d["raw"] == "ERROR disk on fire");
    assert_eq!(event["match"], "yes");
    assert_eq!(event["error"], "");
    assert_eq!(event["id"], "minion1");

    // logrotate's default: the file moves away, a new one starts.
    std::fs::rename(&log, logs.join("app.log.1")).unwrap();
    append("ERROR after rotation\n");
    master.wait_event("salt/beacon/minion1/log/error", |d| d["raw"] == "ERROR after rotation");
    let raws: Vec<Value> = master
        .events()
        .into_iter()
        .filter(|(t, _)| t == "salt/beacon/minion1/log/error")
        .map(|(_, d)| d["raw"].clone())
        .collect();
    assert_eq!(raws, [json!("ERROR disk on fire"), json!("ERROR after rotation")]);
}

#[test]
fn a_minion_cannot_fire_another_minions_beacon_events() {
    let master = Master::start("auto_accept: True");
    let minion = started(&master, "");
    let out = minion.call(&["event.send", "salt/beacon/web2/inotify//etc/important_file"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("names another minion's beacon"), "{}", out.stderr);
    master.daemon.wait_for_line(
        "refused event from minion minion1: tag 'salt/beacon/web2/inotify//etc/important_file' \
         names another minion's beacon",
        WAIT,
    );

    // A hand-made minion sends Salt's beacon batch: another's tag is refused, its own goes
    // through with the authenticated id whatever the payload claims.
    let mut raw = RawMinion::authenticate(master.addr, "spoofer");
    let data = |v: Value| v.as_object().cloned().unwrap();
    raw.send(&ToMaster::Beacons {
        events: vec![
            BeaconEvent {
                tag: "salt/beacon/minion1/inotify//etc/shadow".into(),
                data: data(json!({"path": "/etc/shadow", "change": "IN_MODIFY"})),
            },
            BeaconEvent {
                tag: "salt/beacon/spoofer/inotify//tmp/x".into(),
                data: data(json!({"path": "/tmp/x", "id": "minion1"})),
            },
        ],
    });
    let refused = loop {
        match raw.recv() {
            Some(ToMinion::EventRefused { tag, reason }) => break (tag, reason),
            Some(_) => continue,
            None => panic!("the master closed the connection"),
        }
    };
    assert_eq!(refused.0, "salt/beacon/minion1/inotify//etc/shadow");
    assert!(refused.1.contains("names another minion's beacon"), "{}", refused.1);
    let own = master.wait_event("salt/beacon/spoofer/inotify//tmp/x", |_| true);
    assert_eq!(own["id"], "spoofer");
    assert!(!master.events().iter().any(|(t, _)| t.contains("/etc/shadow")));
}

#[test]
fn a_bad_beacon_config_leaves_the_minion_running_and_says_why() {
    let master = Master::start("auto_accept: True");
    let config = "beacons:\n  nosuch:\n    - x: 1\n  diskusage:\n    /: 90%\n  \
                  load:\n    - averages:\n        1m: [1]\n  memusage:\n    - percent: 0%\n";
    let minion = started(&master, config);
    let lines = minion.daemon.lines();
    for want in [
        "beacon nosuch is off: no beacon module named 'nosuch'",
        "beacon diskusage is off: Configuration for diskusage beacon must be a list.",
        "beacon load is off: Configuration for load beacon: 1m, 5m and 15m items must be a list",
        "beacon memusage on",
    ] {
        assert!(lines.iter().any(|l| l.contains(want)), "no line {want:?} in {lines:#?}");
    }
    // The good beacon fires (0%: always) and the minion answers jobs.
    let event = master.wait_event("salt/beacon/minion1/memusage/", |_| true);
    assert!(event["memusage"].as_f64().is_some_and(|p| p > 0.0), "{event}");
    assert_eq!(master.halite(&["minion1", "test.ping"]).status, Some(0));
}

#[test]
fn beacons_list_and_disable_then_enable_at_runtime() {
    let watched = TempDir::new();
    let dir = watched.path().display().to_string();
    let master = Master::start("auto_accept: True");
    let config = format!(
        "beacons:\n  inotify:\n    - files:\n        {dir}:\n          mask: [close_write]\n"
    );
    let minion = started(&master, &config);
    minion.daemon.wait_for_line("beacon inotify on", WAIT);

    let out = master.halite(&["minion1", "beacons.list", "--out", "json"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let want = format!(
        "beacons:\n  inotify:\n  - files:\n      {dir}:\n        mask:\n        - close_write\n"
    );
    assert_eq!(listed["minion1"], want.as_str());

    let event_for = |name: &str| {
        let path = format!("{dir}/{name}");
        move |d: &Value| d["path"] == path.as_str()
    };
    let tag = format!("salt/beacon/minion1/inotify/{dir}");
    let run = |args: &[&str]| {
        let out = master.halite(&[&["minion1"], args].concat());
        assert_eq!(out.status, Some(0), "{args:?}: {out:?}");
        out.stdout
    };
    for (off, on) in [
        (vec!["beacons.disable_beacon", "inotify"], vec!["beacons.enable_beacon", "inotify"]),
        (vec!["beacons.disable"], vec!["beacons.enable"]),
    ] {
        let quiet = format!("quiet-{}", off.len());
        let loud = format!("loud-{}", off.len());
        assert!(run(&off).contains("Disabled beacon"), "{off:?}");
        watched.write(&quiet, "x");
        assert!(run(&on).contains("Enabled beacon"), "{on:?}");
        watched.write(&loud, "x");
        master.wait_event(&tag, event_for(&loud));
        assert!(
            !master.events().iter().any(|(t, d)| t == &tag && event_for(&quiet)(d)),
            "{quiet} was written while the beacon was off"
        );
    }
    let out = master.halite(&["minion1", "beacons.enable_beacon", "nosuch", "--out", "json"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("Beacon nosuch is not currently configured."), "{out:?}");
}

#[test]
fn disable_during_state_run_skips_changes_while_a_state_runs() {
    let roots = TempDir::new();
    let go = roots.join("GO");
    let sls = format!(
        "wait_for_go:\n  cmd.run:\n    - name: 'while [ ! -e {} ]; do sleep 0.05; done'\n",
        go.display()
    );
    roots.write("slow.sls", sls);
    let watched = TempDir::new();
    let dir = watched.path().display().to_string();
    let master = Master::start(&format!(
        "auto_accept: True\nfile_roots:\n  base: [{}]\n",
        roots.path().display()
    ));
    let config = format!(
        "beacons:\n  inotify:\n    - files:\n        {dir}:\n          mask: [close_write]\n    \
         - disable_during_state_run: True\n"
    );
    let minion = started(&master, &config);
    minion.daemon.wait_for_line("beacon inotify on", WAIT);

    let out = master.halite(&["minion1", "state.sls", "slow", "--async"]);
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").expect("jid");
    minion.daemon.wait_for_line(&format!("job {jid}: state.sls starting"), WAIT);
    watched.write("during", "x");
    std::fs::write(&go, "").unwrap();
    master.wait_event(&format!("salt/job/{jid}/ret/minion1"), |d| d["retcode"] == 0);
    watched.write("after", "x");
    let tag = format!("salt/beacon/minion1/inotify/{dir}");
    master.wait_event(&tag, |d| d["path"] == format!("{dir}/after").as_str());
    let paths: Vec<Value> = master
        .events()
        .into_iter()
        .filter(|(t, _)| t == &tag)
        .map(|(_, d)| d["path"].clone())
        .collect();
    assert_eq!(paths, [json!(format!("{dir}/after"))], "nothing from the state run's time");
}

/// A local user names a file in a watched directory after a log line: the beacon's tag
/// carries the name, the master refuses it (a control character), and the minion logged the
/// refused tag as it was, so the name became a forged line in its log. Every log record is
/// one line now, escaped.
#[test]
fn a_file_name_cannot_forge_a_line_in_the_minions_log() {
    let watched = TempDir::new();
    let dir = watched.path().display().to_string();
    let master = Master::start("auto_accept: True");
    let config = format!(
        "beacons:\n  inotify:\n    - files:\n        {dir}:\n          mask: [create]\n          \
         recurse: True\n          auto_add: True\n"
    );
    let minion = started(&master, &config);
    minion.daemon.wait_for_line("beacon inotify on", WAIT);
    // A directory named so is watched too (auto_add); what happens in it is tagged with its
    // path.
    let forged = watched.join("x\n2026-01-01T00:00:00Z ERROR halite_minion: forged by a file name");
    std::fs::create_dir(&forged).unwrap();
    // Its creation's event on the bus means the minion has read it, and watches it now.
    let tag = format!("salt/beacon/minion1/inotify/{dir}");
    master.wait_event(&tag, |d| d["path"].as_str().is_some_and(|p| p.contains("forged by")));
    std::fs::File::create(forged.join("f")).unwrap();
    let said =
        minion.daemon.wait_for_line(r"x\\n2026-01-01T00:00:00Z ERROR halite_minion: forged", WAIT);
    assert!(!said.is_empty());
    let lines = minion.daemon.lines();
    let forged_lines: Vec<&String> =
        lines.iter().filter(|l| l.contains("forged by") && !l.contains(r"x\n2026")).collect();
    assert!(forged_lines.is_empty(), "{forged_lines:?}");
}
