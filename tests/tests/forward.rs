//! `event_return: redis` against a real `redis-server`: every logged event reaches the stream
//! once and in order — through a Redis outage and master restarts — the tag lists are
//! honoured, and a wrong password or an unreachable Redis is a clear, repeated log line while
//! the master serves on.

use halite_common::proto::ToMaster;
use halite_tests::cluster::{Master, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::redis::{RedisClient, RedisServer};
use halite_tests::wait_until;
use serde_json::{json, Value};

const STREAM: &str = "halite:events";

fn config(redis: &RedisServer, extra: &str) -> String {
    format!(
        "id: m1\nauto_accept: true\nevent_return: redis\nredis.host: 127.0.0.1\n\
         redis.port: {}\n{extra}",
        redis.port
    )
}

fn fire(raw: &mut RawMinion, prefix: &str, n: usize) {
    for i in 0..n {
        raw.send(&ToMaster::Event {
            tag: format!("{prefix}/{i}"),
            data: json!({"i": i}),
            ts: 0,
            ack: false,
            jid: None,
        });
    }
}

/// The stream's entries as (tag, data, master).
fn stream(client: &mut RedisClient) -> Vec<(String, Value, String)> {
    client
        .entries(STREAM)
        .into_iter()
        .map(|mut e| {
            let data = serde_json::from_str(&e["data"]).expect("data is JSON");
            (e.remove("tag").unwrap(), data, e.remove("master").unwrap())
        })
        .collect()
}

/// Waits until the stream holds exactly the event log's events, in its order.
#[track_caller]
fn in_step(master: &Master, client: &mut RedisClient) -> usize {
    let mut last = (0, 0);
    wait_until(WAIT, "the stream holds every logged event", || {
        let logged = master.events();
        let streamed = stream(client);
        last = (logged.len(), streamed.len());
        logged.len() == streamed.len()
            && logged
                .iter()
                .zip(&streamed)
                .all(|((t, d), (st, sd, m))| t == st && d == sd && m == "m1")
    });
    // Had an event been stored twice, the lists would differ in length or order forever.
    last.0
}

#[test]
fn every_logged_event_reaches_the_stream_once_through_an_outage_and_restarts() {
    let mut redis = RedisServer::start(None);
    let master = Master::start(&config(&redis, ""));
    let mut client = redis.client();
    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    fire(&mut raw, "test/first", 100);
    master.wait_event("test/first/99", |_| true);
    in_step(&master, &mut client);

    // Redis goes away while 1,000 events are logged: the master says so and serves on.
    redis.stop();
    fire(&mut raw, "test/outage", 1000);
    master.wait_event("test/outage/999", |_| true);
    let port = redis.port;
    master.daemon.wait_for_line(
        &format!(r"event_return: cannot forward events to redis 127\.0\.0\.1:{port}: .*next try"),
        WAIT,
    );
    let ping = master.run(&["manage.up"]);
    assert!(ping.success(), "{ping:?}");
    wait_until(WAIT, "the status shows the lag", || {
        let out = master.run(&["event_return.status", "--out", "json"]);
        let status: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        status["connected"] == false && status["behind_events"].as_u64() >= Some(1000)
    });
    redis.restart();
    let mut client = redis.client();
    in_step(&master, &mut client);

    // The master stops with 2,000 events logged and not forwarded (Redis is away again);
    // the next master goes on from the checkpoint.
    redis.stop();
    fire(&mut raw, "test/midstream", 2000);
    master.wait_event("test/midstream/1999", |_| true);
    drop(raw);
    let dir = master.stop();
    redis.restart();
    let master = Master::start_in(dir, 0, &config(&redis, ""));
    master.daemon.wait_for_line(r"event_return: forwarding events .*checkpoint found", WAIT);
    let mut raw = RawMinion::authenticate(master.addr, "flooder2");
    fire(&mut raw, "test/after", 10);
    master.wait_event("test/after/9", |_| true);
    let mut client = redis.client();
    let total = in_step(&master, &mut client);
    assert!(total > 3110, "{total}");
    let status: Value =
        serde_json::from_str(&master.run(&["event_return.status", "--out", "json"]).stdout)
            .unwrap();
    assert_eq!(status["connected"], true, "{status}");
}

#[test]
fn the_tag_lists_choose_what_is_forwarded() {
    let redis = RedisServer::start(None);
    let extra = "event_return_whitelist: ['test/*']\nevent_return_blacklist: ['test/secret/*']\n";
    let master = Master::start(&config(&redis, extra));
    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    fire(&mut raw, "test/secret", 3);
    fire(&mut raw, "other", 3);
    fire(&mut raw, "test/ok", 3);
    master.wait_event("test/ok/2", |_| true);
    let mut client = redis.client();
    wait_until(WAIT, "the wanted events are in the stream", || stream(&mut client).len() == 3);
    let tags: Vec<String> = stream(&mut client).into_iter().map(|(t, _, _)| t).collect();
    assert_eq!(tags, ["test/ok/0", "test/ok/1", "test/ok/2"]);
    // The skipped events still moved the checkpoint: a restart sends nothing again.
    let dir = master.stop();
    let master = Master::start_in(dir, 0, &config(&redis, extra));
    let mut raw = RawMinion::authenticate(master.addr, "flooder2");
    fire(&mut raw, "test/ok2", 1);
    master.wait_event("test/ok2/0", |_| true);
    wait_until(WAIT, "the next event is in the stream", || stream(&mut client).len() == 4);
    assert_eq!(stream(&mut client)[3].0, "test/ok2/0");
}

#[test]
fn a_wrong_password_or_no_redis_is_said_again_and_again_while_the_master_serves() {
    let redis = RedisServer::start(Some("right-secret"));
    let master = Master::start(&config(&redis, "redis.password: wrong-secret\n"));
    let port = redis.port;
    let line = format!(
        r"event_return: cannot forward events to redis 127\.0\.0\.1:{port}: AUTH: WRONGPASS"
    );
    master.daemon.wait_for_line(&line, WAIT);
    // Said again at the next try, not once and then silence.
    let again = master.daemon.line_count();
    master.daemon.wait_for_line_after(again, &line, WAIT);
    assert!(
        !master.daemon.lines().iter().any(|l| l.contains("wrong-secret")),
        "the password is never logged"
    );
    let up = master.run(&["manage.up"]);
    assert!(up.success(), "{up:?}");
    let status = master.run(&["event_return.status", "--out", "json"]);
    assert!(status.stdout.contains("WRONGPASS"), "{status:?}");
    assert!(redis.client().entries(STREAM).is_empty());

    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let master =
        Master::start(&format!("event_return: redis\nredis.host: 127.0.0.1\nredis.port: {port}\n"));
    let line =
        format!(r"event_return: cannot forward events to redis 127\.0\.0\.1:{port}: .*[Rr]efused");
    master.daemon.wait_for_line(&line, WAIT);
    let again = master.daemon.line_count();
    master.daemon.wait_for_line_after(again, &line, WAIT);
    let ping = master.run(&["manage.up"]);
    assert!(ping.success(), "{ping:?}");
}
