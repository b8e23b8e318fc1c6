//! Salt's `load` beacon: the load averages from `/proc/loadavg` against `averages` ranges
//! (`1m`, `5m`, `15m`: `[low, high]`); fires `{"1m": …, "5m": …, "15m": …}` when one is out
//! of its range, or with `onchangeonly` when one crosses a bound (`emitatstartup`).

use super::{config, Module, Payload};
use serde_json::{Map, Value};

const KEYS: [&str; 3] = ["1m", "5m", "15m"];

pub(super) struct Load {
    /// `[low, high]` per average, `None` when not configured.
    ranges: [Option<(f64, f64)>; 3],
    onchangeonly: bool,
    emitatstartup: bool,
    last: Option<[f64; 3]>,
}

impl Load {
    pub fn new(config: &Map<String, Value>, onchangeonly: bool) -> Result<Load, String> {
        let mut config = config.clone();
        let emitatstartup = config::flag(&mut config, "emitatstartup", true).map_err(|_| {
            "Configuration for load beacon option emitatstartup must be a boolean.".to_string()
        })?;
        let Some(Value::Object(averages)) = config.get("averages") else {
            return Err("Averages configuration is required for load beacon.".into());
        };
        if !KEYS.iter().any(|k| averages.contains_key(*k)) {
            return Err(
                "Averages configuration for load beacon must contain 1m, 5m or 15m items.".into()
            );
        }
        let mut ranges = [None; 3];
        for (slot, key) in ranges.iter_mut().zip(KEYS) {
            let Some(range) = averages.get(key) else { continue };
            let pair = range.as_array().filter(|a| a.len() == 2);
            let nums = pair.and_then(|a| Some((config::percent(&a[0])?, config::percent(&a[1])?)));
            *slot = Some(nums.ok_or(
                "Configuration for load beacon: 1m, 5m and 15m items must be a list of two items.",
            )?);
        }
        Ok(Load { ranges, onchangeonly, emitatstartup, last: None })
    }

    /// Salt's decision for one reading.
    fn decide(&mut self, now: [f64; 3]) -> Vec<Payload> {
        let last = match (self.onchangeonly, self.last) {
            (true, None) => {
                self.last = Some(now);
                if !self.emitatstartup {
                    return Vec::new();
                }
                now
            }
            (_, last) => last.unwrap_or(now),
        };
        let send = self.ranges.iter().enumerate().any(|(i, range)| {
            let Some((low, high)) = *range else { return false };
            match self.onchangeonly {
                true => (now[i] > high && last[i] < high) || (now[i] < low && last[i] > low),
                false => now[i] < low || now[i] > high,
            }
        });
        if !send {
            return Vec::new();
        }
        self.last = Some(now);
        vec![KEYS.iter().zip(now).map(|(k, v)| (k.to_string(), Value::from(v))).collect()]
    }
}

/// The three averages of `/proc/loadavg`'s text.
pub(super) fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?])
}

impl Module for Load {
    fn check(&mut self) -> Vec<Payload> {
        match std::fs::read_to_string("/proc/loadavg").ok().as_deref().and_then(parse_loadavg) {
            Some(now) => self.decide(now),
            None => {
                log::debug!("load beacon: /proc/loadavg unreadable");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(config: Value, onchangeonly: bool) -> Result<Load, String> {
        Load::new(config.as_object().unwrap(), onchangeonly)
    }

    #[test]
    fn parses_proc_loadavg() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 2/1234 56789\n"), Some([0.52, 0.58, 0.59]));
        assert_eq!(parse_loadavg("garbage"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn fires_out_of_range_with_salts_payload() {
        let mut l = load(json!({"averages": {"1m": [0.0, 2.0], "5m": [0.0, 1.5]}}), false).unwrap();
        assert!(l.decide([1.0, 1.0, 9.0]).is_empty(), "15m is not watched");
        let fired = l.decide([2.5, 1.0, 1.0]);
        assert_eq!(Value::Object(fired[0].clone()), json!({"1m": 2.5, "5m": 1.0, "15m": 1.0}));
    }

    #[test]
    fn onchangeonly_fires_on_crossing_only() {
        let mut l =
            load(json!({"averages": {"1m": [0.5, 2.0]}, "emitatstartup": false}), true).unwrap();
        assert!(l.decide([1.0, 0.0, 0.0]).is_empty(), "first reading only remembered");
        assert_eq!(l.decide([3.0, 0.0, 0.0]).len(), 1, "crossed the high bound");
        assert!(l.decide([3.5, 0.0, 0.0]).is_empty(), "still high: no change");
        assert_eq!(l.decide([0.1, 0.0, 0.0]).len(), 1, "crossed the low bound");
    }

    #[test]
    fn bad_configs_say_what_salt_says() {
        let err = load(json!({}), false).err().unwrap();
        assert_eq!(err, "Averages configuration is required for load beacon.");
        let err = load(json!({"averages": {"2m": [1, 2]}}), false).err().unwrap();
        assert!(err.contains("must contain 1m, 5m or 15m"), "{err}");
        let err = load(json!({"averages": {"1m": [1]}}), false).err().unwrap();
        assert!(err.contains("list of two items"), "{err}");
    }
}
