//! The event bus through the real binaries: `state.event` as Salt prints it, a stalled
//! subscriber that cannot stall the master, events from minions and scripts, reserved tags,
//! size limits, log rotation and SIGHUP reopen, presence.

use halite_common::control::{Request, SOCKET_NAME};
use halite_common::proto::ToMaster;
use halite_common::wire::encode_frame;
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::serde_json::{self, json, Value};
use halite_tests::{wait_until, Daemon};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;

fn one_minion(extra: &str) -> (Master, Minion) {
    let master = Master::start(&format!("auto_accept: True\n{extra}"));
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    wait_until(WAIT, "minion1 live", || master.presence() == ["minion1"]);
    (master, minion)
}

/// Starts `halite-run state.event ARGS` and waits until its subscription is in place.
fn state_event(master: &Master, args: &[&str]) -> Daemon {
    let before = master.events().iter().filter(|(t, _)| t == "salt/event/new_client").count();
    let mut cmd = std::process::Command::new(halite_tests::bin("halite-run"));
    cmd.arg("-c").arg(master.conf_dir()).arg("state.event").args(args);
    let daemon = Daemon::spawn(cmd, "state-event");
    wait_until(WAIT, "subscription in place", || {
        master.events().iter().filter(|(t, _)| t == "salt/event/new_client").count() > before
    });
    daemon
}

#[test]
fn state_event_pretty_prints_the_seed_job_events_in_order() {
    let (master, _minion) = one_minion("");
    let mut watcher = state_event(&master, &["pretty=True", "tagmatch=salt/job/*", "count=3"]);
    let mut bare = state_event(&master, &["count=1", "tagmatch=[0-9]*"]);
    // Salt's loop: count=0 still prints the first matching event, then stops.
    let mut zero = state_event(&master, &["count=0", "tagmatch=salt/job/*/new"]);
    let ping = master.halite(&["minion1", "test.ping"]);
    assert!(ping.success(), "{ping:?}");
    assert!(watcher.wait_exit(WAIT).expect("count=3 ends the stream").success());
    assert!(bare.wait_exit(WAIT).expect("count=1 ends the stream").success());
    assert!(zero.wait_exit(WAIT).expect("count=0 ends after one").success());
    assert_eq!(zero.lines().iter().filter(|l| l.contains("/new\t")).count(), 1);
    let bad = master.run(&["state.event", "count=abc"]);
    assert_eq!(bad.status, Some(1), "{bad:?}");
    assert!(bad.stderr.contains("count must be an integer"), "{bad:?}");

    let text = watcher.lines().join("\n");
    let tags: Vec<&str> =
        text.lines().filter(|l| l.contains('\t')).map(|l| l.split('\t').next().unwrap()).collect();
    let jid = tags[0].split('/').nth(2).unwrap().to_string();
    assert_eq!(
        tags,
        [
            format!("salt/job/{jid}/new"),
            format!("salt/job/{jid}/publish"),
            format!("salt/job/{jid}/ret/minion1")
        ]
    );
    // Pretty: tab after the tag, 4-space indent, sorted keys (Salt's json.dumps(indent=4)).
    let new_block = format!("salt/job/{jid}/new\t{{\n    \"_stamp\": \"");
    assert!(text.contains(&new_block), "{text}");
    assert!(
        text.contains("    \"minions\": [\n        \"minion1\"\n    ],\n    \"missing\": [],"),
        "{text}"
    );
    assert!(text.contains("    \"return\": true,\n    \"success\": true,"), "{text}");
    // Not pretty: one line, insertion order, Python's separators.
    let line = bare.lines().into_iter().find(|l| l.starts_with(&jid)).expect("bare jid event");
    assert!(
        line.starts_with(&format!("{jid}\t{{\"minions\": [\"minion1\"], \"_stamp\": \"")),
        "{line}"
    );
}

/// A control connection subscribed to every event that never reads, once its subscription
/// is in place.
fn stalled_subscriber(master: &Master) -> UnixStream {
    let socket = master.dir.join("master/var/run/halite/master").join(SOCKET_NAME);
    let mut stalled = UnixStream::connect(&socket).unwrap();
    let mut frame = Vec::new();
    encode_frame(&serde_json::to_vec(&Request::Subscribe { tagmatch: None }).unwrap(), &mut frame);
    stalled.write_all(&frame).unwrap();
    wait_until(WAIT, "the stalled subscription", || {
        master.events().iter().any(|(t, _)| t == "salt/event/new_client")
    });
    stalled
}

