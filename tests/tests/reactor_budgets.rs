//! What one event may cost the master (issue #11): a render's memory (the render worker and its
//! `reactor_render_max_bytes`), render time per SLS per second (`reactor_render_budget_ms`),
//! and `salt/auth` budgets kept per source address, so a hello flood starves no real minion.

use halite_common::crypto::KeyPair;
use halite_common::handshake::MinionHandshake;
use halite_common::proto::ToMaster;
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::{RawConn, RawMinion};
use halite_tests::serde_json::{json, Value};
use halite_tests::wait_until;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// `halite minion1 test.ping` answers `true`.
#[track_caller]
fn ping_answers(master: &Master) {
    let out = master.halite(&["minion1", "test.ping", "--out", "json"]);
    assert!(out.success(), "test.ping failed: {}{}", out.stdout, out.stderr);
    let value: Value = halite_tests::serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(value, json!({"minion1": true}));
}

/// The master's peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM value")
}

#[test]
fn a_render_doubling_a_string_dies_in_the_worker_not_in_the_master() {
    let bomb = "{% set s = namespace(x='a') %}{% for i in range(40) %}{% set s.x = s.x ~ s.x %}\
                {% endfor %}\nx: {{ s.x|length }}\n";
    let good = "ok:\n  runner.event.send:\n    - args:\n      - tag: myco/after/bomb\n";
    let rules = "  - 'myco/bomb':\n    - SLS/bomb.sls\n  - 'myco/good':\n    - SLS/good.sls";
    let (master, _sls) = Master::with_reactor(
        rules,
        &[("bomb.sls", bomb), ("good.sls", good)],
        "auto_accept: True\nreactor_render_max_bytes: 67108864",
    );
    let minion = Minion::start(&master, "minion1", "m1", "");
    minion.wait_authenticated();
    assert!(master.run(&["event.send", "myco/bomb"]).success());
    let error = master.wait_event("salt/reactor/error", |d| d["tag"] == "myco/bomb");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("reactor_render_max_bytes (67108864)"), "{error}");
    assert_eq!(error["kind"], "limit", "{error}");
    master.daemon.wait_for_line("render worker .*died", WAIT);
    // The master kept serving, and a fresh worker renders the next event.
    ping_answers(&master);
    assert!(master.run(&["event.send", "myco/good"]).success());
    master.wait_event("myco/after/bomb", |_| true);
    let peak = peak_rss_kib(master.daemon.pid());
    assert!(peak < 64 * 1024, "the master itself grew to {peak} KiB");
    let stats: Value =
        halite_tests::serde_json::from_str(&master.run(&["reactor.stats", "--out", "json"]).stdout)
            .expect("JSON");
    assert_eq!(stats["errors"], 1, "{stats}");
}

