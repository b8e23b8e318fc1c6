//! Replies that wait for key writes. A hello's verdict and a CLI's key answer change the key
//! index at once but go out only when the disk worker reports their own writes done (fsynced),
//! so nobody is told about a key that is not on disk; a failed write reaches them as an error.
//!
//! A key can move (`halite-key -r`, `-d`) while an Accepted verdict waits here or while the
//! minion has yet to send `Ready`: both steps check the store again, and a key move closes
//! such connections at once, so a key that is no longer accepted never gets a session.

use super::Core;
use crate::auth;
use crate::keystore::KeyStore;
use crate::peer::Phase;
use halite_common::control::{KeyStatus, Response};
use halite_common::crypto::PublicKey;
use halite_common::handshake::HelloIn;
use halite_common::proto::AuthStatus;
use mio::Token;

/// Why a connection between its Accepted verdict and its session is closed.
pub(crate) const KEY_GONE: &str = "key no longer accepted";

/// Whether `key` is (still) the accepted key of `id`.
pub(crate) fn accepted_key_is(store: &KeyStore, id: &str, key: &PublicKey) -> bool {
    matches!(store.read(KeyStatus::Accepted, id), Ok(Some(pem)) if auth::same_key(&pem, key))
}

/// A reply held until the disk ops `first..=last` (the action's own) are done.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub token: Token,
    pub first: u64,
    pub last: u64,
    pub reply: Reply,
}

#[derive(Debug)]
pub(crate) enum Reply {
    /// The verdict on a hello.
    Verdict { hello: HelloIn, status: AuthStatus },
    /// A control client's response.
    Control(Response),
}

/// Failed disk ops remembered while some reply may still ask about them.
#[derive(Debug, Default)]
pub(crate) struct KeyWrites {
    pub waiting: Vec<Waiting>,
    /// Highest ticket reported done.
    completed: u64,
    failures: Vec<(u64, String)>,
}

impl KeyWrites {
    /// The last ticket a reply to control client `token` already waits for: later answers to
    /// it wait as long, so they stay in order.
    fn queued_for(&self, token: Token) -> Option<u64> {
        self.waiting.iter().filter(|w| w.token == token).map(|w| w.last).max()
    }
}

impl Core {
    /// Sends `response` to control client `token` now, or parks it until the key writes from
    /// ticket `first` on (those the request made) are done. `Some` = send it now.
    pub(crate) fn park_control(
        &mut self,
        token: Token,
        first: u64,
        response: Response,
    ) -> Option<Response> {
        let mut last = self.store.submitted();
        if let Some(before) = self.key_writes.queued_for(token) {
            last = last.max(before);
        } else if last < first {
            return Some(response);
        }
        self.key_writes.waiting.push(Waiting {
            token,
            first,
            last,
            reply: Reply::Control(response),
        });
        None
    }

    /// Holds the verdict on `hello` until the key writes from ticket `first` on (the ones
    /// the decision made), and `after` (the key move that led to it), are done. A verdict
    /// already held for `token` is replaced, its writes still awaited. `true` = held.
    pub(crate) fn park_verdict(
        &mut self,
        token: Token,
        hello: &HelloIn,
        status: AuthStatus,
        first: u64,
        after: Option<u64>,
    ) -> Result<bool, String> {
        let (mut first, mut last) = (first, self.store.submitted());
        if let Some(after) = after {
            (first, last) = (first.min(after), last.max(after));
        }
        let waiting = &mut self.key_writes.waiting;
        if let Some(old) = waiting.iter().position(|w| w.token == token) {
            let old = waiting.remove(old);
            (first, last) = (first.min(old.first), last.max(old.last));
        }
        let peer = self.peers.get_mut(&token).ok_or("gone")?;
        peer.parked = last >= first && last > self.key_writes.completed;
        if !peer.parked {
            return Ok(false);
        }
        if status == AuthStatus::Pending {
            // Key moves find pending connections by phase: this one is, before its verdict.
            peer.phase = Phase::Pending(hello.clone());
        }
        let reply = Reply::Verdict { hello: hello.clone(), status };
        self.key_writes.waiting.push(Waiting { token, first, last, reply });
        Ok(true)
    }

