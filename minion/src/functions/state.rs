//! Salt's `state` module: `sls`, `apply`, `highstate`, `show_sls`, `show_low_sls`,
//! `show_top`. The state system itself is `halite_states`; this module binds Salt's
//! arguments (`mods` as `"a,b"` or a list, `test`, `exclude`, `pillar`: inline, merged over
//! the master's compiled pillar) and supplies the session's `salt://` file server.

use super::args::{flag, py_str, py_type};
use super::{Bound, Context, Failure, FnResult, Ret, Spec};
use crate::states;
use halite_states::{pillar, Answer, Host, Options};
use serde_json::Value;

pub(super) const SPECS: &[Spec] = &[
    Spec::new("state.sls", SLS_DOC, sls)
        .params(&["mods", "test", "exclude", "queue", "state_events"], 1)
        .varkw()
        .out("highstate"),
    Spec::new("state.apply", APPLY_DOC, apply).params(&["mods"], 0).varkw().out("highstate"),
    Spec::new("state.highstate", HIGHSTATE_DOC, highstate)
        .params(&["test", "queue", "state_events"], 0)
        .varkw()
        .out("highstate"),
    Spec::new("state.show_sls", SHOW_SLS_DOC, show_sls)
        .params(&["mods", "test", "queue"], 1)
        .varkw(),
    Spec::new("state.show_low_sls", SHOW_LOW_SLS_DOC, show_low_sls)
        .params(&["mods", "test", "queue"], 1)
        .varkw(),
    Spec::new("state.show_top", SHOW_TOP_DOC, show_top).params(&["queue"], 0).varkw(),
];

const SLS_DOC: &str = "Execute the states in one or more SLS files\n\n\
    mods\n    A comma-separated list (or a list) of SLS names: ``web`` is ``web.sls`` or \
    ``web/init.sls`` on the master's file_roots.\n\n\
    test\n    Run in test mode: report what would change, change nothing.\n\n\
    exclude\n    SLS names (or ``{'sls': ..}`` / ``{'id': ..}`` entries) to leave out.\n\n\
    pillar\n    A dictionary the templates see as ``pillar``.\n\n\
    CLI Example:\n\n    salt '*' state.sls core,edit.vim test=True\n";
const APPLY_DOC: &str = "Apply states: with SLS names, the same as state.sls; without, a \
    highstate (the SLS files top.sls assigns to the minion).\n\n\
    CLI Example:\n\n    salt '*' state.apply\n    salt '*' state.apply test pillar='{\"x\": 1}'\n";
const HIGHSTATE_DOC: &str = "Retrieve the state data from the master's top.sls for this \
    minion and execute it\n\n\
    CLI Example:\n\n    salt '*' state.highstate test=True\n";
const SHOW_SLS_DOC: &str = "Display the high data of the named SLS files, without running \
    them\n\nCLI Example:\n\n    salt '*' state.show_sls core,edit.vim\n";
const SHOW_LOW_SLS_DOC: &str = "Display the low data (ordered chunks) of the named SLS \
    files, without running them\n\nCLI Example:\n\n    salt '*' state.show_low_sls foo\n";
const SHOW_TOP_DOC: &str = "Return the SLS files top.sls assigns to this minion\n\n\
    CLI Example:\n\n    salt '*' state.show_top\n";

/// This minion as the state engine's host, with the session's file server.
fn host(ctx: &Context) -> Result<Host, Failure> {
    Ok(states::host(ctx, ctx.files()?))
}

/// Salt's `split_input`: `"a, b"` or `["a", "b"]`.
fn mods(value: &Value) -> Result<Vec<String>, Failure> {
    halite_states::value::split_input(value).ok_or_else(|| {
        Failure::BadArgs(format!("mods must be a string or a list, not {}", py_type(value)))
    })
}

