//! `halite-run reactor.list|test|replay`: the reactor's dry runs, from the master's config
//! alone (no master needed, nothing is run): which rules exist, what an event would do, and
//! what a recorded event log would have done.

use halite_common::config;
use halite_common::reactor::{Reactions, Reactor};
use serde_json::{Map, Value};
use std::path::Path;

/// The runners `halite-run` runs itself, without a master.
pub const LOCAL_RUNNERS: [&str; 3] = ["reactor.list", "reactor.test", "reactor.replay"];

/// Runs `fun` locally when it is one of the dry-run tools; `None` for anything else.
pub fn run_local(config_dir: &Path, fun: &str, arg: &[Value]) -> Option<Result<Value, String>> {
    if !LOCAL_RUNNERS.contains(&fun) {
        return None;
    }
    Some(run(config_dir, fun, arg))
}

fn run(config_dir: &Path, fun: &str, arg: &[Value]) -> Result<Value, String> {
    let cfg = config::load_master(config_dir)
        .map_err(|e| format!("bad master configuration:\n{e}"))?
        .config;
    let roots = cfg.file_roots.get("base").cloned().unwrap_or_default();
    let reactor = Reactor::new(cfg.reactor).with_file_roots(roots);
    let (args, kwargs) = split(arg);
    let text = |key: &str, pos: usize| -> Option<String> {
        kwargs.get(key).or(args.get(pos)).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    match fun {
        "reactor.list" => Ok(reactor
            .rules()
            .iter()
            .map(|r| {
                let mut entry = Map::new();
                entry.insert(r.pattern.clone(), r.sls.clone().into());
                Value::Object(entry)
            })
            .collect()),
        "reactor.test" => {
            let tag =
                text("tag", 0).ok_or("reactor.test needs a tag: reactor.test TAG data='{...}'")?;
            let data = match kwargs.get("data").or(args.get(1)) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(map)) => map.clone(),
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(map)) => map,
                    _ => return Err("data must be a JSON mapping".into()),
                },
                Some(_) => return Err("data must be a mapping".into()),
            };
            let verbose = kwargs.get("verbose").is_some_and(|v| v == &Value::Bool(true));
            let mut out = listing(&reactor.react(&tag, &data));
            if verbose {
                let why: Vec<Value> = reactor.explain(&tag).into_iter().map(Value::from).collect();
                out = Value::Object(
                    [("reactions".to_string(), out), ("rules".to_string(), Value::Array(why))]
                        .into_iter()
                        .collect(),
                );
            }
            Ok(out)
        }
        _ => {
            let file =
                text("file", 0).ok_or("reactor.replay needs an event log: reactor.replay FILE")?;
            let (since, until) = (text("since", 1), text("until", 2));
            replay(&reactor, Path::new(&file), since.as_deref(), until.as_deref())
        }
    }
}

/// Reactions in execution order, then `{"error": ...}` for each file that failed.
fn listing(reactions: &Reactions) -> Value {
    let mut out: Vec<Value> = reactions.reactions.iter().map(|r| r.to_json()).collect();
    out.extend(reactions.errors.iter().map(|e| {
        let mut map = Map::new();
        map.insert("error".into(), e.to_json());
        Value::Object(map)
    }));
    Value::Array(out)
}

/// Feeds every event of a recorded log (optionally between two `_stamp`s, ISO-8601 text
/// compared as strings; `2026-11-26 01:57` is read as `2026-11-26T01:57`) through the
/// reactor; lists what each matching event would have done. A torn last line (the master
/// was killed mid-write) is skipped; any other bad line is an error.
fn replay(
    reactor: &Reactor,
    file: &Path,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let iso = |s: &str| s.replacen(' ', "T", 1);
    let (since, until) = (since.map(iso), until.map(iso));
    let (since, until) = (since.as_deref(), until.as_deref());
    let torn_tail = !text.is_empty() && !text.ends_with('\n');
    let last = text.lines().count();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let event: Value = match serde_json::from_str(line) {
            Ok(event) => event,
            Err(_) if torn_tail && n + 1 == last => break,
            Err(e) => {
                return Err(format!(
                    "{} line {}: not an event log line: {e}",
                    file.display(),
                    n + 1
                ))
            }
        };
        let (Some(tag), Some(data)) = (event["tag"].as_str(), event["data"].as_object()) else {
            return Err(format!("{} line {}: no tag/data", file.display(), n + 1));
        };
        let stamp = data.get("_stamp").and_then(Value::as_str).unwrap_or_default();
        if since.is_some_and(|s| stamp < s) || until.is_some_and(|u| stamp > u) {
            continue;
        }
        if tag.starts_with("salt/reactor/") || !reactor.wants(tag) {
            continue;
        }
        let mut entry = Map::new();
        entry.insert("tag".into(), tag.into());
        entry.insert("_stamp".into(), stamp.into());
        entry.insert("reactions".into(), listing(&reactor.react(tag, data)));
        out.push(Value::Object(entry));
    }
    Ok(Value::Array(out))
}

fn split(arg: &[Value]) -> (Vec<Value>, Map<String, Value>) {
    halite_common::proto::split_args(arg)
}
