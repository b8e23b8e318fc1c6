//! `halite-key`: Salt's `salt-key`, working through the running master so that every change
//! and its `salt/key` event take effect at once.

use argh::FromArgs;
use halite_cli::keys::{
    self, confirmed, grouped, list_json, no_match, select, source_statuses, verbs,
};
use halite_cli::Client;
use halite_common::config::DEFAULT_CONFIG_DIR;
use halite_common::control::{KeyAction, KeyEntry, KeyStatus, Request, Response};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Manage minion keys on the running Halite master (Salt's salt-key).
#[derive(FromArgs)]
struct Args {
    /// configuration directory of the master (default /etc/halite)
    #[argh(option, short = 'c', default = "PathBuf::from(DEFAULT_CONFIG_DIR)")]
    config_dir: PathBuf,
    /// list all keys
    #[argh(switch, short = 'L')]
    list_all: bool,
    /// list keys of one status: acc, pre (un), rej, den, all
    #[argh(option, short = 'l')]
    list: Option<String>,
    /// accept pending keys matching this glob (commas for several)
    #[argh(option, short = 'a')]
    accept: Option<String>,
    /// accept all pending keys
    #[argh(switch, short = 'A')]
    accept_all: bool,
    /// reject pending keys matching this glob
    #[argh(option, short = 'r')]
    reject: Option<String>,
    /// reject all pending keys
    #[argh(switch, short = 'R')]
    reject_all: bool,
    /// delete keys matching this glob, in any status
    #[argh(option, short = 'd')]
    delete: Option<String>,
    /// delete all keys
    #[argh(switch, short = 'D')]
    delete_all: bool,
    /// print the fingerprints of keys matching this glob
    #[argh(option, short = 'f')]
    finger: Option<String>,
    /// print all fingerprints, the master's first
    #[argh(switch, short = 'F')]
    finger_all: bool,
    /// print the public keys matching this glob
    #[argh(option, short = 'p')]
    print: Option<String>,
    /// print all public keys
    #[argh(switch, short = 'P')]
    print_all: bool,
    /// answer yes to every question
    #[argh(switch, short = 'y')]
    yes: bool,
    /// with -a/-A: also accept rejected keys
    #[argh(switch)]
    include_rejected: bool,
    /// with -a/-A or -r/-R: also take denied keys
    #[argh(switch)]
    include_denied: bool,
    /// with -r/-R: also reject accepted keys
    #[argh(switch)]
    include_accepted: bool,
    /// with -a or -r: take keys from every other status
    #[argh(switch)]
    include_all: bool,
    /// output format: txt (default) or json
    #[argh(option, default = "String::from(\"txt\")")]
    out: String,
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    /// print the versions of Halite, its dependencies and the system, for bug reports, and exit
    #[argh(switch)]
    versions_report: bool,
}

/// How a run ends: output already printed, or an error for stderr, with the exit code.
struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure { code: 64, message: Some(message.into()) }
    }
}

