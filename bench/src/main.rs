//! `halite-bench`: runs the whole-process benchmarks and prints (and, in a full run, writes
//! into BENCHMARKS.md) the table. `scripts/bench` builds the binaries and calls it.

use argh::FromArgs;
use halite_bench::report;
use halite_bench::scenarios::Bench;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run Halite's whole-process benchmarks on loopback.
#[derive(FromArgs)]
struct Args {
    /// directory with halite-master, halite-minion and halite (the binaries measured)
    #[argh(option)]
    bins: PathBuf,
    /// directory with halite-swarm
    #[argh(option)]
    tools: PathBuf,
    /// a small, fast run (100 swarm minions, 5 real ones onboarded, few repetitions): checks,
    /// not numbers
    #[argh(switch)]
    quick: bool,
    /// run only this measurement: cli-ping, swarm-ping, events, forward, failover,
    /// bootstrap, onboarding, orchestrate, webhook, beacons, sizes
    #[argh(option)]
    only: Option<String>,
    /// directory of the static binaries whose sizes are reported (sizes are skipped without it)
    #[argh(option)]
    static_bins: Option<PathBuf>,
    /// write the table into this file between its `<!-- bench:begin -->` and
    /// `<!-- bench:end -->` markers
    #[argh(option)]
    write: Option<PathBuf>,
    /// divan output of the micro-benchmarks, to put between `<!-- micro:begin -->` and
    /// `<!-- micro:end -->` of the --write file
    #[argh(option)]
    micro: Option<PathBuf>,
}

const ALL: [&str; 11] = [
    "cli-ping",
    "swarm-ping",
    "events",
    "forward",
    "failover",
    "bootstrap",
    "onboarding",
    "orchestrate",
    "webhook",
    "beacons",
    "sizes",
];

fn main() -> ExitCode {
    // Dropped on return and on a panic's unwinding alike.
    let _trash = halite_bench::procs::Trash::hold();
    run()
}

fn run() -> ExitCode {
    let args: Args = halite_common::args::from_env();
    halite_common::crypto::init();
    if let Some(only) = args.only.as_deref().filter(|o| !ALL.contains(o)) {
        eprintln!("halite-bench: unknown measurement {only:?} (one of {})", ALL.join(", "));
        return ExitCode::from(64);
    }
    let mut bench = match Bench::new(args.bins.clone(), args.tools.clone(), args.quick) {
        Ok(bench) => bench,
        Err(e) => return fail(&e),
    };
    for name in ALL {
        if args.only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let done = match name {
            "cli-ping" => bench.cli_ping(),
            "swarm-ping" => bench.swarm_ping(),
            "events" => bench.events(),
            "forward" => bench.forward(),
            "failover" => bench.failover(),
            "bootstrap" => bench.bootstrap(),
            "onboarding" => bench.onboarding(),
            "orchestrate" => bench.orchestrate(),
            "webhook" => bench.webhook(),
            "beacons" => bench.beacons(),
            _ => match &args.static_bins {
                Some(dir) => bench.sizes(dir),
                None => Ok(()),
            },
        };
        if let Err(e) = done {
            return fail(&format!("{name}: {e}"));
        }
    }
    let table = report::table(&bench.rows, args.quick);
    print!("{table}");
    if let Some(path) = &args.write {
        let micro = args.micro.as_ref().map(std::fs::read_to_string).transpose();
        let written = micro
            .map_err(|e| e.to_string())
            .and_then(|micro| report::write(path, &table, micro.as_deref()));
        if let Err(e) = written {
            return fail(&format!("{}: {e}", path.display()));
        }
    }
    if !bench.failures.is_empty() {
        for failure in &bench.failures {
            eprintln!("halite-bench: FAILED: {failure}");
        }
        return ExitCode::FAILURE;
    }
    eprintln!("halite-bench: zero missing returns, no minion lost");
    ExitCode::SUCCESS
}

fn fail(why: &str) -> ExitCode {
    eprintln!("halite-bench: {why}");
    ExitCode::FAILURE
}
