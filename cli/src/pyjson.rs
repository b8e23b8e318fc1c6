//! JSON text exactly as Python's `json.dumps` writes it, which is what `salt-run state.event`
//! prints: `, ` and `: ` separators on one line, or `indent=4` with sorted keys when pretty.
//! Non-ASCII text is kept as is.

use serde_json::Value;

/// `json.dumps(value)` (`pretty = false`, keys in insertion order) or
/// `json.dumps(value, sort_keys=True, indent=4)` (`pretty = true`).
pub fn dumps(value: &Value, pretty: bool) -> String {
    let mut out = String::new();
    write(value, pretty, 0, &mut out);
    out
}

fn write(value: &Value, pretty: bool, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"    ".repeat(depth));
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if pretty { "," } else { ", " });
                }
                if pretty {
                    newline(out, depth + 1);
                }
                write(item, pretty, depth + 1, out);
            }
            if pretty {
                newline(out, depth);
            }
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if pretty {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(if pretty { "," } else { ", " });
                }
                if pretty {
                    newline(out, depth + 1);
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write(item, pretty, depth + 1, out);
            }
            if pretty {
                newline(out, depth);
            }
            out.push('}');
        }
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_json_dumps() {
        let v =
            json!({"minions": ["minion1"], "_stamp": "x", "n": 1.5, "e": {}, "l": [], "u": "é"});
        assert_eq!(
            dumps(&v, false),
            r#"{"minions": ["minion1"], "_stamp": "x", "n": 1.5, "e": {}, "l": [], "u": "é"}"#
        );
        assert_eq!(
            dumps(&v, true),
            "{\n    \"_stamp\": \"x\",\n    \"e\": {},\n    \"l\": [],\n    \"minions\": [\n        \"minion1\"\n    ],\n    \"n\": 1.5,\n    \"u\": \"é\"\n}"
        );
        assert_eq!(dumps(&json!("a\"b\n"), false), r#""a\"b\n""#);
    }
}
