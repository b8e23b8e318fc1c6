//! The orchestrator without a master: the runner's arguments, Salt's step results from
//! gathered returns, and whole runs of `test.*` states over a real `file_roots`.

use super::remote::Gathered;
use super::saltmod::{function_ret, state_ret};
use super::*;
use serde_json::json;

fn settings(roots: Vec<PathBuf>) -> Settings {
    Settings {
        socket: PathBuf::from("/nonexistent/master.sock"),
        roots,
        timeout: Duration::from_secs(1),
        master_id: "m_master".into(),
        user: "root".into(),
        jid: "20260101000000000000".into(),
        cause: Vec::new(),
    }
}

fn args(value: Value) -> Vec<Value> {
    value.as_array().unwrap().clone()
}

#[test]
fn the_runner_binds_salts_signature() {
    let cli = args(json!(["orch.a,orch.b", {"__kwarg__": true, "pillar": {"k": 1}, "test": true}]));
    let orch = Orchestration::from_args("state.orchestrate", &cli, settings(vec![])).unwrap();
    assert_eq!(orch.mods, ["orch.a", "orch.b"]);
    assert!(orch.opts.test);
    assert_eq!(orch.opts.pillar["k"], 1);

    // The reactor's `args:` form and its legacy form (every default filled in).
    let reaction = args(json!([{"__kwarg__": true, "mods": "orch.x", "pillar": {"k": "v"}}]));
    let orch = Orchestration::from_args("state.orch", &reaction, settings(vec![])).unwrap();
    assert_eq!(orch.mods, ["orch.x"]);
    let legacy = args(json!(["orch.x", {"__kwarg__": true, "saltenv": "base", "test": null,
        "exclude": null, "pillar": null, "pillarenv": null, "pillar_enc": null,
        "orchestration_jid": null}]));
    assert!(Orchestration::from_args("state.orch", &legacy, settings(vec![])).is_ok());
}

#[test]
fn bad_runner_arguments_are_refused_with_salts_words() {
    let check = |arg: Value, expected: &str| {
        let err = Orchestration::from_args("state.orchestrate", &args(arg), settings(vec![]))
            .unwrap_err();
        assert!(err.contains(expected), "{err}");
    };
    check(json!([]), "missing 1 required argument: 'mods'");
    check(json!(["o", {"__kwarg__": true, "pillar": [1]}]), "Pillar data must be formatted");
    check(json!(["o", {"__kwarg__": true, "saltenv": "dev"}]), "saltenv 'dev' is not available");
    check(json!(["o", {"__kwarg__": true, "bogus": 1}]), "'bogus' is an invalid keyword");
}

fn returned(id: &str, ret: Value, retcode: i64) -> (String, Map<String, Value>) {
    let data = json!({"return": ret, "retcode": retcode});
    (id.to_string(), data.as_object().unwrap().clone())
}

#[test]
fn salt_function_results_read_as_salts() {
    let ok =
        Gathered { minions: vec!["m1".into()], returns: vec![returned("m1", json!("hello"), 0)] };
    let ret = function_ret("test.echo", &ok, &[]);
    assert_eq!(ret.result, Some(true));
    assert_eq!(ret.comment, "Function ran successfully. Function test.echo ran on m1.");
    assert_eq!(Value::Object(ret.changes), json!({"out": "highstate", "ret": {"m1": "hello"}}));

    let failed = Gathered {
        minions: vec!["m1".into()],
        returns: vec![returned("m1", json!("'no.such' is not available."), 1)],
    };
    let ret = function_ret("no.such", &failed, &[]);
    assert_eq!(ret.result, Some(false));
    // Salt's text has no full stop after the list.
    assert_eq!(
        ret.comment,
        "Running function no.such failed on minions: m1 Function no.such ran on m1."
    );

    let nobody = Gathered { minions: vec!["ghost".into()], returns: vec![] };
    let ret = function_ret("test.ping", &nobody, &[]);
    assert_eq!((ret.result, ret.comment.as_str()), (Some(false), "No minions responded"));
}

#[test]
fn salt_state_results_read_as_salts() {
    let changed =
        json!({"file_|-f_|-/tmp/f_|-managed": {"result": true, "changes": {"diff": "New file"}}});
    let same = json!({"file_|-f_|-/tmp/f_|-managed": {"result": true, "changes": {}}});
    let broke = json!({"file_|-f_|-/tmp/f_|-managed": {"result": false, "changes": {}}});
    let g = Gathered {
        minions: vec!["a".into(), "b".into()],
        returns: vec![returned("a", changed.clone(), 0), returned("b", same, 0)],
    };
    let ret = state_ret("deploy", &g, &[], 0, false);
    assert_eq!(ret.result, Some(true));
    assert_eq!(ret.comment, "States ran successfully. Updating a. No changes made to b.");
    assert_eq!(ret.changes["ret"], json!({"a": changed}));
    assert_eq!(state_ret("deploy", &g, &[], 0, true).result, None, "test mode with changes");

    let g = Gathered {
        minions: vec!["a".into(), "silent".into()],
        returns: vec![returned("a", broke, 2)],
    };
    let ret = state_ret("deploy", &g, &[], 0, false);
    assert_eq!(ret.result, Some(false));
    assert_eq!(ret.comment, "Run failed on minions: a, silent");
    assert_eq!(ret.changes["ret"]["silent"], false);
    let allowed = state_ret("deploy", &g, &["silent".into()], 0, false);
    assert_eq!(allowed.comment, "Run failed on minions: a");
    assert_eq!(state_ret("deploy", &g, &[], 2, false).result, Some(true), "allow_fail: 2");

    let none = state_ret("deploy", &Gathered::default(), &[], 0, false);
    assert_eq!((none.result, none.comment.as_str()), (Some(false), "No minions returned"));

    // A render error is a list, never a success.
    let g = Gathered { minions: vec!["a".into()], returns: vec![returned("a", json!(["err"]), 1)] };
    assert_eq!(state_ret("deploy", &g, &[], 0, false).result, Some(false));
}

