//! Salt's `sys` module: `list_functions`, `list_modules` and `doc`, over the function
//! registry (globs with Python `fnmatch` semantics, bare names as module prefixes).

use super::args::py_type;
use super::{
    list_functions as all_functions, registry, Bound, Context, Failure, FnResult, Ret, Spec,
};
use halite_common::glob::fnmatch;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub(super) const SPECS: &[Spec] = &[
    Spec::new(
        "sys.list_functions",
        "List the functions for all modules. Optionally, specify a module or modules from \
         which to list; function names can be specified as globs.\n\n\
         CLI Example:\n\n    salt '*' sys.list_functions\n    \
         salt '*' sys.list_functions sys test\n    salt '*' sys.list_functions 'sys.list_*'\n",
        list_functions,
    )
    .varargs()
    .varkw(),
    Spec::new(
        "sys.list_modules",
        "List the modules loaded on the minion; module names can be specified as globs.\n\n\
         CLI Example:\n\n    salt '*' sys.list_modules\n    salt '*' sys.list_modules 's*'\n",
        list_modules,
    )
    .varargs(),
    Spec::new(
        "sys.doc",
        "Return the docstrings for all modules. Optionally, specify a module or a function to \
         narrow the selection; globs are accepted.\n\n\
         CLI Example:\n\n    salt '*' sys.doc\n    salt '*' sys.doc cmd\n    \
         salt '*' sys.doc 'test.*'\n",
        doc,
    )
    .varargs(),
];

/// The positional args as strings; Python would fail on `"*" in 5` the same way.
fn names(b: &Bound) -> Result<Vec<&str>, Failure> {
    b.rest
        .iter()
        .map(|v| {
            v.as_str().ok_or_else(|| {
                Failure::BadArgs(format!("argument of type '{}' is not iterable", py_type(v)))
            })
        })
        .collect()
}

fn list_functions(b: &Bound, _: &Context) -> FnResult {
    let all = all_functions();
    let wanted = names(b)?;
    if wanted.is_empty() {
        return Ok(Ret::ok(all));
    }
    let mut found: BTreeSet<&str> = BTreeSet::new();
    for module in wanted {
        if module.contains(['*', '.']) {
            found.extend(all.iter().filter(|f| fnmatch(f, module)));
        } else {
            // "sys" lists sys.* without also matching sysctl.*
            let prefix = format!("{module}.");
            found.extend(all.iter().filter(|f| f.starts_with(&prefix)));
        }
    }
    Ok(Ret::ok(found.into_iter().collect::<Vec<_>>()))
}

fn list_modules(b: &Bound, _: &Context) -> FnResult {
    let all = all_functions();
    let module = |f: &&'static str| f.split('.').next().unwrap_or(f);
    let wanted = names(b)?;
    let found: BTreeSet<&str> = if wanted.is_empty() {
        all.iter().map(module).collect()
    } else {
        let mut found = BTreeSet::new();
        for pattern in wanted {
            for f in &all {
                let matched = match pattern.contains('*') {
                    true => fnmatch(f, pattern),
                    false => module(f) == pattern,
                };
                if matched {
                    found.insert(module(f));
                }
            }
        }
        found
    };
    Ok(Ret::ok(found.into_iter().collect::<Vec<_>>()))
}

fn doc(b: &Bound, _: &Context) -> FnResult {
    let wanted = names(b)?;
    if wanted.is_empty() {
        return Ok(Ret::ok(Value::Object(docs_where(|_| true))));
    }
    let mut docs = Map::new();
    for module in wanted {
        let found = if module.contains('*') {
            docs_where(|name| fnmatch(name, module))
        } else {
            // "sys" and "sys." select sys.*; a full name selects that function.
            let prefix =
                if module.ends_with('.') { module.to_string() } else { format!("{module}.") };
            docs_where(|name| name == module || name.starts_with(&prefix))
        };
        docs.extend(found);
    }
    Ok(Ret::ok(Value::Object(docs)))
}

/// `{name: doc}` of the functions matching the glob `pattern`, sorted by name.
pub(super) fn docs_matching(pattern: &str) -> Map<String, Value> {
    docs_where(|name| fnmatch(name, pattern))
}

fn docs_where(mut keep: impl FnMut(&str) -> bool) -> Map<String, Value> {
    let mut specs: Vec<_> = registry().filter(|s| keep(s.name)).collect();
    specs.sort_by_key(|s| s.name);
    specs.into_iter().map(|s| (s.name.to_string(), Value::String(s.doc.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{call, list_functions, tests::ctx};
    use serde_json::{json, Value};

    #[track_caller]
    fn check(fun: &str, arg: Value, ret: Value) {
        let got = call(fun, &arg.as_array().cloned().unwrap_or_default(), &ctx());
        assert_eq!((got.ret, got.retcode, got.out), (ret, 0, None), "{fun} {arg}");
    }

    #[test]
    fn list_functions_filters_like_salt() {
        check("sys.list_functions", json!([]), json!(list_functions()));
        check(
            "sys.list_functions",
            json!(["test"]),
            json!([
                "test.arg",
                "test.echo",
                "test.false",
                "test.ping",
                "test.retcode",
                "test.sleep",
                "test.true",
                "test.version",
                "test.versions_report"
            ]),
        );
        check(
            "sys.list_functions",
            json!(["sys.list_*"]),
            json!(["sys.list_functions", "sys.list_modules"]),
        );
        check(
            "sys.list_functions",
            json!(["test.ping", "sys.doc"]),
            json!(["sys.doc", "test.ping"]),
        );
        check("sys.list_functions", json!(["sy"]), json!([]));
        check(
            "sys.list_functions",
            json!(["state"]),
            json!([
                "state.apply",
                "state.highstate",
                "state.show_low_sls",
                "state.show_sls",
                "state.show_top",
                "state.sls"
            ]),
        );
        check(
            "sys.list_functions",
            json!(["grains", {"__kwarg__": true, "junk": 1}]),
            json!(["grains.get", "grains.has_value", "grains.item", "grains.items", "grains.ls"]),
        );
        check(
            "sys.list_modules",
            json!([]),
            json!(["beacons", "cmd", "cp", "grains", "pillar", "saltutil", "state", "sys", "test"]),
        );
        check("sys.list_modules", json!(["t*"]), json!(["test"]));
        check("sys.list_modules", json!(["cmd", "nope"]), json!(["cmd"]));
    }

    #[test]
    fn doc_selects_functions() {
        let got = call("sys.doc", &[json!("test.echo")], &ctx());
        let keys: Vec<String> =
            got.ret.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(keys, ["test.echo"]);
        let got = call("sys.doc", &[json!("grains.ite*")], &ctx());
        let keys: Vec<String> =
            got.ret.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(keys, ["grains.item", "grains.items"]);
        let all = call("sys.doc", &[], &ctx());
        assert_eq!(all.ret.as_object().map(|m| m.len()), Some(list_functions().len()));
    }

    #[test]
    fn non_string_filters_are_bad_arguments() {
        let got = call("sys.list_functions", &[json!(5)], &ctx());
        assert_eq!(got.retcode, 1);
        let text = got.ret.as_str().unwrap_or_default();
        let want = "Passed invalid arguments to sys.list_functions: \
                    argument of type 'int' is not iterable\n";
        assert!(text.starts_with(want), "{text}");
    }
}
