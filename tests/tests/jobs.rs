//! Jobs through the real binaries: `halite` output and exit codes as Salt's, targeting, job
//! events, the job cache, long jobs beside short ones, and returns that survive a dead CLI
//! or a master restart.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::serde_json::{self, Value};
use halite_tests::{wait_until, Daemon};
use std::process::Command;
use std::time::Duration;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A master with auto_accept and the given minions authenticated.
fn cluster(minions: &[(&str, &str)]) -> (Master, Vec<Minion>) {
    cluster_with("auto_accept: True", minions)
}

/// A master with `config` (which must accept the minions) and the given minions live.
fn cluster_with(config: &str, minions: &[(&str, &str)]) -> (Master, Vec<Minion>) {
    let master = Master::start(config);
    let started: Vec<Minion> =
        minions.iter().map(|(id, extra)| Minion::start(&master, id, id, extra)).collect();
    for m in &started {
        m.wait_authenticated();
    }
    let mut ids: Vec<String> = minions.iter().map(|(id, _)| id.to_string()).collect();
    ids.sort();
    wait_until(WAIT, "all minions live", || master.presence() == ids);
    (master, started)
}

#[test]
fn test_ping_prints_salts_output_and_fires_salts_events() {
    let (master, _m) = cluster(&[("minion1", "")]);
    let out = master.halite(&["minion1", "test.ping"]);
    assert_eq!((out.status, out.stdout.as_str()), (Some(0), "minion1:\n    True\n"), "{out:?}");
    let out = master.halite(&["minion1", "test.ping", "--out", "json"]);
    assert_eq!(out.stdout, "{\n    \"minion1\": true\n}\n");
    let out = master.halite(&["*", "test.ping", "--static", "--out", "json"]);
    assert_eq!(out.stdout, "{\n    \"minion1\": true\n}\n");
    // Salt scripts often write `--out=json`.
    let out = master.halite(&["*", "test.ping", "--static", "--out=json", "--timeout=5"]);
    assert_eq!(out.stdout, "{\n    \"minion1\": true\n}\n", "{out:?}");

    let events = master.events();
    let new = events.iter().position(|(t, _)| t.ends_with("/new")).expect("job new event");
    let jid = events[new].1["jid"].as_str().unwrap().to_string();
    assert_eq!(jid.len(), 20);
    let tags: Vec<&str> =
        events.iter().map(|(t, _)| t.as_str()).filter(|t| t.contains(&jid)).collect();
    let ret_tag = format!("salt/job/{jid}/ret/minion1");
    assert_eq!(
        tags,
        [
            jid.clone(),
            format!("salt/job/{jid}/new"),
            format!("salt/job/{jid}/publish"),
            ret_tag.clone()
        ]
    );
    let bare = &events[new - 1].1;
    assert_eq!(bare["minions"], serde_json::json!(["minion1"]));
    let new = &events[new].1;
    for (key, want) in [
        ("fun", serde_json::json!("test.ping")),
        ("arg", serde_json::json!([])),
        ("tgt", serde_json::json!("minion1")),
        ("tgt_type", serde_json::json!("glob")),
        ("minions", serde_json::json!(["minion1"])),
        ("missing", serde_json::json!([])),
    ] {
        assert_eq!(new[key], want, "{key} in {new}");
    }
    assert!(new["user"].is_string());
    let ret = &events.iter().find(|(t, _)| *t == ret_tag).unwrap().1;
    for (key, want) in [
        ("cmd", serde_json::json!("_return")),
        ("id", serde_json::json!("minion1")),
        ("fun", serde_json::json!("test.ping")),
        ("fun_args", serde_json::json!([])),
        ("jid", serde_json::json!(jid)),
        ("retcode", serde_json::json!(0)),
        ("return", serde_json::json!(true)),
        ("success", serde_json::json!(true)),
    ] {
        assert_eq!(ret[key], want, "{key} in {ret}");
    }
    assert!(ret["ts"].as_u64().is_some_and(|ts| ts > 1_700_000_000), "{ret}");
}

