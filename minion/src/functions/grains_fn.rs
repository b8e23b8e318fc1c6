//! Salt's `grains` module (read-only part): `items`, `item`, `get`, `ls`, `has_value`, over the
//! grains collected at start-up, with Salt's colon paths through nested maps and lists.

use super::args::{py_str, py_truthy, py_type};
use super::{Bound, Context, Failure, FnResult, Ret, Spec};
use serde_json::{Map, Value};

/// Salt's `DEFAULT_TARGET_DELIM`.
const DELIMITER: &str = ":";

pub(super) const SPECS: &[Spec] = &[
    Spec::new(
        "grains.items",
        "Return all of the minion's grains\n\nCLI Example:\n\n    salt '*' grains.items\n",
        items,
    )
    .params(&["sanitize"], 0)
    .out("nested"),
    Spec::new(
        "grains.item",
        "Return one or more grains (missing ones as the default, \"\" unless default= says \
         otherwise)\n\nCLI Example:\n\n    salt '*' grains.item os osrelease\n",
        item,
    )
    .varargs()
    .varkw()
    .out("nested"),
    Spec::new(
        "grains.get",
        "Attempt to retrieve the named value from grains, if the named value is not available \
         return the passed default. The default return is an empty string.\n\n\
         The value can also represent a value in a nested dict or list using a \":\" delimiter \
         (or delimiter=...), e.g. pkg:apache or ipv4:0.\n\n\
         CLI Example:\n\n    salt '*' grains.get pkg:apache\n",
        get,
    )
    .params(&["key", "default", "delimiter", "ordered"], 1),
    Spec::new(
        "grains.ls",
        "Return a list of all available grains\n\nCLI Example:\n\n    salt '*' grains.ls\n",
        ls,
    ),
    Spec::new(
        "grains.has_value",
        "Determine whether a key exists in the grains dictionary and has a true value.\n\n\
         CLI Example:\n\n    salt '*' grains.has_value pkg:apache\n",
        has_value,
    )
    .params(&["key"], 1),
];

fn items(_: &Bound, ctx: &Context) -> FnResult {
    Ok(Ret::ok(Value::Object(ctx.grains.clone())))
}

fn item(b: &Bound, ctx: &Context) -> FnResult {
    let default = b.kwargs.get("default").cloned().unwrap_or_else(|| Value::String(String::new()));
    let delimiter = delimiter(b.kwargs.get("delimiter"))?;
    let mut ret = Map::new();
    for key in &b.rest {
        let path = path_of(key, &delimiter)?;
        let value = traverse(&ctx.grains, &path).cloned().unwrap_or_else(|| default.clone());
        ret.insert(py_str(key), value);
    }
    Ok(Ret::ok(Value::Object(ret)))
}

fn get(b: &Bound, ctx: &Context) -> FnResult {
    let key = b.given("key").unwrap_or(&Value::Null);
    let default = b.given("default").cloned().unwrap_or_else(|| Value::String(String::new()));
    let path = path_of(key, &delimiter(b.get("delimiter"))?)?;
    Ok(Ret::ok(traverse(&ctx.grains, &path).cloned().unwrap_or(default)))
}

fn ls(_: &Bound, ctx: &Context) -> FnResult {
    let mut keys: Vec<&String> = ctx.grains.keys().collect();
    keys.sort();
    Ok(Ret::ok(keys.into_iter().map(|k| Value::String(k.clone())).collect::<Vec<_>>()))
}

fn has_value(b: &Bound, ctx: &Context) -> FnResult {
    let key = b.given("key").unwrap_or(&Value::Null);
    let path = path_of(key, DELIMITER)?;
    Ok(Ret::ok(traverse(&ctx.grains, &path).is_some_and(py_truthy)))
}

fn delimiter(value: Option<&Value>) -> Result<String, Failure> {
    match value {
        None => Ok(DELIMITER.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(Failure::BadArgs(format!(
            "delimiter must be a non-empty string, not {}",
            py_type(other)
        ))),
    }
}

/// A key as a path: a string split on the delimiter, a number as its text, or a list of
/// parts (Salt iterates a non-string key).
fn path_of(key: &Value, delimiter: &str) -> Result<Vec<String>, Failure> {
    match key {
        Value::String(s) => Ok(s.split(delimiter).map(str::to_string).collect()),
        Value::Number(n) => Ok(n.to_string().split(delimiter).map(str::to_string).collect()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(bad_key(other)),
            })
            .collect(),
        other => Err(bad_key(other)),
    }
}

fn bad_key(key: &Value) -> Failure {
    Failure::BadArgs(format!("key must be a string, not {}", py_type(key)))
}

