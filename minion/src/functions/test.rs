//! Salt's `test` module: `ping`, `echo`, `version`, `versions_report`, `sleep`, `arg`,
//! `retcode`, `true`, `false`.

use super::args::{integer, number, py_type};
use super::{Bound, Context, Failure, FnResult, Ret, Spec};
use serde_json::{json, Value};
use std::time::Duration;

/// Longest `test.sleep` accepted, in seconds.
pub(crate) const MAX_SLEEP_SECS: f64 = 3600.0;

pub(super) const SPECS: &[Spec] = &[
    Spec::new(
        "test.ping",
        "Used to make sure the minion is up and responding. Not an ICMP ping.\n\n\
         Returns ``True``.\n\nCLI Example:\n\n    salt '*' test.ping\n",
        ping,
    ),
    Spec::new(
        "test.echo",
        "Return a string - used for testing the connection\n\n\
         CLI Example:\n\n    salt '*' test.echo 'foo bar baz quo qux'\n",
        echo,
    )
    .params(&["text"], 1),
    Spec::new(
        "test.version",
        "Return the version of Halite on the minion\n\nCLI Example:\n\n    salt '*' test.version\n",
        version,
    ),
    Spec::new(
        "test.versions_report",
        "Returns versions of components used by Halite\n\n\
         CLI Example:\n\n    salt '*' test.versions_report\n",
        versions_report,
    ),
    Spec::new(
        "test.sleep",
        "Instruct the minion to initiate a process that will sleep for a given period of time \
         (at most 3600 seconds).\n\nCLI Example:\n\n    salt '*' test.sleep 20\n",
        sleep,
    )
    .params(&["length"], 1),
    Spec::new(
        "test.arg",
        "Print out the data passed into the function ``*args`` and ``kwargs``, this is used to \
         both test the publication data and cli argument passing, but also to display the \
         information available within the publication data.\n\n\
         CLI Example:\n\n    \
         salt '*' test.arg 1 \"two\" 3.1 txt=\"hello\" wow='{a: 1, b: \"hello\"}'\n",
        arg,
    )
    .varargs()
    .varkw(),
    Spec::new(
        "test.retcode",
        "Test that the returncode system is functioning correctly\n\n\
         CLI Example:\n\n    salt '*' test.retcode 42\n",
        retcode,
    )
    .params(&["code"], 0),
    Spec::new("test.true", "Always return True\n\nCLI Example:\n\n    salt '*' test.true\n", true_),
    Spec::new(
        "test.false",
        "Always return False\n\nCLI Example:\n\n    salt '*' test.false\n",
        false_,
    ),
];

fn ping(_: &Bound, ctx: &Context) -> FnResult {
    log::debug!("test.ping received for minion '{}'", ctx.id);
    Ok(Ret::ok(true))
}

fn echo(b: &Bound, _: &Context) -> FnResult {
    Ok(Ret::ok(b.given("text").cloned().unwrap_or(Value::Null)))
}

fn version(_: &Bound, _: &Context) -> FnResult {
    Ok(Ret::ok(env!("CARGO_PKG_VERSION")))
}

/// Salt's: the `--versions-report` lines joined, without the final newline.
fn versions_report(_: &Bound, _: &Context) -> FnResult {
    let report = halite_common::versions::report();
    Ok(Ret::ok(report.trim_end_matches('\n')))
}

fn sleep(b: &Bound, _: &Context) -> FnResult {
    let length = b.given("length").unwrap_or(&Value::Null);
    let secs = number(length).ok_or_else(|| {
        Failure::BadArgs(format!(
            "length must be a number of seconds, not {} {length}",
            py_type(length)
        ))
    })?;
    if !(0.0..=MAX_SLEEP_SECS).contains(&secs) {
        return Err(Failure::BadArgs(format!(
            "length must be between 0 and {MAX_SLEEP_SECS} seconds, not {secs}"
        )));
    }
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok(Ret::ok(true))
}

fn arg(b: &Bound, _: &Context) -> FnResult {
    let kwargs: serde_json::Map<String, Value> = b
        .kwargs
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Ret::ok(json!({"args": b.rest, "kwargs": kwargs})))
}

fn retcode(b: &Bound, _: &Context) -> FnResult {
    let code = match b.get("code") {
        None => 42,
        Some(v) => integer(v).ok_or_else(|| {
            Failure::BadArgs(format!("code must be an integer, not {} {v}", py_type(v)))
        })?,
    };
    Ok(Ret::with_retcode(true, code))
}

