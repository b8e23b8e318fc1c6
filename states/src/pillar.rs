//! Inline pillar (`pillar=` on `state.sls`, `state.apply`, `state.highstate`, and later
//! orchestrate): checking what was given, and Salt's `pillar.get` over it for templates.
//! Pillar is secret: nothing here logs a value.

use halite_common::pyrepr::python_str;
use halite_common::saltargs::yamlify_arg;
use halite_common::target::traverse_dict_and_list;
use serde_json::{Map, Value};
use std::fmt;

/// `pillar=` was not a dictionary (nor text that reads as one).
#[derive(Debug, Clone, PartialEq)]
pub struct NotADict;

impl fmt::Display for NotADict {
    /// Salt's `SaltInvocationError` text (`salt/modules/state.py`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Pillar data must be formatted as a dictionary, unless pillar_enc is specified.",
        )
    }
}

impl std::error::Error for NotADict {}

/// The run's pillar from a `pillar=` argument: absent or `None` is empty, a dict is itself,
/// and text is read as Salt's CLI reads a word (`yamlify_arg`: JSON or YAML), for callers
/// that pass it unparsed; anything else is refused, as Salt refuses a non-dict.
pub fn inline(value: Option<&Value>) -> Result<Map<String, Value>, NotADict> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(Value::String(text)) => match yamlify_arg(text) {
            Value::Object(map) => Ok(map),
            _ => Err(NotADict),
        },
        Some(_) => Err(NotADict),
    }
}

/// Salt's `pillar.get(key, default='', merge=False, merge_nested_lists=None, delimiter=':')`
/// with its `arg` list as a template passes it (keywords in a trailing `__kwarg__` map):
/// `key` walked by `traverse_dict_and_list`, `default` (`''` unless given) when it is not
/// there. `merge` is not supported: the value found wins.
pub fn get(pillar: &Map<String, Value>, arg: &[Value]) -> Value {
    let is_kwargs = |a: &&Value| a.as_object().is_some_and(|m| m.contains_key("__kwarg__"));
    let kwargs = arg.iter().find(is_kwargs).and_then(Value::as_object);
    let positional: Vec<&Value> = arg.iter().filter(|a| !is_kwargs(a)).collect();
    let param = |at: usize, name: &str| {
        positional.get(at).copied().or_else(|| kwargs.and_then(|m| m.get(name)))
    };
    let key = param(0, "key").map(python_str).unwrap_or_default();
    let default = param(1, "default").cloned().unwrap_or_else(|| Value::String(String::new()));
    let delimiter = param(4, "delimiter").map_or_else(|| ":".to_string(), python_str);
    if delimiter.is_empty() {
        // Python's `str.split('')` raises; the value cannot be found.
        return default;
    }
    traverse_dict_and_list(pillar, &key, &delimiter).cloned().unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kw(pairs: Value) -> Value {
        let mut map = pairs.as_object().cloned().unwrap_or_default();
        map.insert("__kwarg__".into(), json!(true));
        Value::Object(map)
    }

    #[test]
    fn inline_pillar_must_be_a_dict() {
        assert_eq!(inline(None), Ok(Map::new()));
        assert_eq!(inline(Some(&Value::Null)), Ok(Map::new()));
        let dict = json!({"a": {"b": 1}}).as_object().cloned().unwrap();
        assert_eq!(inline(Some(&json!({"a": {"b": 1}}))), Ok(dict.clone()));
        assert_eq!(inline(Some(&json!(r#"{"a": {"b": 1}}"#))), Ok(dict.clone()));
        assert_eq!(inline(Some(&json!("{a: {b: 1}}"))), Ok(dict));
        for bad in [json!([1]), json!(1), json!("[1]"), json!("a: 1"), json!(""), json!("x")] {
            assert_eq!(inline(Some(&bad)), Err(NotADict), "{bad}");
        }
        assert_eq!(
            NotADict.to_string(),
            "Pillar data must be formatted as a dictionary, unless pillar_enc is specified."
        );
    }

    #[test]
    fn get_walks_colon_paths_like_salt() {
        let pillar = json!({
            "who": "world",
            "deep": {"key": "v", "list": ["x", {"inner": 7}], "zero": 0},
            "a:b": "literal",
        });
        let pillar = pillar.as_object().unwrap();
        for (arg, want) in [
            (json!(["who"]), json!("world")),
            (json!(["deep:key"]), json!("v")),
            (json!(["deep:list:0"]), json!("x")),
            (json!(["deep:list:-1"]), json!({"inner": 7})),
            (json!(["deep:list:inner"]), json!(7)),
            (json!(["deep:zero", "d"]), json!(0)),
            (json!(["deep:missing"]), json!("")),
            (json!(["deep:missing", "d"]), json!("d")),
            (json!(["deep:missing", null]), json!(null)),
            (json!(["deep:list:5", "d"]), json!("d")),
            (json!(["who:deeper", "d"]), json!("d")),
            (json!(["deep"]), json!({"key": "v", "list": ["x", {"inner": 7}], "zero": 0})),
            // `merge` is the third positional parameter, not the delimiter.
            (json!(["deep:key", "d", true]), json!("v")),
            (json!([kw(json!({"key": "deep:key"}))]), json!("v")),
            (json!(["a:b", kw(json!({"delimiter": "/"}))]), json!("literal")),
            (json!(["deep/key", "d", false, null, "/"]), json!("v")),
            (json!(["deep", kw(json!({"delimiter": ""}))]), json!("")),
        ] {
            assert_eq!(get(pillar, arg.as_array().unwrap()), want, "{arg}");
        }
    }
}