/// Salt's `traverse_dict_and_list`: follows `path` through maps (by key) and lists (by index,
/// negative from the end, or else by key into the first embedded map that has it).
pub(crate) fn traverse<'a>(root: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut ptr = root.get(first.as_str())?;
    for part in rest {
        ptr = match ptr {
            Value::Object(map) => map.get(part.as_str())?,
            Value::Array(list) => match part.trim().parse::<i64>() {
                Ok(index) => {
                    let len = i64::try_from(list.len()).ok()?;
                    let index = if index < 0 { index + len } else { index };
                    list.get(usize::try_from(index).ok()?)?
                }
                Err(_) => list.iter().find_map(|v| v.as_object()?.get(part.as_str()))?,
            },
            _ => return None,
        };
    }
    Some(ptr)
}

#[cfg(test)]
mod tests {
    use super::super::{call, Context, Outcome};
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        let grains = json!({
            "id": "minion1",
            "os": "Debian",
            "osrelease": "12",
            "ipv4": ["127.0.0.1", "10.0.0.5"],
            "pkg": {"apache": "httpd", "versions": {"nginx": "1.2"}},
            "roles": [{"web": {"port": 80}}, {"db": true}],
            "empty": "",
            "a/b": 1,
        });
        Context {
            id: "minion1".into(),
            grains: grains.as_object().cloned().unwrap_or_default(),
            fileserver: None,
            pillar: None,
        }
    }

    #[track_caller]
    fn check(fun: &str, arg: Value, ret: Value, out: Option<&str>) {
        let got = call(fun, &arg.as_array().cloned().unwrap_or_default(), &ctx());
        assert_eq!(got, Outcome { ret, retcode: 0, out: out.map(String::from) }, "{fun} {arg}");
    }

    #[test]
    fn get_follows_colon_paths() {
        for (key, want) in [
            (json!("os"), json!("Debian")),
            (json!("pkg:apache"), json!("httpd")),
            (json!("pkg:versions:nginx"), json!("1.2")),
            (json!("pkg"), json!({"apache": "httpd", "versions": {"nginx": "1.2"}})),
            (json!("ipv4:0"), json!("127.0.0.1")),
            (json!("ipv4:-1"), json!("10.0.0.5")),
            (json!("ipv4:2"), json!("")),
            (json!("ipv4:x"), json!("")),
            (json!("roles:web:port"), json!(80)),
            (json!("roles:db"), json!(true)),
            (json!("roles:nope"), json!("")),
            (json!("os:deeper"), json!("")),
            (json!("missing"), json!("")),
            (json!(""), json!("")),
            (json!(["pkg", "apache"]), json!("httpd")),
        ] {
            check("grains.get", json!([key]), want, None);
        }
        check("grains.get", json!(["missing", "fallback"]), json!("fallback"), None);
        check("grains.get", json!(["missing", {"a": 1}]), json!({"a": 1}), None);
        check("grains.get", json!(["os", "fallback"]), json!("Debian"), None);
        check("grains.get", json!(["a/b", {"__kwarg__": true, "delimiter": "|"}]), json!(1), None);
        check(
            "grains.get",
            json!(["pkg/apache", {"__kwarg__": true, "delimiter": "/"}]),
            json!("httpd"),
            None,
        );
    }

    #[test]
    fn items_item_ls_has_value() {
        check("grains.items", json!([]), Value::Object(ctx().grains), Some("nested"));
        check(
            "grains.item",
            json!(["os", "pkg:apache", "nope"]),
            json!({"os": "Debian", "pkg:apache": "httpd", "nope": ""}),
            Some("nested"),
        );
        check(
            "grains.item",
            json!(["nope", {"__kwarg__": true, "default": null}]),
            json!({"nope": null}),
            Some("nested"),
        );
        check(
            "grains.ls",
            json!([]),
            json!(["a/b", "empty", "id", "ipv4", "os", "osrelease", "pkg", "roles"]),
            None,
        );
        check("grains.has_value", json!(["pkg:apache"]), json!(true), None);
        check("grains.has_value", json!(["empty"]), json!(false), None);
        check("grains.has_value", json!(["nope"]), json!(false), None);
    }

    #[test]
    fn bad_arguments() {
        for arg in [
            json!([]),
            json!([null]),
            json!([{"a": 1}]),
            json!([[null]]),
            json!(["os", "d", ""]),
            json!(["os", "d", 5]),
            json!(["a", "b", ":", true, "extra"]),
        ] {
            let got = call("grains.get", &arg.as_array().cloned().unwrap_or_default(), &ctx());
            let text = got.ret.as_str().unwrap_or_default();
            assert!(text.starts_with("Passed invalid arguments to grains.get: "), "{arg}: {text}");
            assert_eq!((got.retcode, got.out.as_deref()), (1, Some("nested")));
        }
    }
}
