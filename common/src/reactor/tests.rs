//! End-to-end tests of `Reactor::react`: SLS files in a temp dir, events in, reactions out.

use super::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("halite-reactor-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` and returns its path as the config would spell it.
    pub(super) fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// DESIGN §1, byte for byte.
/// (Kept once, in the reactor corpus, where it is also checked against Salt.)
const MINION_SLS: &str = include_str!("../../../tests/reactor-corpus/files/seed-minion.sls");

/// DESIGN §1's auto.sls (kept once, in the reactor corpus).
const AUTO_SLS: &str = include_str!("../../../tests/reactor-corpus/files/seed-auto.sls");

pub(super) fn reactor(rules: &[(&str, &[&str])]) -> Reactor {
    Reactor::new(
        rules
            .iter()
            .map(|(p, sls)| Rule {
                pattern: p.to_string(),
                sls: sls.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
    )
}

pub(super) fn map(value: serde_json::Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("event data must be a map"),
    }
}

/// Asserts the reactions (as `to_json`) and the errors (kind, line, part of the message).
#[track_caller]
pub(super) fn check(
    r: &Reactor,
    tag: &str,
    data: Value,
    reactions: Value,
    errors: &[(&str, Option<usize>, &str)],
) -> Reactions {
    let out = r.react(tag, &map(data));
    let got: Vec<Value> = out.reactions.iter().map(Reaction::to_json).collect();
    assert_eq!(Value::Array(got), reactions, "errors: {:?}", out.errors);
    assert_eq!(out.errors.len(), errors.len(), "{:?}", out.errors);
    for (got, (kind, line, text)) in out.errors.iter().zip(errors) {
        assert_eq!((got.kind, got.line), (*kind, *line), "{got:?}");
        assert!(got.message.contains(text), "{:?} lacks {text:?}", got.message);
        assert_eq!(got.tag, tag);
    }
    out
}

/// `wheel.key.accept: [{match: target}]` as Salt's `format_call` binds it.
pub(super) fn wheel_accept(id: &str, target: &str) -> Value {
    json!({"id": id, "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null, "arg": [target],
           "kwarg": {"include_rejected": false, "include_denied": false}})
}

fn local(id: &str, fun: &str, tgt: &str, arg: Value) -> Value {
    json!({"id": id, "client": "local", "fun": fun, "tgt": tgt, "tgt_type": "glob", "arg": arg, "kwarg": {}})
}

#[test]
fn seed_scenario() {
    let dir = TempDir::new("seed");
    let minion = dir.write("Minion.sls", MINION_SLS);
    let auto = dir.write("auto.sls", AUTO_SLS);
    let r = reactor(&[("salt/auth", &[&minion]), ("salt/minion/Min*/start", &[&auto])]);
    assert!(r.check().is_empty(), "{:?}", r.check());

    let auth = |act: &str, id: &str| json!({"result": true, "act": act, "id": id, "pub": "-----BEGIN PUBLIC KEY-----"});
    let out = check(
        &r,
        "salt/auth",
        auth("pend", "Minion2"),
        json!([wheel_accept("key_accept", "Minion2")]),
        &[],
    );
    assert_eq!(out.matched, std::slice::from_ref(&minion));
    assert_eq!(out.reactions[0].sls, minion);
    check(&r, "salt/auth", auth("pend", "other1"), json!([]), &[]);
    check(&r, "salt/auth", auth("accept", "Minion2"), json!([]), &[]);
    check(&r, "salt/auth", json!({"result": false, "id": "Minion2"}), json!([]), &[]);

    // Salt's order: same order, so by client + name + fun: run_init before run_state.
    let start = json!({"cmd": "_minion_event", "data": "Minion Minion2 started", "id": "Minion2", "tag": "salt/minion/Minion2/start"});
    check(
        &r,
        "salt/minion/Minion2/start",
        start,
        json!([
            local("run_init", "cmd.run", "Minion2", json!(["echo initsok >> /tmp/cpis"])),
            local("run_state", "state.sls", "Minion2", json!(["test"])),
        ]),
        &[],
    );
    assert!(!r.wants("salt/minion/other1/start"));
    assert!(r.wants("salt/minion/Minion2/start"));
    assert_eq!(r.matching_rules("salt/minion/Minion2/start"), [&r.rules()[1]]);
    let out = r.react("salt/minion/other1/start", &map(json!({"id": "other1"})));
    assert!(out.reactions.is_empty() && out.errors.is_empty() && out.matched.is_empty());
}

#[test]
fn local_argument_forms() {
    let dir = TempDir::new("local");
    let sls = dir.write(
        "forms.sls",
        "install_zsh:
  local.state.single:
    - tgt: test
    - tgt_type: grain
    - ret: syslog
    - arg: [ignored]
    - args:
      - fun: pkg.installed
      - name: zsh
      - fromrepo: updates
legacy:
  local.test.arg:
    - tgt: [a, b]
    - tgt_type: list
    - arg: [1, two]
    - kwarg: {k: v}
    - timeout: 30
scalar:
  cmd.cmd.run:
    - tgt: '*'
    - arg: uptime
touch:
  caller.file.touch:
    - args:
      - name: /tmp/foo
old_caller:
  caller.cmd.run:
    - args: [echo hi]
",
    );
    let r = reactor(&[("t", &[&sls])]);
    check(
        &r,
        "t",
        json!({}),
        json!([
            {"id": "old_caller", "client": "caller", "fun": "cmd.run", "tgt": null, "tgt_type": null, "arg": ["echo hi"], "kwarg": {}},
            {"id": "touch", "client": "caller", "fun": "file.touch", "tgt": null, "tgt_type": null, "arg": [], "kwarg": {"name": "/tmp/foo"}},
            {"id": "scalar", "client": "local", "fun": "cmd.run", "tgt": "*", "tgt_type": "glob", "arg": ["uptime"], "kwarg": {}},
            {"id": "install_zsh", "client": "local", "fun": "state.single", "tgt": "test", "tgt_type": "grain", "arg": [],
             "kwarg": {"fun": "pkg.installed", "name": "zsh", "fromrepo": "updates"}, "ret": "syslog",
             "warnings": ["'arg' is ignored beside 'args', as Salt does"]},
            {"id": "legacy", "client": "local", "fun": "test.arg", "tgt": ["a", "b"], "tgt_type": "list", "arg": [1, "two"], "kwarg": {"k": "v"},
             "warnings": ["'timeout' is ignored: a reaction publishes its job and does not wait for returns"]},
        ]),
        &[],
    );
}

#[test]
fn runner_and_wheel_arguments() {
    let dir = TempDir::new("master-side");
    let sls = dir.write(
        "m.sls",
        "orch:
  runner.event.send:
    - args:
      - tag: orch/deploy
      - data: {event_tag: {{ tag }}, event_data: {{ data|json }}}
remove_key:
  wheel.key.delete:
    - args:
      - match: {{ data['id'] }}
legacy_wheel:
  wheel.key.accept:
    - match: {{ data['id'] }}
    - include_rejected: true
    - order: 1
    - __ignored: x
legacy_runner:
  runner.jobs.list_jobs:
    - arg: [1]
    - kwarg: {search_function: test.ping}
    - ext_source: cache
flow:
  runner.event.send:
    - tag: flow
    - data: {{ data|yaml }}
",
    );
    let r = reactor(&[("my/*", &[&sls])]);
    let data = json!({"id": "web1", "nested": {"b": [1, "x: y"], "a": null}});
    check(
        &r,
        "my/tag",
        data,
        json!([
            {"id": "legacy_wheel", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null, "arg": ["web1"],
             "kwarg": {"include_rejected": true, "include_denied": false}},
            {"id": "flow", "client": "runner", "fun": "event.send", "tgt": null, "tgt_type": null, "arg": ["flow"],
             "kwarg": {"data": {"id": "web1", "nested": {"a": null, "b": [1, "x: y"]}}}},
            {"id": "legacy_runner", "client": "runner", "fun": "jobs.list_jobs", "tgt": null, "tgt_type": null, "arg": [1], "kwarg": {"search_function": "test.ping"},
             "warnings": ["'ext_source' is ignored beside 'arg' and 'kwarg', as Salt does"]},
            {"id": "orch", "client": "runner", "fun": "event.send", "tgt": null, "tgt_type": null, "arg": [],
             "kwarg": {"tag": "orch/deploy", "data": {"event_tag": "my/tag", "event_data": {"id": "web1", "nested": {"a": null, "b": [1, "x: y"]}}}}},
            {"id": "remove_key", "client": "wheel", "fun": "key.delete", "tgt": null, "tgt_type": null, "arg": [], "kwarg": {"match": "web1"}},
        ]),
        &[],
    );
}

#[test]
fn order_rules() {
    let dir = TempDir::new("order");
    let sls = dir.write(
        "o.sls",
        "a_default:
  local.test.ping: [{tgt: x}]
b_first:
  local.test.ping: [{tgt: x}, {order: first}]
c_last:
  local.test.ping: [{tgt: x}, {order: last}]
d_five:
  local.test.ping: [{tgt: x}, {order: 5}]
e_negative:
  local.test.ping: [{tgt: x}, {order: -1}]
f_named:
  local.test.ping: [{tgt: x}, {name: aaa}]
",
    );
    let types = dir.write(
        "types.sls",
        "aaa:
  wheel.key.delete: [{match: x}]
bbb:
  local.test.ping: [{tgt: x}]
ccc:
  cmd.test.ping: [{tgt: x}]
ddd:
  runner.manage.up: []
eee:
  caller.test.ping: []
",
    );
    let ids = |sls: &str| -> Vec<String> {
        reactor(&[("t", &[sls])])
            .react("t", &Map::new())
            .reactions
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    // cap = 5 + 100: default 105, negative 105 + 1000000 - 1, last 105 + 1000000. `f_named`
    // sorts by its name `aaa` and keeps its ID.
    assert_eq!(ids(&sls), ["b_first", "d_five", "a_default", "f_named", "e_negative", "c_last"]);
    // Same order: caller < cmd < local < runner < wheel, as Salt sorts by the prefix written.
    assert_eq!(ids(&types), ["eee", "ccc", "bbb", "ddd", "aaa"]);
}

#[test]
fn files_merge_by_id_later_wins() {
    let dir = TempDir::new("merge");
    let one = dir.write("one.sls", "dup:\n  wheel.key.accept:\n    - match: from-one\nonly_one:\n  wheel.key.reject:\n    - match: x\n");
    let two = dir.write("two.sls", "dup:\n  wheel.key.accept:\n    - match: from-two\n");
    let r = reactor(&[("t", &[&one]), ("t*", &[&two])]);
    let out = check(
        &r,
        "t",
        json!({}),
        json!([
            wheel_accept("dup", "from-two"),
            {"id": "only_one", "client": "wheel", "fun": "key.reject", "tgt": null, "tgt_type": null, "arg": ["x"],
             "kwarg": {"include_accepted": false, "include_denied": false}},
        ]),
        &[],
    );
    assert_eq!(out.reactions[0].sls, two);
    assert_eq!(out.matched, [one, two]);
}

#[test]
fn failing_files_do_not_stop_the_others() {
    let dir = TempDir::new("errors");
    let good = dir.write("good.sls", "ok:\n  wheel.key.accept:\n    - match: {{ data['id'] }}\n");
    let render = dir.write("render.sls", "ok2:\n  wheel.key.accept:\n{% if data['id'] %\n");
    let yaml = dir.write("yaml.sls", "bad:\n  wheel.key.accept:\n    - match: x\n   oops: [\n");
    let client = dir.write("client.sls", "x:\n  foo.bar.baz:\n    - a: 1\n");
    let fuel = dir.write(
        "fuel.sls",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n",
    );
    let missing = dir.path().join("missing.sls").to_string_lossy().into_owned();
    let r = reactor(&[("t", &[&render, &yaml, &good, &client, &fuel, &missing])]);
    let out = check(
        &r,
        "t",
        json!({"id": "m1"}),
        json!([wheel_accept("ok", "m1")]),
        &[
            ("render", Some(3), "syntax error"),
            ("yaml", Some(4), "line 4"),
            ("reaction", Some(1), "unknown client 'foo' in 'foo.bar.baz'"),
            ("render", Some(1), "fuel"),
            ("missing", None, "Can not render SLS"),
        ],
    );
    assert_eq!(out.errors[0].sls, render);
    assert_eq!(out.errors[4].sls, missing);
    assert_eq!(out.matched, [render, yaml, good, client, fuel, missing.clone()]);
    assert_eq!(
        out.errors[4].to_json(),
        json!({"sls": missing, "tag": "t", "kind": "missing", "line": null, "message": out.errors[4].message})
    );
    assert_eq!(out.errors[0].to_json()["line"], json!(3));
}

#[test]
fn bad_reactions() {
    let dir = TempDir::new("bad");
    for (text, message) in [
        ("- a\n- b\n", "expected a map of IDs, got a list"),
        ("5: {wheel.key.accept: [{match: x}]}\n", "ID 5 is not a string"),
        ("x: 5\n", "ID 'x': expected a map of `client.module.function: [args]`, got a number"),
        ("x:\n  wheel: [{match: x}]\n", "'wheel' names no function"),
        (
            "x:\n  wheel.key.accept: {match: x}\n",
            "expected a list of `- key: value` arguments, got a map",
        ),
        ("x:\n  wheel.key.accept:\n", "got nothing"),
        ("x:\n  local.state.sls:\n    - state.sls\n    - tgt: y\n", "bare argument 'state.sls'"),
        ("x:\n  wheel.key.accept:\n    - match: a\n      extra: b\n", "an argument has 2 keys"),
        ("x:\n  wheel.key.accept: [[1]]\n", "an argument must be `- key: value`, got a list"),
        ("x:\n  local.test.ping: [{arg: [1]}]\n", "a local reaction needs tgt"),
        (
            "x:\n  local.test.ping: [{tgt: {a: 1}}]\n",
            "tgt must be a non-empty string or a list of strings",
        ),
        ("x:\n  local.test.ping: [{tgt: y}, {kwarg: [1]}]\n", "kwarg must be a map"),
        ("x:\n  runner.a.b: [{args: [{a: 1, b: 2}]}]\n", "Incorrect argument format"),
        ("x:\n  local.test.ping: [{tgt: y}, {args: [[1]]}]\n", "Incorrect argument format"),
        ("x:\n  wheel.key.accept: [{args: []}]\n", "Incorrect argument format"),
        (
            "x:\n  local.test.ping: [{tgt: y}]\n  local.cmd.run: [{tgt: y}]\n",
            "a second local reaction under one ID",
        ),
    ] {
        let sls = dir.write("bad.sls", text);
        let out = reactor(&[("t", &[&sls])]).react("t", &Map::new());
        assert!(out.reactions.is_empty(), "{text}");
        assert_eq!(out.errors.len(), 1, "{text}: {:?}", out.errors);
        assert_eq!(out.errors[0].kind, "reaction", "{text}: {:?}", out.errors);
        assert!(out.errors[0].message.contains(message), "{text}: {}", out.errors[0].message);
    }
}

#[test]
fn quiet_and_odd_forms() {
    let dir = TempDir::new("quiet");
    for text in [
        "",
        "  \n\n",
        "# only a comment\n",
        "{% if false %}\nx:\n  wheel.key.accept: [{match: y}]\n{% endif %}\n",
        "x: {}\n",
    ] {
        let sls = dir.write("q.sls", text);
        let out = reactor(&[("t", &[&sls])]).react("t", &Map::new());
        assert!(out.reactions.is_empty() && out.errors.is_empty(), "{text:?}: {out:?}");
    }
    // Salt's short form, `name` as the chunk name (the ID stays), Salt's `cmd` alias, mixed
    // clients in one ID.
    let sls = dir.write(
        "odd.sls",
        "short: runner.manage.up\nnamed:\n  wheel.key.accept: [{name: other}, {match: m}]\nboth:\n  cmd.test.ping: [{tgt: m}]\n  wheel.key.reject: [{match: m}]\n",
    );
    let out = reactor(&[("t", &[&sls])]).react("t", &Map::new());
    let got: Vec<(String, &str, String)> =
        out.reactions.iter().map(|r| (r.id.clone(), r.client.as_str(), r.fun.clone())).collect();
    assert_eq!(
        got,
        [
            ("both".into(), "local", "test.ping".into()),
            ("short".into(), "runner", "manage.up".into()),
            ("both".into(), "wheel", "key.reject".into()),
            ("named".into(), "wheel", "key.accept".into()),
        ]
    );
}

#[test]
fn hostile_data_is_one_value() {
    let dir = TempDir::new("hostile");
    let sls = dir.write(
        "h.sls",
        "key_accept:\n  wheel.key.accept:\n    - match: {{ data['id'] }}\nrun:\n  local.test.arg:\n    - tgt: {{ data['id'] }}\n    - arg: [{{ data['id'] }}, fixed]\n    - kwarg: {k: {{ data['id'] }}}\n",
    );
    let r = reactor(&[("salt/auth", &[&sls])]);
    for id in [
        "x\nkey_accept2:\n  wheel.key.accept:\n    - match: '*'",
        "a: b",
        "{{ 7*7 }}",
        "{% for %}",
        "*",
        "web*, other",
        "[a, b]",
        "{a: b}",
        "- item",
        "&anchor",
        "*alias",
        "!!python/object:os.system",
        "'quoted'",
        "\"dq\"",
        "x' , 'y",
        "123",
        "true",
        "null",
        "~",
        "...",
        "---",
        "a #b",
        "#comment",
        "trail:",
        "x\u{2028}y: z",
        "nel\u{85}z: 1",
        "bom\u{feff}",
        "tab\tkey: v",
        "back\\slash",
        " lead",
        "Min2\n",
        "ünï: cødé",
    ] {
        let out = r.react("salt/auth", &map(json!({"act": "pend", "id": id})));
        assert!(out.errors.is_empty(), "{id:?}: {:?}", out.errors);
        assert_eq!(
            out.reactions.iter().map(Reaction::to_json).collect::<Vec<_>>(),
            [
                json!({"id": "run", "client": "local", "fun": "test.arg", "tgt": id, "tgt_type": "glob", "arg": [id, "fixed"], "kwarg": {"k": id}}),
                wheel_accept("key_accept", id),
            ],
            "{id:?}"
        );
    }
    // The seed file too: the injected text stays the match value of the one reaction.
    let seed = dir.write("Minion.sls", MINION_SLS);
    let r = reactor(&[("salt/auth", &[&seed])]);
    let id = "Minx\nkey_accept2:\n  wheel.key.accept:\n    - match: '*'";
    let out = r.react("salt/auth", &map(json!({"act": "pend", "id": id})));
    assert_eq!(
        out.reactions.iter().map(Reaction::to_json).collect::<Vec<_>>(),
        [wheel_accept("key_accept", id)]
    );
}

#[test]
fn files_are_read_fresh() {
    let dir = TempDir::new("fresh");
    let sls = dir.write("f.sls", "a:\n  wheel.key.accept: [{match: one}]\n");
    let r = reactor(&[("t", &[&sls])]);
    assert_eq!(r.react("t", &Map::new()).reactions[0].arg, ["one"]);
    dir.write("f.sls", "a:\n  wheel.key.accept: [{match: two}]\n");
    assert_eq!(r.react("t", &Map::new()).reactions[0].arg, ["two"]);
}

#[test]
fn check_and_explain() {
    let dir = TempDir::new("check");
    let sls = dir.write("a.sls", "");
    dir.write("b.sls", "");
    let glob = format!("{}/*.sls", dir.path().display());
    let missing = format!("{}/missing.sls", dir.path().display());
    let r = reactor(&[
        ("salt/auth", &[&sls, &glob]),
        (r"salt/(auth", &[&missing]),
        ("salt/salt://", &["salt://x.sls"]),
    ]);
    let problems = r.check();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("not a valid regular expression"), "{problems:?}");
    assert!(problems[1].contains("missing.sls: file missing or not found"), "{problems:?}");
    assert!(problems[2].contains("no file_roots"), "{problems:?}");
    let out = r.react("salt/auth", &Map::new());
    assert_eq!(out.matched, [sls.clone(), sls, format!("{}/b.sls", dir.path().display())]);
    let lines = r.explain("salt/auth");
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("'salt/auth': matches as a glob -> "), "{lines:?}");
    assert!(lines[1].starts_with(r"'salt/(auth': no match (glob: no; regex: invalid"), "{lines:?}");
    let roots = Reactor::new(vec![Rule { pattern: "t".into(), sls: vec!["salt://a.sls".into()] }])
        .with_file_roots(vec![dir.path().to_path_buf()]);
    assert!(roots.check().is_empty());
    assert_eq!(roots.react("t", &Map::new()).matched, [format!("{}/a.sls", dir.path().display())]);
}

#[test]
fn the_regex_set_matches_exactly_as_each_pattern_alone() {
    let patterns = [
        "salt/auth",
        "salt/minion/Min*/start",
        "salt/job/*/ret/*",
        r"salt/job/\d+/new",
        "web[0-9]",
        "x)|(.*",
        "salt/(auth",
        "*",
        "a.b",
        "[!s]*",
        "salt/minion/*/start",
    ];
    let rules: Vec<Rule> =
        patterns.iter().map(|p| Rule { pattern: p.to_string(), sls: vec![] }).collect();
    let reactor = Reactor::new(rules);
    for tag in [
        "salt/auth",
        "salt/minion/Minion2/start",
        "salt/minion/other1/start",
        "salt/job/20240101000000000000/ret/m1",
        "salt/job/20240101000000000000/new",
        "web7",
        "axb",
        "a.b",
        "bench/event/1",
        "",
        "x)|(.*",
    ] {
        let alone: Vec<&str> =
            patterns.iter().copied().filter(|p| config::tag_matches(p, tag)).collect();
        let set: Vec<&str> =
            reactor.matching_rules(tag).iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(set, alone, "{tag}");
        assert_eq!(reactor.wants(tag), !alone.is_empty(), "{tag}");
    }
}
