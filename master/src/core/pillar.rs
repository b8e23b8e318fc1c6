//! Pillar from `pillar_roots`, compiled per minion (Salt's `_pillar`): a minion asks with
//! `PillarRequest` on its session, the `pillar` thread compiles for the session's
//! authenticated id (never one the request names: it names none) and grains, and the answer
//! goes back on that session only. The last compiled pillar of each minion is kept for `I@`
//! targets (only non-empty ones, as JSON text: a master without a pillar top file keeps
//! nothing).
//!
//! Pillar is secret: the log says how many keys and errors, never a value.

use super::Core;
use crate::fileserver::{NoFunctions, RootFiles};
use halite_common::proto::ToMinion;
use halite_states::compile_pillar::compile_pillar;
use halite_states::{testing, Host};
use mio::Token;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The master's pillar state.
#[derive(Default)]
pub(crate) struct Pillars {
    /// Each minion's last compiled pillar (without `_errors`), for `I@` targets: kept as
    /// JSON text, as the grains are, which costs a fraction of the parsed maps at 10,000
    /// minions; parsed only for a target that looks at pillar.
    pub(crate) compiled: HashMap<String, Arc<str>>,
    /// Minions with a compile in flight: one at a time each, so a minion asking in a loop
    /// (or asking, closing and asking again on a new session) costs one compile at a time,
    /// not a queue.
    busy: HashSet<String>,
}

impl Core {
    /// A `PillarRequest` from the live session `token` of minion `id`, whose frames may be
    /// at most `max_frame` bytes (when it says).
    pub(super) fn request_pillar(
        &mut self,
        token: Token,
        id: &str,
        req: u64,
        max_frame: Option<u64>,
    ) -> Result<(), String> {
        if !self.pillar.busy.insert(id.to_string()) {
            self.minion_warn(
                id,
                format_args!("minion {id}: pillar request refused: one is already being compiled"),
            );
            let pillar = errors_only("a pillar refresh is already running for this minion");
            return self.send_session(token, &ToMinion::PillarReply { req, pillar });
        }
        // Parsed on the compile's thread, as every grains text (a minion's may be 1 MiB).
        let grains = self.grains.get(id).cloned();
        let roots = self.cfg.pillar_roots.get("base").cloned().unwrap_or_default();
        // Room for the frame's envelope and encryption around the pillar's JSON, in the
        // smaller of the two ends' frames.
        let frame = max_frame.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let max_bytes = self.cfg.max_frame_bytes.min(frame) / 2;
        let id = id.to_string();
        self.pillar_io.submit(move || {
            let host = Host {
                id: id.clone(),
                grains: grains.as_deref().and_then(crate::grainscache::parse).unwrap_or_default(),
                fs: Arc::new(RootFiles::new("pillar_roots", roots)),
                functions: Arc::new(NoFunctions),
                modules: Arc::new(testing::TABLE),
            };
            let pillar = compile_pillar(&host, max_bytes);
            Box::new(move |core: &mut Core| core.pillar_compiled(token, &id, req, pillar))
        });
        Ok(())
    }

    /// The compile is done: kept for `I@`, sent if the session it was for is still live.
    fn pillar_compiled(&mut self, token: Token, id: &str, req: u64, pillar: Map<String, Value>) {
        self.pillar.busy.remove(id);
        let errors = pillar.get("_errors").and_then(Value::as_array).map_or(0, Vec::len);
        // One line per compile; at debug when there is nothing to say (no pillar top file:
        // a fleet's reconnects need not fill the log).
        let level = if pillar.is_empty() { log::Level::Debug } else { log::Level::Info };
        log::log!(
            level,
            "pillar for minion {id}: {} keys, {errors} errors",
            pillar.len() - errors.min(1)
        );
        let mut kept = pillar.clone();
        kept.shift_remove("_errors");
        match serde_json::to_string(&kept) {
            Ok(text) if !kept.is_empty() => {
                self.pillar.compiled.insert(id.to_string(), Arc::from(text));
            }
            _ => {
                self.pillar.compiled.remove(id);
            }
        }
        // Tokens are never reused: this is the session that asked, if it is still there.
        if self.session_id(token) != Some(id) {
            log::debug!("minion {id}: pillar compiled for a session that is gone; dropped");
            return;
        }
        if let Err(reason) = self.send_session(token, &ToMinion::PillarReply { req, pillar }) {
            self.close_peer(token, &reason);
        }
    }
}

/// A pillar that is only Salt's `_errors` list.
fn errors_only(message: &str) -> Map<String, Value> {
    let mut pillar = Map::new();
    pillar.insert("_errors".into(), Value::Array(vec![Value::String(message.into())]));
    pillar
}
