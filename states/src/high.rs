//! Salt's high data steps before ordering: the structure checks (`verify_high`), `exclude`,
//! and the compilation into low chunks (`compile_high_data`): one chunk per ID and state
//! module, carrying its arguments as keys, `names` expanded into one chunk per name.

use super::value::{py_repr, py_str};
use halite_common::glob::fnmatch;
use serde_json::{json, Map, Value};

/// Salt's `STATE_REQUISITE_KEYWORDS`: arguments that must be lists of requisites.
const REQUISITE_KEYWORDS: &[&str] = &[
    "onfail",
    "onfail_any",
    "onfail_all",
    "require",
    "require_any",
    "onchanges",
    "onchanges_any",
    "watch",
    "watch_any",
    "prereq",
    "prerequired",
    "listen",
    "onfail_stop",
];

/// Requisites Salt has and Halite does not: refused rather than silently ignored.
const UNSUPPORTED: &[&str] =
    &["prereq", "prereq_in", "prerequired", "listen", "listen_in", "use", "use_in", "onfail_stop"];

/// Salt's `verify_high`, plus Halite's refusal of the requisites it does not implement.
pub(crate) fn verify(high: &Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    for (id, body) in high {
        if id.starts_with("__") {
            continue;
        }
        let Value::Object(body) = body else {
            errors.push(format!(
                "The type {id} in {} is not formatted as a dictionary",
                py_str(body)
            ));
            continue;
        };
        let sls = body.get("__sls__").map(py_str).unwrap_or_default();
        for (state, run) in body {
            if state.starts_with("__") {
                continue;
            }
            match run {
                Value::Null => errors.push(format!(
                    "ID '{id}' in SLS '{sls}' contains a short declaration ({state}) with a \
                     trailing colon. When not passing any arguments to a state, the colon must \
                     be omitted."
                )),
                Value::Array(args) => verify_args(id, &sls, args, &mut errors),
                _ => errors.push(format!("State '{id}' in SLS '{sls}' is not formed as a list")),
            }
        }
    }
    errors
}

fn verify_args(id: &str, sls: &str, args: &[Value], errors: &mut Vec<String>) {
    let mut funs: Vec<&str> = Vec::new();
    for arg in args {
        match arg {
            Value::String(fun) => {
                funs.push(fun);
                if fun.trim().contains(' ') {
                    errors.push(format!(
                        "The function \"{fun}\" in state \"{id}\" in SLS \"{sls}\" has \
                         whitespace, a function with whitespace is not supported, perhaps this \
                         is an argument that is missing a \":\""
                    ));
                }
            }
            Value::Object(map) => {
                let Some((first, value)) = map.iter().next() else { continue };
                if first == "names" && !value.is_array() {
                    errors.push(format!(
                        "The 'names' argument in state '{id}' in SLS '{sls}' needs to be formed \
                         as a list"
                    ));
                }
                if REQUISITE_KEYWORDS.contains(&first.as_str()) {
                    verify_requisites(id, sls, first, value, errors);
                }
                if UNSUPPORTED.contains(&first.as_str()) {
                    errors.push(format!(
                        "The {first} requisite in state '{id}' in SLS '{sls}' is not supported \
                         by Halite"
                    ));
                }
                if map.len() != 1 {
                    errors.push(format!(
                        "Multiple dictionaries defined in argument of state '{id}' in SLS '{sls}'"
                    ));
                }
            }
            _ => {}
        }
    }
    match funs.as_slice() {
        [] => errors.push(format!("No function declared in state '{id}' in SLS '{sls}'")),
        [_] => {}
        many => errors.push(format!(
            "Too many functions declared in state '{id}' in SLS '{sls}'. Please choose one of \
             the following: {}",
            many.join(", ")
        )),
    }
}

