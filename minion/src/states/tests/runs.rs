//! Whole runs: the seed scenario, requisites, test mode, includes, ordering, errors, top.

use super::super::perms::default_file_mode;
use super::*;
use halite_states::{NO_MATCHES, WATCH_UNCHANGED};

fn keys(ret: &Map<String, Value>) -> Vec<&str> {
    ret.keys().map(String::as_str).collect()
}

#[test]
fn the_seed_test_sls_creates_then_keeps_then_diffs() {
    let dir = TempDir::new();
    let target = dir.path("example");
    let fs = MemFs::new(&[
        ("test.sls", &format!("{target}:\n  file.managed:\n    - source: salt://example\n")),
        ("example", "hello from the master\n"),
    ]);

    let first = sls(&fs, "test", &opts(false));
    assert_eq!(first.retcode, 0, "{}", first.value);
    let tag = format!("file_|-{target}_|-{target}_|-managed");
    let ret = first.value[&tag].as_object().cloned().unwrap();
    assert_eq!(
        keys(&ret),
        [
            "changes",
            "comment",
            "name",
            "result",
            "__sls__",
            "__run_num__",
            "start_time",
            "duration",
            "__id__"
        ]
    );
    assert_eq!(ret["changes"], json!({"diff": "New file", "mode": default_file_mode()}));
    assert_eq!(ret["comment"], json!(format!("File {target} updated")));
    assert_eq!(
        (&ret["result"], &ret["__sls__"], &ret["__run_num__"]),
        (&json!(true), &json!("test"), &json!(0))
    );
    let start = ret["start_time"].as_str().unwrap();
    assert!(start.len() == 15 || start.len() == 8, "{start}");
    assert!(ret["duration"].is_f64() || ret["duration"].is_u64(), "{}", ret["duration"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "hello from the master\n");

    let second = sls(&fs, "test", &opts(false));
    assert_eq!(second.retcode, 0);
    assert_eq!(second.value[&tag]["changes"], json!({}));
    assert_eq!(
        second.value[&tag]["comment"],
        json!(format!("File {target} is in the correct state"))
    );

    fs.put("example", "hello from the master\nand a new line\n");
    let dry = sls(&fs, "test", &opts(true));
    assert_eq!(dry.value[&tag]["result"], Value::Null);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "hello from the master\n",
        "test=True wrote"
    );

    let third = sls(&fs, "test", &opts(false));
    assert_eq!(
        third.value[&tag]["changes"],
        json!({"diff": "--- \n+++ \n@@ -1 +1,2 @@\n hello from the master\n+and a new line\n"})
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "hello from the master\nand a new line\n"
    );
}

#[test]
fn a_failed_requisite_fails_its_dependants() {
    let dir = TempDir::new();
    let marker = dir.path("marker");
    let fs = MemFs::new(&[(
        "req.sls",
        &format!(
            "fails:\n  cmd.run:\n    - name: exit 3\n\
             after:\n  cmd.run:\n    - name: touch {marker}\n    - require:\n      - cmd: fails\n\
             independent:\n  cmd.run:\n    - name: echo hi\n"
        ),
    )]);
    let answer = sls(&fs, "req", &opts(false));
    assert_eq!(answer.retcode, 2, "{}", answer.value);
    let r = results(&answer);
    let ids: Vec<&str> = r.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["fails", "after", "independent"]);
    let fails = result(&r, "fails");
    assert_eq!(keys(fails)[..4], ["name", "changes", "result", "comment"]);
    assert_eq!(fails["result"], json!(false));
    assert_eq!(fails["comment"], json!("Command \"exit 3\" run"));
    let changes: Vec<&str> =
        fails["changes"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(changes, ["pid", "retcode", "stdout", "stderr"]);
    assert_eq!(fails["changes"]["retcode"], json!(3));
    let after = result(&r, "after");
    assert_eq!(after["result"], json!(false));
    assert_eq!(after["comment"], json!("One or more requisite failed: req.fails"));
    assert_eq!(after["changes"], json!({}));
    assert_eq!(after["__state_ran__"], json!(false));
    assert!(!Path::new(&marker).exists());
    let hi = result(&r, "independent");
    assert_eq!((&hi["result"], &hi["changes"]["stdout"]), (&json!(true), &json!("hi")));
}

