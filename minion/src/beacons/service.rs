//! Salt's `service` beacon: for each unit of `services`, whether it runs (Salt's
//! `service.status`, which on systemd is `systemctl is-active`), fired as
//! `{"<unit>": {"running": bool}, "service_name": "<unit>"}` under the tag `…/service/<unit>`;
//! per unit `onchangeonly`, `emitatstartup`, `delay` and `uncleanshutdown`. `systemctl` runs
//! on the beacons' worker thread, never on the loop; without it the beacon is off.

use super::{Module, Payload};
use crate::functions::process;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest a `systemctl is-active` may take.
const TIMEOUT: Duration = Duration::from_secs(10);

struct Unit {
    name: String,
    onchangeonly: bool,
    emitatstartup: bool,
    delay: Duration,
    uncleanshutdown: Option<PathBuf>,
}

/// What Salt remembers per unit (`LAST_STATUS`).
struct Last {
    running: bool,
    /// A change waiting out `delay`.
    since: Option<Instant>,
}

pub(super) struct Service {
    units: Vec<Unit>,
    systemctl: PathBuf,
    last: HashMap<String, Last>,
}

fn find_systemctl() -> Option<PathBuf> {
    ["/usr/bin/systemctl", "/bin/systemctl", "/usr/sbin/systemctl", "/sbin/systemctl"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Service {
    pub fn new(config: &Map<String, Value>) -> Result<Service, String> {
        let units = units(config)?;
        let systemctl = find_systemctl()
            .ok_or("systemctl not found: the service beacon needs systemd's systemctl")?;
        Ok(Service { units, systemctl, last: HashMap::new() })
    }

    fn is_active(&self, unit: &str) -> bool {
        let job = process::Job {
            argv: vec![
                self.systemctl.display().to_string(),
                "is-active".into(),
                "--quiet".into(),
                "--".into(),
                unit.into(),
            ],
            cwd: PathBuf::from("/"),
            env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
            stdin: None,
            timeout: Some(TIMEOUT),
            merge_stderr: false,
        };
        matches!(process::run(&job), Ok(process::Finished::Exited { code: 0, .. }))
    }

    /// Salt's decision for one unit's reading.
    fn decide(&mut self, unit_index: usize, running: bool, now: Instant) -> Option<Payload> {
        let unit = &self.units[unit_index];
        let mut state = json!({"running": running});
        if let (Some(file), false) = (&unit.uncleanshutdown, running) {
            state["uncleanshutdown"] = Path::new(file).exists().into();
        }
        let event: Payload = [
            (unit.name.clone(), state),
            ("service_name".into(), unit.name.as_str().into()),
            ("tag".into(), unit.name.as_str().into()),
        ]
        .into_iter()
        .collect();
        if !unit.onchangeonly {
            return Some(event);
        }
        let delayed = !unit.delay.is_zero();
        let Some(last) = self.last.get_mut(&unit.name) else {
            let since = delayed.then_some(now);
            self.last.insert(unit.name.clone(), Last { running, since });
            return (!delayed && unit.emitatstartup).then_some(event);
        };
        if last.running != running {
            last.running = running;
            if !delayed {
                last.since = None;
                return Some(event);
            }
            last.since = Some(now);
        }
        if let Some(since) = last.since {
            if now.duration_since(since) > unit.delay {
                last.since = None;
                return Some(event);
            }
        }
        None
    }
}

fn units(config: &Map<String, Value>) -> Result<Vec<Unit>, String> {
    let Some(services) = config.get("services") else {
        return Err("Configuration for service beacon requires services.".into());
    };
    let Value::Object(services) = services else {
        return Err("Services configuration item for service beacon must be a dictionary.".into());
    };
    let mut units = Vec::new();
    for (name, options) in services {
        if name.is_empty()
            || name.starts_with('-')
            || name.contains('/')
            || name.chars().any(char::is_control)
        {
            return Err(format!("service beacon: {name:?} is not a unit name"));
        }
        let empty = Map::new();
        let options = match options {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => {
                return Err(
                    "Configuration for service beacon must be a list of dictionaries.".into()
                )
            }
        };
        let flag =
            |key: &str, default: bool| options.get(key).and_then(Value::as_bool).unwrap_or(default);
        let delay =
            options.get("delay").and_then(Value::as_f64).unwrap_or(0.0).clamp(0.0, 86_400.0);
        units.push(Unit {
            name: name.clone(),
            onchangeonly: flag("onchangeonly", false),
            emitatstartup: flag("emitatstartup", true),
            delay: Duration::from_secs_f64(delay),
            uncleanshutdown: options
                .get("uncleanshutdown")
                .and_then(Value::as_str)
                .map(PathBuf::from),
        });
    }
    Ok(units)
}

impl Module for Service {
    fn blocking(&self) -> bool {
        true
    }

    fn check(&mut self) -> Vec<Payload> {
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..self.units.len() {
            let running = self.is_active(&self.units[i].name);
            out.extend(self.decide(i, running, now));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(config: Value) -> Service {
        let units = units(config.as_object().unwrap()).unwrap();
        Service { units, systemctl: PathBuf::from("/bin/false"), last: HashMap::new() }
    }

    #[test]
    fn every_run_fires_salts_payload_by_default() {
        let mut s = service(json!({"services": {"nginx": null}}));
        let event = s.decide(0, true, Instant::now()).unwrap();
        assert_eq!(
            Value::Object(event),
            json!({"nginx": {"running": true}, "service_name": "nginx", "tag": "nginx"})
        );
        assert!(s.decide(0, true, Instant::now()).is_some());
    }

    #[test]
    fn onchangeonly_fires_on_changes_and_waits_out_delay() {
        let mut s =
            service(json!({"services": {"a": {"onchangeonly": true, "emitatstartup": false},
            "b": {"onchangeonly": true, "delay": 5, "uncleanshutdown": "/nonexistent/pid"}}}));
        let t0 = Instant::now();
        assert!(s.decide(0, true, t0).is_none(), "no event at startup");
        assert!(s.decide(0, true, t0).is_none(), "no change");
        assert!(s.decide(0, false, t0).is_some(), "stopped");
        assert!(s.decide(1, true, t0).is_none(), "first reading waits out the delay");
        assert!(s.decide(1, true, t0 + Duration::from_secs(6)).is_some());
        assert!(s.decide(1, false, t0 + Duration::from_secs(7)).is_none(), "changed: delay");
        let late = s.decide(1, false, t0 + Duration::from_secs(13)).unwrap();
        assert_eq!(late["b"], json!({"running": false, "uncleanshutdown": false}));
    }

    #[test]
    fn bad_configs_are_refused() {
        for (config, want) in [
            (json!({}), "requires services"),
            (json!({"services": ["a"]}), "must be a dictionary"),
            (json!({"services": {"a": 1}}), "list of dictionaries"),
            (json!({"services": {"--root=/x": null}}), "not a unit name"),
        ] {
            let err = units(config.as_object().unwrap()).err().unwrap();
            assert!(err.contains(want), "{config}: {err}");
        }
    }
}
