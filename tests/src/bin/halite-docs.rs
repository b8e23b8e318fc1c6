//! `halite-docs [ROOT]`: writes the shell completions and man pages under `ROOT/dist/` (the
//! repository by default) from the binaries built next to this one. `scripts/gen-docs` builds
//! them first and runs it.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    match halite_tests::docs::write(&root) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("halite-docs: {message}");
            ExitCode::FAILURE
        }
    }
}
