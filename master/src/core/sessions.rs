//! Minion connections in the core: admission and greeting, the handshake and its verdict,
//! the session messages, closing, and the per-tick deadlines and keepalive.

use super::keyflow::{accepted_key_is, KEY_GONE};
use super::{
    json_len, over_max, oversized, Core, Effect, HANDSHAKE_TIMEOUT, MAX_ONE_SHOT_SESSIONS,
    MAX_READY_FRAME, MIN_REHELLO, PENDING_IDLE,
};
use crate::auth;
use crate::bus::MinionEvent;
use crate::limits::{source_of, Refusal};
use crate::peer::{keepalive, Keepalive, Peer, Phase};
use halite_common::event::{
    beacon_event_data, minion_tag_refusal, nesting_problem, object, object_nesting_problem,
    wrap_minion_event,
};
use halite_common::handshake::{self, decode_message, HelloIn};
use halite_common::proto::{AuthStatus, BeaconEvent, FileReply, RawEvent, ToMaster, ToMinion};
use mio::Token;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// File server requests a minion may have waiting for the job thread; past them another is
/// answered at once with an error (a minion asks one file at a time per job).
pub(super) const MAX_FILE_REQUESTS: usize = 64;
/// Characters of a close reason kept for the log and the disconnect event.
const MAX_REASON_CHARS: usize = 300;

impl Core {
    /// A new minion connection: admitted (greeted) or refused (closed unread: a flood costs
    /// one accept and one close each).
    pub(super) fn on_connected(&mut self, conn: Token, addr: SocketAddr) {
        let mut admitted = self.admission.admit(addr.ip(), self.network_conns());
        if let (Err(Refusal::Total { max }), Some(oldest)) = (&admitted, self.evictable()) {
            // Full of connections that have not authenticated: the oldest of the address
            // holding the most makes room. Refusing the newcomer let connections held open
            // (a pending hello repeated just under PENDING_IDLE, from a few dozen addresses)
            // keep every reconnecting minion out; an attacker that reconnects evicts its own.
            let reason = format!(
                "evicted: {max} connections await authentication (max_pending_connections), \
                 and this is the oldest from the address with the most"
            );
            self.close_peer(oldest, &reason);
            admitted = self.admission.admit(addr.ip(), self.network_conns());
        }
        if let Err(why) = admitted {
            let reason = format!("refused connection from {addr}: {why}");
            if self.quiet.allow(self.now) {
                log::warn!("{reason}");
            }
            self.refuse_at_accept(conn, reason);
            return;
        }
        log::debug!("connection from {addr}");
        self.peers.insert(conn, Peer::new(addr, self.now));
        self.unauthenticated.insert(conn);
        let bytes = handshake::greeting(&self.keys.public);
        self.fx.push(Effect::Send { conn, bytes });
    }

    /// The unauthenticated connection to close for a newcomer: the oldest from the source
    /// with the most of them.
    fn evictable(&self) -> Option<Token> {
        let crowded = self.admission.crowded()?;
        self.unauthenticated
            .iter()
            .copied()
            .find(|token| self.peers.get(token).is_some_and(|p| source_of(p.addr.ip()) == crowded))
    }

