//! Salt's `beacons` execution module on the running minion: `list`, `list_available`,
//! `enable`/`disable` (all beacons) and `enable_beacon`/`disable_beacon`, answered on the loop
//! (they read and switch the loop's beacons); runtime only, as Salt's without `save`.

use super::Beacons;
use crate::functions::{Bound, Outcome};
use serde_json::{json, Map, Value};

impl Beacons {
    /// Runs `fun` (a `beacons.*` function, arguments already bound to its signature).
    pub(crate) fn call(&mut self, fun: &str, args: &Bound) -> Outcome {
        let test = args.kwargs.get("test").is_some_and(crate::functions::args::flag);
        let ret = match fun {
            "beacons.list" => self.list(args.flag("return_yaml", true)),
            "beacons.list_available" => available(args.flag("return_yaml", true)),
            "beacons.enable" | "beacons.disable" => {
                let on = fun == "beacons.enable";
                let word = if on { "enable" } else { "disable" };
                if test {
                    json!({"comment": format!("Beacons would be {word}d."), "result": true})
                } else {
                    self.switch_all(on);
                    log::info!("{}: beacons {word}d", self.id);
                    json!({"comment": format!("{}d beacons on minion.", capital(word)), "result": true})
                }
            }
            "beacons.enable_beacon" | "beacons.disable_beacon" => {
                let on = fun == "beacons.enable_beacon";
                let word = if on { "enable" } else { "disable" };
                match args.get("name").and_then(Value::as_str) {
                    None | Some("") => {
                        json!({"comment": "Beacon name is required.", "result": false})
                    }
                    Some(name) if test => {
                        json!({"comment": format!("Beacon {name} would be {word}d."), "result": true})
                    }
                    Some(name) => match self.switch_one(name, on) {
                        Some(true) => {
                            log::info!("{}: beacon {name} {word}d", self.id);
                            json!({"comment": format!("{}d beacon {name} on minion.", capital(word)),
                                "result": true})
                        }
                        Some(false) => json!({
                            "comment": format!("Failed to {word} beacon {name} on minion."),
                            "result": false}),
                        None => json!({
                            "comment": format!("Beacon {name} is not currently configured."),
                            "result": false}),
                    },
                }
            }
            _ => Value::String(format!("'{fun}' is not available.")),
        };
        let failed = ret.get("result") == Some(&Value::Bool(false));
        Outcome { ret, retcode: i64::from(failed), out: None }
    }

    /// The beacons as configured (with Salt's `enabled` items where they were switched).
    fn configured(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for b in &self.list {
            out.insert(b.name.clone(), b.config.clone());
        }
        for (name, config) in &self.off {
            out.insert(name.clone(), config.clone());
        }
        if let Some(on) = self.global_flag {
            out.insert("enabled".into(), on.into());
        }
        out
    }

    fn list(&self, return_yaml: bool) -> Value {
        let beacons = self.configured();
        if beacons.is_empty() {
            return json!({"beacons": {}});
        }
        match return_yaml {
            true => Value::String(safe_dump(&json!({ "beacons": beacons }))),
            false => Value::Object(beacons),
        }
    }

    pub(super) fn switch_all(&mut self, on: bool) {
        if on {
            self.drain_ready(); // what changed while disabled does not fire now
        }
        self.enabled = on;
        self.global_flag = Some(on);
    }

    /// `None`: no such beacon; `Some(false)`: configured but cannot run (invalid config).
    pub(super) fn switch_one(&mut self, name: &str, on: bool) -> Option<bool> {
        if on {
            self.drain_ready();
        }
        if let Some(b) = self.list.iter_mut().find(|b| b.name == name) {
            b.enabled = on;
            set_enabled(&mut b.config, on);
            return Some(true);
        }
        self.off.iter().any(|(n, _)| n == name).then_some(false)
    }
}

/// Salt's `_update_enabled`: the list item holding `enabled`, or a new one at the end.
fn set_enabled(config: &mut Value, on: bool) {
    match config {
        Value::Array(items) => {
            match items
                .iter_mut()
                .find_map(|i| i.as_object_mut().filter(|m| m.contains_key("enabled")))
            {
                Some(item) => {
                    item.insert("enabled".into(), on.into());
                }
                None => items.push(json!({ "enabled": on })),
            }
        }
        Value::Object(map) => {
            map.insert("enabled".into(), on.into());
        }
        _ => {}
    }
}

fn available(return_yaml: bool) -> Value {
    let names: Vec<Value> = super::MODULES.iter().map(|m| Value::from(*m)).collect();
    match return_yaml {
        true => Value::String(safe_dump(&json!({ "beacons": names }))),
        false => Value::Array(names),
    }
}

fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// PyYAML's `safe_dump(..., default_flow_style=False)`: block style, keys sorted.
fn safe_dump(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_yaml::to_string(&sorted(value)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_goes_where_salt_puts_it() {
        let mut config = json!([{"files": {}}, {"interval": 5}]);
        set_enabled(&mut config, false);
        assert_eq!(config, json!([{"files": {}}, {"interval": 5}, {"enabled": false}]));
        set_enabled(&mut config, true);
        assert_eq!(config, json!([{"files": {}}, {"interval": 5}, {"enabled": true}]));
    }

    #[test]
    fn yaml_as_pyyaml_dumps_it() {
        let v = json!({"beacons": {"load": [{"averages": {"1m": [0.0, 2.0]}}],
            "diskusage": [{"/": "90%"}, {"interval": 60}]}});
        assert_eq!(
            safe_dump(&v),
            "beacons:\n  diskusage:\n  - /: 90%\n  - interval: 60\n  load:\n  - averages:\n      1m:\n      - 0.0\n      - 2.0\n"
        );
    }
}
