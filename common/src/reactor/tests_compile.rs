//! How reactor SLS compile, as Salt 3008 compiles them: requisites and `order`, the keys of a
//! local reaction, `args:` repacking, `name`, and runner/wheel calls bound to signatures.
//! Each SLS is shaped like the Salt docs' reactor examples.

use super::tests::{check, reactor, TempDir};
use super::*;
use serde_json::json;

/// `(id, client, fun)` of each reaction, in order.
fn order_of(sls: &str, files: &[&str]) -> Vec<(String, String, String)> {
    let dir = TempDir::new("order-of");
    let paths: Vec<String> =
        files.iter().enumerate().map(|(i, text)| dir.write(&format!("{i}.sls"), text)).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = reactor(&[("t", &paths)]).react("t", &Map::new());
    assert!(out.errors.is_empty(), "{sls}: {:?}", out.errors);
    out.reactions.into_iter().map(|r| (r.id, r.client.as_str().to_string(), r.fun)).collect()
}

#[track_caller]
fn ids(files: &[&str], expected: &[&str]) {
    let got: Vec<String> = order_of("", files).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(got, expected);
}

/// Accept the key, then highstate it: `require` puts the wheel call first, where Salt's
/// alphabetical tie-break (`local` < `wheel`) would run the highstate before the key exists.
const ACCEPT_THEN_HIGHSTATE: &str = "highstate_run:
  local.state.apply:
    - tgt: {{ data['id'] }}
    - require:
      - wheel: accept_key
accept_key:
  wheel.key.accept:
    - match: {{ data['id'] }}
";

#[test]
fn require_orders_before_the_alphabetical_tie_break() {
    let dir = TempDir::new("require");
    let sls = dir.write("auth.sls", ACCEPT_THEN_HIGHSTATE);
    check(
        &reactor(&[("salt/auth", &[&sls])]),
        "salt/auth",
        json!({"id": "web1", "act": "pend"}),
        json!([
            {"id": "accept_key", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null,
             "arg": ["web1"], "kwarg": {"include_rejected": false, "include_denied": false}},
            {"id": "highstate_run", "client": "local", "fun": "state.apply", "tgt": "web1", "tgt_type": "glob",
             "arg": [], "kwarg": {}},
        ]),
        &[],
    );
}

