//! Command-line parsing shared by every binary: argh, but with Salt's exit status 64 for a
//! usage error (argh itself exits 1, which `halite-key` uses for "no key matched").

use argh::FromArgs;

/// Exit status for a usage error (BSD `EX_USAGE`, as Salt's CLIs).
pub const EXIT_USAGE: i32 = 64;

/// Parses `std::env::args()` into `T`; prints help and exits 0 for `--help`, prints the error
/// and exits 64 for anything malformed.
pub fn from_env<T: FromArgs>() -> T {
    let all: Vec<String> = std::env::args().collect();
    let name = all
        .first()
        .and_then(|p| std::path::Path::new(p).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("halite")
        .to_string();
    let rest: Vec<&str> = all.iter().skip(1).map(String::as_str).collect();
    match T::from_args(&[&name], &rest) {
        Ok(args) => args,
        Err(early) => match early.status {
            Ok(()) => {
                print!("{}", early.output);
                std::process::exit(0);
            }
            Err(()) => {
                eprint!("{}", early.output);
                eprintln!("Run {name} --help for more information.");
                std::process::exit(EXIT_USAGE);
            }
        },
    }
}
