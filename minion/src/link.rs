//! The minion's one connection to its master and where it stands in the handshake.

use halite_common::conn::Conn;
use halite_common::handshake::{MinionHandshake, Session};
use mio::net::TcpStream;
use std::net::SocketAddr;
use std::time::Instant;

/// Where the link to the master stands.
#[derive(Debug)]
pub enum LinkPhase {
    /// TCP connect in flight; WRITABLE says it finished.
    Connecting,
    /// Connected; waiting for the master's clear greeting.
    AwaitGreeting,
    /// Hello sent; waiting for (another) verdict. `rehello` is when to ask again while pending.
    AwaitVerdict { handshake: MinionHandshake, rehello: Option<Instant> },
    /// Authenticated session.
    Live(Session),
}

/// The connection and its small amount of state.
#[derive(Debug)]
pub struct Link {
    pub conn: Conn<TcpStream>,
    pub addr: SocketAddr,
    pub phase: LinkPhase,
    pub since: Instant,
    pub heard: Instant,
    pub pinged: Instant,
    pub ping_seq: u64,
    pub writing: bool,
}

impl Link {
    pub fn new(conn: Conn<TcpStream>, addr: SocketAddr, now: Instant) -> Link {
        Link {
            conn,
            addr,
            phase: LinkPhase::Connecting,
            since: now,
            heard: now,
            pinged: now,
            ping_seq: 0,
            writing: true,
        }
    }
}
