//! The master's Prometheus endpoint through the real binaries: known things are done (a key
//! accepted, pings, a job to a minion that is gone, events with known tags, reactor rules
//! that react and fail), `/metrics` is scraped over a real socket and parsed by a strict
//! text-format parser (`openmetrics-parser`, not the master's own code), and the values must
//! be what was done. Attacks: a flood of hostile tags adds no series; slow, oversized, wrong
//! and pipelined requests are refused as the webhook listener refuses them; the endpoint is
//! on 127.0.0.1 unless told otherwise, and nothing listens without `metrics_port`.

use halite_common::proto::ToMaster;
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::http::{closed_by_master, connect, exchange, read_response};
use halite_tests::raw::RawMinion;
use halite_tests::redis::RedisServer;
use halite_tests::serde_json::json;
use halite_tests::wait_until;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;

/// The metrics address, from the master's log.
fn metrics_addr(master: &Master) -> SocketAddr {
    let line = master.daemon.wait_for_line(r"metrics on http://(\S+)/metrics", WAIT);
    line[1].as_deref().unwrap().parse().unwrap()
}

/// One scrape, parsed.
struct Scrape {
    text: String,
    parsed: MetricsExposition<PrometheusType, PrometheusValue>,
}

impl Scrape {
    /// `GET /metrics` on a new connection; the text must parse, and follow Halite's naming.
    #[track_caller]
    fn take(addr: SocketAddr) -> Scrape {
        let request = b"GET /metrics HTTP/1.1\r\nHost: halite\r\nConnection: close\r\n\r\n";
        let (response, _) = exchange(addr, request);
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = response.body;
        let parsed = parse_prometheus(&text)
            .unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"));
        for (name, family) in &parsed.families {
            assert!(name.starts_with("halite_"), "{name}");
            assert!(!family.help.is_empty(), "{name} has no HELP");
            let counter = family.family_type == PrometheusType::Counter;
            assert_eq!(counter, name.ends_with("_total"), "{name} is a {}", family.family_type);
            assert!(text.contains(&format!("# TYPE {name} {}\n", family.family_type)), "{name}");
        }
        Scrape { text, parsed }
    }

    /// The value of `family`'s sample whose labels are `labels`.
    #[track_caller]
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let Some(f) = self.parsed.families.get(family) else {
            panic!("no family {family} in\n{}", self.text)
        };
        let sample = f.iter_samples().find(|s| {
            let set = s.get_labelset().unwrap();
            set.iter().count() == labels.len()
                && labels.iter().all(|(n, v)| set.get_label_value(n) == Some(*v))
        });
        let sample = sample.unwrap_or_else(|| panic!("no {family}{labels:?} in\n{}", self.text));
        match &sample.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
            other => panic!("{family} is {other:?}"),
        }
    }

    fn get(&self, family: &str) -> f64 {
        self.value(family, &[])
    }

    /// Every series: its family and label set.
    fn series(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for (name, family) in &self.parsed.families {
            for sample in family.iter_samples() {
                let set = sample.get_labelset().unwrap();
                let mut labels: Vec<String> =
                    set.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                labels.sort();
                all.insert(format!("{name}{{{}}}", labels.join(",")));
            }
        }
        all
    }
}

const REACT_SLS: &str = "reacted:
  runner.event.send:
    - tag: myco/reacted
    - data:
        from: {{ tag }}
";