    /// The disk worker woke the loop (or housekeeping asks, in case it died): note failures
    /// and release every reply whose writes are done, in the order they were parked.
    pub(crate) fn on_disk(&mut self) {
        for done in self.store.finished() {
            if let Some(error) = done.error {
                log::error!("key write failed: {error}");
                self.key_writes.failures.push((done.ticket, error));
            }
            self.key_writes.completed = done.ticket;
        }
        let completed = self.key_writes.completed;
        let (ready, still): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut self.key_writes.waiting)
                .into_iter()
                .partition(|w| w.last <= completed);
        self.key_writes.waiting = still;
        for w in ready {
            let error = self
                .key_writes
                .failures
                .iter()
                .find(|(t, _)| (w.first..=w.last).contains(t))
                .map(|(_, e)| e.clone());
            self.release(w, error);
        }
        let oldest = self.key_writes.waiting.iter().map(|w| w.first).min().unwrap_or(u64::MAX);
        self.key_writes.failures.retain(|(t, _)| *t >= oldest);
    }

    /// Connections of `id` past their Accepted verdict but not yet live: held verdicts and
    /// the AwaitReady step. (Pending ones are found by `pending_connections`.)
    pub(crate) fn accepted_connections(&self, id: &str) -> Vec<Token> {
        let held = self.key_writes.waiting.iter().filter_map(|w| match &w.reply {
            Reply::Verdict { hello, status: AuthStatus::Accepted } if hello.id == id => {
                Some(w.token)
            }
            _ => None,
        });
        let ready = self.peers.iter().filter_map(|(&token, p)| match &p.phase {
            Phase::AwaitReady { id: of, .. } if of == id => Some(token),
            _ => None,
        });
        held.chain(ready).collect()
    }

    /// Closes each connection of `id` between its Accepted verdict and its session whose key
    /// is no longer the accepted one (after a key move).
    pub(crate) fn drop_unaccepted(&mut self, id: &str) {
        for token in self.accepted_connections(id) {
            let key = match self.peers.get(&token).map(|p| &p.phase) {
                Some(Phase::AwaitReady { key, .. }) => key.clone(),
                Some(_) => match self.held_hello(token) {
                    Some(hello) => hello.public.clone(),
                    None => continue,
                },
                None => continue,
            };
            if !accepted_key_is(&self.store, id, &key) {
                self.close_peer(token, &format!("{KEY_GONE}: {id}"));
            }
        }
    }

    fn held_hello(&self, token: Token) -> Option<&HelloIn> {
        self.key_writes.waiting.iter().find_map(|w| match &w.reply {
            Reply::Verdict { hello, .. } if w.token == token => Some(hello),
            _ => None,
        })
    }

    fn release(&mut self, w: Waiting, error: Option<String>) {
        match w.reply {
            Reply::Verdict { hello, status } => {
                let Some(peer) = self.peers.get_mut(&w.token) else {
                    return;
                };
                peer.parked = false;
                let gone = status == AuthStatus::Accepted
                    && !accepted_key_is(&self.store, &hello.id, &hello.public);
                let result = match error {
                    Some(e) => Err(format!("cannot store the key of {}: {e}", hello.id)),
                    None if gone => Err(format!("{KEY_GONE}: {}", hello.id)),
                    None => self.answer_hello(w.token, hello, status),
                };
                if let Err(reason) = result {
                    self.close_peer(w.token, &reason);
                }
            }
            Reply::Control(response) => {
                let response = match error {
                    Some(e) => Response::Error { message: format!("key store write failed: {e}") },
                    None => response,
                };
                self.send_control(w.token, &response);
            }
        }
    }
}
