//! The orchestrate runner through the real binaries: `halite-run state.orchestrate` with
//! `salt.function` and `salt.state` steps and a `require` between them, a failing first step,
//! `test=True`, an event → reactor → orchestration with the event's data as pillar, and a
//! step whose minion never answers.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::serde_json::{self, Value};
use halite_tests::{wait_until, TempDir};
use std::path::Path;

/// A master serving `roots` (with `extra` config), and auto-accepted minions `ids`, live.
fn cluster(roots: &TempDir, extra: &str, ids: &[&str]) -> (Master, Vec<Minion>) {
    let master = Master::start(&format!(
        "auto_accept: True\nfile_roots:\n  base: [{}]\n{extra}",
        roots.path().display()
    ));
    let minions: Vec<Minion> = ids.iter().map(|id| Minion::start(&master, id, id, "")).collect();
    for minion in &minions {
        minion.wait_authenticated();
    }
    let mut want: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    want.sort();
    wait_until(WAIT, "minions live", || master.presence() == want);
    (master, minions)
}

/// The orchestrate return's key: `<host>_master`, as Salt's.
fn master_key() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("{}_master", host.trim())
}

/// The deploy orchestration: `test.echo` on minion1, then `app` on minion2 with pillar,
/// requiring the first. `app` writes the pillar's `greeting` to `target`.
fn deploy_roots(target: &Path, first_step: &str) -> TempDir {
    let roots = TempDir::new();
    roots.write(
        "orch/deploy.sls",
        format!(
            "echo:\n  salt.function:\n{first_step}    - tgt: minion1\n\
             deploy:\n  salt.state:\n    - tgt: minion2\n    - sls: app\n    - pillar:\n        \
             greeting: {{{{ pillar.get('greeting', 'hello') | json }}}}\n    - require:\n      \
             - salt: echo\n"
        ),
    );
    roots.write(
        "app.sls",
        format!(
            "{}:\n  file.managed:\n    - contents: {{{{ pillar['greeting'] | json }}}}\n",
            target.display()
        ),
    );
    roots
}

const ECHO: &str = "    - name: test.echo\n    - arg:\n      - orchestrated\n";