/// A directory of orchestration files, removed on drop.
struct Roots(PathBuf);

impl Roots {
    fn new(name: &str, files: &[(&str, &str)]) -> Roots {
        let dir = std::env::temp_dir().join(format!("halite-orch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        Roots(dir)
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(roots: &Roots, arg: Value) -> Value {
    Orchestration::from_args("state.orchestrate", &args(arg), settings(vec![roots.0.clone()]))
        .unwrap()
        .run()
}

#[test]
fn a_run_answers_under_the_master_id_with_the_highstate_outputter() {
    let roots = Roots::new(
        "ok",
        &[(
            "orch/ok.sls",
            "first:\n  test.succeed_with_changes: []\nsecond:\n  test.show_notification:\n    \
             - text: {{ pillar['who'] | json }}\n    - require:\n      - test: first\n",
        )],
    );
    let ret = run(&roots, json!(["orch.ok", {"__kwarg__": true, "pillar": {"who": "a\nb: c"}}]));
    assert_eq!(ret["outputter"], "highstate");
    assert_eq!(ret["retcode"], 0, "{ret}");
    let data = ret["data"]["m_master"].as_object().unwrap();
    let second = &data["test_|-second_|-second_|-show_notification"];
    // The pillar value, newline and all, is one value: it adds no state and no key.
    assert_eq!(second["comment"], "a\nb: c");
    assert_eq!(data.len(), 2);
}

#[test]
fn a_failed_step_skips_what_requires_it_and_the_run_fails() {
    let roots = Roots::new(
        "fail",
        &[(
            "orch/fail.sls",
            "first:\n  test.fail_without_changes: []\nsecond:\n  test.succeed_with_changes:\n    \
             - require:\n      - test: first\n",
        )],
    );
    let ret = run(&roots, json!(["orch.fail"]));
    assert_eq!(ret["retcode"], 1);
    let second = &ret["data"]["m_master"]["test_|-second_|-second_|-succeed_with_changes"];
    assert_eq!(second["result"], false);
    assert_eq!(second["comment"], "One or more requisite failed: orch.fail.first");
}

#[test]
fn a_missing_sls_or_a_path_out_of_the_roots_is_a_compile_error() {
    let roots = Roots::new("missing", &[]);
    let ret = run(&roots, json!(["orch.nothing"]));
    assert_eq!(ret["retcode"], 1);
    assert_eq!(
        ret["data"]["m_master"],
        json!(["No matching sls found for 'orch.nothing' in env 'base'"])
    );
    let ret = run(&roots, json!(["../../etc/passwd"]));
    assert_eq!(ret["retcode"], 1);
    assert!(ret["data"]["m_master"].is_array(), "{ret}");
}

#[test]
fn a_step_with_no_master_to_talk_to_fails_clearly() {
    let roots = Roots::new(
        "nomaster",
        &[("o.sls", "ping:\n  salt.function:\n    - name: test.ping\n    - tgt: '*'\n")],
    );
    let ret = run(&roots, json!(["o"]));
    assert_eq!(ret["retcode"], 1);
    let step = &ret["data"]["m_master"]["salt_|-ping_|-test.ping_|-function"];
    assert_eq!(step["result"], false);
    assert!(step["comment"].as_str().unwrap().contains("the master is not running"), "{step}");
}

#[test]
fn the_cap_refuses_past_max_running() {
    let gate = Arc::new(std::sync::Barrier::new(MAX_RUNNING + 1));
    let roots = Roots::new("cap", &[("o.sls", "x:\n  test.nop: []\n")]);
    let mut started = 0;
    let refused = loop {
        let orch = Orchestration::from_args(
            "state.orch",
            &args(json!(["o"])),
            settings(vec![roots.0.clone()]),
        )
        .unwrap();
        let held = Arc::clone(&gate);
        match spawn(orch, move |_| {
            held.wait();
        }) {
            Ok(()) => started += 1,
            Err(e) => break e,
        }
        assert!(started <= MAX_RUNNING, "never refused");
    };
    assert_eq!(started, MAX_RUNNING);
    assert!(refused.contains("too many orchestrations running (16)"), "{refused}");
    gate.wait();
}
