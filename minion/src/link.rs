//! The minion's one connection to its master and where it stands in the handshake.

use halite_common::conn::Conn;
use halite_common::handshake::{HandshakeError, MinionHandshake, Session, Verdict};
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
    /// Hello sent; waiting for (another) verdict. `rehello` is when to ask again while pending;
    /// `previous` is the hello before this one, whose answer may cross the new hello.
    AwaitVerdict {
        handshake: MinionHandshake,
        previous: Option<MinionHandshake>,
        rehello: Option<Instant>,
    },
    /// Authenticated session.
    Live(Session),
}

/// The verdict in `frame`: the answer to the latest hello, or to the one before it (a
/// pending minion's next hello can cross the master's answer to its previous one; taking
/// that answer saves a reconnect). Anything else is refused as the latest hello refuses it.
pub fn verdict(
    latest: &MinionHandshake,
    previous: Option<&MinionHandshake>,
    frame: &[u8],
) -> Result<Verdict, HandshakeError> {
    match (latest.on_reply(frame), previous) {
        (Err(HandshakeError::ChallengeMismatch), Some(previous)) => {
            previous.on_reply(frame).map_err(|_| HandshakeError::ChallengeMismatch)
        }
        (result, _) => result,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::crypto::KeyPair;
    use halite_common::handshake::{open_hello, seal_reply, KeyCache};
    use halite_common::proto::AuthStatus;

    #[test]
    fn an_answer_to_the_previous_hello_is_taken_and_an_older_one_is_not() {
        halite_common::crypto::init();
        let (master, minion) = (KeyPair::generate(), KeyPair::generate());
        let mut cache = KeyCache::default();
        let hello = || MinionHandshake::start("m1", &minion, &master.public).unwrap();
        let (_, oldest_hello) = hello();
        let (previous, previous_hello) = hello();
        let (latest, _) = hello();
        let answer = |bytes: &[u8], cache: &mut KeyCache| {
            let hello = open_hello(&master, cache, bytes).unwrap();
            seal_reply(cache, &hello, AuthStatus::Accepted).0
        };
        let crossed = answer(&previous_hello, &mut cache);
        assert!(matches!(verdict(&latest, Some(&previous), &crossed), Ok(Verdict::Accepted(_))));
        // Without the previous hello kept, it is the mismatch it always was.
        let refused = verdict(&latest, None, &crossed).unwrap_err();
        assert_eq!(refused, HandshakeError::ChallengeMismatch);
        // Two hellos back is a replay, not a crossing.
        let stale = answer(&oldest_hello, &mut cache);
        let refused = verdict(&latest, Some(&previous), &stale).unwrap_err();
        assert_eq!(refused, HandshakeError::ChallengeMismatch);
    }
}
