//! Salt's argument handling on the minion (`load_args_and_kwargs`, then Python's own call
//! binding): splitting the published `arg` list, refusing unknown keywords, binding values to a
//! function's parameters, and the Python-flavoured value helpers the functions share.

use super::{Failure, Spec};
use halite_common::args::parse_kwarg;
use halite_common::pyrepr;
use serde_json::{Map, Value};

pub use halite_common::proto::split_args;

/// A call's arguments bound to a function's parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bound {
    params: &'static [&'static str],
    /// One slot per parameter; `None` means "use the default".
    values: Vec<Option<Value>>,
    /// `*args`: positional values beyond the named parameters.
    pub rest: Vec<Value>,
    /// `**kwargs`: keywords that name no parameter (only for functions that take them).
    pub kwargs: Map<String, Value>,
}

impl Bound {
    /// The value given for parameter `name`, null included.
    pub fn given(&self, name: &str) -> Option<&Value> {
        let index = self.params.iter().position(|p| *p == name);
        debug_assert!(index.is_some(), "no parameter {name}");
        index.and_then(|i| self.values[i].as_ref())
    }

    /// The value given for parameter `name`; `None` when it was not given or given as null
    /// (for every option with a default, Salt's default is `None` or means the same).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.given(name).filter(|v| !v.is_null())
    }

    /// A boolean option: [`flag`] of the value, or `default` when not given.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        self.get(name).map_or(default, flag)
    }
}

/// Binds `arg` to `spec` as Salt's minion and then Python would: keyword maps and `key=value`
/// strings become keywords; keywords the function cannot take are refused
/// (`SaltInvocationError`); then positional values fill the parameters in order, and clashes,
/// surplus and missing values are refused with Python's own `TypeError` wording.
pub(crate) fn bind(spec: &Spec, arg: &[Value]) -> Result<Bound, Failure> {
    let (given, mut kwargs) = split_args(arg);
    let mut positional = Vec::with_capacity(given.len());
    for value in given {
        // A positional `key=value` string is a keyword (Salt's `parse_input`); the value stays
        // a string here, where Salt's CLI would have read it as YAML.
        match value.as_str().and_then(parse_kwarg) {
            Some((key, val)) => {
                kwargs.insert(key.to_string(), Value::String(val.to_string()));
            }
            None => positional.push(value),
        }
    }
    let invalid: Vec<String> = kwargs
        .iter()
        .filter(|(key, _)| {
            !(spec.varkw || key.starts_with("__pub_") || spec.params.contains(&key.as_str()))
        })
        .map(|(key, value)| format!("{key}={}", py_str(value)))
        .collect();
    if !invalid.is_empty() {
        return Err(Failure::Invocation(format!(
            "The following keyword arguments are not valid: {}",
            invalid.join(", ")
        )));
    }

    let name = spec.py_name();
    let n = spec.params.len();
    let given = positional.len();
    let mut values: Vec<Option<Value>> = vec![None; n];
    let mut rest = Vec::new();
    for (i, value) in positional.into_iter().enumerate() {
        match values.get_mut(i) {
            Some(slot) => *slot = Some(value),
            None => rest.push(value),
        }
    }
    let mut extra = Map::new();
    for (key, value) in kwargs {
        match spec.params.iter().position(|p| *p == key) {
            Some(i) if values[i].is_some() => {
                return Err(Failure::BadArgs(format!(
                    "{name}() got multiple values for argument '{key}'"
                )));
            }
            Some(i) => values[i] = Some(value),
            // Only `__pub_*` keys get here without `**kwargs`; Salt drops them too.
            None if !spec.varkw => {}
            None => {
                extra.insert(key, value);
            }
        }
    }
    if !rest.is_empty() && !spec.varargs {
        return Err(Failure::BadArgs(too_many(name, spec, given)));
    }
    let missing: Vec<&str> = spec.params[..spec.required]
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        let s = if missing.len() == 1 { "" } else { "s" };
        return Err(Failure::BadArgs(format!(
            "{name}() missing {} required positional argument{s}: {}",
            missing.len(),
            py_name_list(&missing)
        )));
    }
    Ok(Bound { params: spec.params, values, rest, kwargs: extra })
}

