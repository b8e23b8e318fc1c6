//! The engine without a minion: `test.*` states, a host's own [`StateModules`] (as the
//! orchestrator's will be), fake execution functions, inline pillar in templates.

use super::memfs::MemFs;
use super::*;
use std::sync::Mutex;

/// Execution functions that answer `grains.get os`, and fail everything else by name.
struct FakeFunctions;

impl Functions for FakeFunctions {
    fn call(&self, fun: &str, arg: &[Value]) -> Result<Called, String> {
        match (fun, arg) {
            ("grains.get", [key]) if key == "os" => {
                Ok(Called { value: json!("Debian"), retcode: 0 })
            }
            ("cmd.retcode", [cmd, ..]) => {
                Ok(Called { value: json!(if cmd == "true" { 0 } else { 1 }), retcode: 0 })
            }
            _ => Err(format!("'{fun}' is not available.")),
        }
    }
}

fn host(fs: &Arc<MemFs>, modules: Arc<dyn StateModules>) -> Host {
    Host {
        id: "master_master".into(),
        grains: json!({"os": "Debian"}).as_object().cloned().unwrap_or_default(),
        fs: fs.clone(),
        functions: Arc::new(FakeFunctions),
        modules,
    }
}

fn run(files: &[(&str, &str)], mods: &str, opts: &Options) -> Answer {
    let fs = MemFs::new(files);
    sls(&host(&fs, Arc::new(testing::TABLE)), &[mods.to_string()], opts)
}

