//! Writing values as YAML text that stays exactly one value wherever a template puts it:
//! plain scalars only when unambiguous, double-quoted strings otherwise, one-line JSON or YAML
//! flow collections.

use super::splice;
use crate::pyrepr;
use crate::saltargs::{plain_type, Plain};
use serde_json::Value;
use std::fmt::Write;

/// Whether `s` can be written as a plain YAML scalar and still be read back as this one string
/// in any context a template may put it in (block or flow, inside quotes): [`plain_chars_ok`],
/// and the loader's own YAML 1.1 typing ([`plain_type`]) keeps it a string.
pub(super) fn plain_ok(s: &str) -> bool {
    // Whatever else the loader would make of it (`yes`, `010`, `1:30`, `null`, `~`): quote it.
    // `<<` is a merge key and `=` YAML 1.1's value key; `...` at a line start ends the document.
    plain_chars_ok(s)
        && plain_type(s) == Plain::Str
        && !matches!(s, "<<" | "=")
        && !s.starts_with("...")
}

/// Whether `s`, as plain text, can neither start nor end a YAML token wherever it is put: no
/// line breaks or control characters, no flow indicators or quotes anywhere, no indicator
/// first, no `: `/` #`, no blank at either end.
pub(super) fn plain_chars_ok(s: &str) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else { return false };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() || last.is_whitespace() {
        return false;
    }
    let unsafe_char = |c: char| {
        needs_escape(c)
            || (c.is_whitespace() && c != ' ')
            || matches!(c, '\'' | '"' | ',' | '[' | ']' | '{' | '}')
    };
    !(s.chars().any(unsafe_char)
        || s.contains(": ")
        || s.contains(":?")
        || s.contains(" #")
        || s.ends_with(':'))
}

/// `s` as one YAML scalar: plain when [`plain_ok`], else double-quoted.
pub(super) fn scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// A double-quoted string, valid as JSON and as YAML: everything YAML would not take as is
/// (control characters, line and paragraph separators, BOM, non-characters) is `\u` escaped.
pub(super) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

/// Characters a YAML scalar cannot carry as they are: control characters (line breaks and tabs
/// included), the Unicode line and paragraph separators, BOM and non-characters, and the
/// characters of the splice pass's references (so event data can never write one).
pub(super) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
        || c == splice::OPEN
        || c == splice::CLOSE
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// The inside of a double-quoted YAML string (what [`quoted`] puts between the quotes).
pub(super) fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Python's `json.dumps(value, sort_keys=sort)` on one line (separators `, ` and `: `), with
/// YAML-safe string escapes — what Salt's `json` filter writes.
pub(super) fn json(value: &Value, sort: bool) -> String {
    let mut out = String::new();
    pyrepr::flow(&mut out, value, sort, &json_scalar, &push_quoted);
    out
}

/// PyYAML's flow style on one line (`{a: 1, b: [x, "y z"]}`), keys sorted like `safe_dump`.
pub(super) fn yaml_flow(value: &Value) -> String {
    let mut out = String::new();
    pyrepr::flow(&mut out, value, true, &json_scalar, &|out, s| out.push_str(&scalar(s)));
    out
}

/// `null`, `true`, `false` or a number, as JSON (and YAML) writes it.
fn json_scalar(out: &mut String, value: &Value) {
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        for (input, expected) in [
            ("Minion2", "Minion2"),
            ("web-1.example.com", "web-1.example.com"),
            ("web*", "web*"),
            ("echo initsok >> /tmp/cpis", "echo initsok >> /tmp/cpis"),
            ("salt/minion/Min2/start", "salt/minion/Min2/start"),
            ("http://x:8080/a#b", "http://x:8080/a#b"),
            ("10.0.0.1", "10.0.0.1"),
            ("*", "\"*\""),
            ("", "\"\""),
            ("123", "\"123\""),
            ("1.5", "\"1.5\""),
            ("true", "\"true\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("yes", "\"yes\""),
            ("Off", "\"Off\""),
            ("010", "\"010\""),
            ("1_0", "\"1_0\""),
            ("1:30", "\"1:30\""),
            ("<<", "\"<<\""),
            ("=", "\"=\""),
            ("...", "\"...\""),
            ("0o10", "0o10"),
            ("a: b", "\"a: b\""),
            ("a:", "\"a:\""),
            ("a #b", "\"a #b\""),
            (" lead", "\" lead\""),
            ("trail ", "\"trail \""),
            ("-x", "\"-x\""),
            ("x, y", "\"x, y\""),
            ("it's", "\"it's\""),
            ("{{ 7*7 }}", "\"{{ 7*7 }}\""),
            ("{% for %}", "\"{% for %}\""),
            ("x\nkey: v", "\"x\\nkey: v\""),
            ("tab\there", "\"tab\\there\""),
            ("del\u{7f}", "\"del\\u007f\""),
            ("nel\u{85}ls\u{2028}", "\"nel\\u0085ls\\u2028\""),
            ("quote\"back\\", "\"quote\\\"back\\\\\""),
            ("ünïcødé", "ünïcødé"),
        ] {
            assert_eq!(scalar(input), expected, "{input:?}");
            // Whatever we write reads back as the same string.
            let back: String = serde_yaml::from_str(&scalar(input)).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn collections() {
        let v = json!({"b": [1, 2.5, null, true], "a": "x y", "c": {"k": "a: b"}});
        assert_eq!(
            json(&v, true),
            r#"{"a": "x y", "b": [1, 2.5, null, true], "c": {"k": "a: b"}}"#
        );
        assert_eq!(
            json(&v, false),
            r#"{"b": [1, 2.5, null, true], "a": "x y", "c": {"k": "a: b"}}"#
        );
        assert_eq!(yaml_flow(&v), r#"{a: x y, b: [1, 2.5, null, true], c: {k: "a: b"}}"#);
        assert_eq!(yaml_flow(&json!("plain")), "plain");
        assert_eq!(yaml_flow(&json!([])), "[]");
        for text in [json(&v, true), yaml_flow(&v)] {
            let back: Value = serde_yaml::from_str(&text).unwrap();
            assert_eq!(back, v, "{text}");
        }
    }
}