    /// Handles one frame from a minion; `Err` closes the connection with that reason.
    pub(super) fn on_peer_frame(&mut self, token: Token, frame: &[u8]) -> Result<(), String> {
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        // A verdict held for a key write: nothing may come before it, but a pending minion's
        // next hello (its acceptance_wait_time came round) takes the held verdict's place.
        if peer.parked && !matches!(peer.phase, Phase::Pending(_)) {
            return Err("sent a frame before its verdict".into());
        }
        match &mut peer.phase {
            Phase::AwaitHello => {
                let hello = handshake::open_hello(&self.keys, &mut self.shared_keys, frame)
                    .map_err(|e| format!("refused hello: {e}"))?;
                self.authenticate(token, hello)
            }
            Phase::Pending(pending) => {
                // A pending minion asks again every acceptance_wait_time (at least 1 s), for
                // the same id. Anything else is a flood of key files and auth events.
                if self.now.saturating_duration_since(peer.since) < MIN_REHELLO {
                    return Err("hellos too fast while pending".into());
                }
                let id = pending.id.clone();
                let hello = handshake::open_hello(&self.keys, &mut self.shared_keys, frame)
                    .map_err(|e| format!("refused hello: {e}"))?;
                if hello.id != id {
                    return Err(format!("pending as '{id}', asked again as '{}'", hello.id));
                }
                self.authenticate(token, hello)
            }
            Phase::AwaitReady { id, session, key } => {
                // A pending minion's next hello that crossed our Accepted answer (hellos are
                // JSON, session frames are not): skipped before it costs the session a nonce.
                // The minion goes on with the answer it gets; the handshake deadline still
                // holds.
                if handshake::parse_hello(frame).is_ok() {
                    log::debug!("minion {id}: a hello crossed its accepted answer; skipped");
                    return Ok(());
                }
                let msg: ToMaster =
                    session.open(frame).map_err(|e| format!("bad session frame: {e}"))?;
                let ToMaster::Ready { grains, transient } = msg else {
                    return Err("first session message was not Ready".into());
                };
                let id = id.clone();
                if !accepted_key_is(&self.store, &id, key) {
                    return Err(format!("{KEY_GONE}: {id}"));
                }
                let one_shots = self.one_shot.get(&id).map_or(0, Vec::len);
                if transient && one_shots >= MAX_ONE_SHOT_SESSIONS {
                    return Err(format!(
                        "minion {id} already has {MAX_ONE_SHOT_SESSIONS} one-shot sessions open"
                    ));
                }
                let Phase::AwaitReady { session, .. } =
                    std::mem::replace(&mut peer.phase, Phase::AwaitHello)
                else {
                    unreachable!()
                };
                peer.phase = Phase::Live { id: id.clone(), session };
                peer.since = self.now;
                self.admission.release(peer.addr.ip());
                self.unauthenticated.remove(&token);
                self.fx.push(Effect::MaxFrame { conn: token, max: self.cfg.max_frame_bytes });
                if transient {
                    log::info!("minion {} opened a one-shot session", peer.label());
                    self.one_shot.entry(id).or_default().push(token);
                    return Ok(());
                }
                log::info!("minion {} authenticated", peer.label());
                let mut grains = grains;
                grains.insert("id".into(), id.clone().into());
                self.remember_grains(&id, grains);
                if let Some(old) = self.live.insert(id.clone(), token) {
                    if old != token {
                        self.close_peer(old, "replaced by a new session of the same minion");
                    }
                }
                Ok(())
            }
            Phase::Live { id, session, .. } => {
                let plain =
                    session.open_plain(frame).map_err(|e| format!("bad session frame: {e}"))?;
                let id = id.clone();
                // The hot path: an event with canonical data is logged from its text.
                if let Some(event) = RawEvent::parse(&plain) {
                    let RawEvent { tag, data, ts, ack, jid, .. } = event;
                    let event = EventIn { tag, payload: Payload::Canonical(data.get()), ts, ack };
                    return self.on_event(token, &id, event, jid);
                }
                let msg: ToMaster =
                    decode_message(&plain).map_err(|e| format!("bad session frame: {e}"))?;
                self.on_session_message(token, &id, msg, frame.len())
            }
        }
    }

    pub(super) fn on_session_message(
        &mut self,
        token: Token,
        id: &str,
        msg: ToMaster,
        frame_bytes: usize,
    ) -> Result<(), String> {
        match msg {
            ToMaster::Ping { seq } => self.send_session(token, &ToMinion::Pong { seq }),
            ToMaster::Pong { .. } => Ok(()),
            ToMaster::Ready { .. } => Err("Ready sent twice".into()),
            ToMaster::FileRequest { req, op } => {
                // Counted per minion, not per connection: a session closed with requests
                // queued leaves them on the job thread until they are answered.
                let in_flight = self.files_in_flight.entry(id.to_string()).or_default();
                if *in_flight >= MAX_FILE_REQUESTS {
                    let message = format!("too many file requests in flight ({MAX_FILE_REQUESTS})");
                    self.minion_warn(
                        id,
                        format_args!("minion {id}: file request refused: {message}"),
                    );
                    let reply = FileReply::Error { message };
                    return self.send_session(token, &ToMinion::FileReply { req, reply });
                }
                *in_flight += 1;
                let id = id.to_string();
                // Read or hashed on the disk job thread; the reply goes to this connection
                // (if it is still there: tokens are never reused).
                let files = Arc::clone(&self.files);
                self.io.submit(move || {
                    let reply = files.lock().unwrap_or_else(|p| p.into_inner()).answer(&op);
                    Box::new(move |core: &mut Core| {
                        if let Some(n) = core.files_in_flight.get_mut(&id) {
                            *n -= 1;
                            if *n == 0 {
                                core.files_in_flight.remove(&id);
                            }
                        }
                        if let Err(reason) =
                            core.send_session(token, &ToMinion::FileReply { req, reply })
                        {
                            core.close_peer(token, &reason);
                        }
                    })
                });
                Ok(())
            }
            ToMaster::PillarRequest { req, max_frame } => {
                self.request_pillar(token, id, req, max_frame)
            }
            ToMaster::Return(ret) => {
                self.on_return(token, id, ret, frame_bytes);
                Ok(())
            }
            ToMaster::Beacons { events } => {
                let source = self.peers.get(&token).map(|p| source_of(p.addr.ip()));
                for BeaconEvent { tag, data } in events {
                    let max = self.cfg.max_event_bytes;
                    let fired = beacon_event_data(id, &tag, data)
                        .and_then(|data| oversized(&data, max).map_or(Ok(data), Err))
                        .and_then(|data| object_nesting_problem(&data).map_or(Ok(data), Err));
                    match fired {
                        Ok(data) => {
                            log::trace!("beacon event from minion {id}: {tag}");
                            self.bus.fire_from(tag, data, source, &[]);
                        }
                        Err(reason) => {
                            self.minion_warn(
                                id,
                                format_args!("refused event from minion {id}: {reason}"),
                            );
                            self.send_session(token, &ToMinion::EventRefused { tag, reason })?;
                        }
                    }
                }
                Ok(())
            }
            ToMaster::Event { tag, data, ts, ack, jid } => {
                let event = EventIn { tag, payload: Payload::Value(data), ts, ack };
                self.on_event(token, id, event, jid)
            }
        }
    }