fn true_(_: &Bound, _: &Context) -> FnResult {
    Ok(Ret::ok(true))
}

fn false_(_: &Bound, _: &Context) -> FnResult {
    Ok(Ret::ok(false))
}

#[cfg(test)]
mod tests {
    use super::super::{call, tests::ctx, Outcome};
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    #[track_caller]
    fn check(fun: &str, arg: Value, ret: Value, retcode: i64) {
        let arg = arg.as_array().cloned().unwrap_or_default();
        let got = call(fun, &arg, &ctx());
        let out = (retcode != 0 && !ret.is_boolean()).then(|| "nested".to_string());
        assert_eq!(got, Outcome { ret, retcode, out }, "{fun} {arg:?}");
    }

    #[track_caller]
    fn check_bad(fun: &str, arg: Value, starts: &str) {
        let arg = arg.as_array().cloned().unwrap_or_default();
        let got = call(fun, &arg, &ctx());
        let text = got.ret.as_str().unwrap_or_default().to_string();
        assert!(text.starts_with(starts), "{fun} {arg:?}: {text}");
        assert_eq!((got.retcode, got.out.as_deref()), (1, Some("nested")), "{fun} {arg:?}");
    }

    #[test]
    fn happy_paths() {
        check("test.ping", json!([]), json!(true), 0);
        check("test.true", json!([]), json!(true), 0);
        check("test.false", json!([]), json!(false), 0);
        check("test.echo", json!(["hello world"]), json!("hello world"), 0);
        check("test.echo", json!([5]), json!(5), 0);
        check("test.echo", json!([null]), json!(null), 0);
        check("test.echo", json!([{"__kwarg__": true, "text": "kw"}]), json!("kw"), 0);
        check("test.version", json!([]), json!(env!("CARGO_PKG_VERSION")), 0);
        let report = halite_common::versions::report();
        check("test.versions_report", json!([]), json!(report.trim_end_matches('\n')), 0);
        check("test.sleep", json!([0]), json!(true), 0);
        check("test.sleep", json!(["0.01"]), json!(true), 0);
        check(
            "test.arg",
            json!([1, "two", 3.5, {"__kwarg__": true, "txt": "hello", "__pub_jid": "1"}]),
            json!({"args": [1, "two", 3.5], "kwargs": {"txt": "hello"}}),
            0,
        );
        check("test.arg", json!([]), json!({"args": [], "kwargs": {}}), 0);
        check("test.retcode", json!([]), json!(true), 42);
        check("test.retcode", json!([3]), json!(true), 3);
        check("test.retcode", json!(["0"]), json!(true), 0);
        check("test.retcode", json!([{"__kwarg__": true, "code": 7}]), json!(true), 7);
    }

    #[test]
    fn sleep_sleeps() {
        let start = Instant::now();
        check("test.sleep", json!([0.2]), json!(true), 0);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn bad_arguments() {
        let echo = "Passed invalid arguments to test.echo: ";
        check_bad(
            "test.echo",
            json!([]),
            &format!("{echo}echo() missing 1 required positional argument: 'text'\n"),
        );
        check_bad(
            "test.echo",
            json!(["a", "b"]),
            &format!("{echo}echo() takes 1 positional argument but 2 were given"),
        );
        check_bad(
            "test.echo",
            json!(["a", {"__kwarg__": true, "foo": "bar"}]),
            "ERROR executing 'test.echo': The following keyword arguments are not valid: foo=bar",
        );
        check_bad(
            "test.ping",
            json!(["x"]),
            "Passed invalid arguments to test.ping: \
             ping() takes 0 positional arguments but 1 was given",
        );
        check_bad(
            "test.version",
            json!([1]),
            "Passed invalid arguments to test.version: version()",
        );
        for length in [json!(3601), json!(-1), json!(1e300), json!("soon"), json!(null), json!([1])]
        {
            check_bad(
                "test.sleep",
                json!([length]),
                "Passed invalid arguments to test.sleep: length must be",
            );
        }
        check_bad(
            "test.sleep",
            json!([]),
            "Passed invalid arguments to test.sleep: sleep() missing 1",
        );
        for code in [json!("x"), json!(1.5), json!([1])] {
            check_bad(
                "test.retcode",
                json!([code]),
                "Passed invalid arguments to test.retcode: code must be an integer",
            );
        }
    }
}
