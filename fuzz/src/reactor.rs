//! The reactor harnesses: hostile event data through fixed SLS files (what any minion can
//! send), and hostile SLS text (what a reactor author could write by mistake).

use halite_common::reactor::{Client, Reaction, Reactor, Rule};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// DESIGN §1's `Minion.sls`.
/// (Kept once, in the reactor corpus, where it is also checked against Salt.)
const MINION_SLS: &str = include_str!("../../tests/reactor-corpus/files/seed-minion.sls");

/// DESIGN §1's auto.sls (kept once, in the reactor corpus).
const AUTO_SLS: &str = include_str!("../../tests/reactor-corpus/files/seed-auto.sls");

/// Event data in every place a value goes, through each serialising filter.
const MIXED_SLS: &str = "{% set who = data.get('id', 'x') %}
echo_all:
  local.cmd.run:
    - tgt: {{ who }}
    - arg:
      - {{ 'echo ' ~ data.get('data', '') }}
      - {{ data.get('data') | json }}
      - {{ data | yaml }}
    - kwarg:
        tag: {{ tag }}
        dq: {{ data.get('act') | yaml_dquote }}
        sq: {{ data.get('act') | yaml_squote }}
{% for k in data %}{% if loop.index < 4 %}
item{{ loop.index }}:
  runner.event.send:
    - args:
      - tag: {{ k }}
      - data: {{ data[k] }}
{% endif %}{% endfor %}
";

/// The SLS files and the two reactors, in a temp dir removed on drop.
pub(crate) struct Reactors {
    dir: PathBuf,
    data: Reactor,
    sls: Reactor,
    sls_path: PathBuf,
}

impl Reactors {
    pub(crate) fn new() -> Reactors {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("halite-fuzz-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text).expect("write SLS");
            path.to_string_lossy().into_owned()
        };
        let (minion, auto, mixed) = (
            write("Minion.sls", MINION_SLS),
            write("auto.sls", AUTO_SLS),
            write("mixed.sls", MIXED_SLS),
        );
        let rule = |pattern: &str, sls: &[&String]| Rule {
            pattern: pattern.into(),
            sls: sls.iter().map(|s| s.to_string()).collect(),
        };
        let data = Reactor::new(vec![
            rule("salt/auth", &[&minion]),
            rule("salt/minion/Min*/start", &[&auto]),
            rule("^salt/(job|run)/\\d+/ret/.*$", &[&minion, &auto]),
            rule("*", &[&mixed]),
        ]);
        let sls_path = dir.join("fuzz.sls");
        let sls = Reactor::new(vec![rule("*", &[&sls_path.to_string_lossy().into_owned()])]);
        Reactors { dir, data, sls, sls_path }
    }

    /// Input: the tag, newline, the data (a JSON object, else the rest as `id` and `data`).
    /// Hostile data must never add, rename or reshape a reaction: each `{{ }}` stays the one
    /// value it stands for.
    pub(crate) fn data(&self, input: &[u8]) {
        let text = String::from_utf8_lossy(input);
        let (tag, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let data = match serde_json::from_str::<Value>(rest) {
            Ok(Value::Object(map)) => map,
            _ => object(json!({"act": "pend", "id": rest, "data": rest})),
        };
        for reaction in self.data.react(tag, &data).reactions {
            check_reaction(&reaction, tag, &data);
        }
    }

    /// Any SLS text, rendered for a start event: errors are fine, panics and hangs are not.
    pub(crate) fn sls(&self, input: &[u8]) {
        fs::write(&self.sls_path, input).expect("write SLS");
        let data = object(json!({
            "cmd": "_minion_event", "id": "Minion2", "act": "pend",
            "data": {"k": [1, "two", {"x": null}]}, "_stamp": "2026-12-02T16:00:00.000000",
        }));
        let out = self.sls.react("salt/minion/Minion2/start", &data);
        for reaction in out.reactions {
            reaction.to_json();
        }
    }
}

impl Drop for Reactors {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// The reaction is one the SLS file spells, with the data's values exactly where its
/// `{{ }}` were.
#[track_caller]
fn check_reaction(r: &Reaction, tag: &str, data: &Map<String, Value>) {
    let file = r.sls.rsplit('/').next().unwrap_or_default();
    let string = |key: &str| data.get(key).filter(|v| v.is_string());
    match (file, r.id.as_str()) {
        ("Minion.sls", "key_accept") => {
            assert_eq!((r.client, r.fun.as_str()), (Client::Wheel, "key.accept"));
            // Bound as Salt's format_call binds key.accept(match, include_rejected=False,
            // include_denied=False).
            assert_eq!(r.arg.first(), data.get("id"), "{r:?}");
            assert_eq!(r.arg.len(), 1, "{r:?}");
            assert_eq!(r.kwarg.len(), 2, "{r:?}");
        }
        ("auto.sls", "run_state" | "run_init") => {
            assert_eq!(r.client, Client::Local);
            if let Some(id) = string("id") {
                assert_eq!(r.tgt.as_ref(), Some(id), "{r:?}");
            }
            assert_eq!(r.arg.len(), 1, "{r:?}");
        }
        ("mixed.sls", "echo_all") => {
            assert_eq!((r.client, r.fun.as_str()), (Client::Local, "cmd.run"));
            if let Some(id) = string("id") {
                assert_eq!(r.tgt.as_ref(), Some(id), "{r:?}");
            }
            assert_eq!(r.arg.len(), 3, "{r:?}");
            if let Some(Value::String(s)) = data.get("data") {
                assert_eq!(r.arg[0], format!("echo {s}"), "{r:?}");
                assert_eq!(&r.arg[1], data.get("data").unwrap(), "{r:?}");
            }
            assert_eq!(r.kwarg.get("tag"), Some(&Value::from(tag)), "{r:?}");
            if let Some(act) = string("act") {
                assert_eq!(r.kwarg.get("dq"), Some(act), "{r:?}");
                assert_eq!(r.kwarg.get("sq"), Some(act), "{r:?}");
            }
        }
        ("mixed.sls", "item1" | "item2" | "item3") => {
            assert_eq!((r.client, r.fun.as_str()), (Client::Runner, "event.send"));
            let key = r.kwarg.get("tag").and_then(Value::as_str);
            assert!(key.is_some_and(|k| data.contains_key(k)), "{r:?}");
        }
        _ => panic!("hostile data made a reaction the SLS does not spell: {r:?}"),
    }
}
