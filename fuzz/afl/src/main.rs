//! `halite-afl TARGET`: AFL++'s persistent-mode loop over one `halite_fuzz` harness; with
//! `--replay TARGET FILE...` it runs files once each, outside AFL, to reproduce a crash.

use halite_fuzz::{Harness, Target};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (replay, rest) = match args.first().map(String::as_str) {
        Some("--replay") => (true, &args[1..]),
        _ => (false, &args[..]),
    };
    let Some(target) = rest.first().and_then(|name| Target::from_name(name)) else {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        eprintln!("usage: halite-afl [--replay] TARGET [FILE...]; targets: {}", names.join(" "));
        return ExitCode::from(64);
    };
    let harness = AssertUnwindSafe(Harness::new());
    if replay {
        for file in &rest[1..] {
            let input = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            harness.run(target, &input);
            eprintln!("{file}: ok");
        }
        return ExitCode::SUCCESS;
    }
    afl::fuzz!(|data: &[u8]| {
        harness.run(target, data);
    });
    ExitCode::SUCCESS
}