    /// A minion's event: refused (its tag is reserved, or its data too big), or wrapped as
    /// Salt's `_minion_event` under the authenticated id and fired.
    fn on_event(
        &mut self,
        token: Token,
        id: &str,
        event: EventIn<'_>,
        jid: Option<String>,
    ) -> Result<(), String> {
        let EventIn { tag, payload, ts, ack } = event;
        let refusal = minion_tag_refusal(&tag, id).or_else(|| match &payload {
            Payload::Value(data) => {
                over_max(json_len(data), self.cfg.max_event_bytes).or_else(|| nesting_problem(data))
            }
            // Canonical text nests 64 levels at most.
            Payload::Canonical(text) => over_max(text.len(), self.cfg.max_event_bytes),
        });
        if let Some(reason) = refusal {
            self.minion_warn(id, format_args!("refused event from minion {id}: {reason}"));
            // Only for a job this minion was sent: a made-up jid must not crowd out
            // real refusals.
            let sent = jid.as_ref().and_then(|j| self.recent_jobs.get(j));
            if let Some(jid) = jid.filter(|_| sent.is_some_and(|j| j.minions.contains(id))) {
                if self.refused_events.len() >= 10_000 {
                    self.refused_events.clear(); // returns that never came
                }
                self.refused_events.insert((jid, id.to_string()), reason.clone());
            }
            return self.send_session(token, &ToMinion::EventRefused { tag, reason });
        }
        // Fired by a reaction's job: the event continues that job's causal chain.
        // Only a job it was sent: another minion's reaction job is not its to continue.
        let job = jid.as_ref().and_then(|j| self.recent_jobs.get(j));
        let cause = job.filter(|j| j.minions.contains(id)).map_or(&[][..], |j| &j.cause);
        // The reactor budgets a minion's events per source address, as it does hellos:
        // one busy (or hostile) host does not use up the budget of the fleet's start
        // events.
        let source = self.peers.get(&token).map(|p| source_of(p.addr.ip()));
        match payload {
            Payload::Value(data) => {
                let data = wrap_minion_event(id, &tag, data, ts);
                self.bus.fire_from(tag.clone(), data, source, cause);
            }
            Payload::Canonical(data) => {
                let event = MinionEvent { tag: &tag, id, data, ts };
                self.bus.fire_minion(event, source, cause);
            }
        }
        match ack {
            true => self.send_session(token, &ToMinion::EventAck { tag }),
            false => Ok(()),
        }
    }

    /// Runs the `_auth` decision for a hello on `token` and answers it.
    pub(crate) fn authenticate(&mut self, token: Token, hello: HelloIn) -> Result<(), String> {
        self.authenticate_after(token, hello, None, &[])
    }