#[test]
fn cmd_run_output_retcodes_and_unknown_functions() {
    let (master, _m) = cluster(&[("minion1", "")]);
    let out = master.halite(&["minion1", "cmd.run", "echo hi; exit 3"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert_eq!(out.stdout, "minion1:\n    hi\n");
    assert!(out.stderr.contains("ERROR: Minions returned with non-zero exit code"), "{out:?}");
    let out = master.halite(&["minion1", "cmd.run", "echo hi; exit 3", "--retcode-passthrough"]);
    assert_eq!(out.status, Some(3), "{out:?}");
    let out = master.halite(&["minion1", "cmd.run", "printf 'a\\nb'"]);
    assert_eq!(out.stdout, "minion1:\n    a\n    b\n");
    let out = master.halite(&["minion1", "test.echo", "hello world", "--out", "json"]);
    assert_eq!(json(&out.stdout), serde_json::json!({"minion1": "hello world"}));
    let out = master.halite(&["minion1", "test.arg", "1", "two", "k=v", "--out", "json"]);
    assert_eq!(
        json(&out.stdout),
        serde_json::json!({"minion1": {"args": [1, "two"], "kwargs": {"k": "v"}}})
    );
    let out = master.halite(&["minion1", "no.such_function"]);
    assert_eq!(out.status, Some(1));
    assert_eq!(out.stdout, "minion1:\n    'no.such_function' is not available.\n");
    let out = master.halite(&["minion1", "grains.get", "id"]);
    assert_eq!(out.stdout, "minion1:\n    minion1\n");
}

#[test]
fn every_target_type_selects_the_right_minions() {
    let (master, _m) = cluster(&[
        ("web1", "grains: {roles: [web], env: prod}"),
        ("web2", "grains: {roles: [web, cache], env: dev}"),
        ("db1", "grains: {roles: [db], env: prod}"),
    ]);
    let targeted = |args: &[&str]| -> Vec<String> {
        let mut full = args.to_vec();
        full.extend(["test.ping", "--static", "--out", "json"]);
        let out = master.halite(&full);
        assert_eq!(out.status, Some(0), "{args:?}: {out:?}");
        let mut ids: Vec<String> = json(&out.stdout).as_object().unwrap().keys().cloned().collect();
        ids.sort();
        ids
    };
    assert_eq!(targeted(&["*"]), ["db1", "web1", "web2"]);
    assert_eq!(targeted(&["web*"]), ["web1", "web2"]);
    assert_eq!(targeted(&["-L", "web1,db1"]), ["db1", "web1"]);
    // A listed id with no key is a minion that did not return (Salt's `missing`): exit 1.
    let ghost = master.halite(&["-L", "web1,ghost", "test.ping"]);
    assert_eq!(ghost.status, Some(1), "{ghost:?}");
    assert!(
        ghost
            .stdout
            .starts_with("web1:\n    True\nghost:\n    Minion did not return. [No response]"),
        "{ghost:?}"
    );
    assert_eq!(targeted(&["-E", "w.b[12]"]), ["web1", "web2"]);
    assert_eq!(targeted(&["-G", "roles:web"]), ["web1", "web2"]);
    assert_eq!(targeted(&["-G", "env:pr*"]), ["db1", "web1"]);
    assert_eq!(targeted(&["-C", "G@roles:cache or db*"]), ["db1", "web2"]);
    assert_eq!(targeted(&["-C", "web* and not G@env:dev"]), ["web1"]);
    assert_eq!(targeted(&["-C", "L@db1,web2 and E@^w"]), ["web2"]);

    let none = master.halite(&["nomatch*", "test.ping"]);
    assert_eq!(none.status, Some(2));
    assert_eq!(
        none.stdout,
        "No minions matched the target. No command was sent, no jid was assigned.\n"
    );
    let bad = master.halite(&["-E", "(unclosed", "test.ping"]);
    assert_eq!(bad.status, Some(2));
    assert!(!bad.stderr.is_empty());
    let huge = "x".repeat(100_000);
    let out = master.halite(&[&huge, "test.ping"]);
    assert_eq!(out.status, Some(2), "{:?}", out.stderr);
    assert_eq!(master.halite(&["db1", "test.ping"]).status, Some(0), "master still serves");
}

#[test]
fn offline_and_silent_minions_are_reported_with_salts_exit_codes() {
    let (master, mut minions) = cluster(&[("up1", ""), ("gone1", "")]);
    let gone = minions.pop().unwrap();
    drop(gone);
    wait_until(WAIT, "gone1 disconnected", || master.presence() == ["up1"]);
    let out = master.halite(&["*", "test.ping", "-t", "1"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("up1:\n    True\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("gone1:\n    Minion did not return. [Not connected]\n"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("ERROR: Minions returned with non-zero exit code"));
    let out = master.halite(&["gone1", "test.ping", "-t", "1"]);
    assert_eq!(out.status, Some(2), "{out:?}");
    assert!(out.stderr.contains("ERROR: No return received"), "{out:?}");

    let down = master.run(&["manage.down"]);
    assert_eq!(down.stdout, "- gone1\n", "{down:?}");
    let up = master.run(&["manage.up", "--out", "json"]);
    assert_eq!(json(&up.stdout), serde_json::json!(["up1"]));
    let status = master.run(&["manage.status", "--out", "json"]);
    assert_eq!(json(&status.stdout), serde_json::json!({"up": ["up1"], "down": ["gone1"]}));
}

#[test]
fn a_long_job_does_not_delay_a_ping_and_outlives_the_timeout() {
    let (master, _m) = cluster(&[("minion1", "")]);
    let sleeper =
        Daemon::spawn(master.halite_cmd(&["minion1", "test.sleep", "4", "-t", "1"]), "sleeper");
    master.wait_event_where("the sleep job's publish", |t, d| {
        t.ends_with("/new") && d["fun"] == "test.sleep"
    });
    let ping = master.halite(&["minion1", "test.ping"]);
    assert_eq!(ping.stdout, "minion1:\n    True\n");
    assert!(
        !master.events().iter().any(|(t, d)| t.contains("/ret/") && d["fun"] == "test.sleep"),
        "the ping must come back while the sleep still runs"
    );
    // The sleeper's CLI asked find_job after 1 s, saw the job running, and kept waiting.
    sleeper.wait_for_line(r"^minion1:$", WAIT);
    sleeper.wait_for_line(r"^    True$", WAIT);
    assert!(master.events().iter().any(|(_, d)| d["fun"] == "saltutil.find_job"));
}

#[test]
fn returns_land_in_the_job_cache_when_the_cli_dies_or_the_master_restarts() {
    let (master, _m) = cluster(&[("minion1", "")]);
    // The CLI is killed mid-job; the return still lands.
    let cli = Daemon::spawn(master.halite_cmd(&["minion1", "test.sleep", "1"]), "cli");
    let new = master.wait_event_where("the sleep job's publish", |t, d| {
        t.ends_with("/new") && d["fun"] == "test.sleep"
    });
    drop(cli);
    let jid = new["jid"].as_str().unwrap().to_string();
    master.wait_event(&format!("salt/job/{jid}/ret/minion1"), |_| true);
    let looked = master.run(&["jobs.lookup_jid", &jid]);
    assert_eq!(looked.stdout, "minion1:\n    True\n", "{looked:?}");
    let listed = json(&master.run(&["jobs.list_jobs", "--out", "json"]).stdout);
    assert_eq!(listed[&jid]["Function"], "test.sleep");

    // Published, then the master dies before the return: the minion delivers it later.
    let out = master.halite(&["minion1", "test.sleep", "2", "--async"]);
    let jid =
        out.stdout.trim().strip_prefix("Executed command with job ID: ").expect("jid").to_string();
    let port = master.addr.port();
    let dir = master.kill();
    let master = Master::start_in(dir, port, "auto_accept: True");
    master.wait_event(&format!("salt/job/{jid}/ret/minion1"), |_| true);
    let looked = master.run(&["jobs.lookup_jid", &jid, "--out", "json"]);
    assert_eq!(json(&looked.stdout), serde_json::json!({"minion1": true}));
}

#[test]
fn unknown_runners_and_bad_jids_are_clear_errors() {
    let (master, _m) = cluster(&[("minion1", "")]);
    let out = master.run(&["no.such_runner"]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("'no.such_runner' is not available"), "{out:?}");
    let out = master.run(&["jobs.lookup_jid", "../../etc"]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("not a job id"), "{out:?}");
    let out = master.halite(&["minion1"]);
    assert_eq!(out.status, Some(64));
    let _ = Duration::ZERO;
}

/// `halite … | head -1` in a `pipefail` script: a closed stdout ends the CLI by SIGPIPE, as
/// it does `cat`, never with a panic and exit 101.
#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let (master, _minions) = cluster(&[("minion1", "")]);
    let mut child = master
        .halite_cmd(&["minion1", "test.ping"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line is printed
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(13), "{:?} {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A return too big for one frame fails the job instead of cutting the minion off (the master
/// would refuse the frame, and the minion would send it again after every reconnect).
#[test]
fn a_return_over_max_frame_bytes_fails_the_job_and_the_minion_stays() {
    let (master, minions) = cluster_with(
        "auto_accept: True\nmax_frame_bytes: 65536",
        &[("minion1", "max_frame_bytes: 65536")],
    );
    let minion = &minions[0];
    let out = master.halite(&["minion1", "cmd.run", "head -c 100000 /dev/zero | tr '\\0' a"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("over what one message may carry"), "{out:?}");
    let ping = master.halite(&["minion1", "test.ping"]);
    assert_eq!(ping.stdout, "minion1:\n    True\n", "{ping:?}");
    assert!(!minion.daemon.lines().iter().any(|l| l.contains("lost master")), "never cut off");
}

/// The running master prunes jobs past `keep_jobs_seconds` from the job cache.
#[test]
fn old_jobs_are_pruned_from_the_job_cache() {
    let (master, _minions) = cluster_with(
        "auto_accept: True\nkeep_jobs_seconds: 1\nloop_interval: 1",
        &[("minion1", "")],
    );
    assert!(master.halite(&["minion1", "test.ping"]).success());
    let listed = || json(&master.run(&["jobs.list_jobs", "--out", "json"]).stdout);
    let jobs = listed();
    let jid = jobs.as_object().unwrap().keys().next().expect("the job is cached").clone();
    assert_eq!(jobs[&jid]["Function"], "test.ping");
    master.daemon.wait_for_line("jobs older than keep_jobs from the job cache", WAIT);
    assert!(listed().get(&jid).is_none(), "{jid} pruned");
}

/// A job whose load cannot be written (disk full, a broken cache dir) is never published:
/// after a master restart its returns would be dropped as an unknown job. The CLI gets a clear
/// error and exit 2, a reaction's job a `salt/reactor/error`, and the minion nothing.
#[test]
fn a_job_the_cache_cannot_record_is_never_published() {
    let sls = halite_tests::TempDir::new();
    sls.write("ping.sls", "ping:\n  local.test.ping:\n    - tgt: minion1\n");
    let config = format!(
        "auto_accept: True\nreactor:\n  - 'myco/go':\n    - {}/ping.sls\n",
        sls.path().display()
    );
    let (master, _m) = cluster_with(&config, &[("minion1", "")]);
    // A file where each job's directory must be created: fails for root too.
    let jobs = master.dir.join("master/var/cache/halite/master/jobs");
    std::fs::remove_dir(&jobs).unwrap();
    std::fs::write(&jobs, "in the way").unwrap();

    let out = master.halite(&["minion1", "test.ping"]);
    assert_eq!(out.status, Some(2), "{out:?}");
    assert!(out.stderr.contains("cannot record the job in the job cache"), "{out:?}");
    assert!(master.run(&["event.send", "myco/go"]).success());
    let error = master.wait_event("salt/reactor/error", |d| d["kind"] == "reaction");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("cannot record the job in the job cache"), "{error}");
    master.daemon.wait_for_line("job cache: cannot store job \\d+: .*; not published", WAIT);

    // With the cache back, the next job goes out; it is the only one the log and minion saw.
    std::fs::remove_file(&jobs).unwrap();
    std::fs::create_dir(&jobs).unwrap();
    let out = master.halite(&["minion1", "test.ping"]);
    assert_eq!(out.stdout, "minion1:\n    True\n", "{out:?}");
    let published: Vec<String> = master
        .events()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("salt/job/") && t.ends_with("/new"))
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    let returns: Vec<String> = master
        .events()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("salt/job/") && t.contains("/ret/"))
        .collect();
    assert_eq!(returns, [published[0].replace("/new", "/ret/minion1")]);
}

/// A broken job-cache entry is skipped and logged by `jobs.list_jobs`, not an error for all.
#[test]
fn list_jobs_skips_a_broken_cache_entry() {
    let (master, _m) = cluster(&[("minion1", "")]);
    assert!(master.halite(&["minion1", "test.ping"]).success());
    let jobs = master.dir.join("master/var/cache/halite/master/jobs");
    std::fs::create_dir_all(jobs.join("20000101000000000001/load.json")).unwrap();
    std::fs::write(jobs.join("20000101000000000002"), "a stray file").unwrap();
    std::fs::create_dir_all(jobs.join("20000101000000000003")).unwrap();
    std::fs::write(jobs.join("20000101000000000003/load.json"), "{\"fun\": \"te").unwrap();
    let out = master.run(&["jobs.list_jobs", "--out", "json"]);
    assert!(out.success(), "{out:?}");
    let listed = json(&out.stdout);
    let jids: Vec<&String> = listed.as_object().unwrap().keys().collect();
    assert_eq!(jids.len(), 1, "{jids:?}");
    assert_eq!(listed[jids[0]]["Function"], "test.ping");
    for jid in ["20000101000000000001", "20000101000000000002", "20000101000000000003"] {
        master.daemon.wait_for_line(&format!("job cache: skipping job {jid}: "), WAIT);
    }
}

/// Three 7 MB returns landing together were queued for every subscriber in one pass, past
/// the 16 MiB a control client could have waiting: a `state.event` reading as fast as it
/// could was cut off, and so was a `halite` watching the job that had fallen behind for a
/// moment (here stopped with SIGSTOP), which lost every return. A control client may now
/// fall that far behind while it keeps reading (past 16 MiB it is cut off once it has not
/// taken 64 KiB in 10 s, and past 128 MiB).
#[test]
fn a_cli_that_falls_behind_big_returns_gets_them_all() {
    let ids = ["minion1", "minion2", "minion3"];
    let (master, _minions) = cluster(&ids.map(|id| (id, "")));
    let go = master.conf_dir().join("go");
    let big = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; head -c 7000000 /dev/zero | tr '\\0' x",
        go.display()
    );
    let mut watcher = Command::new(halite_tests::bin("halite-run"));
    watcher.arg("-c").arg(master.conf_dir());
    watcher.args(["state.event", "tagmatch=salt/job/*/ret/*", "count=3"]);
    let mut watcher = Daemon::spawn(watcher, "state-event");
    wait_until(WAIT, "subscription in place", || {
        master.events().iter().any(|(t, _)| t == "salt/event/new_client")
    });
    let args = ["*", "cmd.run", &big, "--out", "json", "--static", "-t", "120"];
    let mut cli = Daemon::spawn(master.halite_cmd(&args), "halite");
    let new = master.wait_event_where("the job published", |tag, data| {
        tag.starts_with("salt/job/") && tag.ends_with("/new") && data["fun"] == "cmd.run"
    });
    assert_eq!(new["minions"].as_array().map(Vec::len), Some(3), "{new}");
    cli.signal(19); // SIGSTOP
    std::fs::write(&go, "").unwrap();
    // Every return goes to all its subscribers in one pass: once this watcher has the
    // three, so has the stopped CLI's queue.
    assert!(watcher.wait_exit(WAIT).expect("state.event ends after three").success());
    cli.signal(18); // SIGCONT
    let status = cli.wait_exit(WAIT).expect("halite exits");
    let stdout = cli.lines().join("\n");
    assert!(status.success(), "{status}: {}", &stdout[..stdout.len().min(300)]);
    let printed = json(&stdout);
    for id in ids {
        assert_eq!(printed[id].as_str().map(str::len), Some(7_000_000), "{id}");
    }
}

/// Three minions returning 6 MB each: the job's returns were one 18 MB answer to
/// `jobs.lookup_jid`, over the 16 MiB a control client could have queued, so the master
/// closed the connection of a client reading as fast as it could ("reading too slowly") and
/// the job could never be looked up. One answer of any size now fits an empty queue.
#[test]
fn a_job_with_big_returns_is_looked_up_whole() {
    let ids = [("minion1", ""), ("minion2", ""), ("minion3", "")];
    let (master, _minions) = cluster(&ids);
    let six_mb = "head -c 6000000 /dev/zero | tr '\\0' x";
    let out = master.halite(&["*", "cmd.run", six_mb, "--async"]);
    assert!(out.success(), "{}", &out.stderr);
    let jid = out.stdout.trim().rsplit(' ').next().unwrap().to_string();
    for (id, _) in ids {
        master.wait_event(&format!("salt/job/{jid}/ret/{id}"), |_| true);
    }
    let out = master.run(&["jobs.lookup_jid", &jid, "--out", "json"]);
    assert!(out.success(), "{}", &out.stderr);
    let looked_up = json(&out.stdout);
    for (id, _) in ids {
        assert_eq!(looked_up[id].as_str().map(str::len), Some(6_000_000), "{id}");
    }
}
