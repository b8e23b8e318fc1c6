//! A CLI's connection on the control socket: its stream and the event subscriptions it holds.

use halite_common::conn::Conn;
use halite_common::event::TagFilter;
use mio::net::UnixStream;

/// One control-socket client.
#[derive(Debug)]
pub struct Client {
    pub conn: Conn<UnixStream>,
    /// Whether WRITABLE interest is registered.
    pub writing: bool,
    /// Events this client streams (`state.event`, job watches).
    pub subs: Vec<TagFilter>,
}

impl Client {
    pub fn new(conn: Conn<UnixStream>) -> Client {
        Client { conn, writing: false, subs: Vec::new() }
    }

    pub fn wants(&self, tag: &str) -> bool {
        self.subs.iter().any(|f| f.matches(tag))
    }
}