    /// `authenticate`, with the verdict also waiting for the key write `after` (a key move
    /// that made it change); the `salt/auth` event carries that move's `cause`.
    pub(super) fn authenticate_after(
        &mut self,
        token: Token,
        hello: HelloIn,
        after: Option<u64>,
        cause: &[String],
    ) -> Result<(), String> {
        let (is_live, now) = (self.live.contains_key(&hello.id), self.now);
        let ip = self.peers.get(&token).ok_or("gone")?.addr.ip();
        let first = self.store.submitted() + 1;
        let rate = &mut self.pending_rate;
        let outcome = auth::decide(
            &mut self.store,
            &self.policy,
            &hello.id,
            &hello.public,
            self.live.len(),
            is_live,
            || rate.allow(ip, now),
        )
        .map_err(|e| format!("key store error for {}: {e}", hello.id))?;
        // Budgets count per source as the connection limits do (an IPv6 /64 is one).
        let source = self.peers.get(&token).map(|p| crate::limits::source_of(p.addr.ip()));
        self.bus.fire_from("salt/auth", outcome.event, source, cause);
        if self.park_verdict(token, &hello, outcome.status, first, after)? {
            return Ok(());
        }
        self.answer_hello(token, hello, outcome.status)
    }

    /// Sends the verdict on a hello and moves the connection on (or closes it).
    pub(crate) fn answer_hello(
        &mut self,
        token: Token,
        hello: HelloIn,
        status: AuthStatus,
    ) -> Result<(), String> {
        let (reply, session) = handshake::seal_reply(&mut self.shared_keys, &hello, status);
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        // A refusal is sent too: the driver writes what it can before it closes.
        self.fx.push(Effect::Send { conn: token, bytes: reply });
        let id = hello.id.clone();
        match (status, session) {
            (AuthStatus::Accepted, Some(session)) => {
                peer.phase = Phase::AwaitReady { id, session, key: hello.public };
                peer.since = self.now;
                // Ready carries the grains; only a holder of the accepted key can seal it.
                let max = MAX_READY_FRAME.min(self.cfg.max_frame_bytes);
                self.fx.push(Effect::MaxFrame { conn: token, max });
                Ok(())
            }
            (AuthStatus::Pending, _) => {
                peer.since = self.now;
                peer.phase = Phase::Pending(hello);
                log::info!("minion {} is pending acceptance", peer.label());
                Ok(())
            }
            (status, _) => Err(format!("key {status:?}").to_lowercase()),
        }
    }

    /// Logs a warning that a minion's request caused (a refused event, file or pillar
    /// request, a return for a job it was not sent) within the per-second budget that
    /// unauthenticated peers have too: a hostile minion's flood costs the log a few lines a
    /// second and one count, not a line per request.
    pub(crate) fn minion_warn(&mut self, id: &str, line: std::fmt::Arguments<'_>) {
        if self.minion_quiet.allow_from(id, self.now) {
            log::warn!("{line}");
        }
    }

    /// Sends a session message to a live (or just-accepted) minion.
    pub(crate) fn send_session(&mut self, token: Token, msg: &ToMinion) -> Result<(), String> {
        self.send_with_acks(token, Some(&handshake::encode_message(msg)))
    }

    /// Seals `msg` for a minion's session after the return acks still owed to that minion
    /// (they share the turn's one write); `msg` is serialised already
    /// ([`handshake::encode_message`]); `None` sends only the acks.
    pub(crate) fn send_with_acks(
        &mut self,
        token: Token,
        msg: Option<&[u8]>,
    ) -> Result<(), String> {
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        let session = match &mut peer.phase {
            Phase::Live { session, .. } | Phase::AwaitReady { session, .. } => session,
            _ => return Err("no session".into()),
        };
        for jid in peer.acks.drain(..) {
            let bytes = session.seal(&ToMinion::ReturnAck { jid }).map_err(|e| e.to_string())?;
            self.fx.push(Effect::Send { conn: token, bytes });
        }
        if let Some(msg) = msg {
            let bytes = session.seal_encoded(msg).map_err(|e| e.to_string())?;
            self.fx.push(Effect::Send { conn: token, bytes });
        }
        Ok(())
    }

    pub(crate) fn close_peer(&mut self, token: Token, reason: &str) {
        self.close_peer_caused(token, reason, &[]);
    }