#[test]
fn watch_reruns_a_command_only_when_the_watched_file_changed() {
    let dir = TempDir::new();
    let (watched, counter) = (dir.path("watched"), dir.path("count"));
    let fs = MemFs::new(&[
        (
            "w.sls",
            &format!(
                "{watched}:\n  file.managed:\n    - source: salt://conf\n\
                 react:\n  cmd.run:\n    - name: echo x >> {counter}\n    - watch:\n      - file: {watched}\n"
            ),
        ),
        ("conf", "v1\n"),
    ]);
    let count = || std::fs::read_to_string(&counter).map_or(0, |t| t.lines().count());
    let first = sls(&fs, "w", &opts(false));
    assert_eq!(first.retcode, 0, "{}", first.value);
    assert_eq!(count(), 1);

    let second = sls(&fs, "w", &opts(false));
    let r = results(&second);
    assert_eq!(result(&r, "react")["comment"], json!(WATCH_UNCHANGED));
    assert_eq!(result(&r, "react")["result"], json!(true));
    assert_eq!(count(), 1, "unchanged: not re-run");

    fs.put("conf", "v2\n");
    let dry = sls(&fs, "w", &opts(true));
    let r = results(&dry);
    assert_eq!(
        result(&r, "react")["comment"],
        json!(format!("Command \"echo x >> {counter}\" would have been executed"))
    );
    assert_eq!(count(), 1, "test mode ran the command");

    sls(&fs, "w", &opts(false));
    assert_eq!(count(), 2, "changed: re-run");
}

#[test]
fn onchanges_and_onfail_run_only_when_triggered() {
    let fs = MemFs::new(&[(
        "o.sls",
        "changed:\n  test.succeed_with_changes\n\
         quiet:\n  test.nop\n\
         broken:\n  test.fail_without_changes\n\
         on_changed:\n  test.nop:\n    - onchanges:\n      - test: changed\n\
         on_quiet:\n  test.nop:\n    - onchanges:\n      - test: quiet\n\
         on_broken:\n  test.nop:\n    - onfail:\n      - test: broken\n\
         on_fine:\n  test.nop:\n    - onfail:\n      - test: quiet\n\
         any_changed:\n  test.nop:\n    - onchanges_any:\n      - test: quiet\n      - test: changed\n\
         watch_test:\n  test.nop:\n    - watch:\n      - test: changed\n",
    )]);
    let answer = sls(&fs, "o", &opts(false));
    assert_eq!(answer.retcode, 2, "broken fails the run");
    let r = results(&answer);
    for (id, result_, comment) in [
        ("on_changed", json!(true), "Success!"),
        ("on_quiet", json!(true), "State was not run because none of the onchanges reqs changed"),
        ("on_broken", json!(true), "Success!"),
        ("on_fine", json!(true), "State was not run because onfail req did not change"),
        ("any_changed", json!(true), "Success!"),
        ("watch_test", json!(true), "Watch statement fired."),
    ] {
        let ret = result(&r, id);
        assert_eq!((&ret["result"], ret["comment"].as_str().unwrap()), (&result_, comment), "{id}");
    }
    assert_eq!(
        result(&r, "watch_test")["changes"],
        json!({"Requisites with changes": ["test: changed"]})
    );
}

