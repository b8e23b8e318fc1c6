//! Python's `repr()` and `str()` of JSON values (`None`, `True`, `1e+16`, `'it\'s'`, `['a', 1]`,
//! `{'k': 'v'}`), and the one-line list/dict walker that `repr()` shares with `json.dumps`.

use serde_json::{Number, Value};
use std::fmt::Write;

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
pub fn python_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan"
        } else if f > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exp) {
        if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        }
    } else {
        let mantissa = match digits.len() {
            1 => digits.clone(),
            _ => format!("{}.{}", &digits[..1], &digits[1..]),
        };
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    };
    format!("{sign}{body}")
}

/// `repr()` of a number: ints as they are, floats as [`python_float`].
pub fn python_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => python_float(f),
        _ => n.to_string(),
    }
}

/// Python's `repr(str)`, appended to `out`: single quotes unless the text has `'` and no `"`;
/// backslash, the quote, `\n`, `\r`, `\t` escaped, other non-printable characters as `\xhh`,
/// `\uhhhh` or `\Uhhhhhhhh`.
pub fn repr_str(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !printable(c) => {
                let _ = match c as u32 {
                    code @ 0..=0xff => write!(out, "\\x{code:02x}"),
                    code @ 0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    code => write!(out, "\\U{code:08x}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character, approximated without the Unicode tables:
/// controls, separators other than space, format characters and private use are not.
fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c,
            '\u{a0}' | '\u{ad}' | '\u{1680}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{206f}' | '\u{3000}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}'))
}

/// Python's `repr(value)`, appended to `out`; dict keys in insertion order, or sorted as
/// `pprint` writes them when `sort_keys`.
pub fn repr(value: &Value, sort_keys: bool, out: &mut String) {
    let scalar = |out: &mut String, value: &Value| match value {
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&python_number(n)),
        _ => out.push_str("None"),
    };
    flow(out, value, sort_keys, &scalar, &|out, s| repr_str(s, out));
}

/// Python's truthiness (`bool(value)`): `None`, `False`, `0`, `""`, `[]` and `{}` are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str(value)`: a string as it is, anything else as its [`repr`].
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            repr(other, false, &mut out);
            out
        }
    }
}

/// Writes `value` on one line, lists as `[a, b]` and dicts as `{k: v}` (the separators of both
/// Python's `repr` and `json.dumps`), dict keys sorted when `sort_keys`. `string` writes strings
/// (dict keys included), `scalar` everything else that is not a list or dict.
pub fn flow(
    out: &mut String,
    value: &Value,
    sort_keys: bool,
    scalar: &dyn Fn(&mut String, &Value),
    string: &dyn Fn(&mut String, &str),
) {
    match value {
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(out, item, sort_keys, scalar, string);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(out, key);
                out.push_str(": ");
                flow(out, item, sort_keys, scalar, string);
            }
            out.push('}');
        }
        other => scalar(out, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats() {
        for (f, text) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789.125, "123456789.125"),
            (1.2345678901234567e300, "1.2345678901234567e+300"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(python_float(f), text);
        }
    }

    #[test]
    fn strings() {
        for (text, expected) in [
            ("plain", "'plain'"),
            ("it's", r#""it's""#),
            ("a'b\"c\n", r#"'a\'b"c\n'"#),
            ("back\\slash\ttab\r", r"'back\\slash\ttab\r'"),
            ("\u{1b}[31m\u{7f}\u{85}", r"'\x1b[31m\x7f\x85'"),
            ("nb\u{a0}sp\u{2028}\u{feff}", r"'nb\xa0sp\u2028\ufeff'"),
            ("pua\u{f0000}", r"'pua\U000f0000'"),
            ("ünïcødé ☃", "'ünïcødé ☃'"),
        ] {
            let mut out = String::new();
            repr_str(text, &mut out);
            assert_eq!(out, expected, "{text:?}");
        }
    }

    #[test]
    fn values() {
        let v = json!({"b": [null, true, false, 1, 1.5, 1e20, "it's"], "a": {"k": "v"}});
        let mut out = String::new();
        repr(&v, false, &mut out);
        assert_eq!(out, r#"{'b': [None, True, False, 1, 1.5, 1e+20, "it's"], 'a': {'k': 'v'}}"#);
        out.clear();
        repr(&v, true, &mut out);
        assert_eq!(out, r#"{'a': {'k': 'v'}, 'b': [None, True, False, 1, 1.5, 1e+20, "it's"]}"#);
        assert_eq!(python_str(&json!("x'y")), "x'y");
        assert_eq!(python_str(&json!(["x"])), "['x']");
        assert_eq!(python_str(&json!(2.0)), "2.0");
    }
}