#[test]
fn a_stalled_subscriber_is_dropped_and_the_master_keeps_serving() {
    let (master, _minion) = one_minion("");
    // Its subscription must be in place before the counter's is awaited (both fire new_client).
    let stalled = stalled_subscriber(&master);
    const N: usize = 100_000;
    let mut counter = state_event(&master, &["tagmatch=myco/flood/*", &format!("count={N}")]);

    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    for i in 0..N {
        let data = json!({"i": i, "pad": "x".repeat(100)});
        raw.send(&ToMaster::Event {
            tag: format!("myco/flood/{i}"),
            data,
            ts: 0,
            ack: false,
            jid: None,
        });
        // On two cores the flood would starve the reader of CPU; a reader that keeps up is
        // what this test is about, so the flood stays within 20,000 events of it.
        if i % 5000 == 0 {
            wait_until(WAIT, "the reading subscriber keeps up", || {
                counter.line_count() + 20_000 >= i
            });
        }
    }
    // Past 16 MiB unsent, the stalled subscriber is dropped 10 s after it last took 64 KiB
    // (a reading one may fall that far behind), with nothing more sent to it: it held its
    // backlog for as long as it lived when only a send looked.
    master.daemon.wait_for_line(
        r"dropping event subscriber: too slow, peer is not reading: \d+ bytes queued, under 65536 taken in 1\d s",
        WAIT,
    );
    let ping = master.halite(&["minion1", "test.ping"]);
    assert_eq!(ping.stdout, "minion1:\n    True\n", "{ping:?}");
    let status = counter.wait_exit(std::time::Duration::from_secs(120)).unwrap_or_else(|| {
        panic!("the reading subscriber stopped after {} of {N} events", counter.line_count())
    });
    assert!(status.success(), "the reading subscriber must get every event");
    let lines = counter.lines();
    assert_eq!(lines.len(), N);
    assert!(lines[N - 1].starts_with(&format!("myco/flood/{}\t", N - 1)), "{}", lines[N - 1]);
    drop(stalled);
    assert_eq!(master.halite(&["minion1", "test.ping"]).status, Some(0));
}

/// A subscriber that stopped reading with more than 16 MiB owed, after which nothing more
/// was sent to it, was looked at only when a frame was queued for it: it held its backlog
/// (up to 128 MiB) for as long as it lived. The driver looks every second.
#[test]
fn a_stalled_subscriber_is_dropped_with_nothing_more_sent_to_it() {
    let (master, _minion) = one_minion("max_event_bytes: 4194304");
    let mut stalled = stalled_subscriber(&master);
    // Six events of ~3.9 MB: 24 MB owed, past the 16 MiB soft backlog, then nothing.
    let mut raw = RawMinion::authenticate(master.addr, "big");
    for i in 0..6 {
        let data = json!({"pad": "x".repeat(3_900_000)});
        let tag = format!("myco/big/{i}");
        raw.send(&ToMaster::Event { tag, data, ts: 0, ack: false, jid: None });
    }
    master.daemon.wait_for_line(
        r"dropping event subscriber: too slow, peer is not reading: \d+ bytes queued, under 65536 taken in 1\d s",
        WAIT,
    );
    // Cut off: what it reads ends, and the master serves on.
    stalled.set_read_timeout(Some(WAIT)).unwrap();
    let mut owed = Vec::new();
    std::io::Read::read_to_end(&mut stalled, &mut owed).unwrap();
    assert!(owed.len() < 16 * 1024 * 1024, "{} bytes reached it", owed.len());
    assert_eq!(master.halite(&["minion1", "test.ping"]).status, Some(0));
}