/// `(id, result, comment)` in run order.
#[track_caller]
fn summary(answer: &Answer) -> Vec<(String, Value, String)> {
    let Value::Object(running) = &answer.value else { panic!("not a run: {}", answer.value) };
    let mut rets: Vec<&Value> = running.values().collect();
    rets.sort_by_key(|ret| ret["__run_num__"].as_i64());
    rets.iter()
        .map(|ret| {
            let id = ret["name"].as_str().unwrap_or("").to_string();
            (id, ret["result"].clone(), ret["comment"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[track_caller]
fn check(answer: &Answer, retcode: i64, want: &[(&str, Value, &str)]) {
    let got = summary(answer);
    let got: Vec<(&str, Value, &str)> =
        got.iter().map(|(id, r, c)| (id.as_str(), r.clone(), c.as_str())).collect();
    assert_eq!((answer.retcode, got.as_slice()), (retcode, want), "{}", answer.value);
}

#[test]
fn requisites_decide_what_runs() {
    let sls = "\
ok:\n  test.succeed_without_changes\n\
changed:\n  test.succeed_with_changes\n\
broken:\n  test.fail_without_changes\n\
needs-broken:\n  test.nop:\n    - require:\n      - test: broken\n\
on-change:\n  test.nop:\n    - onchanges:\n      - test: changed\n\
no-change:\n  test.nop:\n    - onchanges:\n      - test: ok\n\
on-fail:\n  test.nop:\n    - onfail:\n      - test: broken\n\
watcher:\n  test.succeed_without_changes:\n    - watch:\n      - test: changed\n";
    let answer = run(&[("o.sls", sls)], "o", &Options::default());
    check(
        &answer,
        2,
        &[
            ("ok", json!(true), "Success!"),
            ("changed", json!(true), "Success!"),
            ("broken", json!(false), "Failure!"),
            ("needs-broken", json!(false), "One or more requisite failed: o.broken"),
            ("on-change", json!(true), "Success!"),
            (
                "no-change",
                json!(true),
                "State was not run because none of the onchanges reqs changed",
            ),
            ("on-fail", json!(true), "Success!"),
            ("watcher", json!(true), "Watch statement fired."),
        ],
    );
}

#[test]
fn failhard_stops_the_run_and_test_mode_reports() {
    let sls = "\
first:\n  test.fail_without_changes:\n    - failhard: True\n\
second:\n  test.succeed_with_changes\n";
    let answer = run(&[("f.sls", sls)], "f", &Options::default());
    check(&answer, 2, &[("first", json!(false), "Failure!")]);

    let dry = run(&[("f.sls", sls)], "f", &Options { test: true, ..Options::default() });
    check(
        &dry,
        2,
        &[
            ("first", json!(false), "If we weren't testing, this would be a failure!"),
            ("second", Value::Null, "If we weren't testing, this would be successful with changes"),
        ],
    );
}

#[test]
fn inline_pillar_reaches_templates() {
    let sls = "\
greet-{{ pillar['who'] }}:\n  test.nop\n\
deep-{{ salt['pillar.get']('a:b:1', 'none') }}-{{ salt['pillar.get']('a:x', 'dflt') }}:\n  test.nop\n\
os-{{ salt['grains.get']('os') }}-{{ opts.id }}:\n  test.nop\n";
    let pillar = json!({"who": "world", "a": {"b": ["zero", "one"]}});
    let opts = Options { pillar: pillar.as_object().cloned().unwrap(), ..Options::default() };
    let answer = run(&[("p.sls", sls)], "p", &opts);
    let ids: Vec<String> = summary(&answer).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, ["greet-world", "deep-one-dflt", "os-Debian-master_master"]);

    // Without pillar, `pillar['who']` is undefined: a render error, as under Salt.
    let answer = run(&[("p.sls", sls)], "p", &Options::default());
    assert_eq!(answer.retcode, 1);
    let error = answer.value[0].as_str().unwrap_or("");
    assert!(error.starts_with("Rendering SLS 'base:p' failed: Jinja variable"), "{error}");
}

/// The reactor's stack overflows were the state renderer's too, and it runs in the master for
/// pillar: a namespace that holds itself, printed; a chain of unary operators minijinja's
/// parser recursed on; a chain of namespaces, or of `loop` objects, built one link per loop
/// step. All are render errors now, included templates as well; so is a format field wider
/// than memory, which panicked or aborted.
#[test]
fn templates_that_would_overflow_the_stack_are_render_errors() {
    let deep = format!("x-{{{{ 0{}1 }}}}:\n  test.nop\n", "-".repeat(60_000));
    let cycle =
        "{% set ns = namespace(n=0) %}{% set ns.n = [ns] + [ns] %}x-{{ ns }}:\n  test.nop\n";
    let files = [
        ("deep.sls", deep.as_str()),
        ("cycle.sls", cycle),
        ("inc.sls", "{% include 'deep.sls' %}"),
        ("chain.sls", "{% set head = namespace() %}{% set st = namespace(ns=head) %}{% for i in range(100000) %}\
            {% set n = namespace(i=i) %}{% set st.ns.next = n %}{% set st.ns = n %}{% endfor %}x-{{ head }}:\n  test.nop\n"),
        ("loops.sls", "{% set st = namespace(cur=none) %}{% for i in range(100000) %}\
            {% for _ in [st.cur] %}{% set st.cur = loop %}{% endfor %}{% endfor %}"),
        ("fine.sls", "{% set ns = namespace(n=[1]) %}{% set ns.n = ns.n + [- -2] %}x-{{ ns.n|join('-') }}:\n  test.nop\n"),
        ("wide.sls", "x-{{ '%18446744068613951616s' | format('x') }}:\n  test.nop\n"),
        ("wider.sls", "x-{{ '{:>3000000000}'.format('x') }}:\n  test.nop\n"),
        ("many.sls", "x-{{ [1] * 3000000000 }}:\n  test.nop\n"),
    ];
    for (sls, want) in [
        ("deep", "Jinja syntax error: expression nested too deeply"),
        ("cycle", "cannot put a namespace inside itself"),
        ("inc", "more than 16 unary operators in a row; line 1 of deep.sls"),
        ("chain", "value nested deeper than 128 levels"),
        ("loops", "a loop object cannot be stored"),
        ("wide", "format fields may be at most 1048576 characters wide in all"),
        ("wider", "format fields may be at most 1048576 characters wide in all"),
        ("many", "the value has more than 524288 elements"),
    ] {
        let fs = MemFs::new(&files);
        let answer = super::sls(
            &host(&fs, Arc::new(testing::TABLE)),
            &[sls.to_string()],
            &Options::default(),
        );
        let error = answer.value[0].as_str().unwrap_or("");
        assert_eq!(answer.retcode, 1, "{error}");
        assert!(error.starts_with(&format!("Rendering SLS 'base:{sls}' failed")), "{error}");
        assert!(error.contains(want), "{error}");
    }
    let answer = run(&files, "fine", &Options::default());
    check(&answer, 0, &[("x-1-2", json!(true), "Success!")]);
}

#[test]
fn a_failing_function_in_a_template_is_a_render_error() {
    let answer =
        run(&[("e.sls", "x-{{ salt['no.such']() }}:\n  test.nop\n")], "e", &Options::default());
    let error = answer.value[0].as_str().unwrap_or("");
    assert!(error.contains("'no.such' is not available."), "{error}");
}

#[test]
fn run_checks_go_through_the_hosts_functions() {
    let sls = "\
skipped:\n  test.succeed_with_changes:\n    - unless: 'true'\n\
runs:\n  test.succeed_with_changes:\n    - onlyif: 'true'\n";
    let answer = run(&[("c.sls", sls)], "c", &Options::default());
    check(
        &answer,
        0,
        &[("skipped", json!(true), "unless condition is true"), ("runs", json!(true), "Success!")],
    );
}

/// A host's own modules: one stateful `step.run` (as `salt.state` will be) beside `test.*`.
#[derive(Default)]
struct Steps {
    ran: Mutex<Vec<String>>,
}

impl StateModules for Steps {
    fn required(&self, full: &str) -> Option<&'static [&'static str]> {
        match full {
            "step.run" => Some(&["tgt"]),
            other => testing::TABLE.required(other),
        }
    }

    fn has_mod_watch(&self, state: &str) -> bool {
        testing::TABLE.has_mod_watch(state)
    }

    fn call(&self, call: &Call, changed: Option<&[String]>) -> StateRet {
        if call.state() != "step" {
            return testing::TABLE.call(call, changed);
        }
        let tgt = call.text("tgt").unwrap_or_default();
        if call.test() {
            return StateRet::new(&call.name, true).with(None, format!("would run on {tgt}"));
        }
        self.ran.lock().unwrap_or_else(|p| p.into_inner()).push(call.name.clone());
        let ok = tgt != "nobody";
        let mut ret = StateRet::new(&call.name, ok).with(Some(ok), format!("ran on {tgt}"));
        if ok {
            ret.change(&tgt, json!({"ret": true}));
        }
        ret
    }
}

#[test]
fn a_hosts_own_modules_get_requisites_test_mode_and_missing_arguments() {
    let sls = "\
one:\n  step.run:\n    - tgt: web\n\
two:\n  step.run:\n    - tgt: nobody\n    - require:\n      - step: one\n\
three:\n  step.run:\n    - tgt: db\n    - require:\n      - step: two\n\
untargeted:\n  step.run\n\
unknown:\n  step.fly:\n    - tgt: x\n\
after:\n  test.nop:\n    - onchanges:\n      - step: one\n";
    let fs = MemFs::new(&[("orch.sls", sls)]);
    let steps = Arc::new(Steps::default());
    let answer = super::sls(&host(&fs, steps.clone()), &["orch".into()], &Options::default());
    check(
        &answer,
        2,
        &[
            ("one", json!(true), "ran on web"),
            ("two", json!(false), "ran on nobody"),
            ("three", json!(false), "One or more requisite failed: orch.two"),
            ("untargeted", json!(false), "Missing parameter tgt for state step.run\n"),
            (
                "unknown",
                json!(false),
                "State 'step.fly' was not found in SLS 'orch'\nReason: 'step.fly' is not available.\n",
            ),
            ("after", json!(true), "Success!"),
        ],
    );
    assert_eq!(*steps.ran.lock().unwrap(), ["one", "two"]);

    let steps = Arc::new(Steps::default());
    let opts = Options { test: true, ..Options::default() };
    let dry = super::sls(&host(&fs, steps.clone()), &["orch".into()], &opts);
    assert_eq!(dry.value["step_|-one_|-one_|-run"]["comment"], json!("would run on web"));
    assert!(steps.ran.lock().unwrap().is_empty(), "test=True ran a step");
}

#[test]
fn options_never_print_the_pillar() {
    let pillar = json!({"password": "hunter2"}).as_object().cloned().unwrap();
    let opts = Options { pillar, test: true, exclude: vec![json!("x")] };
    let shown = format!("{opts:?}");
    assert!(!shown.contains("hunter2") && !shown.contains("password"), "{shown}");
    assert_eq!(
        shown,
        r#"Options { test: true, pillar: "<1 keys hidden>", exclude: [String("x")] }"#
    );
}
