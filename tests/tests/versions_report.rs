//! `--versions-report` on the five real binaries (Salt's `--versions-report` layout, one
//! implementation in `halite_common::versions`, also the minion's `test.versions_report`), and
//! `halite-run manage.versions` against real and hand-driven minions.

use halite_common::proto::{JobReturn, ToMaster, ToMinion};
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::{bin, run, wait_until, Output};
use std::process::{Command, Stdio};

const BINARIES: [&str; 5] =
    ["halite-master", "halite-minion", "halite", "halite-key", "halite-run"];

#[test]
fn every_binary_prints_the_same_versions_report_in_salts_layout() {
    let mut reports = Vec::new();
    for name in BINARIES {
        // No config is read: the report works on a host where nothing is set up yet.
        let out = run(Command::new(bin(name)).args(["-c", "/nonexistent", "--versions-report"]));
        assert_eq!(out.status, Some(0), "{name}: {out:?}");
        assert_eq!(out.stderr, "", "{name}");
        reports.push(out.stdout);
    }
    assert!(reports.iter().all(|r| *r == reports[0]), "the binaries disagree: {reports:#?}");
    let report = &reports[0];
    let lines: Vec<&str> = report.lines().collect();
    let titles: Vec<&str> = lines.iter().copied().filter(|l| l.ends_with(':')).collect();
    assert_eq!(
        titles,
        ["Halite Version:", "Rust Version:", "Dependency Versions:", "System Versions:"],
        "{report}"
    );
    // Every section ends with Salt's line of one space; every row is `name: value` with the
    // names right-aligned to one column.
    assert_eq!(lines.iter().filter(|l| **l == " ").count(), 4, "{report}");
    assert!(report.ends_with("\n \n"), "{report:?}");
    let rows: Vec<&str> =
        lines.iter().copied().filter(|l| *l != " " && !titles.contains(l)).collect();
    let colon = rows[0].find(": ").expect("a row");
    for row in &rows {
        assert_eq!(row.find(": "), Some(colon), "misaligned row {row:?} in\n{report}");
        assert!(row.starts_with(' '), "{row:?}");
    }
    let value = |name: &str| {
        rows.iter()
            .find_map(|r| r.trim_start().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} row in\n{report}"))
    };
    assert_eq!(value("Halite"), env!("CARGO_PKG_VERSION"));
    for name in ["libsodium", "mio", "minijinja", "serde_json", "sodiumoxide", "rustc"] {
        assert!(value(name).chars().next().is_some_and(|c| c.is_ascii_digit()), "{name}");
    }
    let uname = |flag: &str| run(Command::new("uname").arg(flag)).stdout.trim().to_string();
    assert_eq!(value("system"), uname("-s"));
    assert_eq!(value("release"), uname("-r"));
    assert_eq!(value("machine"), uname("-m"));
}

/// Answers the next `test.version` publish as `version` (keepalive pings answered meanwhile).
fn answer_version(raw: &mut RawMinion, version: &str) {
    loop {
        match raw.recv() {
            Some(ToMinion::Publish(publish)) => {
                assert_eq!(publish.fun, "test.version");
                let ret = JobReturn {
                    jid: publish.jid.clone(),
                    fun: publish.fun.clone(),
                    fun_args: vec![],
                    ret: version.into(),
                    retcode: 0,
                    success: true,
                    out: None,
                    user: "root".into(),
                };
                raw.send(&ToMaster::Return(ret));
                loop {
                    match raw.recv() {
                        Some(ToMinion::ReturnAck { jid }) if jid == publish.jid => return,
                        Some(ToMinion::Ping { seq }) => {
                            raw.send(&ToMaster::Pong { seq });
                        }
                        other => panic!("expected the return's ack, got {other:?}"),
                    }
                }
            }
            Some(ToMinion::Ping { seq }) => {
                raw.send(&ToMaster::Pong { seq });
            }
            Some(_) => {}
            None => panic!("the master closed a raw minion"),
        }
    }
}

/// `halite-run manage.versions ARGS` while the raw minions answer.
fn manage_versions(master: &Master, args: &[&str], raws: &mut [(&mut RawMinion, &str)]) -> Output {
    let child = Command::new(bin("halite-run"))
        .arg("-c")
        .arg(master.conf_dir())
        .arg("manage.versions")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for (raw, version) in raws.iter_mut() {
        answer_version(raw, version);
    }
    let out = child.wait_with_output().unwrap();
    Output {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn manage_versions_sorts_minions_by_their_version_against_the_masters() {
    let master = Master::start("auto_accept: True\ntimeout: 2");
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    let mut old = RawMinion::authenticate(master.addr, "old");
    let mut new = RawMinion::authenticate(master.addr, "new");
    let mut odd = RawMinion::authenticate(master.addr, "odd");
    // Accepted, then gone: offline.
    drop(RawMinion::authenticate(master.addr, "gone"));
    wait_until(WAIT, "four minions up", || master.presence() == ["minion1", "new", "odd", "old"]);
    // Salt's test.versions_report: the same report, from the minion's side.
    let out = master.halite(&["minion1", "test.versions_report", "--out", "json"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let report = run(Command::new(bin("halite-minion")).arg("--versions-report")).stdout;
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(value["minion1"], report.trim_end_matches('\n'));
    let hostile = "\u{1b}]0;pwned\u{7}not a version";
    let mut raws = [(&mut old, "0.0.1"), (&mut new, "9.0.0"), (&mut odd, hostile)];
    let out = manage_versions(&master, &["--out", "json"], &mut raws);
    assert_eq!(out.status, Some(0), "{out:?}");
    let version = env!("CARGO_PKG_VERSION");
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "Master": version,
            "Minion newer than master": {"new": "9.0.0"},
            "Minion offline": {"gone": false},
            "Minion requires update": {"odd": hostile, "old": "0.0.1"},
            "Up to date": {"minion1": version},
        })
    );
    // Salt's nested layout: labels sorted, each minion under its label.
    let out = manage_versions(&master, &[], &mut raws);
    assert_eq!(out.status, Some(0), "{out:?}");
    // The outputter defuses the escape sequence (ESC shows as `?`), as for any return.
    let text = out.stdout.replace('\u{7}', "BEL");
    assert_eq!(
        text,
        format!(
            "Master:\n    {version}\nMinion newer than master:\n    ----------\n    new:\n        9.0.0\n\
             Minion offline:\n    ----------\n    gone:\n        False\n\
             Minion requires update:\n    ----------\n    odd:\n        ?]0;pwnedBELnot a version\n\
             \x20   old:\n        0.0.1\nUp to date:\n    ----------\n    minion1:\n        {version}\n"
        )
    );
    // Salt's runner events around it, and the job it published to every minion.
    let ret = master.wait_event_where("the runner's return", |tag, data| {
        tag.starts_with("salt/run/")
            && tag.ends_with("/ret")
            && data["fun"] == "runner.manage.versions"
    });
    assert_eq!(ret["success"], true);
    assert!(master.events().iter().any(|(tag, data)| tag.ends_with("/new")
        && tag.starts_with("salt/job/")
        && data["fun"] == "test.version"
        && data["tgt"] == "*"));
    // Arguments are refused, as Salt's versions() takes none.
    let out = master.run(&["manage.versions", "extra"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("takes no arguments"), "{out:?}");
}