fn json_out(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn an_orchestration_runs_a_function_then_a_state_with_pillar() {
    let work = TempDir::new();
    let target = work.join("deployed");
    let roots = deploy_roots(&target, ECHO);
    let (master, _minions) = cluster(&roots, "", &["minion1", "minion2"]);

    let out = master.run(&[
        "state.orchestrate",
        "orch.deploy",
        r#"pillar={"greeting": "from the CLI"}"#,
        "--out",
        "json",
    ]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let data = json_out(&out.stdout);
    let steps = &data[master_key()];
    let echo = &steps["salt_|-echo_|-test.echo_|-function"];
    assert_eq!(echo["result"], true, "{data}");
    assert_eq!(echo["comment"], "Function ran successfully. Function test.echo ran on minion1.");
    assert_eq!(echo["changes"]["ret"]["minion1"], "orchestrated");
    let deploy = &steps["salt_|-deploy_|-deploy_|-state"];
    assert_eq!(deploy["result"], true, "{data}");
    assert_eq!(deploy["comment"], "States ran successfully. Updating minion2.");
    let file_key = format!("file_|-{0}_|-{0}_|-managed", target.display());
    assert_eq!(deploy["changes"]["ret"]["minion2"][&file_key]["result"], true);
    assert!(deploy["__run_num__"].as_i64() > echo["__run_num__"].as_i64());
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "from the CLI\n",
        "Salt's `contents` ends in a newline"
    );

    // Salt's runner events around it, and the steps' own job events.
    let new = master.wait_event_where("the orchestration's new event", |tag, data| {
        tag.starts_with("salt/run/")
            && tag.ends_with("/new")
            && data["fun"] == "runner.state.orchestrate"
    });
    let jid = new["jid"].as_str().unwrap().to_string();
    let ret = master.wait_event(&format!("salt/run/{jid}/ret"), |_| true);
    assert_eq!(ret["success"], true);
    assert_eq!(ret["return"]["retcode"], 0);
    master.wait_event_where("the echo step's job", |tag, data| {
        tag.starts_with("salt/job/") && tag.ends_with("/new") && data["fun"] == "test.echo"
    });

    // The text output is Salt's highstate outputter under the master's id.
    let out = master.run(&["state.orch", "orch.deploy", r#"pillar={"greeting": "from the CLI"}"#]);
    assert_eq!(out.status, Some(0), "{out:?}");
    for line in [
        format!("{}:", master_key()),
        "          ID: echo".into(),
        "    Function: salt.function".into(),
        "        Name: test.echo".into(),
        "          ID: deploy".into(),
        "    Function: salt.state".into(),
        "     Comment: States ran successfully. No changes made to minion2.".into(),
        "Failed:    0".into(),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?} in:\n{}", out.stdout);
    }
}

#[test]
fn a_failing_first_step_skips_the_second() {
    let work = TempDir::new();
    let target = work.join("never");
    let failing = "    - name: cmd.run\n    - arg:\n      - exit 3\n";
    let roots = deploy_roots(&target, failing);
    let (master, _minions) = cluster(&roots, "", &["minion1", "minion2"]);

    let out = master.run(&["state.orchestrate", "orch.deploy", "--out", "json"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let data = json_out(&out.stdout);
    let steps = &data[master_key()];
    let echo = &steps["salt_|-echo_|-cmd.run_|-function"];
    assert_eq!(echo["result"], false, "{data}");
    assert_eq!(
        echo["comment"],
        "Running function cmd.run failed on minions: minion1 Function cmd.run ran on minion1."
    );
    let deploy = &steps["salt_|-deploy_|-deploy_|-state"];
    assert_eq!(deploy["result"], false);
    assert_eq!(deploy["comment"], "One or more requisite failed: orch.deploy.echo");
    assert!(!target.exists(), "the second step ran");
    let ret = master.wait_event_where("the orchestration's ret event", |tag, data| {
        tag.starts_with("salt/run/")
            && tag.ends_with("/ret")
            && data["fun"] == "runner.state.orchestrate"
    });
    assert_eq!(ret["success"], false);
    // No state.sls job went out.
    assert!(!master.events().iter().any(|(_, d)| d["fun"] == "state.sls"));

    // The text output ends in Salt's summary, and the exit code says it failed.
    let out = master.run(&["state.orchestrate", "orch.deploy"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("Failed:    2"), "{}", out.stdout);
}

#[test]
fn test_mode_runs_nothing() {
    let work = TempDir::new();
    let target = work.join("not-yet");
    let roots = deploy_roots(&target, ECHO);
    let (master, _minions) = cluster(&roots, "", &["minion1", "minion2"]);

    let out = master.run(&["state.orchestrate", "orch.deploy", "test=True", "--out", "json"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let data = json_out(&out.stdout);
    let steps = &data[master_key()];
    let echo = &steps["salt_|-echo_|-test.echo_|-function"];
    assert_eq!(echo["result"], Value::Null, "{data}");
    assert_eq!(echo["comment"], "Function test.echo would be executed on target minion1");
    // salt.state passes test=True down: the minion reports what would change.
    let deploy = &steps["salt_|-deploy_|-deploy_|-state"];
    assert_eq!(deploy["result"], Value::Null, "{data}");
    let file_key = format!("file_|-{0}_|-{0}_|-managed", target.display());
    assert_eq!(deploy["changes"]["ret"]["minion2"][&file_key]["result"], Value::Null);
    assert!(!target.exists(), "test=True wrote the file");
    assert!(!master.events().iter().any(|(_, d)| d["fun"] == "test.echo"), "test.echo ran");
}

#[test]
fn an_event_reaches_an_orchestration_through_the_reactor() {
    let work = TempDir::new();
    let target = work.join("from-event");
    let roots = deploy_roots(&target, ECHO);
    // The reactor stays small and hands the event to the orchestration as pillar (Salt's
    // advice); the orchestration takes the greeting from the event's data.
    roots.write(
        "orch/deploy.sls",
        format!(
            "echo:\n  salt.function:\n{ECHO}    - tgt: minion1\n\
             deploy:\n  salt.state:\n    - tgt: minion2\n    - sls: app\n    - pillar:\n        \
             greeting: {{{{ pillar['event_data']['greeting'] | json }}}}\n    - require:\n      \
             - salt: echo\n"
        ),
    );
    let sls = TempDir::new();
    sls.write(
        "deploy.sls",
        "orchestrate_deploy:\n  runner.state.orchestrate:\n    - args:\n      - mods: orch.deploy\n      \
         - pillar:\n          event_tag: {{ tag }}\n          event_data: {{ data | json }}\n",
    );
    let extra =
        format!("reactor:\n  - 'myco/deploy':\n    - {}/deploy.sls\n", sls.path().display());
    let (master, _minions) = cluster(&roots, &extra, &["minion1", "minion2"]);

    // A hostile value stays one value all the way to the file.
    let greeting = "v42: {x}\n- evil";
    let data = serde_json::json!({ "greeting": greeting }).to_string();
    let sent = master.run(&["event.send", "myco/deploy", &data]);
    assert!(sent.success(), "{sent:?}");
    wait_until(WAIT, "the orchestration to write the file", || {
        std::fs::read_to_string(&target).is_ok_and(|text| text == format!("{greeting}\n"))
    });
    let ret = master.wait_event_where("the orchestration's ret event", |tag, data| {
        tag.starts_with("salt/run/")
            && tag.ends_with("/ret")
            && data["fun"] == "runner.state.orchestrate"
    });
    assert_eq!(ret["user"], "Reactor");
    assert_eq!(ret["success"], true, "{ret}");
    assert_eq!(ret["return"]["retcode"], 0);
    let steps = ret["return"]["data"][master_key()].as_object().unwrap();
    assert_eq!(steps.len(), 2, "{ret}");
}

#[test]
fn a_minion_that_never_answers_fails_its_step_after_the_timeout() {
    let roots = TempDir::new();
    roots.write("app.sls", "hi:\n  test.nop: []\n");
    roots.write(
        "orch/ghost.sls",
        "ping:\n  salt.function:\n    - name: test.ping\n    - tgt: ghost\n    - timeout: 1\n\
         apply:\n  salt.state:\n    - tgt: ghost\n    - sls: app\n    - timeout: 1\n\
         nobody:\n  salt.function:\n    - name: test.ping\n    - tgt: 'nomatch*'\n",
    );
    let (master, mut minions) = cluster(&roots, "", &["ghost"]);
    // Its key stays accepted, so it is targeted; it will never answer.
    drop(minions.pop());
    wait_until(WAIT, "ghost gone", || master.presence().is_empty());

    let out = master.run(&["state.orchestrate", "orch.ghost", "--out", "json"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let data = json_out(&out.stdout);
    let steps = &data[master_key()];
    let ping = &steps["salt_|-ping_|-test.ping_|-function"];
    assert_eq!(
        (&ping["result"], &ping["comment"]),
        (&false.into(), &"No minions responded".into())
    );
    let apply = &steps["salt_|-apply_|-apply_|-state"];
    assert_eq!(apply["result"], false, "{data}");
    assert_eq!(apply["comment"], "Run failed on minions: ghost");
    let nobody = &steps["salt_|-nobody_|-test.ping_|-function"];
    assert_eq!(nobody["comment"], "No minions responded");

    // A missing orchestration SLS, and a state function that does not exist.
    let out = master.run(&["state.orchestrate", "orch.nothing", "--out", "json"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert_eq!(
        json_out(&out.stdout)[master_key()],
        serde_json::json!(["No matching sls found for 'orch.nothing' in env 'base'"])
    );
    roots.write("orch/typo.sls", "x:\n  salt.functoin:\n    - tgt: ghost\n");
    let out = master.run(&["state.orchestrate", "orch.typo", "--out", "json"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let step = &json_out(&out.stdout)[master_key()]["salt_|-x_|-x_|-functoin"];
    assert_eq!(
        step["comment"],
        "State 'salt.functoin' was not found in SLS 'orch.typo'\nReason: 'salt.functoin' is not available.\n"
    );
}

#[test]
fn a_step_longer_than_its_timeout_is_awaited_while_its_minion_still_runs_it() {
    let roots = TempDir::new();
    roots.write(
        "orch/slow.sls",
        "slow:\n  salt.function:\n    - name: cmd.run\n    - tgt: minion1\n    - arg:\n      \
         - sleep 3; echo done\n    - timeout: 1\n",
    );
    let (master, _minions) = cluster(&roots, "", &["minion1"]);
    let out = master.run(&["state.orchestrate", "orch.slow", "--out", "json"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let slow = &json_out(&out.stdout)[master_key()]["salt_|-slow_|-cmd.run_|-function"];
    assert_eq!(slow["result"], true, "{slow}");
    assert_eq!(slow["changes"]["ret"]["minion1"], "done");
    // As `halite` does: past the timeout it asked whether the minion still ran the job.
    assert!(master.events().iter().any(|(_, d)| d["fun"] == "saltutil.find_job"));
}

/// A reactor that orchestrates on every job return would feed itself forever through the
/// orchestration's own jobs; their events carry the reaction's causal chain, so the reactor's
/// depth limit stops it.
#[test]
fn an_orchestration_loop_stops_at_the_reactors_depth_limit() {
    let roots = TempDir::new();
    roots.write(
        "orch/again.sls",
        "again:\n  salt.function:\n    - name: test.ping\n    - tgt: minion1\n",
    );
    let sls = TempDir::new();
    sls.write(
        "loop.sls",
        "loop:\n  runner.state.orchestrate:\n    - args:\n      - mods: orch.again\n",
    );
    let extra = format!(
        "reactor_max_depth: 4\nreactor:\n  - 'salt/job/*/ret/*':\n    - {}/loop.sls\n",
        sls.path().display()
    );
    let (master, _minions) = cluster(&roots, &extra, &["minion1"]);
    assert!(master.halite(&["minion1", "test.ping"]).success());
    let refused = master.wait_event("salt/reactor/refused", |d| d["reactor_max_depth"] == 4);
    assert_eq!(refused["depth"], 4, "{refused}");
    assert!(refused["reason"].as_str().unwrap().contains("causal depth limit"));
}

/// Only an orchestration's return says by its `retcode` whether the runner succeeded: a minion
/// named `retcode` in `jobs.lookup_jid` does not make that runner fail.
#[test]
fn a_minion_named_retcode_does_not_fail_a_lookup() {
    let roots = TempDir::new();
    let (master, _minions) = cluster(&roots, "", &["retcode"]);
    let out = master.halite(&["retcode", "test.echo", "5", "--out", "json"]);
    assert!(out.success(), "{out:?}");
    let job = master.wait_event_where("the echo job", |tag, d| {
        tag.ends_with("/new") && tag.starts_with("salt/job/") && d["fun"] == "test.echo"
    });
    let jid = job["jid"].as_str().unwrap();
    assert!(master.run(&["jobs.lookup_jid", jid]).success());
    let ret = master.wait_event_where("the lookup's ret", |tag, d| {
        tag.ends_with("/ret") && d["fun"] == "runner.jobs.lookup_jid"
    });
    assert_eq!(ret["return"]["retcode"], 5);
    assert_eq!(ret["success"], true, "{ret}");
}