fn verify_requisites(id: &str, sls: &str, kind: &str, value: &Value, errors: &mut Vec<String>) {
    let Value::Array(reqs) = value else {
        errors.push(format!(
            "The {kind} statement in state '{id}' in SLS '{sls}' needs to be formed as a list"
        ));
        return;
    };
    for req in reqs {
        let (key, val) = match req {
            Value::String(_) => continue,
            Value::Object(map) if map.len() == 1 => map.iter().next().expect("one entry"),
            other => {
                errors.push(format!(
                    "Requisite declaration {} in state {id} in SLS {sls} is not formed as a \
                     single key dictionary",
                    py_repr(other)
                ));
                continue;
            }
        };
        if let Some((before, _)) = key.split_once('.') {
            errors.push(format!(
                "Invalid requisite type '{key}' in state '{id}', in SLS '{sls}'. Requisite types \
                 must not contain dots, did you mean '{before}'?"
            ));
        }
        if val.is_array() || val.is_object() {
            errors.push(format!(
                "Illegal requisite \"{}\" in SLS \"{sls}\", please check your syntax.\n",
                py_repr(val)
            ));
        }
    }
}

/// Adds `exclude=` from the command line to the files' own `exclude:` lists.
pub(crate) fn add_exclude(high: &mut Map<String, Value>, exclude: &[Value]) {
    match high.entry("__exclude__").or_insert_with(|| json!([])) {
        Value::Array(list) => list.extend(exclude.iter().cloned()),
        other => *other = Value::Array(exclude.to_vec()),
    }
}

/// Salt's `_apply_exclude`: `exclude: [sls, {sls: glob}, {id: x}]` removes those IDs.
pub(crate) fn apply_exclude(high: &mut Map<String, Value>) {
    let Some(Value::Array(exclude)) = high.shift_remove("__exclude__") else { return };
    let mut ex_sls: Vec<String> = Vec::new();
    let mut ex_id: Vec<String> = Vec::new();
    for exc in exclude {
        match exc {
            Value::String(sls) => ex_sls.push(sls),
            Value::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((k, v)) if k == "sls" => ex_sls.push(py_str(v)),
                Some((k, v)) if k == "id" => ex_id.push(py_str(v)),
                _ => {}
            },
            _ => {}
        }
    }
    for (id, body) in high.iter() {
        let sls = body.get("__sls__").and_then(Value::as_str).unwrap_or("");
        if !sls.is_empty() && ex_sls.iter().any(|pat| fnmatch(sls, pat)) {
            ex_id.push(id.clone());
        }
    }
    for id in ex_id {
        high.shift_remove(&id);
    }
}

