//! The reactor corpus (`tests/reactor-corpus/`): real-world reactor SLS files, each run through
//! `halite-run reactor.test` for each of its events and compared with what Salt 3008 does.
//!
//! Every file `files/NAME.sls` has `files/NAME.events.json`: `{"rule": PATTERN, "events":
//! [{"name", "tag", "data", "why"?, "expect": [...]}]}`. `expect` is the `reactor.test --out
//! json` listing Salt's behaviour implies: reactions compare exactly; an `{"error": {...}}` entry
//! matches any error whose fields include the ones written (usually just `kind`).
//!
//! `KNOWN_DIFFERENCES` lists `NAME/EVENT  reason` lines where Halite differs today. The test
//! prints a table and fails when an unlisted event differs, when a listed one now matches (so
//! the list only shrinks honestly), or when a listed line names no event of the corpus.

use halite_tests::serde_json::{self, Map, Value};
use halite_tests::{bin, run, TempDir};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus must stay at least this big (issue #11).
const MIN_FILES: usize = 40;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reactor-corpus")
}

/// One event of one corpus file.
struct Case {
    file: String,
    event: String,
    tag: String,
    data: Value,
    expect: Vec<Value>,
}

impl Case {
    fn key(&self) -> String {
        format!("{}/{}", self.file, self.event)
    }
}

/// Every file's events, with the config dir (one per file) that binds `rule` to the file.
fn load(work: &TempDir) -> Vec<(PathBuf, Vec<Case>)> {
    let dir = corpus_dir().join("files");
    let all: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read_dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    // An expectation file without its SLS (or anything else) would silently test nothing.
    for name in &all {
        let pair = match name.strip_suffix(".events.json") {
            Some(stem) => format!("{stem}.sls"),
            None => name.replace(".sls", ".events.json"),
        };
        assert!(
            (name.ends_with(".sls") || name.ends_with(".events.json")) && all.contains(&pair),
            "{}: every corpus file is NAME.sls with NAME.events.json",
            dir.join(name).display()
        );
    }
    let mut names: Vec<String> =
        all.iter().filter_map(|name| name.strip_suffix(".sls").map(str::to_string)).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let sls = dir.join(format!("{name}.sls"));
            let spec_path = dir.join(format!("{name}.events.json"));
            let spec: Value = serde_json::from_str(
                &fs::read_to_string(&spec_path)
                    .unwrap_or_else(|e| panic!("{}: {e}", spec_path.display())),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", spec_path.display()));
            let rule = spec["rule"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no \"rule\"", spec_path.display()));
            let conf = work.join(&name);
            let master = serde_json::json!({"reactor": [{rule: [sls.display().to_string()]}]});
            work.write(format!("{name}/master"), master.to_string());
            let events = spec["events"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no \"events\" list", spec_path.display()));
            assert!(!events.is_empty(), "{}: no events", spec_path.display());
            let cases = events
                .iter()
                .map(|event| {
                    let text = |key: &str| {
                        event[key].as_str().map(str::to_string).unwrap_or_else(|| {
                            panic!("{}: an event has no \"{key}\"", spec_path.display())
                        })
                    };
                    Case {
                        file: name.clone(),
                        event: text("name"),
                        tag: text("tag"),
                        data: event["data"].clone(),
                        expect: event["expect"].as_array().cloned().unwrap_or_else(|| {
                            panic!("{}: an event has no \"expect\" list", spec_path.display())
                        }),
                    }
                })
                .collect();
            (conf, cases)
        })
        .collect()
}

/// `NAME/EVENT` → reason.
fn known_differences() -> BTreeMap<String, String> {
    let path = corpus_dir().join("KNOWN_DIFFERENCES");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            assert!(!reason.trim().is_empty(), "KNOWN_DIFFERENCES: '{key}' gives no reason");
            (key.to_string(), reason.trim().to_string())
        })
        .collect()
}

