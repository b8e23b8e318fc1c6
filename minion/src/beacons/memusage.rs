//! Salt's `memusage` beacon: fires `{"memusage": <percent used>}` when the share of memory in
//! use (psutil's `virtual_memory().percent`, from `/proc/meminfo`) reaches `percent`.

use super::{config, Module, Payload};
use serde_json::{Map, Value};

pub(super) struct MemUsage {
    percent: f64,
}

impl MemUsage {
    pub fn new(config: &Map<String, Value>) -> Result<MemUsage, String> {
        let Some(value) = config.get("percent") else {
            return Err("Configuration for memusage beacon requires percent.".into());
        };
        let percent = config::percent(value)
            .ok_or_else(|| format!("memusage beacon: percent {value} is not a number"))?;
        Ok(MemUsage { percent })
    }
}

/// psutil's percent: `(total - available) / total`, rounded to one decimal; `MemAvailable`,
/// or free + buffers + cached on kernels without it.
pub(super) fn used_percent(meminfo: &str) -> Option<f64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
    };
    let total = field("MemTotal").filter(|t| *t > 0.0)?;
    let available = match field("MemAvailable") {
        Some(a) => a,
        None => {
            field("MemFree")? + field("Buffers").unwrap_or(0.0) + field("Cached").unwrap_or(0.0)
        }
    };
    Some(((total - available) / total * 1000.0).round() / 10.0)
}

impl Module for MemUsage {
    fn check(&mut self) -> Vec<Payload> {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        match used_percent(&text) {
            Some(used) if used >= self.percent => {
                vec![[("memusage".to_string(), Value::from(used))].into_iter().collect()]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MEMINFO: &str = "MemTotal:        2000000 kB\nMemFree:          100000 kB\n\
                           MemAvailable:     500000 kB\nBuffers:           10000 kB\n";

    #[test]
    fn percent_used_as_psutil_computes_it() {
        assert_eq!(used_percent(MEMINFO), Some(75.0));
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 100 kB\nCached: 133 kB\n";
        assert_eq!(used_percent(old), Some(66.7));
        assert_eq!(used_percent("MemTotal: 0 kB\n"), None);
        assert_eq!(used_percent(""), None);
    }

    #[test]
    fn config_needs_a_percent() {
        let err = MemUsage::new(&Map::new()).err().unwrap();
        assert_eq!(err, "Configuration for memusage beacon requires percent.");
        let m = MemUsage::new(json!({"percent": "63%"}).as_object().unwrap()).unwrap();
        assert_eq!(m.percent, 63.0);
    }
}
