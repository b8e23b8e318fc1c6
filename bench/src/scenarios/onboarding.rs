//! Mass onboarding, the seed article's use case: N brand-new minions (keys the master has never
//! seen) come up at once against the seed's reactor, which accepts each pending key on
//! `salt/auth` and runs a job on each start event; the clock runs until every job is done.

use super::{mib, thousands, Bench, SEED_START};
use crate::procs::{median_ms, Daemon, Follow, Result};
use crate::swarm;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The swarm's start reaction: a job the swarm answers, on the new minion alone.
const SWARM_START: &str = "\
ping_new_minion:
  local.test.ping:
    - tgt: {{ data['id'] }}
";

/// The real minions' state: a file named after the minion, its content rendered on the minion
/// from `salt://` (so each one also goes through the file server).
const ONBOARD_SLS: &str = "\
{{ grains['id'] }}-onboarded:
  file.managed:
    - name: OUT/{{ grains['id'] }}
    - source: salt://onboard.txt
    - template: jinja
    - makedirs: True
";

/// What onboarding needs lifted from the master's defaults, all of them per-source or
/// per-second limits that a fleet of N hosts would not meet from one address in one second:
/// every swarm member comes from 127.0.0.1. `max_pending_keys` stays at its default: the swarm
/// keeps at most 256 handshakes (so pending keys) in flight.
const LIMITS: &str = "\
pending_key_rate: 0
reactor_rate_limit: 0
reactor_render_budget_ms: 0
";

impl Bench {
    /// N swarm minions (fresh keys, not pre-seeded) onboarded by the seed's reactor, then N
    /// real `halite-minion` processes each applying `state.sls` through it.
    pub fn onboarding(&mut self) -> Result<()> {
        let sizes: &[(usize, usize)] =
            // One run at 10,000: minutes on today's master (see BENCHMARKS.md).
            if self.quick { &[(100, 1)] } else { &[(1000, 3), (10_000, 1)] };
        for &(n, reps) in sizes {
            self.onboard_swarm(n, reps)?;
        }
        let (n, reps) = if self.quick { (5, 1) } else { (50, 3) };
        self.onboard_real(n, reps)
    }