#[test]
fn test_mode_changes_nothing() {
    let dir = TempDir::new();
    let (file, marker) = (dir.path("f"), dir.path("m"));
    let fs = MemFs::new(&[(
        "t.sls",
        &format!(
            "{file}:\n  file.managed:\n    - contents: hello\n\
             mark:\n  cmd.run:\n    - name: touch {marker}\n\
             fine:\n  test.fail_without_changes\n"
        ),
    )]);
    let answer = sls(&fs, "t", &opts(true));
    let r = results(&answer);
    let f = result(&r, &file);
    assert_eq!(f["result"], Value::Null);
    assert_eq!(f["changes"], json!({"newfile": file}));
    assert_eq!(
        f["comment"],
        json!(format!(
            "The file {file} is set to be changed\nNote: No changes made, actual changes may\nbe different due to other states."
        ))
    );
    let mark = result(&r, "mark");
    assert_eq!(
        (&mark["result"], &mark["changes"]),
        (&Value::Null, &json!({"cmd": format!("touch {marker}")}))
    );
    assert_eq!(
        result(&r, "fine")["comment"],
        json!("If we weren't testing, this would be a failure!")
    );
    assert!(!Path::new(&file).exists() && !Path::new(&marker).exists());
}

#[test]
fn includes_run_first_and_in_order() {
    let fs = MemFs::new(&[
        ("web/init.sls", "include:\n  - .app\n  - common\nweb_own:\n  test.nop\n"),
        ("web/app.sls", "app_own:\n  test.nop\n"),
        ("common.sls", "include:\n  - web.app\ncommon_own:\n  test.nop\n"),
        ("other.sls", "other_own:\n  test.nop:\n    - require:\n      - sls: web\n"),
    ]);
    let answer = sls(&fs, "web,other", &opts(false));
    assert_eq!(answer.retcode, 0, "{}", answer.value);
    let r = results(&answer);
    let order: Vec<(&str, &str)> =
        r.iter().map(|(id, ret)| (id.as_str(), ret["__sls__"].as_str().unwrap())).collect();
    assert_eq!(
        order,
        [
            ("app_own", "web.app"),
            ("common_own", "common"),
            ("web_own", "web"),
            ("other_own", "other")
        ]
    );
    let nums: Vec<i64> = r.iter().map(|(_, ret)| ret["__run_num__"].as_i64().unwrap()).collect();
    assert_eq!(nums, [0, 1, 2, 3]);
}

#[test]
fn order_and_requisites_decide_the_sequence() {
    let fs = MemFs::new(&[(
        "o.sls",
        "a:\n  test.nop\n\
         b:\n  test.nop:\n    - order: last\n\
         c:\n  test.nop:\n    - order: first\n\
         d:\n  test.nop:\n    - require_in:\n      - test: a\n",
    )]);
    let r = results(&sls(&fs, "o", &opts(false)));
    let ids: Vec<&str> = r.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["c", "d", "a", "b"]);
}

#[track_caller]
fn check_errors(files: &[(&str, &str)], mods: &str, want: &[&str]) {
    let fs = MemFs::new(files);
    let got = errors(&sls(&fs, mods, &opts(false)));
    assert_eq!(got, want, "{mods}");
}

