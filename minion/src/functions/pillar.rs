//! Salt's `pillar` module over the pillar the master compiled for this minion (held in
//! memory, see [`crate::pillar`]): `items`, `get`, `item`, `ls`, `raw`; and
//! `saltutil.refresh_pillar`, which has the master compile it again.

use super::args::py_str;
use super::{Bound, Context, Failure, FnResult, Ret, Spec};
use halite_common::target::traverse_dict_and_list;
use serde_json::{Map, Value};

pub(super) const SPECS: &[Spec] = &[
    Spec::new(
        "pillar.items",
        "Calls the master for a fresh pillar and generates the pillar data on the fly\n\n\
         Halite returns the pillar the master last compiled for this minion (at start and \
         on saltutil.refresh_pillar).\n\nCLI Example:\n\n    salt '*' pillar.items\n",
        items,
    )
    .varargs()
    .varkw()
    .out("nested"),
    Spec::new(
        "pillar.get",
        "Attempt to retrieve the named value from pillar, if the named value is not \
         available return the passed default. The default return is an empty string.\n\n\
         The value can also represent a value in a nested dict using a \":\" delimiter for \
         the dict, e.g. pkg:apache\n\nCLI Example:\n\n    salt '*' pillar.get pkg:apache\n",
        get,
    )
    .params(
        &["key", "default", "merge", "merge_nested_lists", "delimiter", "pillarenv", "saltenv"],
        1,
    ),
    Spec::new(
        "pillar.item",
        "Return one or more pillar entries from the in-memory pillar data\n\n\
         CLI Example:\n\n    salt '*' pillar.item foo bar baz\n",
        item,
    )
    .varargs()
    .varkw()
    .out("nested"),
    Spec::new(
        "pillar.ls",
        "Return a list of the top-level pillar keys\n\nCLI Example:\n\n    salt '*' pillar.ls\n",
        ls,
    )
    .varargs()
    .varkw(),
    Spec::new(
        "pillar.raw",
        "Return the raw pillar data that is currently loaded into the minion\n\n\
         CLI Example:\n\n    salt '*' pillar.raw\n    salt '*' pillar.raw key='roles'\n",
        raw,
    )
    .params(&["key"], 0)
    .out("nested"),
    Spec::new(
        "saltutil.refresh_pillar",
        "Signal the minion to refresh the in-memory pillar data\n\n\
         Halite always waits until the master's new compile is stored.\n\n\
         CLI Example:\n\n    salt '*' saltutil.refresh_pillar\n",
        refresh_pillar,
    )
    .params(&["wait", "timeout", "clean_cache"], 0)
    .varkw(),
];

/// `pillar=` given to a pillar function: merged over the compiled pillar, as Salt's
/// `pillar_override`.
fn with_override(b: &Bound, ctx: &Context) -> Result<Map<String, Value>, Failure> {
    let mut pillar = ctx.pillar().as_ref().clone();
    let inline = halite_states::pillar::inline(b.kwargs.get("pillar"))
        .map_err(|not_a_dict| Failure::Invocation(not_a_dict.to_string()))?;
    halite_states::compile_pillar::merge(&mut pillar, inline);
    Ok(pillar)
}

fn items(b: &Bound, ctx: &Context) -> FnResult {
    Ok(Ret::ok(Value::Object(with_override(b, ctx)?)))
}

fn get(b: &Bound, ctx: &Context) -> FnResult {
    let mut kwargs = Map::new();
    kwargs.insert("__kwarg__".into(), Value::Bool(true));
    for name in ["key", "default", "delimiter"] {
        if let Some(value) = b.given(name) {
            kwargs.insert(name.into(), value.clone());
        }
    }
    let pillar = ctx.pillar();
    Ok(Ret::ok(halite_states::pillar::get(&pillar, &[Value::Object(kwargs)])))
}

fn item(b: &Bound, ctx: &Context) -> FnResult {
    let default = b.kwargs.get("default").cloned().unwrap_or_else(|| Value::String(String::new()));
    let delimiter = b.kwargs.get("delimiter").map_or_else(|| ":".to_string(), py_str);
    let pillar = with_override(b, ctx)?;
    let mut ret = Map::new();
    for key in &b.rest {
        let key = py_str(key);
        let found = match delimiter.is_empty() {
            true => None,
            false => traverse_dict_and_list(&pillar, &key, &delimiter).cloned(),
        };
        ret.insert(key, found.unwrap_or_else(|| default.clone()));
    }
    Ok(Ret::ok(Value::Object(ret)))
}