/// `test`, `exclude`, `pillar` and `saltenv` from wherever the function takes them.
fn options(
    b: &Bound,
    ctx: &Context,
    test: Option<&Value>,
    exclude: Option<&Value>,
) -> Result<Options, Failure> {
    if let Some(env) = b.kwargs.get("saltenv").filter(|v| !v.is_null()) {
        if py_str(env) != "base" {
            return Err(Failure::Invocation(format!(
                "saltenv '{}' is not available: Halite serves only 'base'",
                py_str(env)
            )));
        }
    }
    let test = test.or_else(|| b.kwargs.get("test")).is_some_and(flag);
    let inline = pillar::inline(b.kwargs.get("pillar"))
        .map_err(|not_a_dict| Failure::Invocation(not_a_dict.to_string()))?;
    // The master's compiled pillar, with the inline one merged over it (inline wins).
    let mut pillar = ctx.pillar().as_ref().clone();
    halite_states::compile_pillar::merge(&mut pillar, inline);
    let exclude = match exclude.or_else(|| b.kwargs.get("exclude")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            s.split(',').map(|x| Value::String(x.trim().to_string())).collect()
        }
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    };
    Ok(Options { test, pillar, exclude })
}

/// Runs `run` unless the pillar has errors: then Salt's refusal (`_get_pillar_errors`),
/// retcode 5 (`EX_PILLAR_FAILURE`), unless `force=True`.
fn answer(b: &Bound, opts: &Options, run: impl FnOnce(&Options) -> Answer) -> FnResult {
    let force = b.kwargs.get("force").is_some_and(flag);
    match opts.pillar.get("_errors").and_then(Value::as_array).filter(|_| !force) {
        Some(errors) if !errors.is_empty() => {
            let mut list =
                vec![Value::from("Pillar failed to render with the following messages:")];
            list.extend(errors.iter().map(|e| Value::String(py_str(e))));
            Ok(Ret::with_retcode(Value::Array(list), PILLAR_FAILURE))
        }
        _ => {
            let a = run(opts);
            Ok(Ret::with_retcode(a.value, a.retcode))
        }
    }
}

/// Salt's `EX_PILLAR_FAILURE`.
const PILLAR_FAILURE: i64 = 5;

fn sls(b: &Bound, ctx: &Context) -> FnResult {
    let mods = mods(b.given("mods").unwrap_or(&Value::Null))?;
    let opts = options(b, ctx, b.get("test"), b.get("exclude"))?;
    let host = host(ctx)?;
    answer(b, &opts, |opts| halite_states::sls(&host, &mods, opts))
}

fn apply(b: &Bound, ctx: &Context) -> FnResult {
    let opts = options(b, ctx, None, None)?;
    let host = host(ctx)?;
    match b.get("mods") {
        None => answer(b, &opts, |opts| halite_states::highstate(&host, opts)),
        Some(value) => {
            let mods = mods(value)?;
            answer(b, &opts, |opts| halite_states::sls(&host, &mods, opts))
        }
    }
}

fn highstate(b: &Bound, ctx: &Context) -> FnResult {
    let opts = options(b, ctx, b.get("test"), None)?;
    let host = host(ctx)?;
    answer(b, &opts, |opts| halite_states::highstate(&host, opts))
}

fn show_sls(b: &Bound, ctx: &Context) -> FnResult {
    let mods = mods(b.given("mods").unwrap_or(&Value::Null))?;
    let opts = options(b, ctx, b.get("test"), None)?;
    let host = host(ctx)?;
    answer(b, &opts, |opts| halite_states::show_sls(&host, &mods, opts))
}

fn show_low_sls(b: &Bound, ctx: &Context) -> FnResult {
    let mods = mods(b.given("mods").unwrap_or(&Value::Null))?;
    let opts = options(b, ctx, b.get("test"), None)?;
    let host = host(ctx)?;
    answer(b, &opts, |opts| halite_states::show_low_sls(&host, &mods, opts))
}

fn show_top(b: &Bound, ctx: &Context) -> FnResult {
    let opts = options(b, ctx, None, None)?;
    let host = host(ctx)?;
    answer(b, &opts, |opts| halite_states::show_top(&host, opts))
}
