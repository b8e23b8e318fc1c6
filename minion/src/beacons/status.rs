//! Salt's `status` beacon, a heartbeat: each run fires `{"data": {<function>: <its return>}}`
//! under the tag `…/status/<UTC isoformat>`, for the `status` functions it names (`loadavg`,
//! `cpustats`, `meminfo`, `vmstats`, `time`; all five by default), each with `all` or the
//! items to keep. The functions read `/proc`, as Salt's do on Linux; `time` is UTC.

use super::{Module, Payload};
use halite_common::time::Utc;
use serde_json::{Map, Value};

const FUNCTIONS: [&str; 5] = ["loadavg", "cpustats", "meminfo", "vmstats", "time"];

pub(super) struct Status {
    /// (function, items: `None` = all).
    wanted: Vec<(String, Option<Vec<Value>>)>,
}

impl Status {
    pub fn new(config: &Map<String, Value>) -> Result<Status, String> {
        if config.is_empty() {
            return Ok(Status {
                wanted: FUNCTIONS.iter().map(|f| (f.to_string(), None)).collect(),
            });
        }
        let mut wanted = Vec::new();
        for (func, items) in config {
            if !FUNCTIONS.contains(&func.as_str()) {
                return Err(format!("status beacon: no status function '{func}'"));
            }
            let items = match items {
                Value::Array(list) => list.clone(),
                other => vec![other.clone()],
            };
            let all = items.iter().any(|i| i == "all");
            wanted.push((func.clone(), (!all).then_some(items)));
        }
        Ok(Status { wanted })
    }

    fn run(&self, read: impl Fn(&str) -> String, now: Utc) -> Payload {
        let mut ret = Map::new();
        for (func, items) in &self.wanted {
            let data = match func.as_str() {
                "loadavg" => loadavg(&read("/proc/loadavg")),
                "cpustats" => cpustats(&read("/proc/stat")),
                "meminfo" => meminfo(&read("/proc/meminfo")),
                "vmstats" => vmstats(&read("/proc/vmstat")),
                _ => Value::String(salt_time(now)),
            };
            let value = match items {
                None => data,
                Some(items) => {
                    let mut picked = Map::new();
                    let mut bad = None;
                    for item in items {
                        let key = match item {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        match data.get(&key) {
                            Some(v) => {
                                picked.insert(key, v.clone());
                            }
                            None => bad = Some(key),
                        }
                    }
                    match bad {
                        Some(key) => Value::String(format!(
                            "Status beacon is incorrectly configured: '{key}'"
                        )),
                        None => Value::Object(picked),
                    }
                }
            };
            ret.insert(func.clone(), value);
        }
        let stamp = now.stamp();
        let iso = stamp.trim_end_matches("+00:00").to_string();
        [("tag".to_string(), Value::String(iso)), ("data".to_string(), Value::Object(ret))]
            .into_iter()
            .collect()
    }
}

/// Salt's `_number`: an int, else a float, else the text.
fn number(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => f.into(),
        _ => text.into(),
    }
}

fn loadavg(text: &str) -> Value {
    let mut fields = text.split_whitespace();
    let mut out = Map::new();
    for key in ["1-min", "5-min", "15-min"] {
        let value = fields.next().and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        out.insert(key.into(), value.into());
    }
    Value::Object(out)
}

fn cpustats(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let comps: Vec<&str> = line.split_whitespace().collect();
        let Some((name, rest)) = comps.split_first() else { continue };
        let field = |i: usize| rest.get(i).map_or(Value::Null, |v| number(v));
        let value = match *name {
            "cpu" => {
                let keys = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
                let mut cpu: Vec<(&str, Value)> =
                    keys.iter().enumerate().map(|(i, k)| (*k, field(i))).collect();
                cpu.sort_by_key(|(k, _)| *k);
                Value::Object(cpu.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }
            "intr" | "softirq" => {
                let list = if *name == "intr" { "irqs" } else { "softirqs" };
                let rest_numbers: Vec<Value> = rest.iter().skip(1).map(|v| number(v)).collect();
                serde_json::json!({"total": field(0), list: rest_numbers})
            }
            _ => field(0),
        };
        out.insert(name.to_string(), value);
    }
    Value::Object(out)
}