#[test]
fn every_ordering_requisite_form_orders_and_names_by_id_name_client_or_glob() {
    // A string is an ID; `local.cmd.run: x` names the client `local`; globs as fnmatch.
    ids(
        &["a_last:
  local.test.ping:
    - tgt: x
    - watch:
      - b_mid
b_mid:
  local.test.ping:
    - tgt: x
    - onchanges:
      - local.cmd.run: c_*
c_first:
  local.test.ping:
    - tgt: x
"],
        &["c_first", "b_mid", "a_last"],
    );
    for kind in [
        "require",
        "require_any",
        "watch_any",
        "onchanges_any",
        "onfail",
        "onfail_any",
        "onfail_all",
    ] {
        ids(
            &[&format!("a:\n  local.test.ping:\n    - tgt: x\n    - {kind}:\n      - local: z\nz:\n  local.test.ping:\n    - tgt: x\n")],
            &["z", "a"],
        );
    }
    // `prereq`: the declaring reaction runs before the one it names.
    ids(
        &["a:\n  local.test.ping:\n    - tgt: x\nz:\n  local.test.ping:\n    - tgt: x\n    - prereq:\n      - id: a\n"],
        &["z", "a"],
    );
    // By the chunk name an item set, and a whole file by `sls:` (its path).
    ids(
        &["a:\n  local.test.ping:\n    - tgt: x\n    - require:\n      - local: renamed\nz:\n  local.test.ping:\n    - tgt: x\n    - name: renamed\n"],
        &["z", "a"],
    );
    let dir = TempDir::new("sls-req");
    let first = dir.write("first.sls", "zz_in_first:\n  local.test.ping: [{tgt: x}]\n");
    let second = dir.write(
        "second.sls",
        &format!("aa_in_second:\n  local.test.ping:\n    - tgt: x\n    - require:\n      - sls: {first}\n"),
    );
    let out = reactor(&[("t", &[&second, &first])]).react("t", &Map::new());
    let got: Vec<&str> = out.reactions.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((got, out.errors.len()), (vec!["zz_in_first", "aa_in_second"], 0));
}

#[test]
fn a_dependent_order_pulls_its_requirement_ahead_as_salt_does() {
    // cap 101: `aaa` (default) would win the tie with `zzz_key` by name, but `deploy`
    // (order 1) requires `zzz_key`, whose sort key becomes 1: zzz_key, deploy, aaa.
    ids(
        &["aaa:
  local.test.ping: [{tgt: x}]
deploy:
  local.state.apply:
    - tgt: x
    - order: 1
    - require:
      - wheel: zzz_key
zzz_key:
  wheel.key.accept: [{match: x}]
"],
        &["zzz_key", "deploy", "aaa"],
    );
    // `order: first` beats requisites' neighbours; `last` still waits for nothing it needs.
    ids(
        &["b:\n  local.test.ping: [{tgt: x}, {order: last}]\na:\n  local.test.ping: [{tgt: x}, {require: [b]}]\nc:\n  local.test.ping: [{tgt: x}, {order: first}]\n"],
        &["c", "b", "a"],
    );
}

#[test]
fn requisites_warn_what_the_reactor_does_not_do() {
    let dir = TempDir::new("req-warn");
    let sls = dir.write(
        "w.sls",
        "restart:
  local.service.restart:
    - tgt: web1
    - arg: [nginx]
    - onchanges:
      - local: deploy
    - require_in:
      - local: deploy
    - listen:
      - local: deploy
deploy:
  local.state.apply:
    - tgt: web1
",
    );
    check(
        &reactor(&[("t", &[&sls])]),
        "t",
        json!({}),
        json!([
            {"id": "deploy", "client": "local", "fun": "state.apply", "tgt": "web1", "tgt_type": "glob", "arg": [], "kwarg": {}},
            {"id": "restart", "client": "local", "fun": "service.restart", "tgt": "web1", "tgt_type": "glob",
             "arg": ["nginx"], "kwarg": {}, "warnings": [
                "'onchanges' only orders the reactions: the reactor runs every reaction whatever happened to the others, as Salt does",
                "'require_in' has no effect in a reactor SLS (Salt's reactor only orders chunks): ignored",
                "'listen' has no effect in a reactor SLS (Salt's reactor only orders chunks): ignored",
            ]},
        ]),
        &[],
    );
}

#[test]
fn a_requisite_on_nothing_or_a_cycle_drops_that_file_only() {
    let dir = TempDir::new("req-bad");
    let good = dir.write("good.sls", "ok:\n  wheel.key.accept: [{match: m}]\n");
    let missing = dir.write(
        "missing.sls",
        "first:\n  local.test.ping: [{tgt: x}]\nhighstate:\n  local.state.apply:\n    - tgt: x\n    - require:\n      - wheel: accept_key\n",
    );
    let cycle = dir.write(
        "cycle.sls",
        "a:\n  local.test.ping: [{tgt: x}, {require: [b]}]\nb:\n  local.test.ping: [{tgt: x}, {require: [a]}]\n",
    );
    let nested = dir.write("nested.sls", "n:\n  local.test.ping: [{tgt: x}, {require: x}]\n");
    let out = check(
        &reactor(&[("t", &[&missing, &good, &cycle, &nested])]),
        "t",
        json!({}),
        json!([{"id": "ok", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null,
                "arg": ["m"], "kwarg": {"include_rejected": false, "include_denied": false}}]),
        &[
            ("reaction", Some(1), "the require statement needs to be formed as a list"),
            (
                "reaction",
                Some(3),
                "Referenced reaction does not exist for requisite [require: (wheel: accept_key)] in reaction [highstate]",
            ),
            ("reaction", Some(1), "Recursive requisites were found among: a, b"),
            ("reaction", Some(3), "Recursive requisites were found among: a, b"),
        ],
    );
    let sls: Vec<&str> = out.errors.iter().map(|e| e.sls.as_str()).collect();
    assert_eq!(sls, [&nested, &missing, &cycle, &cycle]);
}

#[test]
fn other_keys_of_a_local_reaction_are_ignored_with_a_warning() {
    let dir = TempDir::new("local-keys");
    // The Salt docs' old examples (expr_form) and options people pass to state.apply.
    let sls = dir.write(
        "keys.sls",
        "clean_tmp:
  local.cmd.run:
    - tgt: 'os:Ubuntu'
    - expr_form: grain
    - arg:
      - rm -rf /tmp/*
highstate:
  local.state.apply:
    - tgt: {{ data['id'] }}
    - tgt_type: list
    - ret: syslog
    - timeout: 30
    - queue: True
    - batch: 10%
    - metadata: {by: reactor}
    - kwargs: {pillar: {a: 1}}
",
    );
    let why = "it is not an option of a local reaction (Salt passes it to the master, which drops it); put the function's keyword arguments under args";
    check(
        &reactor(&[("t", &[&sls])]),
        "t",
        json!({"id": "web1"}),
        json!([
            {"id": "clean_tmp", "client": "local", "fun": "cmd.run", "tgt": "os:Ubuntu", "tgt_type": "glob",
             "arg": ["rm -rf /tmp/*"], "kwarg": {}, "warnings": [
                "'expr_form' is ignored: Salt renamed it tgt_type in 2017.7 and has ignored it since 2019.2, so the target is matched as tgt_type says (glob unless given)",
            ]},
            {"id": "highstate", "client": "local", "fun": "state.apply", "tgt": "web1", "tgt_type": "list",
             "arg": [], "kwarg": {}, "ret": "syslog", "warnings": [
                "'timeout' is ignored: a reaction publishes its job and does not wait for returns",
                format!("'queue' is ignored: {why}"),
                "'batch' is ignored: Salt's reactor publishes with cmd_async, which does not batch",
                "'metadata' is ignored: Halite's jobs carry no metadata",
                format!("'kwargs' is ignored: {why}"),
            ]},
        ]),
        &[],
    );
}

#[test]
fn args_are_repacked_as_salt_does() {
    let dir = TempDir::new("repack");
    let sls = dir.write(
        "r.sls",
        "highstate:
  local.state.apply:
    - tgt: web1
    - args:
      - mods: nginx
      - queue
      - 5
touch:
  caller.file.touch:
    - tgt: ignored
    - args:
      - name: /tmp/foo
",
    );
    check(
        &reactor(&[("t", &[&sls])]),
        "t",
        json!({}),
        json!([
            {"id": "touch", "client": "caller", "fun": "file.touch", "tgt": null, "tgt_type": null,
             "arg": [], "kwarg": {"name": "/tmp/foo"},
             "warnings": ["'tgt' is ignored: a caller reaction passes only its arguments to the function"]},
            {"id": "highstate", "client": "local", "fun": "state.apply", "tgt": "web1", "tgt_type": "glob",
             "arg": [], "kwarg": {"mods": "nginx", "queue": null, "5": null}},
        ]),
        &[],
    );
}

#[test]
fn a_name_item_names_the_chunk_and_keeps_the_id() {
    let dir = TempDir::new("name");
    let sls = dir.write(
        "n.sls",
        "run_uptime:\n  local.cmd.run:\n    - tgt: web1\n    - name: aaa\n    - arg: [uptime]\nbbb:\n  local.test.ping: [{tgt: web1}]\n",
    );
    check(
        &reactor(&[("t", &[&sls])]),
        "t",
        json!({}),
        json!([
            {"id": "run_uptime", "name": "aaa", "client": "local", "fun": "cmd.run", "tgt": "web1", "tgt_type": "glob",
             "arg": ["uptime"], "kwarg": {}},
            {"id": "bbb", "client": "local", "fun": "test.ping", "tgt": "web1", "tgt_type": "glob", "arg": [], "kwarg": {}},
        ]),
        &[],
    );
}

#[test]
fn runner_and_wheel_calls_bind_to_the_signature() {
    let dir = TempDir::new("bind");
    let sls = dir.write(
        "b.sls",
        "accept:
  wheel.key.accept:
    - match: {{ data['id'] }}
delete_new:
  wheel.key.delete:
    - args:
      - match: {{ data['id'] }}
lookup:
  runner.jobs.lookup_jid:
    - jid: '20261202160000000000'
both:
  runner.jobs.lookup_jid:
    - arg: ['20261202160000000000']
    - kwarg: {missing: true}
    - order: last
send:
  runner.event.send:
    - tag: my/tag
    - order: first
    - key: internal
",
    );
    check(
        &reactor(&[("t", &[&sls])]),
        "t",
        json!({"id": "web1"}),
        json!([
            {"id": "send", "client": "runner", "fun": "event.send", "tgt": null, "tgt_type": null,
             "arg": ["my/tag"], "kwarg": {"data": null}, "warnings": ["'key' is ignored, as Salt does"]},
            {"id": "lookup", "client": "runner", "fun": "jobs.lookup_jid", "tgt": null, "tgt_type": null,
             "arg": ["20261202160000000000"],
             "kwarg": {"ext_source": null, "returned": true, "missing": false, "display_progress": false}},
            {"id": "accept", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null,
             "arg": ["web1"], "kwarg": {"include_rejected": false, "include_denied": false}},
            {"id": "delete_new", "client": "wheel", "fun": "key.delete", "tgt": null, "tgt_type": null,
             "arg": [], "kwarg": {"match": "web1"}},
            {"id": "both", "client": "runner", "fun": "jobs.lookup_jid", "tgt": null, "tgt_type": null,
             "arg": ["20261202160000000000"], "kwarg": {"missing": true}},
        ]),
        &[],
    );
}

#[test]
fn a_call_that_does_not_fit_is_an_error_and_the_rest_of_the_file_runs() {
    let dir = TempDir::new("unfit");
    let sls = dir.write(
        "u.sls",
        "orch:
  runner.cache.clear_grains:
    - args:
      - tgt: web1
no_match:
  wheel.key.accept:
    - include_rejected: true
extra:
  wheel.key.delete:
    - match: web1
    - include_denied: true
    - bogus: 1
new_extra:
  runner.manage.up:
    - args:
      - tgt: 'web*'
      - expr_form: glob
lone_arg:
  runner.jobs.lookup_jid:
    - arg: ['20261202160000000000']
too_many:
  wheel.key.delete:
    - arg: [a, b]
    - kwarg: {}
ok:
  wheel.key.reject:
    - match: web1
",
    );
    let out = check(
        &reactor(&[("t", &[&sls])]),
        "t",
        json!({}),
        json!([{"id": "ok", "client": "wheel", "fun": "key.reject", "tgt": null, "tgt_type": null,
                "arg": ["web1"], "kwarg": {"include_accepted": false, "include_denied": false}}]),
        &[
            ("reaction", Some(18), "ID 'lone_arg': lookup_jid takes at least 1 argument (0 given): missing 'jid'"),
            ("reaction", Some(13), "ID 'new_extra': 'expr_form' is an invalid keyword argument for 'runner.manage.up'; signature runner.manage.up(tgt='*', tgt_type='glob', timeout=None, gather_job_timeout=None)"),
            ("reaction", Some(1), "ID 'orch': runner function 'cache.clear_grains' is not available; Halite has: event.send, jobs.list_jobs"),
            ("reaction", Some(8), "ID 'extra': 'include_denied' and 'bogus' are invalid keyword arguments for 'wheel.key.delete'; signature wheel.key.delete(match)"),
            ("reaction", Some(5), "ID 'no_match': accept takes at least 1 argument (0 given): missing 'match'"),
            ("reaction", Some(21), "ID 'too_many': delete takes 1 positional argument but 2 were given"),
        ],
    );
    assert!(out.errors[0].message.contains("Salt passes 'arg' through only beside the other"));
    assert_eq!(out.errors[3].to_json()["id"], json!("extra"));
    assert_eq!(out.errors[3].to_json()["kind"], json!("reaction"));
}
