//! The beacons manager in memory: Salt's tags and `id`, bad configs left off, intervals,
//! enable/disable, `onchangeonly`.

use super::*;
use serde_json::json;

fn beacons(config: Value) -> (Beacons, mio::Poll) {
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), Token(2)).unwrap());
    (Beacons::new("web1", &config, poll.registry(), waker), poll)
}

#[test]
fn bad_beacons_are_off_and_the_rest_run() {
    let (b, _poll) = beacons(json!({
        "nosuch": [{"x": 1}],
        "diskusage": {"/": "90%"},
        "memusage": [{"percent": "0%"}],
        "watch_tmp": [{"beacon_module": "inotify"}, {"files": {"/tmp": {"mask": ["bogus"]}}}],
    }));
    let on: Vec<&str> = b.list.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(on, ["memusage"]);
    let off: Vec<&str> = b.off.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(off, ["nosuch", "diskusage", "watch_tmp"]);
}

#[test]
fn events_carry_salts_tag_and_id_and_follow_the_interval() {
    let (mut b, _poll) = beacons(json!({"memusage": [{"percent": "0%"}, {"interval": 60}]}));
    let t0 = Instant::now();
    let events = b.tick(t0, false);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tag, "salt/beacon/web1/memusage/");
    assert_eq!(events[0].data["id"], "web1");
    assert!(events[0].data["memusage"].is_number());
    assert!(b.tick(t0 + Duration::from_secs(59), false).is_empty(), "not due yet");
    assert_eq!(b.next_deadline(), Some(t0 + Duration::from_secs(60)));
    assert_eq!(b.tick(t0 + Duration::from_secs(60), false).len(), 1);
}

#[test]
fn disabled_and_state_runs_fire_nothing() {
    let config = json!({"memusage": [{"percent": 0}, {"disable_during_state_run": true}]});
    let (mut b, _poll) = beacons(config);
    let t0 = Instant::now();
    assert!(b.tick(t0, true).is_empty(), "a state run is in progress");
    b.switch_one("memusage", false);
    assert!(b.tick(t0 + Duration::from_secs(1), false).is_empty());
    b.switch_one("memusage", true);
    b.switch_all(false);
    assert!(b.tick(t0 + Duration::from_secs(2), false).is_empty());
    b.switch_all(true);
    assert_eq!(b.tick(t0 + Duration::from_secs(3), false).len(), 1);
}

#[test]
fn onchangeonly_drops_repeats() {
    let (mut b, _poll) = beacons(json!({"memusage": [{"percent": 0}, {"onchangeonly": true}]}));
    let mut fired = Vec::new();
    let payload: Payload = [("memusage".to_string(), json!(50.0))].into_iter().collect();
    b.fired(0, vec![payload.clone()], &mut fired);
    b.fired(0, vec![payload], &mut fired);
    assert_eq!(fired.len(), 1);
}

#[test]
fn list_shows_the_config_with_salts_enabled_items() {
    let config = json!({"memusage": [{"percent": "90%"}], "bad": [{"x": 1}]});
    let (mut b, _poll) = beacons(config);
    let bound = crate::functions::bind_on_loop("beacons.disable_beacon", &[json!("memusage")]);
    let out = b.call("beacons.disable_beacon", &bound.ok().unwrap());
    assert_eq!(out.ret, json!({"comment": "Disabled beacon memusage on minion.", "result": true}));
    let bound = crate::functions::bind_on_loop("beacons.list", &[]).ok().unwrap();
    let out = b.call("beacons.list", &bound);
    assert_eq!(
        out.ret,
        json!("beacons:\n  bad:\n  - x: 1\n  memusage:\n  - percent: 90%\n  - enabled: false\n")
    );
    let bound = crate::functions::bind_on_loop("beacons.enable_beacon", &[json!("nope")]);
    let out = b.call("beacons.enable_beacon", &bound.ok().unwrap());
    assert_eq!(out.retcode, 1);
    assert_eq!(out.ret["comment"], "Beacon nope is not currently configured.");
    let args = [json!({"__kwarg__": true, "return_yaml": false})];
    let bound = crate::functions::bind_on_loop("beacons.list_available", &args).ok().unwrap();
    let out = b.call("beacons.list_available", &bound);
    assert_eq!(out.ret, json!(MODULES));
}

/// A blocking module for the tests: it answers `fired` once `go` says so.
struct Gated {
    go: std::sync::mpsc::Receiver<()>,
}

impl Module for Gated {
    fn check(&mut self) -> Vec<Payload> {
        let _ = self.go.recv();
        let mut payload = Payload::new();
        payload.insert("fired".into(), true.into());
        vec![payload]
    }

    fn blocking(&self) -> bool {
        true
    }
}

/// `diskusage`'s `statvfs` hung on a dead mount (a FUSE server that stopped answering)
/// held the one worker thread, and every other blocking beacon (`log`, `service`) waited
/// behind it for good. Each blocking beacon now has a thread of its own.
#[test]
fn a_hung_blocking_beacon_holds_up_no_other() {
    let (mut b, mut poll) = beacons(json!({}));
    let now = Instant::now();
    let mut gates = Vec::new();
    for name in ["hung", "live"] {
        let (go, gate) = std::sync::mpsc::channel();
        gates.push(go);
        let common = config::common(name, &mut serde_json::Map::new()).unwrap();
        b.list.push(Beacon {
            name: name.into(),
            config: Value::Null,
            enabled: true,
            common,
            due: now,
            slot: Slot::Here(Box::new(Gated { go: gate })),
            last: HashMap::new(),
            worker: None,
        });
    }
    assert!(b.tick(now, false).is_empty(), "both run on worker threads");
    gates[1].send(()).unwrap(); // "live" answers; "hung" never does (until the end)
    let mut events = Vec::new();
    let mut ready = mio::Events::with_capacity(4);
    while events.is_empty() {
        poll.poll(&mut ready, Some(Duration::from_secs(30))).unwrap();
        assert!(!ready.is_empty(), "no beacon came back while one was hung");
        events = b.collect();
    }
    let tags: Vec<&str> = events.iter().map(|e| e.tag.as_str()).collect();
    assert_eq!(tags, ["salt/beacon/web1/live/"]);
    assert!(matches!(b.list[0].slot, Slot::Away), "the hung one is still running");
    gates[0].send(()).unwrap();
    // The modules that may hang are the ones that go to a thread.
    let (b, _poll) = beacons(json!({
        "diskusage": [{"/": "90%"}],
        "log": [{"file": "/var/log/x"}, {"tags": {"x": {"regex": "x"}}}],
        "memusage": [{"percent": "0%"}],
    }));
    let blocking: Vec<(&str, bool)> = b
        .list
        .iter()
        .map(|b| (b.name.as_str(), matches!(&b.slot, Slot::Here(m) if m.blocking())))
        .collect();
    assert_eq!(blocking, [("diskusage", true), ("log", true), ("memusage", false)]);
}
