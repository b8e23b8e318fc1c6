//! `halite-minion`: reads the config, sets up logging, and runs the minion loop.

use argh::FromArgs;
use halite_common::config::{self, DEFAULT_CONFIG_DIR};
use halite_minion::{Minion, MinionError, EXIT_REJECTED};
use std::path::PathBuf;
use std::process::ExitCode;

/// The Halite minion daemon.
#[derive(FromArgs)]
struct Args {
    /// configuration directory holding `minion` and `minion.d/*.conf` (default /etc/halite)
    #[argh(option, short = 'c', default = "PathBuf::from(DEFAULT_CONFIG_DIR)")]
    config_dir: PathBuf,
    /// log level, overriding `log_level` from the config (quiet … debug, trace)
    #[argh(option, short = 'l')]
    log_level: Option<String>,
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    /// print the versions of Halite, its dependencies and the system, for bug reports, and exit
    #[argh(switch)]
    versions_report: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Call(CallArgs),
}

/// Run a function as this minion, on the master (Salt's salt-call): event.send TAG [DATA] [key=value...]
#[derive(FromArgs)]
#[argh(subcommand, name = "call")]
struct CallArgs {
    /// the function, then its arguments
    #[argh(positional)]
    words: Vec<String>,
}

fn main() -> ExitCode {
    let args: Args = halite_common::args::from_env();
    if args.version {
        println!("halite-minion {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.versions_report {
        print!("{}", halite_common::versions::report());
        return ExitCode::SUCCESS;
    }
    let loaded = match config::load_minion(&args.config_dir) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!(
                "halite-minion: bad configuration in {}:\n{errors}",
                args.config_dir.display()
            );
            return ExitCode::from(78);
        }
    };
    if let Some(Command::Call(call)) = &args.command {
        let Some((fun, rest)) = call.words.split_first() else {
            eprintln!("halite-minion call: name a function, e.g. event.send TAG data='{{...}}'");
            return ExitCode::from(64);
        };
        return match halite_minion::call::call(&loaded.config, fun, rest) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("halite-minion call: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let file = loaded.config.log_file.as_deref().map(|p| (p, loaded.config.log_level_logfile));
    let log_file = match halite_common::logging::start(
        args.log_level.as_deref(),
        loaded.config.log_level,
        file,
        &loaded.warnings,
    ) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("halite-minion: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // Before any thread starts: it takes NOTIFY_SOCKET out of the environment (jobs inherit
    // it otherwise).
    let notifier = halite_common::sdnotify::Notifier::from_env();
    let result = Minion::new(loaded.config)
        .and_then(|m| m.with_notifier(notifier).with_log_file(log_file).run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(MinionError::Rejected(_)) => ExitCode::from(EXIT_REJECTED),
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
