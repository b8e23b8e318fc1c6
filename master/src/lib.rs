//! The Halite master: accepts minions over TCP, authenticates them against the key store,
//! serves the CLIs over a Unix control socket, and runs the event bus — all in one `mio` loop.

pub mod auth;
pub mod bus;
pub mod control;
pub mod keystore;
pub mod peer;
pub mod server;

pub use server::{Master, StartError};