fn main() -> ExitCode {
    halite_cli::restore_sigpipe();
    let args: Args = halite_common::args::from_env();
    if args.version {
        println!("halite-key {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.versions_report {
        print!("{}", halite_common::versions::report());
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            if let Some(message) = message {
                eprintln!("halite-key: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    if args.out != "txt" && args.out != "json" {
        return Err(Failure::usage(format!("unknown --out '{}': use txt or json", args.out)));
    }
    let json = args.out == "json";
    let all = || "*".to_string();
    let actions = [
        (KeyAction::Accept, args.accept.clone().or(args.accept_all.then(all))),
        (KeyAction::Reject, args.reject.clone().or(args.reject_all.then(all))),
        (KeyAction::Delete, args.delete.clone().or(args.delete_all.then(all))),
    ];
    let chosen: Vec<(KeyAction, String)> =
        actions.into_iter().filter_map(|(a, g)| g.map(|g| (a, g))).collect();
    if chosen.len() > 1 {
        return Err(Failure::usage("choose one of -a/-A, -r/-R, -d/-D"));
    }
    let mut client = Client::from_config_dir(&args.config_dir)
        .map_err(|e| Failure { code: 2, message: Some(e.to_string()) })?;
    let keys = list_keys(&mut client)?;

    if let Some((action, glob)) = chosen.into_iter().next() {
        return apply(args, &mut client, &keys, action, &glob);
    }
    if let Some(glob) = args.finger.clone().or(args.finger_all.then(all)) {
        let finger = match client.request(&Request::MasterFinger) {
            Ok(Response::Finger { finger }) => finger,
            other => return Err(unexpected(other)),
        };
        return show_keys(&keys, &glob, json, Some(finger), |k| k.finger.clone());
    }
    if let Some(glob) = args.print.clone().or(args.print_all.then(all)) {
        return show_keys(&keys, &glob, json, None, |k| k.public.trim_end().to_string());
    }
    // `-L` and no option at all both list every status.
    let statuses = match args.list.as_ref().filter(|_| !args.list_all) {
        Some(which) => keys::parse_list_arg(which)
            .ok_or_else(|| Failure::usage(format!("unknown key status '{which}' for -l")))?,
        None => KeyStatus::ALL.to_vec(),
    };
    if json {
        print_json(&list_json(&keys, &statuses));
    } else {
        let refs: Vec<&KeyEntry> = keys.iter().collect();
        print!("{}", grouped(&refs, &statuses, true, |k| k.id.clone()));
    }
    Ok(())
}

fn list_keys(client: &mut Client) -> Result<Vec<KeyEntry>, Failure> {
    match client.request(&Request::KeyList) {
        Ok(Response::Keys { keys }) => Ok(keys),
        other => Err(unexpected(other)),
    }
}

fn unexpected(answer: Result<Response, halite_cli::ClientError>) -> Failure {
    let message = match answer {
        Ok(Response::Error { message }) => message,
        Ok(other) => format!("unexpected answer from the master: {other:?}"),
        Err(e) => e.to_string(),
    };
    Failure { code: 2, message: Some(message) }
}

fn print_json(value: &serde_json::Value) {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(value, &mut ser).expect("json values serialise");
    println!("{}", String::from_utf8_lossy(&out));
}

fn apply(
    args: &Args,
    client: &mut Client,
    keys: &[KeyEntry],
    action: KeyAction,
    glob: &str,
) -> Result<(), Failure> {
    let from = source_statuses(
        action,
        args.include_accepted || args.include_all,
        args.include_rejected || args.include_all,
        args.include_denied || args.include_all,
    );
    let selected = select(keys, glob, &from);
    if selected.is_empty() {
        println!("{}", no_match(glob, &from));
        return Err(Failure { code: 1, message: None });
    }
    let (done, prompt) = verbs(action);
    let going = match action {
        KeyAction::Accept => "accepted",
        KeyAction::Reject => "rejected",
        KeyAction::Delete => "deleted",
    };
    println!("The following keys are going to be {going}:");
    print!("{}", grouped(&selected, &KeyStatus::ALL, false, |k| k.id.clone()));
    if !args.yes {
        print!("{prompt}");
        let _ = io::stdout().flush();
        let mut answer = String::new();
        let read = io::stdin().lock().read_line(&mut answer).ok().filter(|&n| n > 0);
        if !confirmed(read.map(|_| answer.as_str()), action != KeyAction::Delete) {
            return Ok(());
        }
    }
    let request = Request::KeyApply {
        action,
        keys: selected.iter().map(|k| (k.id.clone(), k.status)).collect(),
    };
    match client.request(&request) {
        Ok(Response::Applied { ids }) => {
            for id in ids {
                println!("Key for minion {id} {done}.");
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// `-f`/`-F`/`-p`/`-P`: one line per key, `id:  value`, the master's own key first.
fn show_keys(
    keys: &[KeyEntry],
    glob: &str,
    json: bool,
    local: Option<String>,
    value: impl Fn(&KeyEntry) -> String,
) -> Result<(), Failure> {
    let selected = select(keys, glob, &KeyStatus::ALL);
    if json {
        let mut map = serde_json::Map::new();
        if let Some(finger) = &local {
            map.insert("local".into(), serde_json::json!({ "master.pub": finger }));
        }
        for status in KeyStatus::ALL {
            let entries: serde_json::Map<String, serde_json::Value> = selected
                .iter()
                .filter(|k| k.status == status)
                .map(|k| (k.id.clone(), value(k).into()))
                .collect();
            if !entries.is_empty() {
                map.insert(status.dir().into(), entries.into());
            }
        }
        print_json(&serde_json::Value::Object(map));
        return Ok(());
    }
    if let Some(finger) = local {
        println!("Local Keys:\nmaster.pub:  {finger}");
    }
    print!(
        "{}",
        grouped(&selected, &KeyStatus::ALL, false, |k| format!("{}:  {}", k.id, value(k)))
    );
    Ok(())
}
