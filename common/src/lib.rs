//! Halite's shared, socket-free code: wire codec, messages, handshake and crypto, config,
//! minion ids, globs, timestamps and events. Everything here is unit-testable without a network.

pub mod args;
pub mod canonical;
pub mod config;
pub mod conn;
pub mod control;
pub mod control_client;
pub mod crypto;
pub mod encoding;
pub mod event;
pub mod files;
pub mod glob;
pub mod handshake;
pub mod http;
pub mod id;
pub mod logging;
pub mod memcopy;
pub mod proto;
pub mod pyrepr;
pub mod reactor;
pub mod resp;
pub mod saltargs;
pub mod sdnotify;
pub mod target;
pub mod time;
pub mod versions;
pub mod wire;