fn meminfo(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let comps: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(value)) = (comps.first(), comps.get(1)) else { continue };
        let mut entry = Map::new();
        entry.insert("value".into(), (*value).into());
        if let Some(unit) = comps.get(2) {
            entry.insert("unit".into(), (*unit).into());
        }
        out.insert(name.trim_end_matches(':').to_string(), Value::Object(entry));
    }
    Value::Object(out)
}

fn vmstats(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let mut comps = line.split_whitespace();
        if let (Some(name), Some(value)) = (comps.next(), comps.next()) {
            out.insert(name.to_string(), number(value));
        }
    }
    Value::Object(out)
}

/// `status.time()`'s default format, `%A, %d. %B %Y %I:%M%p`, in UTC.
fn salt_time(now: Utc) -> String {
    const DAYS: [&str; 7] =
        ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let hour12 = match now.hour % 12 {
        0 => 12,
        h => h,
    };
    format!(
        "{}, {:02}. {} {} {:02}:{:02}{}",
        DAYS[now.weekday as usize % 7],
        now.day,
        MONTHS[(now.month as usize).clamp(1, 12) - 1],
        now.year,
        hour12,
        now.minute,
        if now.hour < 12 { "AM" } else { "PM" }
    )
}

impl Module for Status {
    fn check(&mut self) -> Vec<Payload> {
        vec![self.run(|path| std::fs::read_to_string(path).unwrap_or_default(), Utc::now())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> Utc {
        Utc::from_system(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_740_178))
    }

    fn proc(path: &str) -> String {
        match path {
            "/proc/loadavg" => "0.50 0.25 0.10 1/100 42\n",
            "/proc/stat" => {
                "cpu  10 1 5 100 2 0 3 0 0 0\ncpu0 10 1 5 100 2 0 3 0 0 0\n\
                             intr 50 1 2\nctxt 900\nsoftirq 7 3 4\n"
            }
            "/proc/meminfo" => "MemTotal:  2000 kB\nHugePages_Total:  0\n",
            "/proc/vmstat" => "nr_free_pages 123\npgfault 9\n",
            _ => "",
        }
        .to_string()
    }

    #[test]
    fn default_heartbeat_has_salts_shapes() {
        let s = Status::new(&Map::new()).unwrap();
        let event = Value::Object(s.run(proc, at()));
        assert_eq!(event["tag"], "2025-12-03T05:36:18.000000");
        let data = &event["data"];
        assert_eq!(data["loadavg"], json!({"1-min": 0.5, "5-min": 0.25, "15-min": 0.1}));
        assert_eq!(
            data["cpustats"]["cpu"],
            json!({"idle": 100, "iowait": 2, "irq": 0, "nice": 1, "softirq": 3, "steal": 0,
                "system": 5, "user": 10})
        );
        assert_eq!(data["cpustats"]["cpu0"], 10);
        assert_eq!(data["cpustats"]["intr"], json!({"total": 50, "irqs": [1, 2]}));
        assert_eq!(data["cpustats"]["softirq"], json!({"total": 7, "softirqs": [3, 4]}));
        assert_eq!(data["meminfo"]["MemTotal"], json!({"value": "2000", "unit": "kB"}));
        assert_eq!(data["meminfo"]["HugePages_Total"], json!({"value": "0"}));
        assert_eq!(data["vmstats"], json!({"nr_free_pages": 123, "pgfault": 9}));
        assert_eq!(data["time"], "Wednesday, 03. December 2025 05:36AM");
    }

    #[test]
    fn items_are_picked_and_unknown_ones_reported() {
        let config = json!({"loadavg": ["1-min"], "vmstats": ["nope"]});
        let s = Status::new(config.as_object().unwrap()).unwrap();
        let event = Value::Object(s.run(proc, at()));
        assert_eq!(event["data"]["loadavg"], json!({"1-min": 0.5}));
        assert_eq!(event["data"]["vmstats"], "Status beacon is incorrectly configured: 'nope'");
        assert!(Status::new(json!({"diskstats": "all"}).as_object().unwrap()).is_err());
    }
}