#[test]
fn minion_events_carry_the_authenticated_id_and_reserved_tags_are_refused() {
    let (master, minion) = one_minion("max_event_bytes: 1024");
    // From a job.
    let out = master.halite(&["minion1", "event.send", "myco/deploy", "{v: 2}"]);
    assert_eq!(out.stdout, "minion1:\n    True\n", "{out:?}");
    let event = master.wait_event("myco/deploy", |_| true);
    assert_eq!(event["cmd"], "_minion_event");
    assert_eq!(event["id"], "minion1");
    assert_eq!(event["data"]["v"], 2);

    // From the minion's host (salt-call), beside the running daemon.
    let out = minion.call(&["event.send", "myco/from_call", "data={\"x\": 1, \"id\": \"forged\"}"]);
    assert_eq!((out.status, out.stdout.as_str()), (Some(0), "local:\n    True\n"), "{out:?}");
    let event = master.wait_event("myco/from_call", |_| true);
    assert_eq!(event["id"], "minion1");
    assert_eq!(event["data"], json!({"x": 1, "id": "forged"}));
    assert_eq!(master.presence(), ["minion1"], "the daemon's session must survive the call");
    assert!(!minion.daemon.lines().iter().any(|l| l.contains("lost master")));

    // Master tags are refused, with a clear error, and never reach the log.
    for tag in [
        "salt/auth",
        "salt/key",
        "salt/job/20260101000000000000/ret/minion1",
        "salt/minion/other/start",
    ] {
        let out = minion.call(&["event.send", tag, "data={\"act\": \"accept\", \"id\": \"evil\"}"]);
        assert_eq!(out.status, Some(1), "{tag}: {out:?}");
        assert!(out.stderr.contains("refused"), "{tag}: {}", out.stderr);
    }
    // Through a job too: the job fails with the master's reason, as `halite` shows it.
    let out = master.halite(&["minion1", "event.send", "salt/key", "{act: delete, id: minion1}"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stdout.contains("The master refused the event: tag 'salt/key' is reserved"),
        "{out:?}"
    );
    master.daemon.wait_for_line("refused event from minion minion1: tag 'salt/key'", WAIT);
    // A newline or tab in a tag would forge lines in state.event's output: refused everywhere.
    let forged = "myco/x\nsalt/auth\t{\"act\": \"accept\", \"id\": \"evil\"}";
    let out = master.halite(&["minion1", "event.send", forged]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("contains control or invisible characters"), "{out:?}");
    // A bidi override would make a tag display as another (`salt/job/…/ret/db1`).
    let disguised = "myco/\u{202e}1bd/ter/x";
    let out = master.halite(&["minion1", "event.send", disguised]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("contains control or invisible characters"), "{out:?}");
    assert!(out.stdout.contains("\\u{202e}"), "escaped in the message: {out:?}");
    let out = minion.call(&["event.send", forged]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let out = master.run(&["event.send", forged]);
    assert!(!out.success() && out.stderr.contains("control or invisible characters"), "{out:?}");
    let big = format!("data={{\"pad\": \"{}\"}}", "x".repeat(2000));
    let out = minion.call(&["event.send", "myco/big", &big]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("over max_event_bytes"), "{}", out.stderr);
    let events = master.events();
    assert!(!events
        .iter()
        .any(|(t, d)| (t == "salt/auth" || t == "salt/key") && d["id"] != "minion1"));
    assert!(!events.iter().any(|(t, _)| t == "salt/key"), "no key event was forged");
    assert!(!events.iter().any(|(t, _)| t == "myco/big"));
    assert!(!events.iter().any(|(t, _)| t.contains('\n')), "no tag with a newline");

    // From a script on the master: the data as given, no wrapping.
    let out = master.run(&["event.send", "myco/script", "{a: 1}"]);
    assert_eq!(out.stdout, "True\n", "{out:?}");
    assert_eq!(master.wait_event("myco/script", |_| true)["a"], 1);
    let out = master.run(&["event.send", "salt/job/1/new"]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("reserved for the master's jobs"), "{out:?}");
    let out = master.run(&["event.send", "myco/big", &format!("{{pad: {}}}", "x".repeat(2000))]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("over max_event_bytes"), "{out:?}");
}

fn count_tagged(files: &[&Path], prefix: &str) -> usize {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .inspect(|l| {
                    serde_json::from_str::<Value>(l)
                        .unwrap_or_else(|e| panic!("torn line ({e}): {l}"));
                })
                .filter(|l| l.starts_with(&format!("{{\"tag\":\"{prefix}")))
                .count()
        })
        .sum()
}

