//! The targeting harness: a publish's `tgt`/`tgt_type` come from a CLI user or a reactor SLS
//! fed with minion data, and are matched against every minion's id and grains.

use halite_common::target::Target;
use serde_json::{json, Map, Value};

/// Input: `tgt_type`, newline, minion id, newline, target (JSON if it parses, else text).
/// Besides not panicking, `not ( E )` must match exactly where a compound `E` does not.
pub(crate) fn target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (Some(tgt_type), Some(id), Some(tgt)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let tgt_value = serde_json::from_str::<Value>(tgt).unwrap_or_else(|_| tgt.into());
    let Ok(target) = Target::parse(&tgt_value, tgt_type) else { return };
    let grains = grains();
    let with = target.matches(id, Some(&grains));
    let without = target.matches(id, None);
    let Value::String(expr) = &tgt_value else { return };
    if tgt_type != "compound" {
        return;
    }
    if let Ok(negated) = Target::parse(&format!("not ( {expr} )").into(), "compound") {
        assert_eq!(negated.matches(id, Some(&grains)), !with, "not ( {expr} ) with grains");
        assert_eq!(negated.matches(id, None), !without, "not ( {expr} ) without grains");
    }
}

fn grains() -> Map<String, Value> {
    let grains = json!({
        "os": "Debian",
        "os_family": "Debian",
        "osrelease": "12",
        "num_cpus": 2,
        "virtual": null,
        "roles": ["web", "db"],
        "ip4_interfaces": {"eth0": ["10.0.0.5"], "lo": ["127.0.0.1"]},
        "locale_info": {"defaultencoding": "UTF-8", "timezone": "UTC"},
        "a:b": {"c": true},
    });
    match grains {
        Value::Object(map) => map,
        _ => unreachable!("grains literal is a map"),
    }
}