    fn onboard_swarm(&mut self, n: usize, reps: usize) -> Result<()> {
        eprintln!("onboarding: {n} new swarm minions, {reps} runs");
        let prefix = "Minion";
        // Generated (or read back) before the clock and never shown to the master: what a new
        // machine's install leaves on it. The swarm reads them again inside the clock.
        swarm::load_keys(self.keys.path(), prefix, n).map_err(|e| e.to_string())?;
        let mut samples = Vec::new();
        let mut missing = 0;
        let mut peak = 0;
        let (mut rehellos, mut reconnects) = (0, 0);
        // A run that never finished: its clock is only the limit it hit.
        let mut unfinished = None;
        for _ in 0..reps {
            let master =
                self.seed_master(&format!("onboard{n}"), SWARM_START, LIMITS, |_| Ok(()))?;
            let mut log = Follow::from_end(&master.event_log());
            let start = Instant::now();
            let mut swarm = self.spawn_swarm(&master, prefix, n)?;
            let needle = format!("/ret/{prefix}");
            // Far past the targets: a slow master still gives a number, a stuck one an error.
            let limit = crate::procs::STEP.max(Duration::from_millis(60) * n as u32);
            let mut lost = None;
            let waited = log.wait_count_unless(&needle, n, limit, || {
                lost = swarm.lost();
                lost.clone()
            });
            samples.push(start.elapsed());
            if let Some(line) = lost {
                // Stop at the first lost member, with what the master said about it.
                let id = line.trim_start_matches("lost ").split(':').next().unwrap_or_default();
                let log = std::fs::read_to_string(&master.daemon.log).unwrap_or_default();
                let said: Vec<&str> = log.lines().filter(|l| l.contains(id)).collect();
                return Err(format!(
                    "{n} swarm minions: {line}; the master on it:\n{}",
                    said.join("\n")
                ));
            }
            swarm.command("stats")?;
            let stats = swarm.wait_line("stats: ")?;
            let returned = returned_ids(&master.event_log(), &needle);
            if let Err(e) = waited {
                self.failures.push(format!("onboarding {n} swarm minions: {e}"));
                let (got, secs) = (thousands(returned.len()), limit.as_secs());
                unfinished =
                    Some(format!("unfinished: {got} of {} returned in {secs} s", thousands(n)));
            }
            let gone = n.saturating_sub(returned.len());
            missing += gone;
            peak = peak.max(master.daemon.memory().peak_kib);
            eprintln!("    {:.2} s; {stats}", samples[samples.len() - 1].as_secs_f64());
            rehellos += stat(&stats, "rehellos");
            reconnects += stat(&stats, "reconnects");
            if gone > 0 || !stats.contains(" lost=0") {
                let some: Vec<String> = (0..n)
                    .map(|i| format!("{prefix}{i:05}"))
                    .filter(|id| !returned.contains(id))
                    .take(5)
                    .collect();
                self.failures.push(format!(
                    "onboarding {n} swarm minions: {gone} missing returns (e.g. {some:?}); {stats}"
                ));
            }
        }
        let ms = median_ms(samples);
        let (target, met) = match n {
            1000 => ("< 2 s", Some(ms < 2000.0)),
            10_000 => ("< 20 s", Some(ms < 20_000.0)),
            _ => ("", None),
        };
        self.row(
            "onboarding",
            format!(
                "onboarding {} new swarm minions (fresh keys): pending → reactor accepts → \
                 `test.ping` on the start event, every return in ({}; {missing} missing; \
                 {rehellos} re-hellos, {reconnects} reconnections)",
                thousands(n),
                runs(reps)
            ),
            unfinished.unwrap_or_else(|| format!("{:.2} s", ms / 1000.0)),
            target,
            met,
        );
        let (target, met) = match n {
            10_000 => ("< 64 MB", Some(peak < 64 * 1024)),
            _ => ("", None),
        };
        self.row(
            "onboarding",
            format!("`halite-master` RSS peak, onboarding {} minions", thousands(n)),
            mib(peak),
            target,
            met,
        );
        Ok(())
    }

