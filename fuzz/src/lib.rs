//! Fuzz harnesses: one function per input a network peer controls, shared by the AFL++ binary
//! (`fuzz/afl`, see FUZZING.md) and the CI smoke test (`tests/smoke.rs`).
//!
//! A harness must never panic on any input: a panic is a crash the fuzzer reports. Beyond
//! "no panic", each one asserts the security property the code exists for (a decoded frame is
//! exactly what was sent, an event log line stays one line, hostile event data never adds a
//! reaction), so a fuzzer finds logic holes, not only crashes.

pub mod mutate;
mod peer;
mod reactor;
mod target;

use halite_common::crypto;
use halite_common::handshake::MinionHandshake;
use std::path::PathBuf;

/// One fuzz target: a kind of input a peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Raw bytes from a socket into `wire::Decoder`.
    Wire,
    /// The master reading a hello: `handshake::parse_hello` (the clear part, first byte even)
    /// or `parse_hello_body` (the box's plaintext, first byte odd).
    Hello,
    /// The minion reading the master's clear greeting: `handshake::parse_greeting`.
    Greeting,
    /// The minion checking the master's reply: `MinionHandshake::parse_reply`; `@@` in the
    /// input stands for the minion's challenge, which a real master echoes.
    Reply,
    /// A session frame's plaintext: `proto::ToMaster` (first byte even) or `ToMinion`.
    Session,
    /// A CLI request on the control socket: `control::Request` and what it leads to.
    Control,
    /// `target::Target::parse` + `matches`: `tgt_type`, id and target, one per line.
    Targeting,
    /// Hostile event data (`tag`, newline, JSON) through fixed reactor SLS files.
    ReactorData,
    /// Hostile SLS text rendered for a fixed event.
    ReactorSls,
    /// Raw bytes from a webhook client into `http::Parser`; the first byte picks the limits
    /// and how the rest is cut into reads.
    Http,
}

impl Target {
    pub const ALL: [Target; 10] = [
        Target::Wire,
        Target::Hello,
        Target::Greeting,
        Target::Reply,
        Target::Session,
        Target::Control,
        Target::Targeting,
        Target::ReactorData,
        Target::ReactorSls,
        Target::Http,
    ];

    /// The name used on the command line and for `fuzz/corpus/<name>/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Wire => "wire",
            Target::Hello => "hello",
            Target::Greeting => "greeting",
            Target::Reply => "reply",
            Target::Session => "session",
            Target::Control => "control",
            Target::Targeting => "target",
            Target::ReactorData => "reactor_data",
            Target::ReactorSls => "reactor_sls",
            Target::Http => "http",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// What the harnesses need set up once: keys, a handshake in flight, reactor SLS files.
pub struct Harness {
    handshake: MinionHandshake,
    challenge: String,
    reactors: reactor::Reactors,
}

impl Harness {
    /// Keys and a temp dir (removed on drop) for the reactor targets.
    pub fn new() -> Harness {
        crypto::init();
        let (handshake, challenge) = peer::handshake_in_flight();
        Harness { handshake, challenge, reactors: reactor::Reactors::new() }
    }

    /// Runs one input through `target`; panics on a crash or a broken property.
    pub fn run(&self, target: Target, data: &[u8]) {
        match target {
            Target::Wire => peer::wire(data),
            Target::Hello => peer::hello(data),
            Target::Greeting => peer::greeting(data),
            Target::Reply => peer::reply(&self.handshake, &self.challenge, data),
            Target::Session => peer::session(data),
            Target::Control => peer::control(data),
            Target::Targeting => target::target(data),
            Target::ReactorData => self.reactors.data(data),
            Target::ReactorSls => self.reactors.sls(data),
            Target::Http => peer::http(data),
        }
    }
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

/// `fuzz/corpus/<target>/`: the checked-in seeds.
pub fn corpus_dir(target: Target) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target.name())
}