    /// [`Core::close_peer`] for a close a reaction led to: the disconnect event carries
    /// `cause`, its causal chain.
    pub(crate) fn close_peer_caused(&mut self, token: Token, reason: &str, cause: &[String]) {
        let Some(peer) = self.peers.remove(&token) else {
            return;
        };
        // A reason may quote the peer (serde's "unknown variant `…`"): one line, escaped.
        let reason = halite_common::logging::printable(reason, MAX_REASON_CHARS);
        let reason = reason.as_str();
        self.fx.push(Effect::Close { conn: token, reason: reason.to_string() });
        if !matches!(peer.phase, Phase::Live { .. }) {
            self.admission.release(peer.addr.ip());
            self.unauthenticated.remove(&token);
        }
        let was_live = peer.id().is_some_and(|id| self.live.get(id) == Some(&token));
        match (&peer.phase, was_live) {
            (Phase::Live { id, .. }, true) => {
                self.live.remove(id);
                log::info!("minion {} disconnected: {reason}", peer.label());
                // Not a Salt tag: lets a reactor act on a lost minion without waiting for the
                // next presence pass. Minions cannot fire it (see `minion_tag_refusal`).
                let data = object([("id", id.as_str().into()), ("reason", reason.into())]);
                self.bus.fire_caused(format!("salt/minion/{id}/disconnected"), data, cause);
            }
            (Phase::Live { id, .. }, false) => {
                if let Some(tokens) = self.one_shot.get_mut(id) {
                    tokens.retain(|&t| t != token);
                    if tokens.is_empty() {
                        self.one_shot.remove(id);
                    }
                }
                log::debug!("session {} closed: {reason}", peer.label())
            }
            _ if self.quiet.allow(self.now) => {
                log::warn!("closed connection {}: {reason}", peer.label())
            }
            _ => {}
        }
    }

    /// Every `loop_interval`: prune the job cache, and fire Salt's presence events.
    /// Handshake deadlines, silent pending connections, and keepalive.
    pub(super) fn peer_deadlines(&mut self, now: Instant) {
        let interval = self.cfg.keepalive_interval;
        let mut close = Vec::new();
        let mut ping = Vec::new();
        for (&token, peer) in &self.peers {
            match &peer.phase {
                Phase::AwaitHello | Phase::AwaitReady { .. } => {
                    if now.duration_since(peer.since) > HANDSHAKE_TIMEOUT {
                        close.push((token, "handshake timed out"));
                    }
                }
                Phase::Pending(_) => {
                    if now.duration_since(peer.heard) > PENDING_IDLE {
                        close.push((token, "pending minion went silent"));
                    }
                }
                Phase::Live { .. } => match keepalive(peer.heard, peer.pinged, now, interval) {
                    Keepalive::Drop => close.push((token, "keepalive timeout")),
                    Keepalive::Ping => ping.push(token),
                    Keepalive::Nothing => {}
                },
            }
        }
        for (token, reason) in close {
            self.close_peer(token, reason);
        }
        for token in ping {
            let Some(peer) = self.peers.get_mut(&token) else {
                continue;
            };
            peer.pinged = now;
            peer.ping_seq += 1;
            let seq = peer.ping_seq;
            if let Err(reason) = self.send_session(token, &ToMinion::Ping { seq }) {
                self.close_peer(token, &reason);
            }
        }
    }

    /// Ids of the minions with a live session, sorted.
    pub(crate) fn live_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.live.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every pending connection claiming `id`. All of them are answered when the key moves:
    /// a replayed hello (minion public keys are not secret) must not shadow the real minion.
    /// A scan, because key moves are rare and a map would be one more thing to keep in step.
    pub(crate) fn pending_connections(&self, id: &str) -> Vec<Token> {
        self.peers
            .iter()
            .filter(|(_, p)| matches!(&p.phase, Phase::Pending(hello) if hello.id == id))
            .map(|(&t, _)| t)
            .collect()
    }

    /// The authenticated id of connection `token`, when it is a live session (the daemon's or
    /// a one-shot one).
    pub(crate) fn session_id(&self, token: Token) -> Option<&str> {
        match self.peers.get(&token).map(|p| &p.phase) {
            Some(Phase::Live { id, .. }) => Some(id),
            _ => None,
        }
    }

    /// The tokens of `id`'s sessions: its daemon's, and its one-shot ones.
    pub(crate) fn sessions_of(&self, id: &str) -> Vec<Token> {
        let one_shot = self.one_shot.get(id).into_iter().flatten();
        self.live.get(id).into_iter().chain(one_shot).copied().collect()
    }

    /// Re-runs the decision for a pending connection (after its key moved) and answers it;
    /// `cause` is the key move's causal chain.
    pub(crate) fn reauthenticate(&mut self, token: Token, cause: &[String]) {
        let hello = match self.peers.get(&token).map(|p| &p.phase) {
            Some(Phase::Pending(hello)) => hello.clone(),
            _ => return,
        };
        let after = Some(self.store.submitted());
        if let Err(reason) = self.authenticate_after(token, hello, after, cause) {
            self.close_peer(token, &reason);
        }
    }
}

/// A minion's event as read from its session.
struct EventIn<'a> {
    tag: String,
    payload: Payload<'a>,
    ts: u64,
    ack: bool,
}

/// An event's data: parsed, or canonical JSON text (see `halite_common::canonical`) kept as
/// it came.
enum Payload<'a> {
    Value(serde_json::Value),
    Canonical(&'a str),
}