fn ls(b: &Bound, ctx: &Context) -> FnResult {
    let pillar = with_override(b, ctx)?;
    Ok(Ret::ok(pillar.keys().map(|k| Value::String(k.clone())).collect::<Vec<_>>()))
}

fn raw(b: &Bound, ctx: &Context) -> FnResult {
    let pillar = ctx.pillar();
    Ok(Ret::ok(match b.get("key") {
        Some(key) => pillar.get(&py_str(key)).cloned().unwrap_or_else(|| Value::Object(Map::new())),
        None => Value::Object(pillar.as_ref().clone()),
    }))
}

fn refresh_pillar(b: &Bound, ctx: &Context) -> FnResult {
    let Some(pillar) = &ctx.pillar else {
        return Err(Failure::Command("no master session to refresh the pillar from".into()));
    };
    // Salt's `timeout=30`, in seconds.
    let seconds = match b.get("timeout") {
        None => 30.0,
        Some(value) => value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| Failure::BadArgs("timeout must be a number of seconds".into()))?,
    };
    match pillar.refresh(std::time::Duration::from_secs_f64(seconds.min(3600.0))) {
        Ok(()) => Ok(Ret::ok(true)),
        Err(why) => {
            log::warn!("{}: pillar refresh failed: {why}", ctx.id);
            Ok(Ret::ok(false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{call, tests::ctx};
    use crate::pillar::Pillar;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn with_pillar(fun: &str, arg: Value) -> (Value, i64) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(9)).unwrap());
        let (pillar, _refreshes) = Pillar::new(waker);
        let data = json!({"role": "web", "db": {"ports": [5432, 5433], "name": "main"}});
        pillar.store(data.as_object().cloned().unwrap());
        let mut ctx = ctx();
        ctx.pillar = Some(pillar);
        let outcome = call(fun, arg.as_array().unwrap(), &ctx);
        (outcome.ret, outcome.retcode)
    }

    #[test]
    fn pillar_functions_answer_like_salt() {
        let kw = |v: Value| {
            let mut m = v.as_object().cloned().unwrap();
            m.insert("__kwarg__".into(), json!(true));
            Value::Object(m)
        };
        for (fun, arg, want) in [
            ("pillar.get", json!(["role"]), json!("web")),
            ("pillar.get", json!(["db:ports:1"]), json!(5433)),
            ("pillar.get", json!(["nope"]), json!("")),
            ("pillar.get", json!(["nope", "d"]), json!("d")),
            ("pillar.get", json!(["db/name", kw(json!({"delimiter": "/"}))]), json!("main")),
            (
                "pillar.item",
                json!(["role", "db:name", "x"]),
                json!({"role": "web", "db:name": "main", "x": ""}),
            ),
            ("pillar.item", json!(["x", kw(json!({"default": 0}))]), json!({"x": 0})),
            ("pillar.ls", json!([]), json!(["role", "db"])),
            ("pillar.raw", json!([kw(json!({"key": "role"}))]), json!("web")),
            (
                "pillar.items",
                json!([kw(json!({"pillar": {"role": "db", "new": 1}}))]),
                json!({"role": "db", "db": {"ports": [5432, 5433], "name": "main"}, "new": 1}),
            ),
        ] {
            assert_eq!(with_pillar(fun, arg.clone()), (want, 0), "{fun} {arg}");
        }
        let (items, _) = with_pillar("pillar.items", json!([]));
        assert_eq!(items["db"]["name"], "main");
    }

    #[test]
    fn refresh_pillar_answers_false_when_nobody_answers_in_time() {
        // No loop drains the refresh here: the wait runs out.
        let timeout = json!([{"__kwarg__": true, "timeout": 0}]);
        assert_eq!(with_pillar("saltutil.refresh_pillar", timeout), (json!(false), 0));
        let (bad, retcode) =
            with_pillar("saltutil.refresh_pillar", json!([{"__kwarg__": true, "timeout": "x"}]));
        assert_eq!(retcode, 1);
        assert!(bad.as_str().unwrap_or("").contains("timeout must be a number"), "{bad}");
        let outcome = call("saltutil.refresh_pillar", &[], &ctx());
        assert_eq!(
            (outcome.ret, outcome.retcode),
            (json!("ERROR: no master session to refresh the pillar from"), 1)
        );
    }
}
