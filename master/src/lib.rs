//! The Halite master: accepts minions over TCP, authenticates them against the key store,
//! serves the CLIs over a Unix control socket, and runs the event bus — all in one `mio` loop.

pub mod allocator;
pub mod auth;
pub mod budget;
pub mod bus;
pub mod client;
pub mod core;
pub mod diskworker;
pub mod fileserver;
pub mod forward;
pub mod grainscache;
pub mod jobcache;
pub mod jobset;
pub mod keystore;
pub mod limits;
pub mod manage;
pub mod offload;
pub mod orchestrate;
pub mod peer;
pub mod render_worker;
pub mod server;
pub mod webhook;

pub use crate::core::StartError;
pub use server::Master;