#[test]
fn compile_errors_are_a_list_of_strings() {
    check_errors(&[], "nonexistent", &["No matching sls found for 'nonexistent' in env 'base'"]);
    check_errors(
        &[("bad.sls", "a:\n  test.nop:\n    - name: {{ x }\n")],
        "bad",
        &["Rendering SLS 'base:bad' failed: Jinja syntax error: unexpected `}`, expected end of variable block; line 3\n\n---\na:\n  test.nop:\n    - name: {{ x }    <======================\n---"],
    );
    check_errors(
        &[("undef.sls", "{{ nothing.here }}:\n  test.nop\n")],
        "undef",
        &["Rendering SLS 'base:undef' failed: Jinja variable is undefined; line 1\n\n---\n{{ nothing.here }}:    <======================\n  test.nop\n---"],
    );
    check_errors(
        &[("yaml.sls", "a:\n  test.nop:\n  - x: 1\n b: c\n")],
        "yaml",
        &["Rendering SLS 'base:yaml' failed: did not find expected key; line 4\n\n---\na:\n  test.nop:\n  - x: 1\n b: c    <======================\n---"],
    );
    check_errors(
        &[("cycle.sls", "a:\n  test.nop:\n    - require:\n      - test: b\nb:\n  test.nop:\n    - require:\n      - test: a\n")],
        "cycle",
        &["Recursive requisites were found: ({'SLS': 'cycle', 'ID': 'b'}, 'require', {'SLS': 'cycle', 'ID': 'a'}), ({'SLS': 'cycle', 'ID': 'a'}, 'require', {'SLS': 'cycle', 'ID': 'b'})"],
    );
    check_errors(
        &[("inc.sls", "include:\n  - missing\n")],
        "inc",
        &["Specified SLS missing in saltenv base is not available on the salt master or through a configured fileserver"],
    );
    check_errors(
        &[("list.sls", "- a\n- b\n")],
        "list",
        &["SLS list does not render to a dictionary"],
    );
    check_errors(
        &[("dup.sls", "include:\n  - other\nx:\n  test.nop\n"), ("other.sls", "x:\n  test.fail_without_changes\n")],
        "dup",
        &["Detected conflicting IDs, SLS IDs need to be globally unique.\n    The conflicting ID is 'x' and is found in SLS 'base:dup' and SLS 'base:other'"],
    );
    check_errors(
        &[("pipe.sls", "#!py\ndef run(): pass\n")],
        "pipe",
        &["Rendering SLS 'base:pipe' failed: The renderer pipeline 'py' is not supported by Halite (use jinja|yaml or yaml)"],
    );
}

#[test]
fn unknown_states_and_missing_requisites_fail_their_state() {
    let fs = MemFs::new(&[(
        "u.sls",
        "typo:\n  file.manged:\n    - name: /tmp/x\n\
         lost:\n  test.nop:\n    - require:\n      - cmd: nothing\n      - ghost\n\
         needs:\n  file.symlink:\n    - name: /tmp/halite-no-target\n",
    )]);
    let answer = sls(&fs, "u", &opts(false));
    assert_eq!(answer.retcode, 2);
    let r = results(&answer);
    // Results without __id__ (Salt leaves it out of these) are found by name.
    let typo = &r.iter().find(|(_, ret)| ret["name"] == json!("/tmp/x")).unwrap().1;
    assert_eq!(typo["comment"], json!("State 'file.manged' was not found in SLS 'u'\nReason: 'file.manged' is not available.\n"));
    assert_eq!(keys(typo), ["result", "name", "changes", "comment", "__run_num__"]);
    let lost = &r.iter().find(|(_, ret)| ret["name"] == json!("lost")).unwrap().1;
    assert_eq!(
        lost["comment"],
        json!("The following requisites were not found:\n                   require:\n                       cmd: nothing\n                       id: ghost\n")
    );
    assert_eq!(lost["result"], json!(false));
    let needs = &r.iter().find(|(_, ret)| ret["name"] == json!("/tmp/halite-no-target")).unwrap().1;
    assert_eq!(needs["comment"], json!("Missing parameter target for state file.symlink\n"));
}

