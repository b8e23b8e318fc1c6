//! An orchestration over the swarm (issue #12's "Must be shown"): `halite-run state.orch`
//! of three `salt.function` steps on every swarm minion — `test.ping`, then `test.echo`
//! requiring it, then `test.ping` requiring that — timed from the command to its answer.

use super::{thousands, Bench};
use crate::procs::{median_ms, timed, Result};
use crate::swarm;
use serde_json::Value;
use std::process::Command;

/// The orchestration, as `srv/salt/orch/three.sls`.
const THREE_STEPS: &str = "\
ping:
  salt.function:
    - name: test.ping
    - tgt: '*'
echo:
  salt.function:
    - name: test.echo
    - tgt: '*'
    - arg:
      - orchestrated
    - require:
      - salt: ping
pong:
  salt.function:
    - name: test.ping
    - tgt: '*'
    - require:
      - salt: echo
";

impl Bench {
    /// The three-step orchestration over N swarm minions (1,000; 100 with `--quick`): median
    /// wall time of `halite-run state.orch orch.three`. Fails the run when a step fails or
    /// a minion's return is missing from a step.
    pub fn orchestrate(&mut self) -> Result<()> {
        let n = if self.quick { 100 } else { 1000 };
        eprintln!("orchestrate: {n} swarm minions, three steps");
        let members = swarm::load_keys(self.keys.path(), "orch", n).map_err(|e| e.to_string())?;
        let master = self.master(&format!("orch{n}"), "", |dir| {
            swarm::pre_accept(&dir.join("root/etc/halite/pki/master"), &members)
                .map_err(|e| e.to_string())?;
            dir.write("srv/salt/orch/three.sls", THREE_STEPS)?;
            dir.append(
                "conf/master",
                &format!("file_roots:\n  base: [{}]\n", dir.join("srv/salt").display()),
            )
        })?;
        let (mut swarm, _) = self.swarm(&master, "orch", n)?;
        // Every session live before the clock starts.
        self.halite_until_ok(&master, &["*", "test.ping", "--out", "json"])?;
        let reps = if self.quick { 2 } else { 5 };
        let mut samples = Vec::new();
        for _ in 0..reps {
            let mut cmd = Command::new(self.bin("halite-run"));
            cmd.arg("-c").arg(&master.conf).args(["state.orch", "orch.three", "--out", "json"]);
            let (took, out) = timed(&mut cmd)?;
            if let Some(problem) = check_run(&out, n) {
                self.failures.push(format!("orchestration over {n} swarm minions: {problem}"));
            }
            samples.push(took);
        }
        swarm.command("stats")?;
        let stats = swarm.wait_line("stats: ")?;
        if !stats.contains(" lost=0") {
            self.failures.push(format!("orchestration over {n} swarm minions: {stats}"));
        }
        let ms = median_ms(samples);
        self.row(
            "orchestrate",
            format!(
                "`halite-run state.orch`, three `salt.function` steps (`test.ping`, `test.echo`, \
                 `test.ping`, each requiring the last) on {} swarm minions (median)",
                thousands(n)
            ),
            format!("{ms:.0} ms"),
            "",
            None,
        );
        Ok(())
    }
}

/// What is wrong with one run's `--out json` answer: a step that failed or did not run, or
/// a step missing a minion's return.
fn check_run(out: &str, n: usize) -> Option<String> {
    let data: Value = match serde_json::from_str(out) {
        Ok(data) => data,
        Err(e) => return Some(format!("not JSON ({e})")),
    };
    let steps = data.as_object().and_then(|m| m.values().next()).and_then(Value::as_object);
    let Some(steps) = steps else { return Some(format!("no steps in {data}")) };
    if steps.len() != 3 {
        return Some(format!("{} steps ran, not 3", steps.len()));
    }
    for (key, step) in steps {
        let returned = step["changes"]["ret"].as_object().map_or(0, |r| r.len());
        if step["result"] != Value::Bool(true) || returned != n {
            return Some(format!("{key}: result {}, {returned} returns of {n}", step["result"]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_checked_step_by_step() {
        let step = |result: bool, ids: &[&str]| {
            let ret: serde_json::Map<String, Value> =
                ids.iter().map(|id| (id.to_string(), Value::Bool(true))).collect();
            serde_json::json!({"result": result, "changes": {"ret": ret}})
        };
        let run = |steps: Vec<Value>| {
            let steps: serde_json::Map<String, Value> =
                steps.into_iter().enumerate().map(|(i, s)| (format!("s{i}"), s)).collect();
            serde_json::json!({"host_master": steps}).to_string()
        };
        let ok = step(true, &["a", "b"]);
        assert_eq!(check_run(&run(vec![ok.clone(), ok.clone(), ok.clone()]), 2), None);
        let short = step(true, &["a"]);
        assert!(check_run(&run(vec![ok.clone(), short, ok.clone()]), 2).is_some());
        let failed = step(false, &["a", "b"]);
        assert!(check_run(&run(vec![ok.clone(), ok.clone(), failed]), 2).is_some());
        assert!(check_run(&run(vec![ok.clone(), ok]), 2).is_some());
        assert!(check_run("nope", 2).is_some());
    }
}