#[test]
fn a_scrape_shows_what_was_done() {
    let rules =
        "  - 'myco/metrics/*':\n    - SLS/react.sls\n  - 'myco/broken':\n    - SLS/broken.sls\n";
    let files = [("react.sls", REACT_SLS), ("broken.sls", "x:\n  {{ data['nope']['deeper'] }}\n")];
    let (master, _sls) = Master::with_reactor(rules, &files, "metrics_port: 0\ntimeout: 3\n");
    let addr = metrics_addr(&master);
    let first = Scrape::take(addr);
    assert_eq!(first.value("halite_minion_keys", &[("state", "accepted")]), 0.0);
    assert_eq!(first.get("halite_minions_connected"), 0.0);
    assert_eq!(first.get("halite_jobs_published_total"), 0.0);
    assert!(!first.parsed.families.contains_key("halite_forward_lag_events"), "no forwarding");

    // Two minions pend; the scrape sees them, then their keys are accepted.
    let web1 = Minion::start(&master, "web1", "web1", "");
    let ghost = Minion::start(&master, "ghost", "ghost", "");
    web1.wait_pending();
    ghost.wait_pending();
    let pending = Scrape::take(addr);
    assert_eq!(pending.value("halite_minion_keys", &[("state", "pending")]), 2.0);
    assert!(master.key(&["-A", "-y"]).success());
    web1.wait_authenticated();
    ghost.wait_authenticated();
    wait_until(WAIT, "both minions connected", || master.presence().len() == 2);
    // One goes away for good: jobs to it time out.
    drop(ghost);
    master.wait_event("salt/minion/ghost/disconnected", |_| true);

    for _ in 0..3 {
        let ping = master.halite(&["web1", "test.ping"]);
        assert_eq!(ping.stdout, "web1:\n    True\n", "{ping:?}");
    }
    let both = master.halite(&["-L", "web1,ghost", "test.ping"]);
    assert!(both.stdout.contains("web1:\n    True\n"), "{both:?}");
    for tag in ["halite/metrics/one", "halite/metrics/two", "myco/metrics/a", "myco/broken"] {
        assert!(master.run(&["event.send", tag]).success(), "{tag}");
    }
    master.wait_event("myco/reacted", |d| d["from"] == "myco/metrics/a");
    master.wait_event("salt/reactor/error", |d| d.to_string().contains("broken.sls"));
    // The job to web1 and ghost passes the master's `timeout` (3 s) with ghost silent.
    let mut scrape = Scrape::take(addr);
    wait_until(WAIT, "the job to ghost timed out", || {
        scrape = Scrape::take(addr);
        scrape.get("halite_jobs_timed_out_total") == 1.0
    });

    assert_eq!(scrape.get("halite_minions_connected"), 1.0);
    assert_eq!(scrape.value("halite_minion_keys", &[("state", "accepted")]), 2.0);
    assert_eq!(scrape.value("halite_minion_keys", &[("state", "pending")]), 0.0);
    assert_eq!(scrape.value("halite_minion_keys", &[("state", "rejected")]), 0.0);
    assert_eq!(scrape.value("halite_minion_keys", &[("state", "denied")]), 0.0);
    assert_eq!(scrape.get("halite_jobs_published_total"), 4.0);
    assert_eq!(scrape.get("halite_job_returns_total"), 4.0);
    assert_eq!(scrape.get("halite_jobs_timed_out_total"), 1.0);
    assert_eq!(scrape.get("halite_reactor_matched_total"), 2.0);
    assert_eq!(scrape.get("halite_reactor_rendered_total"), 2.0);
    assert_eq!(scrape.get("halite_reactor_reactions_total"), 1.0);
    assert_eq!(scrape.get("halite_reactor_errors_total"), 1.0);
    for reason in ["rate", "budget", "other"] {
        assert_eq!(scrape.value("halite_reactor_refused_total", &[("reason", reason)]), 0.0);
    }
    assert_eq!(scrape.get("halite_event_log_rotations_total"), 0.0);
    assert!(scrape.get("halite_process_resident_memory_bytes") > 1e6);
    let fds = scrape.get("halite_process_open_fds");
    assert!(fds > 5.0 && fds < scrape.get("halite_process_max_fds"), "{fds}");
    assert_eq!(scrape.value("halite_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    // Everything is quiet now: the counts by first tag segment are the event log's, line for
    // line, and so is its size.
    let events = master.events();
    let count = |prefix: &str| {
        events.iter().filter(|(t, _)| t.split('/').next() == Some(prefix)).count() as f64
    };
    let (salt, halite) = (count("salt"), count("halite"));
    let other = events.len() as f64 - salt - halite;
    assert_eq!(scrape.value("halite_events_total", &[("prefix", "halite")]), 2.0);
    assert_eq!(halite, 2.0);
    assert_eq!(scrape.value("halite_events_total", &[("prefix", "salt")]), salt);
    assert_eq!(scrape.value("halite_events_total", &[("prefix", "other")]), other);
    let log_bytes = std::fs::metadata(master.event_log()).unwrap().len() as f64;
    assert_eq!(scrape.get("halite_event_log_bytes_total"), log_bytes);

    // `/healthz` answers from the loop.
    let (health, _) = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
}

#[test]
fn a_flood_of_hostile_tags_adds_no_series() {
    let master = Master::start("auto_accept: True\nmetrics_port: 0\n");
    let addr = metrics_addr(&master);
    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    wait_until(WAIT, "flooder live", || master.presence() == ["flooder"]);
    let before = Scrape::take(addr);
    const N: usize = 1000;
    for i in 0..N {
        // Quotes, braces, backslashes and a look-alike first segment: each a new label value
        // if tags made series.
        let tag = format!("halite\"}} 1 {i}\\/x{{le=\"{i}\"}}");
        raw.send(&ToMaster::Event { tag, data: json!({}), ts: 0, ack: false, jid: None });
    }
    raw.send(&ToMaster::Event {
        tag: "myco/last".into(),
        data: json!({}),
        ts: 0,
        ack: false,
        jid: None,
    });
    master.wait_event("myco/last", |_| true);
    let after = Scrape::take(addr);
    assert_eq!(after.series(), before.series(), "the flood changed the set of series");
    let other = |s: &Scrape| s.value("halite_events_total", &[("prefix", "other")]);
    assert_eq!(other(&after) - other(&before), N as f64 + 1.0);
    assert_eq!(after.value("halite_events_total", &[("prefix", "halite")]), 0.0);
    assert!(!after.text.contains("le="), "a tag reached the text:\n{}", after.text);
}

#[test]
fn wrong_slow_oversized_and_pipelined_requests_are_refused_as_webhooks_are() {
    let master = Master::start("metrics_port: 0\n");
    let addr = metrics_addr(&master);
    let cases: [(&str, &[u8], u16); 6] = [
        ("unknown path", b"GET /hook/deploy HTTP/1.1\r\n\r\n", 404),
        ("a path below", b"GET /metrics/x HTTP/1.1\r\n\r\n", 404),
        ("POST", b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        ("DELETE", b"DELETE /healthz HTTP/1.1\r\n\r\n", 405),
        ("a body", b"GET /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", 413),
        ("chunked", b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    ];
    for (what, request, status) in cases {
        let (response, mut stream) = exchange(addr, request);
        assert_eq!(response.status, status, "{what}: {}", response.body);
        assert_eq!(response.header("connection"), Some("close"), "{what}");
        assert!(closed_by_master(&mut stream), "{what}: the connection stayed open");
        if status == 405 {
            assert_eq!(response.header("allow"), Some("GET"), "{what}");
        }
    }
    master.daemon.wait_for_line(r"metrics from 127\.0\.0\.1:\d+ refused: 405 method POST", WAIT);

    // A head past 16 KiB: 431 before more of it is read.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for n in 0..400 {
        big.extend(format!("X-Pad-{n}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    let (response, mut stream) = exchange(addr, &big);
    assert_eq!(response.status, 431, "{}", response.body);
    assert!(closed_by_master(&mut stream));

    // Pipelined: answered in order on the kept connection, up to the bad one, then closed.
    let mut stream = connect(addr);
    let three =
        b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n";
    stream.write_all(three).unwrap();
    assert_eq!(read_response(&mut stream).body, "ok");
    let metrics = read_response(&mut stream);
    assert!(metrics.body.contains("# TYPE halite_events_total counter\n"), "{}", metrics.body);
    assert_eq!(read_response(&mut stream).status, 404);
    assert!(closed_by_master(&mut stream));

    // A slow request is cut off at its deadline (10 s) while scrapes are served meanwhile.
    let mut slow = connect(addr);
    slow.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: a").unwrap();
    slow.write_all(b"aaa").unwrap();
    assert_eq!(Scrape::take(addr).value("halite_minion_keys", &[("state", "accepted")]), 0.0);
    let timeout = read_response(&mut slow);
    assert_eq!(timeout.status, 408, "{}", timeout.body);
    assert!(closed_by_master(&mut slow));
    master.daemon.wait_for_line(r"refused: 408 request not received within 10s", WAIT);

    // Four connections per address; a fifth is closed unread.
    let seen = master.daemon.line_count();
    let held: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    wait_until(WAIT, "four metrics connections", || {
        let lines = master.daemon.lines();
        lines[seen..].iter().filter(|l| l.contains("metrics connection from")).count() >= 4
    });
    let mut fifth = connect(addr);
    assert!(closed_by_master(&mut fifth), "a fifth connection from 127.0.0.1 stayed open");
    master.daemon.wait_for_line(
        r"refused metrics connection from 127\.0\.0\.1:\d+: 4 metrics connections from this address",
        WAIT,
    );
    drop(held);
}

fn fire(raw: &mut RawMinion, prefix: &str, n: usize) {
    for i in 0..n {
        let tag = format!("{prefix}/{i}");
        raw.send(&ToMaster::Event { tag, data: json!({"i": i}), ts: 0, ack: false, jid: None });
    }
}

#[test]
fn forwarding_lag_is_scraped_through_a_redis_outage() {
    let mut redis = RedisServer::start(None);
    let master = Master::start(&format!(
        "metrics_port: 0\nid: m1\nauto_accept: true\nevent_return: redis\n\
         redis.host: 127.0.0.1\nredis.port: {}\n",
        redis.port
    ));
    let addr = metrics_addr(&master);
    let mut raw = RawMinion::authenticate(master.addr, "flooder");
    fire(&mut raw, "test/first", 10);
    master.wait_event("test/first/9", |_| true);
    let caught_up = |s: &Scrape| {
        s.get("halite_forward_connected") == 1.0
            && s.get("halite_forward_lag_events") == 0.0
            && s.get("halite_forward_lag_bytes") == 0.0
            && s.get("halite_forward_events_total") == master.events().len() as f64
    };
    wait_until(WAIT, "forwarding caught up", || caught_up(&Scrape::take(addr)));

    // Redis goes away while 300 events are logged: the scrape shows the lag grow.
    redis.stop();
    fire(&mut raw, "test/outage", 300);
    master.wait_event("test/outage/299", |_| true);
    let mut scrape = Scrape::take(addr);
    wait_until(WAIT, "the lag to show", || {
        scrape = Scrape::take(addr);
        scrape.get("halite_forward_lag_events") >= 300.0
    });
    assert_eq!(scrape.get("halite_forward_connected"), 0.0);
    assert!(scrape.get("halite_forward_failures_total") >= 1.0);
    assert!(scrape.get("halite_forward_lag_bytes") > 300.0 * 30.0);
    assert_eq!(scrape.get("halite_forward_skipped_total"), 0.0);

    // Back: the lag drains to nothing and every logged event was forwarded.
    redis.restart();
    wait_until(WAIT, "forwarding caught up again", || caught_up(&Scrape::take(addr)));
}

/// The TCP addresses process `pid` listens on, from `/proc` (its socket inodes, matched
/// against the kernel's tables of listening sockets).
fn listening(pid: u32) -> BTreeSet<String> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut found = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // `0A` is LISTEN.
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                found.insert(cols[1].to_string());
            }
        }
    }
    found
}

/// `0100007F:1F90` for 127.0.0.1:8080, as `/proc/net/tcp` writes it.
fn proc_addr(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else { panic!("{addr}") };
    format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port())
}

#[test]
fn the_endpoint_is_on_loopback_by_default_and_absent_without_metrics_port() {
    let off = Master::start("");
    let pid = off.daemon.pid();
    assert_eq!(listening(pid), BTreeSet::from([proc_addr(off.addr)]), "only the minion port");
    assert!(!off.daemon.lines().iter().any(|l| l.contains("metrics on")));

    let on = Master::start("metrics_port: 0\n");
    let addr = metrics_addr(&on);
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let expected = BTreeSet::from([proc_addr(on.addr), proc_addr(addr)]);
    assert_eq!(listening(on.daemon.pid()), expected);
    assert_eq!(Scrape::take(addr).get("halite_minions_connected"), 0.0);
}

/// The parser these tests trust refuses what a sloppy renderer could write.
#[test]
fn the_parser_is_strict() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n";
    let parsed = parse_prometheus(good).unwrap();
    let sample = parsed.families["a_total"].iter_samples().next().unwrap().get_labelset().unwrap();
    assert_eq!(sample.get_label_value("x"), Some("q\"\\\n"));
    for bad in [
        "# TYPE a_total counter\na_total{x=\"unterminated} 1\n",
        "# TYPE a_total counter\na_total{x=\"a\"b\"} 1\n",
        "# TYPE a_total counter\na_total one\n",
        "# TYPE a_total counter\na_total 1\ngarbage line here\n",
        "# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted:\n{bad}");
    }
}
