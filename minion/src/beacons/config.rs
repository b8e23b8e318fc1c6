//! A beacon's configuration as Salt 3008 reads it: the list form merged into one map
//! (`salt.utils.beacons.list_to_dict`) and the options every beacon shares, taken out before
//! the module sees the rest.

use serde_json::{Map, Value};
use std::time::Duration;

/// The options Salt's beacon loop reads for every beacon.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Common {
    /// The module to run: `beacon_module`, else the beacon's name.
    pub module: String,
    /// Seconds between runs; Salt's default is its one-second `loop_interval`.
    pub interval: Option<Duration>,
    pub disable_during_state_run: bool,
    pub onchangeonly: bool,
    pub enabled: bool,
    pub run_once: bool,
}

/// Shortest `interval` accepted (a beacon cannot spin the loop).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Salt's `list_to_dict`: a beacon's list of one-key maps as one map. Salt 3008's modules
/// refuse the old dict form with this same message, so Halite does too.
pub(crate) fn list_to_dict(name: &str, config: &Value) -> Result<Map<String, Value>, String> {
    let Value::Array(items) = config else {
        return Err(format!("Configuration for {name} beacon must be a list."));
    };
    let mut out = Map::new();
    for item in items {
        match item {
            Value::Object(map) => out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone()))),
            _ => {
                return Err(format!(
                    "Configuration for {name} beacon must be a list of dictionaries."
                ))
            }
        }
    }
    Ok(out)
}

/// Splits the shared options off `config` (which keeps the module's own).
pub(crate) fn common(name: &str, config: &mut Map<String, Value>) -> Result<Common, String> {
    let module = match config.remove("beacon_module") {
        None => name.to_string(),
        Some(Value::String(m)) => m,
        Some(other) => return Err(format!("beacon_module must be a string, not {other}")),
    };
    let interval = match config.remove("interval") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 31_536_000.0 => {
                Some(Duration::from_secs_f64(secs).max(MIN_INTERVAL))
            }
            _ => return Err(format!("interval must be a positive number of seconds, not {v}")),
        },
    };
    Ok(Common {
        module,
        interval,
        disable_during_state_run: flag(config, "disable_during_state_run", false)?,
        onchangeonly: flag(config, "onchangeonly", false)?,
        enabled: flag(config, "enabled", true)?,
        run_once: flag(config, "run_once", false)?,
    })
}

/// A boolean option removed from `config`.
pub(crate) fn flag(
    config: &mut Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool, String> {
    match config.remove(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(format!("{key} must be a boolean, not {other}")),
    }
}

/// Salt's threshold values: a number or a string like `90%`.
pub(crate) fn percent(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.replace('%', "").trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_list_form_is_merged_and_the_shared_options_split_off() {
        let config = json!([{"files": {"/tmp/x": {}}}, {"interval": 5}, {"beacon_module": "inotify"},
            {"disable_during_state_run": true}]);
        let mut map = list_to_dict("watch_tmp", &config).unwrap();
        let common = common("watch_tmp", &mut map).unwrap();
        assert_eq!(common.module, "inotify");
        assert_eq!(common.interval, Some(Duration::from_secs(5)));
        assert!(common.disable_during_state_run && common.enabled && !common.run_once);
        assert_eq!(Value::Object(map), json!({"files": {"/tmp/x": {}}}));
    }

    #[test]
    fn bad_shapes_say_what_salt_says() {
        let err = list_to_dict("diskusage", &json!({"/": "90%"})).unwrap_err();
        assert_eq!(err, "Configuration for diskusage beacon must be a list.");
        let err = list_to_dict("load", &json!(["1m"])).unwrap_err();
        assert_eq!(err, "Configuration for load beacon must be a list of dictionaries.");
        for bad in [json!({"interval": -1}), json!({"interval": "soon"}), json!({"enabled": "no"})]
        {
            let mut map = bad.as_object().cloned().unwrap();
            assert!(common("x", &mut map).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds_read_as_salt_reads_them() {
        assert_eq!(percent(&json!("90%")), Some(90.0));
        assert_eq!(percent(&json!(63.5)), Some(63.5));
        assert_eq!(percent(&json!("x")), None);
    }
}
