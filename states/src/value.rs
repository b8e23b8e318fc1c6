//! Python's view of the JSON values that state arguments arrive as: truthiness, `str()` and
//! `repr()`, and YAML documents converted to JSON with Salt's notion of a key.

use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

/// Python's truthiness, `str()` and `repr()`: `halite_common::pyrepr`'s, as everywhere.
pub use halite_common::pyrepr::python_str as py_str;
pub use halite_common::pyrepr::truthy;

/// Python's `repr(value)` (`None`, `True`, `'text'`, `['a', 1]`, `{'k': 'v'}`).
pub fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    halite_common::pyrepr::repr(value, false, &mut out);
    out
}

/// Salt's `_validate_str_list`: a string is one item, a list is its items as strings, a
/// number is its text; anything else is `None`.
pub fn str_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Number(_) | Value::Bool(_) => Some(vec![py_str(value)]),
        Value::Array(items) => Some(items.iter().map(py_str).collect()),
        _ => None,
    }
}

/// Salt's `split_input` (how `state.sls` and `state.orchestrate` read `mods`): `"a, b"` is
/// two items, a list is its items as strings, a number is its text; anything else is `None`.
pub fn split_input(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(
            s.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect(),
        ),
        Value::Number(_) => Some(vec![py_str(value)]),
        Value::Array(items) => Some(items.iter().map(py_str).collect()),
        _ => None,
    }
}

/// A YAML document as JSON. Keys become strings (`1` → `"1"`, `true` → `"True"`, as
/// Python's `str()` would print them); tags are dropped; NaN and infinities become null.
pub fn from_yaml(yaml: Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().and_then(Number::from_f64).map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(from_yaml).collect()),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                out.insert(key_text(&key), from_yaml(value));
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => from_yaml(tagged.value),
    }
}

/// How a YAML key reads as a Python `str()`; `None` for a key that is a string already.
pub fn non_string_key(key: &Yaml) -> Option<&'static str> {
    match key {
        Yaml::String(_) => None,
        Yaml::Null => Some("NoneType"),
        Yaml::Bool(_) => Some("bool"),
        Yaml::Number(n) if n.is_f64() => Some("float"),
        Yaml::Number(_) => Some("int"),
        Yaml::Sequence(_) => Some("list"),
        Yaml::Mapping(_) => Some("dict"),
        Yaml::Tagged(t) => non_string_key(&t.value),
    }
}

pub fn key_text(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(t) => key_text(&t.value),
        other => py_str(&from_yaml(other.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_views() {
        assert_eq!(
            py_repr(&json!({"a": [null, true, 1.5, "it's"]})),
            r#"{'a': [None, True, 1.5, "it's"]}"#
        );
        assert_eq!(py_str(&json!("x")), "x");
        for (value, want) in
            [(json!(0), false), (json!("0"), true), (json!([]), false), (json!({"a": 1}), true)]
        {
            assert_eq!(truthy(&value), want, "{value}");
        }
        assert_eq!(str_list(&json!(["a", 1])), Some(vec!["a".to_string(), "1".to_string()]));
        assert_eq!(str_list(&json!({"a": 1})), None);
    }

    #[test]
    fn yaml_keys_become_python_strings() {
        let yaml: Yaml = serde_yaml::from_str("1: a\ntrue: b\nx: !tag 3\nf: .nan\n").unwrap();
        assert_eq!(from_yaml(yaml), json!({"1": "a", "True": "b", "x": 3, "f": null}));
    }
}
