//! One minion connection as the core sees it: where it stands in the handshake, and its
//! timestamps. Only state lives here; `core` decides what happens (the socket is the driver's).

use halite_common::crypto::PublicKey;
use halite_common::handshake::{HelloIn, Session};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a minion connection stands.
#[derive(Debug)]
pub enum Phase {
    /// Greeting sent; waiting for the sealed hello.
    AwaitHello,
    /// Told "pending"; waiting for an admin (or a re-sent hello).
    Pending(HelloIn),
    /// Accepted reply sent; the first session frame must be `Ready`. `key` is the one the
    /// hello presented: it must still be the accepted key when `Ready` comes.
    AwaitReady { id: String, session: Session, key: PublicKey },
    /// Authenticated session.
    Live { id: String, session: Session },
}

/// A minion connection: this small struct (and the driver's buffers), nothing per-minion
/// elsewhere.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub phase: Phase,
    /// When the current phase began (handshake deadlines).
    pub since: Instant,
    /// Last frame received (keepalive).
    pub heard: Instant,
    /// Last keepalive ping sent.
    pub pinged: Instant,
    pub ping_seq: u64,
    /// Its verdict waits for a key write (`keyflow`); a frame before it closes the connection.
    pub parked: bool,
    /// Jids of its returns that are stored but not acknowledged yet: the acks go out with
    /// the next frame to this minion, or at the next tick (see `Core::ack_return`).
    pub acks: Vec<String>,
}

impl Peer {
    pub fn new(addr: SocketAddr, now: Instant) -> Peer {
        Peer {
            addr,
            phase: Phase::AwaitHello,
            since: now,
            heard: now,
            pinged: now,
            ping_seq: 0,
            parked: false,
            acks: Vec::new(),
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

/// What keepalive does with a live peer on a housekeeping tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    Nothing,
    Ping,
    Drop,
}

/// The keepalive step for a live peer last heard from at `heard` and last pinged at `pinged`:
/// a ping every `interval`; dropped once silent for three intervals, but only after a ping sent
/// since it was last heard from has gone unanswered for a whole interval. Without that last
/// condition a loop that stalled past three intervals (a slow fsync of a key file, a starved
/// process) dropped a peer it had never asked, and a fresh session could be closed before
/// the first ping was sent.
pub fn keepalive(heard: Instant, pinged: Instant, now: Instant, interval: Duration) -> Keepalive {
    let unanswered = pinged > heard && now.duration_since(pinged) >= interval;
    if now.duration_since(heard) > interval * 3 && unanswered {
        Keepalive::Drop
    } else if now.duration_since(pinged) >= interval {
        Keepalive::Ping
    } else {
        Keepalive::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop that stalled (a slow fsync, a starved process) past three intervals after a
    /// peer's last frame must ping it first, not drop a peer it never asked.
    #[test]
    fn a_peer_is_pinged_before_it_is_dropped() {
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let interval = s(1);
        // Accepted at t0, `Ready` read at t0 + 0.2 s, then the loop stalls for 4 s.
        let heard = t0 + Duration::from_millis(200);
        assert_eq!(keepalive(heard, t0, t0 + s(4), interval), Keepalive::Ping);
        // Pinged at t0 + 4 s: half an interval later it still has time to answer.
        let pinged = t0 + s(4);
        assert_eq!(keepalive(heard, pinged, pinged + interval / 2, interval), Keepalive::Nothing);
        assert_eq!(keepalive(heard, pinged, pinged + interval, interval), Keepalive::Drop);
        // The ordinary case: pinged every interval, dropped once 3 intervals pass unanswered.
        assert_eq!(keepalive(t0, t0, t0 + s(1), interval), Keepalive::Ping);
        assert_eq!(keepalive(t0, t0 + s(1), t0 + s(2), interval), Keepalive::Ping);
        assert_eq!(
            keepalive(t0, t0 + s(3), t0 + s(3) + interval / 2, interval),
            Keepalive::Nothing
        );
        assert_eq!(keepalive(t0, t0 + s(3), t0 + s(4), interval), Keepalive::Drop);
        // A peer that answered is kept.
        let answered = t0 + s(3) + interval / 4;
        assert_eq!(keepalive(answered, t0 + s(3), t0 + s(4), interval), Keepalive::Ping);
        assert_eq!(
            keepalive(answered, t0 + s(4), t0 + s(4) + interval / 2, interval),
            Keepalive::Nothing
        );
    }
}