/// Salt's `compile_high_data` (before ordering): the low chunks, in high data order.
pub(crate) fn compile(high: &Map<String, Value>) -> Vec<Map<String, Value>> {
    let mut chunks = Vec::new();
    for (id, body) in high {
        let Value::Object(body) = body else { continue };
        if id.starts_with("__") {
            continue;
        }
        for (state, run) in body {
            let Value::Array(run) = run else { continue };
            if state.starts_with("__") {
                continue;
            }
            let mut chunk = Map::new();
            chunk.insert("state".into(), Value::String(state.clone()));
            chunk.insert("name".into(), Value::String(id.clone()));
            for key in ["__sls__", "__env__", "__sls_included_from__"] {
                if let Some(v) = body.get(key) {
                    chunk.insert(key.into(), v.clone());
                }
            }
            chunk.insert("__id__".into(), Value::String(id.clone()));
            let mut fun = None;
            let mut names: Vec<Value> = Vec::new();
            for arg in run {
                match arg {
                    Value::String(f) => {
                        fun.get_or_insert_with(|| f.clone());
                    }
                    Value::Object(map) => {
                        for (key, val) in map {
                            match (key.as_str(), val) {
                                ("names", Value::Array(list)) => {
                                    for n in list {
                                        if !names.contains(n) {
                                            names.push(n.clone());
                                        }
                                    }
                                }
                                ("names" | "state", _) => {}
                                ("name", v) if !v.is_string() => {
                                    chunk.insert("name".into(), Value::String(id.clone()));
                                }
                                _ => {
                                    chunk.insert(key.clone(), val.clone());
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            let Some(fun) = fun else { continue };
            if names.is_empty() {
                let mut live = chunk;
                live.insert("fun".into(), Value::String(fun));
                chunks.push(live);
                continue;
            }
            for (i, entry) in names.iter().enumerate() {
                let mut live = chunk.clone();
                match entry {
                    Value::Object(map) if map.len() == 1 => {
                        let (low_name, args) = map.iter().next().expect("one entry");
                        live.insert("name".into(), Value::String(low_name.clone()));
                        for item in args.as_array().into_iter().flatten() {
                            for (k, v) in item.as_object().into_iter().flatten() {
                                live.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    other => {
                        live.insert("name".into(), Value::String(py_str(other)));
                    }
                }
                live.insert("name_order".into(), json!(i + 1));
                live.insert("fun".into(), Value::String(fun.clone()));
                chunks.push(live);
            }
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn high(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn structure_errors_are_worded_as_salt() {
        let h = high(json!({
            "a": {"__sls__": "s", "file": null},
            "b": {"__sls__": "s", "file": "managed"},
            "c": {"__sls__": "s", "file": [{"source": "x"}]},
            "d": {"__sls__": "s", "file": ["managed", "absent"]},
            "e": {"__sls__": "s", "cmd": ["run", {"require": "x"}]},
            "f": {"__sls__": "s", "cmd": ["run", {"require": [{"cmd.run": "x"}, ["y"]]}]},
            "g": {"__sls__": "s", "cmd": ["run", {"prereq": [{"cmd": "x"}]}]},
            "h": {"__sls__": "s", "cmd": ["run", {"a": 1, "b": 2}]},
        }));
        let errors = verify(&h);
        let want = [
            "ID 'a' in SLS 's' contains a short declaration (file) with a trailing colon. When not passing any arguments to a state, the colon must be omitted.",
            "State 'b' in SLS 's' is not formed as a list",
            "No function declared in state 'c' in SLS 's'",
            "Too many functions declared in state 'd' in SLS 's'. Please choose one of the following: managed, absent",
            "The require statement in state 'e' in SLS 's' needs to be formed as a list",
            "Invalid requisite type 'cmd.run' in state 'f', in SLS 's'. Requisite types must not contain dots, did you mean 'cmd'?",
            "Requisite declaration ['y'] in state f in SLS s is not formed as a single key dictionary",
            "The prereq requisite in state 'g' in SLS 's' is not supported by Halite",
            "Multiple dictionaries defined in argument of state 'h' in SLS 's'",
        ];
        assert_eq!(errors, want);
    }

    #[test]
    fn compiles_chunks_with_names() {
        let h = high(json!({
            "pkgs": {"__sls__": "s", "__env__": "base", "test": [{"names": ["a", {"b": [{"comment": "x"}]}]}, "nop", {"order": 10000}]},
            "other": {"__sls__": "s", "__env__": "base", "cmd": [{"name": "echo hi"}, "run", {"order": 10001}]},
        }));
        let chunks = compile(&h);
        let names: Vec<(&str, Option<&Value>, Option<&Value>)> = chunks
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c.get("name_order"), c.get("comment")))
            .collect();
        assert_eq!(
            names,
            [
                ("a", Some(&json!(1)), None),
                ("b", Some(&json!(2)), Some(&json!("x"))),
                ("echo hi", None, None)
            ]
        );
        let keys: Vec<&str> = chunks[2].keys().map(String::as_str).collect();
        assert_eq!(keys, ["state", "name", "__sls__", "__env__", "__id__", "order", "fun"]);
    }

    #[test]
    fn exclude_removes_ids_by_sls_or_id() {
        let mut h = high(json!({
            "__exclude__": ["web.*", {"id": "x"}],
            "a": {"__sls__": "web.app"},
            "x": {"__sls__": "db"},
            "y": {"__sls__": "db"},
        }));
        apply_exclude(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["y"]);
    }
}