    fn onboard_real(&mut self, n: usize, reps: usize) -> Result<()> {
        eprintln!("onboarding: {n} new halite-minion processes, {reps} runs");
        let start_sls = SEED_START.replace("- test", "- onboard");
        let mut samples = Vec::new();
        for _ in 0..reps {
            let master =
                self.seed_master(&format!("onboard-real{n}"), &start_sls, LIMITS, |dir| {
                    let out = dir.join("out").display().to_string();
                    dir.write("srv/salt/onboard.sls", &ONBOARD_SLS.replace("OUT", &out))?;
                    dir.write("srv/salt/onboard.txt", "onboarded {{ grains['id'] }}\n")?;
                    Ok(())
                })?;
            let ids: Vec<String> = (0..n).map(|i| format!("Minion{i:03}")).collect();
            let out = master.dir.join("out");
            let start = Instant::now();
            let mut minions = Vec::new();
            for id in &ids {
                minions.push(self.minion(&master, id, "")?);
            }
            let deadline = start + crate::procs::STEP;
            let mut waiting: Vec<&String> = ids.iter().collect();
            while !waiting.is_empty() {
                waiting.retain(|id| !onboarded(&out, id));
                if waiting.is_empty() {
                    break;
                }
                if let Some(gone) = exited(&mut minions) {
                    return Err(format!("a halite-minion exited while onboarding: {gone}"));
                }
                if Instant::now() > deadline {
                    let log =
                        std::fs::read_to_string(master.dir.join("master.log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    self.failures.push(format!(
                        "onboarding {n} real minions: {} never got their file (e.g. {:?}); \
                         master log ends:\n{}",
                        waiting.len(),
                        waiting.iter().take(5).collect::<Vec<_>>(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            samples.push(start.elapsed());
        }
        let ms = median_ms(samples);
        self.row(
            "onboarding",
            format!(
                "onboarding {n} new `halite-minion` processes (fresh keys): pending → reactor \
                 accepts → `state.sls` file on disk for every one ({})",
                runs(reps)
            ),
            format!("{:.2} s", ms / 1000.0),
            "",
            None,
        );
        Ok(())
    }
}

/// "median of 3", or "one run".
fn runs(reps: usize) -> String {
    match reps {
        1 => "one run".into(),
        n => format!("median of {n}"),
    }
}

/// `NAME=N` from the swarm's `stats:` line (0 when absent).
fn stat(stats: &str, name: &str) -> usize {
    let value = stats.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='));
    value.and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Whether `id`'s state file is on disk with its rendered content.
fn onboarded(out: &Path, id: &str) -> bool {
    std::fs::read_to_string(out.join(id)).is_ok_and(|t| t.trim_end() == format!("onboarded {id}"))
}

/// The log of the first minion that is no longer running, if one stopped.
fn exited(minions: &mut [Daemon]) -> Option<String> {
    minions.iter_mut().find_map(|m| match m.child.try_wait() {
        Ok(Some(status)) => {
            let log = std::fs::read_to_string(&m.log).unwrap_or_default();
            Some(format!("{status}:\n{log}"))
        }
        _ => None,
    })
}

/// The ids with a successful return (`return: true`) in the master's event log (and its
/// rotations): each `salt/job/<jid>/ret/<id>` line whose tag contains `needle`.
fn returned_ids(log: &Path, needle: &str) -> HashSet<String> {
    let mut files = vec![log.to_path_buf()];
    files.extend((1..=10).map(|k| log.with_extension(format!("log.{k}"))));
    let mut ids = HashSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for line in text.lines().filter(|l| l.contains(needle)) {
            let Ok(event) = serde_json::from_str::<Value>(line) else { continue };
            let tag = event["tag"].as_str().unwrap_or_default();
            let Some((_jid, id)) =
                tag.strip_prefix("salt/job/").and_then(|t| t.split_once("/ret/"))
            else {
                continue;
            };
            if event["data"]["return"] == Value::Bool(true) {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs::TempDir;

    /// Only successful returns count, once per id, rotated logs included; other job events
    /// and failed returns do not.
    #[test]
    fn returns_are_read_from_the_log_and_its_rotations() {
        let dir = TempDir::new("returned").unwrap();
        let ret = |jid: &str, id: &str, ret: &str| {
            format!(r#"{{"tag":"salt/job/{jid}/ret/{id}","data":{{"id":"{id}","return":{ret}}}}}"#)
        };
        let new = r#"{"tag":"salt/job/1/new","data":{"minions":["Minion00009"]}}"#;
        let current =
            [ret("2", "Minion00001", "true"), ret("3", "Minion00002", "\"no\""), new.into()];
        dir.write("events.log", &(current.join("\n") + "\n")).unwrap();
        let rotated = [ret("1", "Minion00000", "true"), ret("4", "Minion00001", "true")];
        dir.write("events.log.1", &(rotated.join("\n") + "\n")).unwrap();
        dir.write("events.log.2", "not json /ret/Minion\n").unwrap();
        let got = returned_ids(&dir.join("events.log"), "/ret/Minion");
        let mut got: Vec<_> = got.into_iter().collect();
        got.sort();
        assert_eq!(got, ["Minion00000", "Minion00001"]);
    }

    #[test]
    fn stats_are_read_by_name() {
        let line = "stats: live=9 returns=9 lost=0 pending=3 rehellos=2 reconnects=1";
        assert_eq!((stat(line, "rehellos"), stat(line, "reconnects")), (2, 1));
        assert_eq!(stat(line, "pending"), 3);
        assert_eq!(stat("stats: live=1", "rehellos"), 0);
        assert_eq!(runs(1), "one run");
        assert_eq!(runs(3), "median of 3");
    }
}