#[test]
fn templates_see_salts_context() {
    let dir = TempDir::new();
    let out = dir.path("out");
    let fs = MemFs::new(&[
        (
            "ctx.sls",
            &format!(
                "{{% set os = salt['grains.get']('os') %}}\n\
                 {out}:\n  file.managed:\n    - source: salt://tpl.j2\n    - template: jinja\n\
                 \x20   - context:\n        greeting: {{{{ pillar.get('greeting', 'none') }}}}\n\
                 echo-{{{{ os }}}}-{{{{ salt.cmd.run('echo shell') }}}}-{{{{ opts.id }}}}-{{{{ sls }}}}:\n  test.nop\n\
                 p-{{{{ salt['pillar.get']('deep:key', 'dflt') }}}}-{{{{ salt['pillar.get']('greeting') }}}}:\n  test.nop\n"
            ),
        ),
        ("tpl.j2", "{{ greeting }} {{ grains['roles'] | join(',') }} {{ True }} {{ none }}\n"),
    ]);
    let mut options = opts(false);
    options.pillar = json!({"greeting": "hi", "deep": {}}).as_object().cloned().unwrap();
    let answer = sls(&fs, "ctx", &options);
    assert_eq!(answer.retcode, 0, "{}", answer.value);
    let r = results(&answer);
    assert!(r.iter().any(|(id, _)| id == "echo-Debian-shell-minion1-ctx"), "{r:?}");
    assert!(r.iter().any(|(id, _)| id == "p-dflt-hi"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi web True None\n");
}

#[test]
fn run_checks_skip_commands() {
    let dir = TempDir::new();
    let exists = dir.path("exists");
    std::fs::write(&exists, "").unwrap();
    let fs = MemFs::new(&[(
        "c.sls",
        &format!(
            "u:\n  cmd.run:\n    - name: echo u\n    - unless: 'true'\n\
             o:\n  cmd.run:\n    - name: echo o\n    - onlyif:\n      - 'true'\n      - 'false'\n\
             c:\n  cmd.run:\n    - name: echo c\n    - creates: {exists}\n\
             runs:\n  cmd.run:\n    - name: echo runs\n    - unless: 'false'\n    - cwd: /\n"
        ),
    )]);
    let r = results(&sls(&fs, "c", &opts(false)));
    for (id, comment) in [
        ("u", "unless condition is true".to_string()),
        ("o", "onlyif condition is false".to_string()),
        ("c", format!("{exists} exists")),
        ("runs", "Command \"echo runs\" run".to_string()),
    ] {
        let ret = result(&r, id);
        assert_eq!(
            (&ret["result"], ret["comment"].as_str().unwrap()),
            (&json!(true), comment.as_str()),
            "{id}"
        );
    }
    let skipped = result(&r, "u");
    assert_eq!(
        keys(skipped),
        [
            "result",
            "name",
            "changes",
            "comment",
            "__sls__",
            "__id__",
            "skip_watch",
            "__run_num__",
            "start_time",
            "duration"
        ]
    );
    assert_eq!(result(&r, "runs")["changes"]["stdout"], json!("runs"));
}

#[test]
fn highstate_follows_the_top_file() {
    let fs = MemFs::new(&[
        (
            "top.sls",
            "base:\n  '*':\n    - common\n  'os:Debian':\n    - match: grain\n    - debian\n  'other':\n    - never\n",
        ),
        ("common.sls", "common_state:\n  test.nop\n"),
        ("debian.sls", "debian_state:\n  test.nop\n"),
        ("never.sls", "never_state:\n  test.fail_without_changes\n"),
    ]);
    let answer = highstate(&fs, &opts(false));
    assert_eq!(answer.retcode, 0, "{}", answer.value);
    let ids: Vec<String> = results(&answer).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["common_state", "debian_state"]);

    let nothing = MemFs::new(&[("top.sls", "base:\n  'nobody':\n    - x\n")]);
    let answer = highstate(&nothing, &opts(false));
    assert_eq!(answer.retcode, 2);
    assert_eq!(
        answer.value,
        json!({"no_|-states_|-states_|-None": {"result": false, "comment": NO_MATCHES, "name": "No States", "changes": {}, "__run_num__": 0}})
    );
}

#[test]
fn show_sls_and_show_low_sls_describe_without_running() {
    let dir = TempDir::new();
    let path = dir.path("never");
    let fs = MemFs::new(&[("s.sls", &format!("{path}:\n  file.managed:\n    - contents: x\n"))]);
    let high = halite_states::show_sls(&host(&fs), &["s".into()], &opts(false));
    assert_eq!(
        high.value,
        json!({path.clone(): {"file": [{"contents": "x"}, "managed", {"order": 10000}], "__sls__": "s", "__env__": "base"}})
    );
    let low = halite_states::show_low_sls(&host(&fs), &["s".into()], &opts(false));
    assert_eq!(
        low.value,
        json!([{"state": "file", "name": path, "__sls__": "s", "__env__": "base", "__id__": path, "contents": "x", "order": 10000, "fun": "managed"}])
    );
    assert!(!Path::new(&path).exists());
}
