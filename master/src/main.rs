//! `halite-master`: reads the config, sets up logging, and runs the master loop.

use argh::FromArgs;
use halite_common::config::{self, DEFAULT_CONFIG_DIR};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: halite_master::allocator::Allocator = halite_master::allocator::Allocator;

/// The Halite master daemon.
#[derive(FromArgs)]
struct Args {
    /// configuration directory holding `master` and `master.d/*.conf` (default /etc/halite)
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
}

fn main() -> ExitCode {
    halite_master::allocator::tune();
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some(halite_master::render_worker::ARG) {
        return halite_master::render_worker::serve(argv.next());
    }
    let args: Args = halite_common::args::from_env();
    if args.version {
        println!("halite-master {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.versions_report {
        print!("{}", halite_common::versions::report());
        return ExitCode::SUCCESS;
    }
    let loaded = match config::load_master(&args.config_dir) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!(
                "halite-master: bad configuration in {}:\n{errors}",
                args.config_dir.display()
            );
            return ExitCode::from(78);
        }
    };
    let file = loaded.config.log_file.as_deref().map(|p| (p, loaded.config.log_level_logfile));
    let log_file = match halite_common::logging::start(
        args.log_level.as_deref(),
        loaded.config.log_level,
        file,
        &loaded.warnings,
    ) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("halite-master: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // Before bind starts the helper threads: it takes NOTIFY_SOCKET out of the environment.
    let notifier = halite_common::sdnotify::Notifier::from_env();
    let master = match halite_master::Master::bind(loaded.config) {
        Ok(master) => master
            .with_config_dir(args.config_dir.clone())
            .with_notifier(notifier)
            .with_log_file(log_file),
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match master.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("master loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
