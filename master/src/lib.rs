//! The Halite master: accepts minions over TCP, authenticates them against the key store,
//! serves the CLIs over a Unix control socket, and runs the event bus — all in one `mio` loop.

pub mod auth;
pub mod budget;
pub mod bus;
pub mod client;
pub mod control;
pub mod core;
#[cfg(test)]
mod core_tests;
pub mod diskworker;
pub mod fileserver;
pub mod grainscache;
pub mod jobcache;
pub mod jobs;
pub mod keyflow;
pub mod keystore;
pub mod limits;
pub mod offload;
pub mod peer;
pub mod reactor;
pub mod render_worker;
pub mod runners;
pub mod server;

pub use crate::core::StartError;
pub use server::Master;