/// CPython's "takes N positional arguments but M were given".
fn too_many(name: &str, spec: &Spec, given: usize) -> String {
    let n = spec.params.len();
    let (takes, plural) = if spec.required < n {
        (format!("from {} to {n}", spec.required), true)
    } else {
        (n.to_string(), n != 1)
    };
    let s = if plural { "s" } else { "" };
    let was = if given == 1 { "was" } else { "were" };
    format!("{name}() takes {takes} positional argument{s} but {given} {was} given")
}

/// `'a'`, `'a' and 'b'`, `'a', 'b', and 'c'` (CPython's list of missing arguments).
fn py_name_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

/// A boolean option. Like [`py_truthy`], except that strings read as YAML booleans would
/// (`"False"`, `"no"`, `"off"`, `"0"` are false): such strings arrive from `key=value`
/// arguments that no CLI has typed.
pub(crate) fn flag(value: &Value) -> bool {
    match value {
        Value::String(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "no" | "off" | "0" | "none" | "null" | "~"
        ),
        other => py_truthy(other),
    }
}

/// A number, also from a numeric string.
pub(crate) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A whole number, also from a string of digits.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Python's type name for a JSON value, for error messages.
pub(crate) fn py_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str(value)`: strings as they are, everything else as [`py_repr`].
pub(crate) use halite_common::pyrepr::python_str as py_str;
pub(crate) use halite_common::pyrepr::truthy as py_truthy;

/// Python's `repr(value)` (`None`, `True`, `'text'`, `['a', 1]`, `{'k': 'v'}`).
pub(crate) fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    pyrepr::repr(value, false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Bound, Context, FnResult, Ret, Spec};
    use super::*;
    use serde_json::json;

    fn nothing(_: &Bound, _: &Context) -> FnResult {
        Ok(Ret::ok(true))
    }

    const ECHO: Spec = Spec::new("test.echo", "doc", nothing).params(&["text"], 1);
    const PING: Spec = Spec::new("test.ping", "doc", nothing);
    const GET: Spec =
        Spec::new("grains.get", "doc", nothing).params(&["key", "default", "delimiter"], 1);
    const ARG: Spec = Spec::new("test.arg", "doc", nothing).varargs().varkw();
    const RUN: Spec = Spec::new("cmd.run", "doc", nothing).params(&["cmd", "cwd"], 1).varkw();
    const THREE: Spec = Spec::new("x.three", "doc", nothing).params(&["a", "b", "c"], 3);

    fn kw(pairs: Value) -> Value {
        let mut map = pairs.as_object().cloned().unwrap_or_default();
        map.insert("__kwarg__".into(), json!(true));
        Value::Object(map)
    }

    #[track_caller]
    fn check_split(arg: Value, positional: Value, kwargs: Value) {
        let arg = arg.as_array().cloned().unwrap_or_default();
        let (p, k) = split_args(&arg);
        assert_eq!(Value::Array(p), positional, "{arg:?}");
        assert_eq!(Value::Object(k), kwargs, "{arg:?}");
    }

    #[test]
    fn splits_positional_and_keyword_args() {
        check_split(json!([]), json!([]), json!({}));
        check_split(json!(["a", 1, null]), json!(["a", 1, null]), json!({}));
        check_split(
            json!(["ls", {"__kwarg__": true, "cwd": "/tmp", "env": {"A": "1"}}]),
            json!(["ls"]),
            json!({"cwd": "/tmp", "env": {"A": "1"}}),
        );
        // Several kwarg maps merge, the later one winning; unmarked maps stay positional.
        check_split(
            json!([{"__kwarg__": true, "a": 1}, {"b": 2}, {"__kwarg__": true, "a": 3}]),
            json!([{"b": 2}]),
            json!({"a": 3}),
        );
        check_split(
            json!([{"__kwarg__": false, "a": 1}, {"__kwarg__": "true"}]),
            json!([{"__kwarg__": false, "a": 1}, {"__kwarg__": "true"}]),
            json!({}),
        );
    }

    #[track_caller]
    fn check_bind(spec: &Spec, arg: Value, want: Result<(Value, Value, Value), Failure>) {
        let arg = arg.as_array().cloned().unwrap_or_default();
        let got = bind(spec, &arg).map(|b| {
            let values: Vec<Value> =
                b.values.iter().map(|v| v.clone().unwrap_or(json!("<default>"))).collect();
            (Value::Array(values), Value::Array(b.rest), Value::Object(b.kwargs))
        });
        assert_eq!(got, want, "{} {arg:?}", spec.name);
    }

    fn bad(msg: &str) -> Result<(Value, Value, Value), Failure> {
        Err(Failure::BadArgs(msg.into()))
    }

    #[test]
    fn binds_like_python() {
        check_bind(&ECHO, json!(["hi"]), Ok((json!(["hi"]), json!([]), json!({}))));
        check_bind(
            &ECHO,
            json!([kw(json!({"text": "hi"}))]),
            Ok((json!(["hi"]), json!([]), json!({}))),
        );
        check_bind(&ECHO, json!(["text=hi"]), Ok((json!(["hi"]), json!([]), json!({}))));
        check_bind(
            &GET,
            json!(["os", kw(json!({"delimiter": "/"}))]),
            Ok((json!(["os", "<default>", "/"]), json!([]), json!({}))),
        );
        check_bind(
            &ARG,
            json!([1, "two", kw(json!({"k": "v"}))]),
            Ok((json!([]), json!([1, "two"]), json!({"k": "v"}))),
        );
        check_bind(
            &RUN,
            json!(["ls", "/tmp", kw(json!({"timeout": 5}))]),
            Ok((json!(["ls", "/tmp"]), json!([]), json!({"timeout": 5}))),
        );
        // `__pub_*` keys are tolerated everywhere and only reach `**kwargs` functions.
        check_bind(
            &PING,
            json!([kw(json!({"__pub_jid": "1"}))]),
            Ok((json!([]), json!([]), json!({}))),
        );
    }

    #[test]
    fn refuses_bad_calls_with_pythons_words() {
        check_bind(&ECHO, json!([]), bad("echo() missing 1 required positional argument: 'text'"));
        check_bind(
            &THREE,
            json!(["x"]),
            bad("three() missing 2 required positional arguments: 'b' and 'c'"),
        );
        check_bind(
            &THREE,
            json!([]),
            bad("three() missing 3 required positional arguments: 'a', 'b', and 'c'"),
        );
        check_bind(
            &ECHO,
            json!(["a", "b"]),
            bad("echo() takes 1 positional argument but 2 were given"),
        );
        check_bind(&PING, json!(["a"]), bad("ping() takes 0 positional arguments but 1 was given"));
        check_bind(
            &GET,
            json!([1, 2, 3, 4]),
            bad("get() takes from 1 to 3 positional arguments but 4 were given"),
        );
        check_bind(
            &ECHO,
            json!(["a", kw(json!({"text": "b"}))]),
            bad("echo() got multiple values for argument 'text'"),
        );
        check_bind(
            &ECHO,
            json!(["a", kw(json!({"foo": "bar", "n": [1, "x"], "t": true}))]),
            Err(Failure::Invocation(
                "The following keyword arguments are not valid: foo=bar, n=[1, 'x'], t=True".into(),
            )),
        );
        check_bind(
            &PING,
            json!(["x=1"]),
            Err(Failure::Invocation("The following keyword arguments are not valid: x=1".into())),
        );
    }

    #[test]
    fn python_flavoured_values() {
        for (value, truthy, flagged) in [
            (json!(null), false, false),
            (json!(0), false, false),
            (json!(0.0), false, false),
            (json!(2), true, true),
            (json!(""), false, false),
            (json!("False"), true, false),
            (json!("no"), true, false),
            (json!("yes"), true, true),
            (json!([]), false, false),
            (json!({"a": 1}), true, true),
        ] {
            assert_eq!(py_truthy(&value), truthy, "{value}");
            assert_eq!(flag(&value), flagged, "{value}");
        }
        assert_eq!(
            py_repr(&json!({"a": [null, true, 1.5, "it's"]})),
            r#"{'a': [None, True, 1.5, "it's"]}"#
        );
        assert_eq!(py_repr(&json!("a'b\"c\n")), r#"'a\'b"c\n'"#);
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(
            (py_type(&json!(1)), py_type(&json!(1.0)), py_type(&json!({}))),
            ("int", "float", "dict")
        );
        assert_eq!(
            (number(&json!(" 2.5 ")), number(&json!("inf")), number(&json!(true))),
            (Some(2.5), None, None)
        );
        assert_eq!((integer(&json!("7")), integer(&json!(7.5))), (Some(7), None));
    }
}