#[test]
fn a_flood_at_a_costly_sls_meets_the_render_budget_and_pings_still_answer() {
    // About 20-50 ms of rendering each, within the fuel: the cost the rate limit did not see.
    let costly = "{% for i in range(1000) %}{% for j in range(500) %}{% endfor %}{% endfor %}\n\
                  done:\n  runner.event.send:\n    - args:\n      - tag: myco/costly/done\n";
    let (master, _sls) = Master::with_reactor(
        "  - 'myco/costly':\n    - SLS/costly.sls",
        &[("costly.sls", costly)],
        "auto_accept: True\nreactor_render_budget_ms: 100",
    );
    let minion = Minion::start(&master, "minion1", "m1", "");
    minion.wait_authenticated();
    let mut flooder = RawMinion::authenticate(master.addr, "flooder");
    for _ in 0..300 {
        let data = json!({"n": 1});
        flooder.send(&ToMaster::Event {
            tag: "myco/costly".into(),
            data,
            ts: 0,
            ack: false,
            jid: None,
        });
    }
    ping_answers(&master);
    let refused = master.wait_event("salt/reactor/refused", |d| {
        d["tag"] == "myco/costly" && d["reactor_render_budget_ms"] == 100
    });
    assert!(refused["reason"].as_str().unwrap().contains("render time budget"), "{refused}");
    master.wait_event("myco/costly/done", |_| true);
    let stats: Value =
        halite_tests::serde_json::from_str(&master.run(&["reactor.stats", "--out", "json"]).stdout)
            .expect("JSON");
    assert!(stats["budget_refused"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["rendered"].as_u64().unwrap() < 300, "{stats}");
}

/// A reaction's target is parsed and matched off the loop, and that time now counts as its
/// event's render time. Before, a file that rendered in a millisecond but whose target (from
/// event data) compiled 32 regexes, 50 ms and more each time, passed every render budget.
#[test]
fn a_reactions_costly_target_counts_against_its_render_budget() {
    let sls = "ping:\n  local.test.ping:\n    - tgt: {{ data['tgt'] }}\n    \
               - tgt_type: compound\n";
    let (master, _sls) = Master::with_reactor(
        "  - 'myco/target/*':\n    - SLS/target.sls",
        &[("target.sls", sls)],
        "reactor_render_budget_ms: 40",
    );
    let costly = vec![r"E@\w{5}x"; 32].join(" or ");
    let data = json!({ "tgt": costly }).to_string();
    // One event at a time, each after the last one's outcome: its target's time is charged by
    // then. The budget's window is a second; a few tries in case one ran across its end.
    for i in 0..5 {
        let tag = format!("myco/target/{i}");
        assert!(master.run(&["event.send", &tag, &data]).success());
        let (outcome, data) = {
            let mut found = None;
            halite_tests::wait_until(WAIT, "the event's reaction or refusal", || {
                found = master.events().into_iter().find(|(t, d)| {
                    (t == "salt/reactor/error" || t == "salt/reactor/refused") && d["tag"] == tag
                });
                found.is_some()
            });
            found.unwrap()
        };
        if outcome == "salt/reactor/refused" {
            assert_eq!(data["reactor_render_budget_ms"], 40, "{data}");
            assert!(data["reason"].as_str().unwrap().contains("render time budget"), "{data}");
            return;
        }
        // Parsed, and no minion matched.
        assert!(data["message"].as_str().unwrap().contains("No minions matched"), "{data}");
    }
    panic!("five events whose reactions each parsed a 32-regex target were never refused");
}

/// The seed article's Minion.sls (DESIGN §1).
/// (Kept once, in the reactor corpus, where it is also checked against Salt.)
const MINION_SLS: &str = include_str!("../reactor-corpus/files/seed-minion.sls");

#[test]
fn a_hello_flood_from_one_address_does_not_starve_a_real_minion_from_another() {
    let (master, _sls) = Master::with_reactor(
        "  - 'salt/auth':\n    - SLS/Minion.sls",
        &[("Minion.sls", MINION_SLS)],
        "reactor_rate_limit: 10",
    );
    // Pending hellos from 127.0.0.2, one new id each, until the test is done.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, sent, addr) = (stop.clone(), sent.clone(), master.addr);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                let (mut conn, master_key) =
                    RawConn::connect_from(Ipv4Addr::new(127, 0, 0, 2), addr).expect("greeted");
                let keys = KeyPair::generate();
                let (_, hello) = MinionHandshake::start(&format!("flood{n}"), &keys, &master_key)
                    .expect("a real master key");
                conn.send_frame(&hello);
                let _ = conn.read_frame();
                n += 1;
                sent.store(n, Ordering::Relaxed);
            }
        })
    };
    wait_until(WAIT, "the flood exhausts a rate window", || sent.load(Ordering::Relaxed) >= 60);
    master.wait_event("salt/reactor/refused", |d| d["tag"] == "salt/auth");
    // One hello only: a refused one would wait 300 s for its retry.
    let minion = Minion::start(&master, "Minion9", "m9", "acceptance_wait_time: 300");
    minion.wait_authenticated();
    master.wait_event("salt/minion/Minion9/start", |_| true);
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood thread");
    let refused = master.wait_event("salt/reactor/refused", |d| d["tag"] == "salt/auth");
    assert_eq!(refused["source"], "127.0.0.2", "{refused}");
    assert!(
        !master
            .events()
            .iter()
            .any(|(t, d)| t == "salt/reactor/refused" && d["source"] == "127.0.0.1"),
        "the real minion's address was refused"
    );
}