#[test]
fn the_event_log_rotates_and_reopens_on_sighup_without_losing_a_line() {
    let (master, _minion) = one_minion("event_log_max_bytes: 8192\nevent_log_keep: 1000");
    let mut raw = RawMinion::authenticate(master.addr, "writer");
    for i in 0..500 {
        raw.send(&ToMaster::Event {
            tag: format!("myco/rot/{i}"),
            data: json!({"i": i}),
            ts: 0,
            ack: false,
            jid: None,
        });
    }
    master.wait_event_where("the last event", |t, _| t == "myco/rot/499");
    let log = master.event_log();
    let rotated: Vec<std::path::PathBuf> = (1..1000)
        .map(|n| log.with_extension(format!("log.{n}")))
        .take_while(|p| p.exists())
        .collect();
    assert!(rotated.len() >= 2, "the log must have rotated: {rotated:?}");
    for file in &rotated {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len < 8192 + 1024, "{} is {len} bytes", file.display());
    }
    let mut files: Vec<&Path> = rotated.iter().map(|p| p.as_path()).collect();
    files.push(&log);
    assert_eq!(count_tagged(&files, "myco/rot/"), 500);

    // logrotate moves the file away, then signals: the master reopens the path.
    let moved = log.with_extension("log.moved");
    std::fs::rename(&log, &moved).unwrap();
    let seen = master.daemon.line_count();
    master.daemon.signal(1);
    master.daemon.wait_for_line_after(seen, "event log .* \\(re\\)opened", WAIT);
    for i in 500..600 {
        raw.send(&ToMaster::Event {
            tag: format!("myco/rot/{i}"),
            data: json!({"i": i}),
            ts: 0,
            ack: false,
            jid: None,
        });
    }
    master.wait_event_where("the last event after SIGHUP", |t, _| t == "myco/rot/599");
    files.push(&moved);
    let rotated_again: Vec<std::path::PathBuf> = (1..1000)
        .map(|n| log.with_extension(format!("log.{n}")))
        .take_while(|p| p.exists())
        .collect();
    let mut all: Vec<&Path> = rotated_again.iter().map(|p| p.as_path()).collect();
    all.push(&log);
    all.push(&moved);
    assert_eq!(count_tagged(&all, "myco/rot/"), 600);
}

#[test]
fn presence_events_and_disconnects_reach_the_bus() {
    let (master, minion) = one_minion("presence_events: True\nloop_interval: 1");
    let present =
        master.wait_event("salt/presence/present", |d| d["present"] == json!(["minion1"]));
    assert!(present["_stamp"].is_string());
    master.wait_event("salt/presence/change", |d| d["new"] == json!(["minion1"]));
    drop(minion);
    let gone = master.wait_event("salt/minion/minion1/disconnected", |_| true);
    assert_eq!(gone["id"], "minion1");
    assert!(gone["reason"].is_string());
    master.wait_event("salt/presence/change", |d| d["lost"] == json!(["minion1"]));
    master.wait_event("salt/presence/present", |d| d["present"] == json!([]));
}

/// A file's permission bits in octal, as `ls` would show them.
fn mode(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

/// Return events carry `cmd.run` output: the event log, its rotations and the master's cache
/// files are 0600 like the job cache, and a log left 0644 (an older master, logrotate's
/// `create 0644`) is tightened when the master opens or reopens it.
#[test]
fn the_event_log_its_rotations_and_the_caches_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = halite_tests::TempDir::new();
    let log = dir.join("master/var/log/halite/events.log");
    let old = log.with_extension("log.2");
    for file in [&log, &old] {
        dir.write(file.strip_prefix(dir.path()).unwrap(), "");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let master = Master::start_in(dir, 0, "auto_accept: True\nevent_log_max_bytes: 4096");
    assert_eq!(mode(&log), "600", "an existing 0644 log is tightened at start");
    assert_eq!(mode(&old), "600", "and so are the rotations an older master left");
    let minion = Minion::start(&master, "minion1", "a", "");
    minion.wait_authenticated();
    let out = master.halite(&["minion1", "cmd.run", "echo secret"]);
    assert!(out.success(), "{out:?}");

    // One event over event_log_max_bytes: the next event (its runner's `ret`) rotates.
    let pad = "x".repeat(5000);
    assert!(master.run(&["event.send", "myco/pad", &format!("{{pad: {pad}}}")]).success());
    let rotated = log.with_extension("log.1");
    // Both: between the rename and the reopen there is a moment without `events.log`.
    wait_until(WAIT, "the log rotated", || rotated.exists() && log.exists());
    assert_eq!((mode(&rotated), mode(&log)), ("600".into(), "600".into()), "after rotation");

    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let seen = master.daemon.line_count();
    master.daemon.signal(1);
    master.daemon.wait_for_line_after(seen, "event log .* \\(re\\)opened", WAIT);
    assert_eq!(mode(&log), "600", "a 0644 log is tightened on SIGHUP");

    let cache = master.dir.join("master/var/cache/halite/master");
    let jobs: Vec<_> = std::fs::read_dir(cache.join("jobs")).unwrap().flatten().collect();
    assert_eq!(jobs.len(), 1);
    for file in ["load.json", "returns.jsonl"] {
        assert_eq!(mode(&jobs[0].path().join(file)), "600", "{file}");
    }
    assert_eq!(mode(&cache.join("grains.jsonl")), "600");
}
