//! Shared pieces of the CLIs: Salt's outputters, argument conversion and key texts; the
//! control socket's client is `halite_common::control_client`, re-exported here.

pub use halite_common::control_client::{Client, ClientError};
/// Salt's CLI argument conversion, shared with `halite-minion call` (in halite-common).
pub use halite_common::saltargs as args;
pub mod batch;
pub mod batch_run;
pub mod highstate;
pub mod keys;
pub mod output;
pub mod progress;
pub mod sink;
pub mod summary;

/// Lets a closed stdout end the CLI quietly, as it does `cat` or Salt's CLIs: `halite … |
/// head -1` must not panic with "failed printing to stdout". Rust starts programs with
/// SIGPIPE ignored; the daemons keep that (a vanished peer is an error to handle there).
pub fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to the default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The user a job is published as (Salt reports the invoking user).
pub use halite_common::config::process_user as current_user;
pub mod pyjson;
pub mod reactor_tools;