/// Review of issue #11's worker: SIGTERM used to drop the events still waiting for the render
/// worker without a word. Every matched event is now either rendered (its reaction ran) or
/// named in a `salt/reactor/refused` saying the master stopped first.
#[test]
fn a_stop_accounts_for_every_event_still_waiting_for_the_worker() {
    // Nested: minijinja refuses a `range` over 100,000 elements, which made every render a
    // quick error (neither rendered nor refused at stop) and the test a race.
    let slow = "{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}\
                done:\n  runner.event.send:\n    - args:\n      - tag: myco/done/{{ data['data']['i'] }}\n";
    let (master, _sls) = Master::with_reactor(
        "  - 'myco/slow/*':\n    - SLS/slow.sls",
        &[("slow.sls", slow)],
        "auto_accept: True\nreactor_rate_limit: 100000\nreactor_render_budget_ms: 0",
    );
    let mut raw = RawMinion::authenticate(master.addr, "sender");
    const N: usize = 40;
    for i in 0..N {
        let (tag, data, ack) = (format!("myco/slow/{i}"), json!({ "i": i }), i == N - 1);
        raw.send(&ToMaster::Event { tag, data, ts: 0, ack, jid: None });
    }
    // The acknowledgement of the last event: all of them are on the master's bus.
    loop {
        match raw.recv() {
            Some(halite_common::proto::ToMinion::EventAck { .. }) => break,
            Some(_) => continue,
            None => panic!("no EventAck"),
        }
    }
    let log = master.event_log();
    let _tree = master.stop(); // kept until the log is read
    let text = std::fs::read_to_string(log).expect("event log");
    let events: Vec<Value> =
        text.lines().map(|l| halite_tests::serde_json::from_str(l).expect("JSON line")).collect();
    let stopped: Vec<&Value> = events
        .iter()
        .filter(|e| e["tag"] == "salt/reactor/refused")
        .filter(|e| e["data"]["reason"] == "the master stopped before this event was rendered")
        .collect();
    let errors: Vec<&Value> = events.iter().filter(|e| e["tag"] == "salt/reactor/error").collect();
    assert!(errors.is_empty(), "the slow SLS must render, not fail: {errors:?}");
    // Each render burns a third of its fuel (tens of ms): 40 of them outlast the SIGTERM.
    assert!(!stopped.is_empty(), "40 slow renders cannot all finish before SIGTERM");
    for i in 0..N {
        let done = events.iter().any(|e| e["tag"] == format!("myco/done/{i}"));
        let refused = stopped.iter().any(|e| e["data"]["tag"] == format!("myco/slow/{i}"));
        assert!(done ^ refused, "event {i}: rendered {done}, refused at stop {refused}");
    }
}

/// Review of issue #10: the render queue was capped by count only (10,000 events), and each
/// event may be up to `max_event_bytes` (1 MiB), so one minion firing big events at a rule
/// made the master hold gigabytes while the worker lagged. The queue is now capped in bytes
/// too: past it, events are refused with a `salt/reactor/refused` that says so. (With the
/// render-time budget on, its refusals drain the queue too; here it is off, as an operator may
/// set it.)
#[test]
fn the_render_queue_is_capped_in_bytes_not_only_in_events() {
    let slow = "{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}\
                ok:\n  runner.event.send:\n    - args:\n      - tag: myco/big/done\n";
    let (master, _sls) = Master::with_reactor(
        "  - 'myco/big/*':\n    - SLS/slow.sls",
        &[("slow.sls", slow)],
        "auto_accept: True\nreactor_rate_limit: 100000\nreactor_render_budget_ms: 0\n\
         event_log_max_bytes: 1073741824\nevent_log_backlog_bytes: 1048576",
    );
    let mut raw = RawMinion::authenticate(master.addr, "big");
    let pad = "x".repeat(700 * 1024);
    const N: usize = 150; // 105 MB in all
    for i in 0..N {
        let (tag, data) = (format!("myco/big/{i}"), json!({ "i": i, "pad": pad }));
        raw.send(&ToMaster::Event { tag, data, ts: 0, ack: i == N - 1, jid: None });
    }
    loop {
        match raw.recv() {
            Some(halite_common::proto::ToMinion::EventAck { .. }) => break,
            Some(_) => continue,
            None => panic!("no EventAck"),
        }
    }
    let peak = peak_rss_kib(master.daemon.pid());
    let log = master.event_log();
    let _tree = master.stop(); // kept until the log is read
    let text = std::fs::read_to_string(log).expect("event log");
    let full: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with(r#"{"tag":"salt/reactor/refused""#))
        .map(|l| halite_tests::serde_json::from_str::<Value>(l).expect("JSON line"))
        .map(|e| e["data"].clone())
        .filter(|d| d["reason"] == "the render queue is full")
        .collect();
    assert!(!full.is_empty(), "105 MB of events all waited for the worker");
    assert_eq!(full[0]["reactor_queue_max_bytes"], 64 << 20, "{}", full[0]);
    assert!(full[0]["queued_bytes"].as_u64().unwrap() <= 64 << 20, "{}", full[0]);
    // Queued events, the bus and the log's buffers: well under the 105 MB sent.
    // The capped queue (64 MiB) and the rest (~36 MiB here): without the cap the queue alone
    // held the 105 MB. The log's backlog is kept small: at its default (64 MiB) a log thread
    // slowed by a busy machine added up to that much more, and the bound was a race.
    assert!(peak < 128 * 1024, "the master grew to {peak} KiB");
}
