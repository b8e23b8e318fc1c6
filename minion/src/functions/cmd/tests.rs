//! Tests of `cmd.*` through `call`: output, exit codes, keyword options, timeouts, refusals.

use super::super::{call, tests::ctx, Outcome};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

fn kw(pairs: Value) -> Value {
    let mut map = Map::new();
    map.insert("__kwarg__".into(), json!(true));
    map.extend(pairs.as_object().cloned().unwrap_or_default());
    Value::Object(map)
}

fn run(fun: &str, arg: Value) -> Outcome {
    call(fun, &arg.as_array().cloned().unwrap_or_default(), &ctx())
}

#[track_caller]
fn check(fun: &str, arg: Value, ret: Value, retcode: i64) {
    assert_eq!(run(fun, arg.clone()), Outcome { ret, retcode, out: None }, "{fun} {arg}");
}

#[track_caller]
fn check_error(fun: &str, arg: Value, starts: &str) {
    let got = run(fun, arg.clone());
    let text = got.ret.as_str().unwrap_or_default();
    assert!(text.starts_with(starts), "{fun} {arg}: {text:?}");
    assert_eq!((got.retcode, got.out.as_deref()), (1, Some("nested")), "{fun} {arg}");
}

#[test]
fn run_returns_combined_output_and_the_exit_code() {
    // The shape of salt-samples/cmd.run_default.txt.
    check("cmd.run", json!(["echo hello; echo err >&2"]), json!("hello\nerr"), 0);
    check("cmd.shell", json!(["echo hello"]), json!("hello"), 0);
    check("cmd.run", json!(["exit 3"]), json!(""), 3);
    check("cmd.run", json!(["printf 'a  \\n\\n\\t'"]), json!("a"), 0);
    check("cmd.run", json!(["printf 'a \\n'", kw(json!({"rstrip": false}))]), json!("a \n"), 0);
    check("cmd.run", json!(["kill -9 $$"]), json!(""), 137);
    check(
        "cmd.run",
        json!(["echo out; echo err >&2", kw(json!({"redirect_stderr": false}))]),
        json!("out"),
        0,
    );
    check("cmd.run", json!([["echo", "a b", "$HOME"]]), json!("a b $HOME"), 0);
    // A number is a command too (Salt's "cmd.run 3" corner case).
    assert_eq!(run("cmd.run", json!([7])).retcode, 127);
}

#[test]
fn run_all_and_friends() {
    let got = run("cmd.run_all", json!(["echo out; echo err >&2; exit 2"]));
    assert_eq!(got.retcode, 2);
    assert!(got.ret["pid"].as_u64().is_some_and(|p| p > 0), "{got:?}");
    let mut ret = got.ret.as_object().cloned().unwrap_or_default();
    let keys: Vec<String> = ret.keys().cloned().collect();
    assert_eq!(keys, ["pid", "retcode", "stdout", "stderr"]);
    ret.remove("pid");
    assert_eq!(Value::Object(ret), json!({"retcode": 2, "stdout": "out", "stderr": "err"}));
    let merged =
        run("cmd.run_all", json!(["echo out; echo err >&2", kw(json!({"redirect_stderr": true}))]));
    assert_eq!((&merged.ret["stdout"], &merged.ret["stderr"]), (&json!("out\nerr"), &json!("")));
    check("cmd.run_stdout", json!(["echo out; echo err >&2; exit 4"]), json!("out"), 4);
    check("cmd.run_stderr", json!(["echo out; echo err >&2"]), json!("err"), 0);
    check("cmd.retcode", json!(["exit 5"]), json!(5), 5);
    check("cmd.retcode", json!(["true"]), json!(0), 0);
}

#[test]
fn keyword_options() {
    check("cmd.run", json!(["pwd", kw(json!({"cwd": "/tmp"}))]), json!("/tmp"), 0);
    check("cmd.run", json!(["pwd", "/tmp"]), json!("/tmp"), 0);
    check("cmd.run", json!(["cmd=echo kw"]), json!("kw"), 0);
    check("cmd.run", json!(["echo $A$B", kw(json!({"env": {"A": "x", "B": 1}}))]), json!("x1"), 0);
    check(
        "cmd.run",
        json!(["echo $A$B", kw(json!({"env": [{"A": true}, {"B": null}]}))]),
        json!("True"),
        0,
    );
    let locale = kw(json!({"env": {"LC_CTYPE": "x"}, "clean_env": true}));
    check("cmd.run", json!(["echo $LC_ALL-$LC_CTYPE-$LC_TIME", locale]), json!("-x-C"), 0);
    let own_locale =
        kw(json!({"env": {"LC_CTYPE": "x"}, "clean_env": true, "reset_system_locale": false}));
    check("cmd.run", json!(["echo $LC_CTYPE-$LC_TIME", own_locale]), json!("x-"), 0);
    check("cmd.run", json!(["echo \"[$HOME]\"", kw(json!({"clean_env": true}))]), json!("[]"), 0);
    check(
        "cmd.run",
        json!(["echo $PATH", kw(json!({"clean_env": true, "prepend_path": "/opt/x"}))]),
        json!("/opt/x:"),
        0,
    );
    check("cmd.run", json!(["cat", kw(json!({"stdin": "one\\ntwo"}))]), json!("one\ntwo"), 0);
    check(
        "cmd.run",
        json!(["cat", kw(json!({"stdin": "a\\nb", "stdin_raw_newlines": true}))]),
        json!("a\\nb"),
        0,
    );
    check("cmd.run", json!(["cat"]), json!(""), 0);
    check("cmd.run", json!(["echo $0", kw(json!({"shell": "/bin/sh"}))]), json!("/bin/sh"), 0);
    check("cmd.run", json!(["exit 3", kw(json!({"success_retcodes": [3]}))]), json!(""), 0);
    check("cmd.run", json!(["exit 3", kw(json!({"success_retcodes": "1, 3"}))]), json!(""), 0);
    check(
        "cmd.run",
        json!(["echo fine; exit 3", kw(json!({"success_stdout": ["fine"]}))]),
        json!("fine"),
        0,
    );
    check("cmd.run", json!(["exit 3", kw(json!({"ignore_retcode": true}))]), json!(""), 0);
    check("cmd.retcode", json!(["exit 3", kw(json!({"ignore_retcode": true}))]), json!(3), 0);
    check(
        "cmd.run",
        json!(["echo secret; exit 1", kw(json!({"hide_output": true}))]),
        json!(""),
        1,
    );
    check(
        "cmd.run",
        json!([
            "echo x",
            kw(json!({"python_shell": true, "output_loglevel": "quiet", "whatever": 1}))
        ]),
        json!("x"),
        0,
    );
    check_error(
        "cmd.run",
        json!(["echo boom; exit 1", kw(json!({"raise_err": true}))]),
        "ERROR: boom",
    );
    let bg = run("cmd.run_all", json!(["sleep 1", kw(json!({"bg": true}))]));
    assert_eq!((&bg.ret["stdout"], &bg.ret["retcode"], bg.retcode), (&json!(""), &json!(0), 0));
}

