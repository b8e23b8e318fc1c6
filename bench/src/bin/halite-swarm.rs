//! `halite-swarm`: thousands of minions in one process, for benchmarks (see `swarm.rs`).

use argh::FromArgs;
use halite_bench::swarm::{self, Options};
use halite_common::crypto::PublicKey;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Open COUNT authenticated minion sessions to a Halite master and answer test.ping and
/// test.echo on each. Reads commands (`events N`, `stats`, `quit`) on stdin.
#[derive(FromArgs)]
struct Args {
    /// the master's minion address, e.g. 127.0.0.1:4506
    #[argh(option)]
    master: SocketAddr,
    /// how many minions
    #[argh(option, default = "100")]
    count: usize,
    /// id prefix (ids are PREFIX00000, PREFIX00001, ...)
    #[argh(option, default = "String::from(\"swarm\")")]
    prefix: String,
    /// where the minions' secret keys are kept between runs
    #[argh(option, default = "PathBuf::from(\"swarm-keys\")")]
    keys: PathBuf,
    /// also accept the keys into this master pki_dir (writes pki_dir/minions/ID)
    #[argh(option)]
    accept_into: Option<PathBuf>,
    /// most handshakes in progress at once
    #[argh(option, default = "256")]
    in_flight: usize,
    /// loops (threads) the members are dealt to; one loop cannot keep up with the master's
    /// handshakes
    #[argh(option, default = "1")]
    threads: usize,
    /// seconds a member whose key is pending waits before it sends its hello again (a real
    /// minion's acceptance_wait_time, Salt's default 10; at least 1)
    #[argh(option, default = "10")]
    acceptance_wait_time: u64,
    /// the master's public key (PEM, its pki_dir/master.pub): each member's shared key is
    /// computed before connecting, not on the handshake's clock
    #[argh(option)]
    master_pub: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = halite_common::args::from_env();
    halite_common::crypto::init();
    let members = match swarm::load_keys(&args.keys, &args.prefix, args.count) {
        Ok(members) => members,
        Err(e) => return fail(&format!("keys in {}: {e}", args.keys.display())),
    };
    if let Some(pki) = &args.accept_into {
        if let Err(e) = swarm::pre_accept(pki, &members) {
            return fail(&format!("accepting keys into {}: {e}", pki.display()));
        }
    }
    let master_pub = match &args.master_pub {
        None => None,
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| PublicKey::from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(key) => Some(key),
            Err(e) => return fail(&format!("master key {}: {e}", path.display())),
        },
    };
    let opts = Options {
        master: args.master,
        threads: args.threads,
        in_flight: args.in_flight.max(1),
        acceptance_wait_time: Duration::from_secs(args.acceptance_wait_time.max(1)),
        master_pub,
    };
    match swarm::run(opts, members) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("halite-swarm: {why}");
    ExitCode::FAILURE
}
