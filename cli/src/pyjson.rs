//! JSON text exactly as Python's `json.dumps` writes it (`ensure_ascii=False`), the one
//! writer for every CLI: `salt-run state.event` prints `json.dumps(data)` on one line (`, ` and
//! `: ` separators) or `indent=4` with sorted keys when pretty; Salt's `json` outputter is
//! `indent=4` with the keys in their order. Non-ASCII text is kept as is but for the C1
//! controls (escaped, as terminals may obey them), floats are written as Python writes them
//! (`1e+16`).

use halite_common::pyrepr::python_number;
use serde_json::Value;

/// How the text is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `json.dumps(value)`: one line, keys in their order.
    Line,
    /// `json.dumps(value, indent=4, sort_keys=...)`.
    Indent { sort_keys: bool },
}

/// `value` as `json.dumps` writes it with this layout.
pub fn dumps(value: &Value, layout: Layout) -> String {
    let mut out = String::new();
    write(value, layout, 0, &mut out);
    out
}

/// An object from `entries` in their order (an outputter's `{id: return, ...}`), as
/// [`dumps`] writes an object.
pub fn dumps_entries<'a>(
    entries: impl Iterator<Item = (&'a str, &'a Value)>,
    layout: Layout,
) -> String {
    let mut out = String::new();
    write_object(entries, layout, 0, &mut out);
    out
}

fn write(value: &Value, layout: Layout, depth: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    separator(layout, out);
                }
                newline(layout, depth + 1, out);
                write(item, layout, depth + 1, out);
            }
            newline(layout, depth, out);
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&str, &Value)> =
                map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            if matches!(layout, Layout::Indent { sort_keys: true }) {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            write_object(entries.into_iter(), layout, depth, out)
        }
    }
}

fn write_object<'a>(
    entries: impl Iterator<Item = (&'a str, &'a Value)>,
    layout: Layout,
    depth: usize,
    out: &mut String,
) {
    let mut empty = true;
    out.push('{');
    for (key, value) in entries {
        if !empty {
            separator(layout, out);
        }
        empty = false;
        newline(layout, depth + 1, out);
        write_string(key, out);
        out.push_str(": ");
        write(value, layout, depth + 1, out);
    }
    if !empty {
        newline(layout, depth, out);
    }
    out.push('}');
}

/// Between items: `, ` on one line, `,` before an indented line.
fn separator(layout: Layout, out: &mut String) {
    out.push_str(match layout {
        Layout::Line => ", ",
        Layout::Indent { .. } => ",",
    });
}

/// An indented layout's line break, `depth` levels of 4 spaces in; nothing on one line.
fn newline(layout: Layout, depth: usize, out: &mut String) {
    if let Layout::Indent { .. } = layout {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    }
}

/// Python's `json` string escaping with `ensure_ascii=False`.
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // And the C1 controls, which Python leaves as they are: some terminals obey
            // U+009B (CSI) and U+009D (OSC). The JSON reads back the same.
            c if (c as u32) < 0x20 || ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
            dumps(&v, Layout::Line),
            r#"{"minions": ["minion1"], "_stamp": "x", "n": 1.5, "e": {}, "l": [], "u": "é"}"#
        );
        assert_eq!(
            dumps(&v, Layout::Indent { sort_keys: true }),
            "{\n    \"_stamp\": \"x\",\n    \"e\": {},\n    \"l\": [],\n    \"minions\": [\n        \"minion1\"\n    ],\n    \"n\": 1.5,\n    \"u\": \"é\"\n}"
        );
        assert_eq!(dumps(&json!("a\"b\n"), Layout::Line), r#""a\"b\n""#);
        // The C1 controls escaped (Python leaves them), as terminals may obey them.
        assert_eq!(
            dumps(&json!("a\u{9b}2J\u{9d}b\u{a0}"), Layout::Line),
            "\"a\\u009b2J\\u009db\u{a0}\""
        );
        // Floats as Python writes them, on one line as indented (serde_json writes `1e16`).
        assert_eq!(
            dumps(&json!({"f": 1e16, "g": 1.0, "h": 1e-5}), Layout::Line),
            r#"{"f": 1e+16, "g": 1.0, "h": 1e-05}"#
        );
    }
}
