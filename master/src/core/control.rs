//! Serves the CLIs' requests on the control socket: key listing and key moves, each firing
//! Salt's `salt/key` event and reaching connected minions at once.

use super::jobs::{JobRequest, Origin};
use super::{Core, Effect};
use halite_common::control::{event_response, KeyAction, KeyStatus, Request, Response};
use halite_common::event::{object, TagFilter};
use mio::Token;

/// Answers one request frame from client `token`: `None` when the answer comes later (a job
/// once it is recorded, a runner once it ran). Never fails: bad input gets an `Error`.
pub fn handle(master: &mut Core, token: Token, frame: &[u8]) -> Option<Response> {
    match serde_json::from_slice(frame) {
        Ok(Request::Caused { cause, request }) if !matches!(*request, Request::Caused { .. }) => {
            serve(master, token, *request, &cause)
        }
        Ok(request) => serve(master, token, request, &[]),
        Err(e) => Some(Response::Error { message: format!("bad request: {e}") }),
    }
}

/// Answers `request`; `cause` is the causal chain it runs under (empty but for an
/// orchestration's requests): its key moves, jobs and runners carry it.
fn serve(master: &mut Core, token: Token, request: Request, cause: &[String]) -> Option<Response> {
    let response = match request {
        Request::KeyList => match master.store.list() {
            Ok(keys) => Response::Keys { keys },
            Err(e) => Response::Error { message: format!("cannot list keys: {e}") },
        },
        Request::MasterFinger => Response::Finger { finger: master.fingerprint() },
        Request::KeyApply { action, keys } => apply(master, action, &keys, cause),
        Request::Presence => Response::Presence { up: master.live_ids() },
        Request::Publish { tgt, tgt_type, fun, arg, user, watch } => {
            let request = JobRequest { tgt, tgt_type, fun, arg, user };
            match master.publish(request, Origin::Cli(token), watch, cause) {
                Ok(()) => return None, // answered once the job is recorded
                Err(message) => Response::Error { message },
            }
        }
        Request::Subscribe { tagmatch } => {
            let filter = TagFilter::tagmatch(tagmatch.as_deref());
            let Some(client) = master.controls.get_mut(&token) else {
                return Some(Response::Error { message: "gone".into() });
            };
            client.subs.push(filter);
            // Salt fires this when a client attaches to the bus.
            master.bus.fire("salt/event/new_client", Default::default());
            Response::Subscribed
        }
        Request::Runner { fun, arg, user } => {
            master.run_runner(&fun, &arg, &user, cause, Origin::Cli(token));
            return None;
        }
        Request::Caused { .. } => Response::Error { message: "nested caused request".into() },
    };
    Some(response)
}

/// Moves (or deletes) `keys`. `cause` is the causal chain of the wheel reaction that asked
/// (empty for a CLI): the `salt/key` events and what the moves set off (`salt/auth`,
/// disconnects) carry it.
pub(crate) fn apply(
    master: &mut Core,
    action: KeyAction,
    keys: &[(String, KeyStatus)],
    cause: &[String],
) -> Response {
    let mut done = Vec::new();
    for (id, from) in keys {
        let result = match action {
            KeyAction::Accept => master.store.moved(*from, KeyStatus::Accepted, id),
            KeyAction::Reject => master.store.moved(*from, KeyStatus::Rejected, id),
            KeyAction::Delete => master.store.read(*from, id).and_then(|pem| {
                master.store.remove(*from, id)?;
                Ok(pem)
            }),
        };
        let pem = match result {
            Ok(Some(pem)) => pem,
            // Moved or removed meanwhile: not done, not an error.
            Ok(None) => continue,
            Err(e) => return Response::Error { message: format!("key {id}: {e}") },
        };
        let (act, with_pub) = match action {
            KeyAction::Accept => ("accepted", true),
            KeyAction::Reject => ("rejected", true),
            KeyAction::Delete => ("delete", false),
        };
        let mut data =
            object([("result", true.into()), ("act", act.into()), ("id", id.as_str().into())]);
        if with_pub {
            data.insert("pub".into(), pem.trim_end().into());
        }
        master.bus.fire_caused("salt/key", data, cause);
        log::info!("key {id} {act} (was {})", from.dir());
        react_to_key_change(master, action, *from, id, cause);
        done.push(id.clone());
    }
    Response::Applied { ids: done }
}

/// Tells connected minions about their key at once: a pending minion whose key was accepted
/// gets its session now (no polling delay); rejected or deleted keys lose their sessions (the
/// daemon's and the one-shot ones), and so do those of an accepted key just replaced (a denied
/// key accepted over it), and so does a connection between its Accepted verdict and its
/// session (held verdict, AwaitReady).
fn react_to_key_change(
    master: &mut Core,
    action: KeyAction,
    from: KeyStatus,
    id: &str,
    cause: &[String],
) {
    for token in master.pending_connections(id) {
        match action {
            KeyAction::Delete => master.close_peer(token, "key deleted"),
            KeyAction::Accept | KeyAction::Reject => master.reauthenticate(token, cause),
        }
    }
    // Past its Accepted verdict but not live yet: its key must still be the accepted one.
    master.drop_unaccepted(id);
    let key_replaced = action == KeyAction::Accept && from != KeyStatus::Pending;
    if action != KeyAction::Accept || key_replaced {
        for token in master.sessions_of(id) {
            master.close_peer_caused(token, "key no longer accepted", cause);
        }
    }
}

impl Core {
    /// One request from a CLI, answered now or once its key writes are on disk.
    pub(super) fn on_control_frame(&mut self, token: Token, frame: &[u8]) {
        let first = self.store.submitted() + 1;
        // Jobs and runners answer once the job cache has (`None` here); key moves once their
        // files are on disk.
        let Some(response) = handle(self, token, frame) else { return };
        if let Some(response) = self.park_control(token, first, response) {
            self.send_control(token, &response);
        }
    }

    /// Sends one response to a control client.
    pub(crate) fn send_control(&mut self, token: Token, response: &Response) {
        if self.controls.contains_key(&token) {
            let bytes = serde_json::to_vec(response).expect("responses serialise");
            self.fx.push(Effect::Send { conn: token, bytes });
        }
    }

    pub(super) fn close_control(&mut self, token: Token, reason: &str) {
        if let Some(client) = self.controls.remove(&token) {
            self.fx.push(Effect::Close { conn: token, reason: reason.to_string() });
            match client.subs.is_empty() {
                true => log::debug!("control connection closed: {reason}"),
                false => log::info!("event subscriber closed: {reason}"),
            }
        }
    }

    /// Hands drained events to every subscriber that wants them. A subscriber too slow to
    /// keep up overflows its backlog, and the driver drops it: the loop never waits for one.
    pub(super) fn deliver(&mut self, events: &[crate::bus::Logged]) {
        if events.is_empty() || self.controls.values().all(|c| c.subs.is_empty()) {
            return;
        }
        for logged in events.iter() {
            let mut payload: Option<Vec<u8>> = None;
            for (&conn, client) in self.controls.iter() {
                if !client.wants(&logged.event.tag) {
                    continue;
                }
                let bytes = payload.get_or_insert_with(|| event_response(&logged.line));
                self.fx.push(Effect::Send { conn, bytes: bytes.clone() });
            }
        }
    }
}