/// What `halite-run reactor.test` printed, or why it is not a listing.
fn react(conf: &Path, case: &Case) -> Result<Vec<Value>, String> {
    let data = format!("data={}", serde_json::to_string(&case.data).expect("JSON"));
    let out = run(Command::new(bin("halite-run")).arg("-c").arg(conf).args([
        "reactor.test",
        &case.tag,
        &data,
        "--out",
        "json",
    ]));
    if !out.success() {
        return Err(format!("exit {:?}: {}{}", out.status, out.stdout, out.stderr));
    }
    match serde_json::from_str(&out.stdout) {
        Ok(Value::Array(items)) => Ok(items),
        _ => Err(format!("not a JSON list: {}", out.stdout)),
    }
}

/// An expected `{"error": {...}}` matches any error carrying the fields it writes; a reaction
/// matches without its `warnings`, Halite's notes on what it ignores (Salt has none).
fn matches(expect: &[Value], got: &[Value]) -> bool {
    let salts = |g: &Value| {
        let mut g = g.clone();
        if let Some(map) = g.as_object_mut() {
            map.remove("warnings");
        }
        g
    };
    expect.len() == got.len()
        && expect.iter().zip(got).all(|(e, g)| match (e.get("error"), g.get("error")) {
            (Some(Value::Object(want)), Some(Value::Object(have))) => {
                want.iter().all(|(k, v)| have.get(k) == Some(v))
            }
            (Some(_), _) | (None, Some(_)) => false,
            (None, None) => *e == salts(g),
        })
}

fn one_line(items: &[Value]) -> String {
    Value::Array(items.to_vec()).to_string()
}

#[test]
fn every_corpus_file_reacts_as_salt_does_or_is_a_listed_known_difference() {
    let work = TempDir::new();
    let files = load(&work);
    assert!(
        files.len() >= MIN_FILES,
        "the corpus has {} files, fewer than {MIN_FILES}",
        files.len()
    );
    let known = known_differences();
    let mut seen: Vec<String> = Vec::new();
    let (mut table, mut problems, mut details) = (String::new(), String::new(), String::new());
    let (mut passed, mut listed) = (0, 0);
    for (conf, cases) in &files {
        for case in cases {
            let key = case.key();
            seen.push(key.clone());
            let got = react(conf, case);
            let ok = got.as_ref().is_ok_and(|got| matches(&case.expect, got));
            let status = match (ok, known.get(&key)) {
                (true, None) => {
                    passed += 1;
                    "pass"
                }
                (false, Some(_)) => {
                    listed += 1;
                    "known difference"
                }
                (true, Some(_)) => "FIXED: remove it from KNOWN_DIFFERENCES",
                (false, None) => "FAIL",
            };
            writeln!(table, "{:<48} {:<24} {status}", case.file, case.event).expect("write");
            if status != "pass" {
                let got = got.map_or_else(|e| e, |g| one_line(&g));
                let out = match status {
                    "known difference" => &mut details,
                    _ => &mut problems,
                };
                writeln!(
                    out,
                    "{key}: {status}\n  expected {}\n  got      {got}",
                    one_line(&case.expect)
                )
                .expect("write");
            }
        }
    }
    for key in known.keys().filter(|k| !seen.contains(k)) {
        writeln!(problems, "{key}: listed in KNOWN_DIFFERENCES but no such file/event")
            .expect("write");
    }
    println!("{table}");
    println!("{details}");
    println!(
        "{} files, {} events: {passed} as Salt, {listed} known differences",
        files.len(),
        seen.len()
    );
    assert!(problems.is_empty(), "reactor corpus (table above):\n{problems}");
}

/// The harness's comparison itself: an error entry matches on the fields it names only.
#[test]
fn an_expected_error_matches_on_the_fields_it_names() {
    let error = |kind: &str, message: &str| {
        let mut map = Map::new();
        map.insert("kind".into(), kind.into());
        map.insert("message".into(), message.into());
        Value::Object([("error".to_string(), Value::Object(map))].into_iter().collect())
    };
    let want = serde_json::json!([{"error": {"kind": "render"}}]);
    let want = want.as_array().expect("list");
    assert!(matches(want, &[error("render", "undefined value")]));
    assert!(!matches(want, &[error("yaml", "bad")]));
    assert!(!matches(want, &[]));
    let reaction = serde_json::json!({"id": "a", "client": "local"});
    assert!(!matches(want, std::slice::from_ref(&reaction)));
    assert!(matches(std::slice::from_ref(&reaction), std::slice::from_ref(&reaction)));
}
