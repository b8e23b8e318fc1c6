//! `halite-run`: Salt's `salt-run` — master-side functions (`jobs.*`, `manage.*`,
//! `event.send`, `state.orchestrate`) and the live event stream `state.event`.

use argh::FromArgs;
use halite_cli::args::parse_cli_args;
use halite_cli::output::{self, Format};
use halite_cli::pyjson::{self, Layout};
use halite_cli::{current_user, Client, ClientError};
use halite_common::config::DEFAULT_CONFIG_DIR;
use halite_common::control::{Request, Response};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a master-side function (Salt's salt-run): halite-run FUN [ARG...] [key=value...]
#[derive(FromArgs)]
struct Args {
    /// configuration directory of the master (default /etc/halite)
    #[argh(option, short = 'c', default = "PathBuf::from(DEFAULT_CONFIG_DIR)")]
    config_dir: PathBuf,
    /// output format: nested (default), json, yaml, txt
    #[argh(option, default = "String::from(\"nested\")")]
    out: String,
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    /// print the versions of Halite, its dependencies and the system, for bug reports, and exit
    #[argh(switch)]
    versions_report: bool,
    /// function, then its arguments
    #[argh(positional)]
    words: Vec<String>,
}

fn main() -> ExitCode {
    halite_cli::restore_sigpipe();
    let args: Args = halite_common::args::from_env();
    if args.version {
        println!("halite-run {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.versions_report {
        print!("{}", halite_common::versions::report());
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("halite-run: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

/// The exit code: 0, or the `retcode` a return carries (an orchestration that failed: 1).
fn run(args: &Args) -> Result<u8, Failure> {
    let format = Format::parse(&args.out).ok_or_else(|| {
        (64, format!("unknown --out '{}': use nested, json, yaml or txt", args.out))
    })?;
    let Some((fun, rest)) = args.words.split_first() else {
        return Err((64, "usage: halite-run FUNCTION [ARG...] [key=value...]".into()));
    };
    let arg = parse_cli_args(rest);
    if let Some(value) = halite_cli::reactor_tools::run_local(&args.config_dir, fun, &arg) {
        let value = value.map_err(|message| (1, message))?;
        print!("{}", render(&value, format));
        return Ok(0);
    }
    let mut client = Client::from_config_dir(&args.config_dir).map_err(|e| (2, e.to_string()))?;
    if fun == "state.event" {
        return state_event(&mut client, &arg).map(|()| 0);
    }
    let request = Request::Runner { fun: fun.clone(), arg, user: current_user() };
    match client.request(&request).map_err(|e| (2, e.to_string()))? {
        Response::Value { value } => {
            print!("{}", render(&value, format));
            // Only a return that names its outputter (an orchestration's) carries a retcode:
            // a minion named `retcode` in `jobs.lookup_jid` is data.
            if value.get("outputter").is_none() {
                return Ok(0);
            }
            let retcode = value.get("retcode").and_then(Value::as_i64).unwrap_or(0);
            Ok(u8::try_from(retcode).unwrap_or(1))
        }
        Response::Error { message } => Err((1, message)),
        other => Err((2, format!("unexpected answer from the master: {other:?}"))),
    }
}

/// A runner's return in the chosen format (Salt prints runner returns with `nested`). A
/// return that names its outputter (`{"data", "outputter": "highstate", "retcode"}`, an
/// orchestration's) prints its `data` with it, as Salt's runner client does.
fn render(value: &Value, format: Format) -> String {
    if let (Some(data), Some("highstate")) =
        (value.get("data"), value.get("outputter").and_then(Value::as_str))
    {
        return match (format, data) {
            (Format::Nested, Value::Object(hosts)) => {
                hosts.iter().map(|(id, ret)| halite_cli::highstate::render(id, ret)).collect()
            }
            _ => render(data, format),
        };
    }
    match format {
        Format::Json => format!("{}\n", output::json_pretty(value)),
        _ => output::render_value(value, format),
    }
}

/// `state.event [tagmatch=GLOB] [count=N] [pretty=True] [quiet=True]`: prints
/// `tag<TAB>json` per matching event until `count` events were printed: forever when negative
/// (the default, -1), and as in Salt's loop one event for `count=0`.
fn state_event(client: &mut Client, arg: &[Value]) -> Result<(), Failure> {
    let (positional, opts) = halite_common::proto::split_args(arg);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tagmatch = opts.get("tagmatch").or(positional.first()).map(text);
    let mut count = match opts.get("count").or(positional.get(1)) {
        None => -1,
        Some(value) => value
            .as_i64()
            .ok_or_else(|| (1, format!("count must be an integer, not {}", text(value))))?,
    };
    let truthy = |key: &str| opts.get(key).is_some_and(|v| v == &Value::Bool(true) || v == "True");
    let (pretty, quiet) = (truthy("pretty"), truthy("quiet"));
    let layout = if pretty { Layout::Indent { sort_keys: true } } else { Layout::Line };
    match client.request(&Request::Subscribe { tagmatch }).map_err(|e| (2, e.to_string()))? {
        Response::Subscribed => {}
        Response::Error { message } => return Err((1, message)),
        other => return Err((2, format!("unexpected answer from the master: {other:?}"))),
    }
    let mut stdout = std::io::stdout();
    loop {
        match client.receive(None) {
            Ok(Some(Response::Event { tag, data })) => {
                if !quiet {
                    let line = format!("{tag}\t{}\n", pyjson::dumps(&Value::Object(data), layout));
                    if stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                        return Ok(()); // stdout closed (e.g. `| head`): done.
                    }
                }
                if count > 0 {
                    count -= 1;
                }
                if count == 0 {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(ClientError::Closed) => {
                return Err((1, ClientError::Closed.to_string()));
            }
            Err(e) => return Err((2, e.to_string())),
        }
    }
}
