//! One minion connection on the master: its framed stream and where it stands in the
//! handshake. Only state lives here; the loop in `server` decides what happens.

use halite_common::conn::Conn;
use halite_common::handshake::{HelloIn, Session};
use mio::net::TcpStream;
use std::net::SocketAddr;
use std::time::Instant;

/// Where a minion connection stands.
#[derive(Debug)]
pub enum Phase {
    /// Greeting sent; waiting for the sealed hello.
    AwaitHello,
    /// Told "pending"; waiting for an admin (or a re-sent hello).
    Pending(HelloIn),
    /// Accepted reply sent; the first session frame must be `Ready`.
    AwaitReady { id: String, session: Session },
    /// Authenticated session.
    Live { id: String, session: Session },
}

/// A minion connection: a few buffers and this small struct, nothing per-minion elsewhere.
#[derive(Debug)]
pub struct Peer {
    pub conn: Conn<TcpStream>,
    pub addr: SocketAddr,
    pub phase: Phase,
    /// When the current phase began (handshake deadlines).
    pub since: Instant,
    /// Last frame received (keepalive).
    pub heard: Instant,
    /// Last keepalive ping sent.
    pub pinged: Instant,
    pub ping_seq: u64,
    /// Whether WRITABLE interest is registered.
    pub writing: bool,
    /// Its verdict waits for a key write (`keyflow`); a frame before it closes the connection.
    pub parked: bool,
}

impl Peer {
    pub fn new(conn: Conn<TcpStream>, addr: SocketAddr, now: Instant) -> Peer {
        Peer {
            conn,
            addr,
            phase: Phase::AwaitHello,
            since: now,
            heard: now,
            pinged: now,
            ping_seq: 0,
            writing: false,
            parked: false,
        }
    }

    /// The minion id, once the hello was read.
    pub fn id(&self) -> Option<&str> {
        match &self.phase {
            Phase::AwaitHello => None,
            Phase::Pending(hello) => Some(&hello.id),
            Phase::AwaitReady { id, .. } | Phase::Live { id, .. } => Some(id),
        }
    }

    /// `id@addr` for log lines.
    pub fn label(&self) -> String {
        match self.id() {
            Some(id) => format!("{id}@{}", self.addr),
            None => self.addr.to_string(),
        }
    }
}