#[test]
fn default_cwd_is_home_or_root() {
    let home = std::env::var("HOME").ok().filter(|h| std::path::Path::new(h).is_dir());
    let want = home.unwrap_or_else(|| "/".into());
    let got = run("cmd.run", json!(["pwd -P"]));
    let real = std::fs::canonicalize(&want).map(|p| p.display().to_string()).unwrap_or(want);
    assert_eq!(got.ret, json!(real));
}

#[test]
fn timeout_kills_and_reports_like_salt() {
    let start = Instant::now();
    check(
        "cmd.run",
        json!(["sleep 5", kw(json!({"timeout": 1}))]),
        json!("sleep 5 : Timed out after 1 seconds"),
        1,
    );
    assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
    let got = run("cmd.run_all", json!(["sleep 5", kw(json!({"timeout": 0.2}))]));
    assert_eq!(
        (&got.ret["stdout"], &got.ret["stderr"]),
        (&json!("sleep 5 : Timed out after 0.2 seconds"), &json!(""))
    );
    assert_eq!((&got.ret["retcode"], got.retcode), (&json!(1), 1));
    check("cmd.run", json!(["echo quick", kw(json!({"timeout": 10}))]), json!("quick"), 0);
    check("cmd.run", json!(["echo none", kw(json!({"timeout": 0}))]), json!("none"), 0);
}

#[test]
fn bad_arguments_are_refused() {
    let run_bad = "Passed invalid arguments to cmd.run: ";
    check_error(
        "cmd.run",
        json!([]),
        &format!("{run_bad}run() missing 1 required positional argument: 'cmd'"),
    );
    for cmd in [json!(null), json!({"a": 1}), json!(true), json!([]), json!([["x"]]), json!("  ")] {
        check_error("cmd.run", json!([cmd]), run_bad);
    }
    check_error("cmd.run", json!(["echo\u{0}x"]), run_bad);
    check_error(
        "cmd.run_all",
        json!(["true", kw(json!({"timeout": "soon"}))]),
        "Passed invalid arguments to cmd.run_all: timeout",
    );
    check_error("cmd.run", json!(["true", kw(json!({"timeout": -1}))]), run_bad);
    check_error("cmd.run", json!(["true", kw(json!({"timeout": 1e300}))]), run_bad);
    check_error("cmd.run", json!(["true", kw(json!({"env": "A=1"}))]), run_bad);
    check_error("cmd.run", json!(["true", kw(json!({"env": {"A=B": "1"}}))]), run_bad);
    check_error("cmd.run", json!(["true", kw(json!({"env": [1]}))]), run_bad);
    check_error("cmd.run", json!(["true", kw(json!({"shell": 5}))]), run_bad);
    check_error(
        "cmd.run",
        json!(["true", kw(json!({"cwd": "/no/such/dir"}))]),
        "ERROR: Specified cwd '/no/such/dir' either not absolute or does not exist",
    );
    check_error(
        "cmd.run",
        json!(["true", kw(json!({"cwd": "tmp"}))]),
        "ERROR: Specified cwd 'tmp' either not absolute",
    );
    check_error(
        "cmd.run",
        json!(["true", kw(json!({"shell": "/no/shell"}))]),
        "ERROR: The shell /no/shell is not available",
    );
    check_error(
        "cmd.run",
        json!([["/no/such/program"]]),
        "ERROR: Unable to run command '['/no/such/program']'",
    );
    check_error(
        "cmd.run",
        json!(["true", kw(json!({"success_retcodes": ["x"]}))]),
        "ERROR executing 'cmd.run': success_retcodes must be a list of integers",
    );
    for option in ["runas", "group", "umask", "template"] {
        let want =
            format!("ERROR executing 'cmd.run': the '{option}' option is not supported by Halite");
        check_error("cmd.run", json!(["true", kw(json!({option: "x"}))]), &want);
    }
    // Given as null, they mean "not given", as Salt's None.
    check("cmd.run", json!(["echo ok", kw(json!({"runas": null}))]), json!("ok"), 0);
}
