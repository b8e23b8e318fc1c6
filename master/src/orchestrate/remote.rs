//! An orchestration's side of the control socket: what its steps ask the master, as a CLI
//! would — publish a job and gather its returns (Salt's `saltutil.cmd`), run a runner, move
//! keys. One connection per step: closing it ends the step's job watch.

use super::Settings;
use halite_common::control::{source_statuses, KeyAction, Request, Response};
use halite_common::control_client::Client;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How an orchestration reaches its master.
pub struct Remote {
    socket: PathBuf,
    user: String,
    timeout: Duration,
}

/// A job's outcome: who it went to, and the `salt/job/<jid>/ret/<id>` data of those that
/// returned within the timeout, in return order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Gathered {
    pub minions: Vec<String>,
    pub returns: Vec<(String, Map<String, Value>)>,
}

impl Remote {
    pub fn new(settings: &Settings) -> Remote {
        Remote {
            socket: settings.socket.clone(),
            user: settings.user.clone(),
            timeout: settings.timeout,
        }
    }

    fn connect(&self) -> Result<Client, String> {
        Client::connect(&self.socket).map_err(|e| e.to_string())
    }

    /// The step's `timeout` (seconds), else the master's.
    pub fn timeout(&self, step: Option<&Value>) -> Duration {
        step.and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(self.timeout, |s| Duration::from_secs_f64(s.min(86_400.0)))
    }

    /// Publishes `fun` and waits until every targeted minion returned or `timeout` passed.
    /// A target matching no minion is no error: nobody returns.
    pub fn cmd(
        &self,
        tgt: Value,
        tgt_type: &str,
        fun: &str,
        arg: Vec<Value>,
        timeout: Duration,
    ) -> Result<Gathered, String> {
        let mut client = self.connect()?;
        let request = Request::Publish {
            tgt,
            tgt_type: tgt_type.to_string(),
            fun: fun.to_string(),
            arg,
            user: self.user.clone(),
            watch: true,
        };
        let deadline = Instant::now() + timeout;
        let (jid, minions) = match client.request(&request).map_err(|e| e.to_string())? {
            Response::Published { jid, minions, .. } => (jid, minions),
            Response::Error { message } if message.starts_with("No minions matched") => {
                return Ok(Gathered::default());
            }
            Response::Error { message } => return Err(message),
            other => return Err(format!("unexpected answer from the master: {other:?}")),
        };
        log::info!("orchestration step: job {jid} ({fun}) to {} minions", minions.len());
        let prefix = format!("salt/job/{jid}/ret/");
        let expected: HashSet<&str> = minions.iter().map(String::as_str).collect();
        let mut seen: HashSet<String> = HashSet::new();
        let mut returns = Vec::new();
        while seen.len() < expected.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let event = client.receive(Some(left)).map_err(|e| e.to_string())?;
            if let Some(Response::Event { tag, data }) = event {
                let Some(id) = tag.strip_prefix(&prefix) else { continue };
                if expected.contains(id) && seen.insert(id.to_string()) {
                    returns.push((id.to_string(), data));
                }
            }
        }
        Ok(Gathered { minions, returns })
    }

    /// Runs runner `fun` with keyword arguments `kwarg`.
    pub fn runner(&self, fun: &str, kwarg: Map<String, Value>) -> Result<Value, String> {
        let mut arg = Vec::new();
        if !kwarg.is_empty() {
            let mut map = Map::new();
            map.insert("__kwarg__".into(), true.into());
            map.extend(kwarg);
            arg.push(Value::Object(map));
        }
        let request = Request::Runner { fun: fun.to_string(), arg, user: self.user.clone() };
        match self.connect()?.request(&request).map_err(|e| e.to_string())? {
            Response::Value { value } => Ok(value),
            Response::Error { message } => Err(message),
            other => Err(format!("unexpected answer from the master: {other:?}")),
        }
    }

    /// `key.accept|reject|delete`: the keys matching `glob` in the statuses the action (and
    /// its `include_*` flags) takes from, moved as `halite-key` moves them.
    /// `{"minions": [ids]}`, as the reactor's `wheel.key.*`.
    pub fn keys(
        &self,
        action: KeyAction,
        glob: &str,
        flag: impl Fn(&str) -> bool,
    ) -> Result<Value, String> {
        let mut client = self.connect()?;
        let keys = match client.request(&Request::KeyList).map_err(|e| e.to_string())? {
            Response::Keys { keys } => keys,
            Response::Error { message } => return Err(message),
            other => return Err(format!("unexpected answer from the master: {other:?}")),
        };
        let from = source_statuses(
            action,
            flag("include_accepted"),
            flag("include_rejected"),
            flag("include_denied"),
        );
        let chosen: Vec<_> = halite_common::control::select(&keys, glob, &from)
            .into_iter()
            .map(|k| (k.id.clone(), k.status))
            .collect();
        let request = Request::KeyApply { action, keys: chosen };
        match client.request(&request).map_err(|e| e.to_string())? {
            Response::Applied { ids } => {
                let mut ret = Map::new();
                ret.insert("minions".into(), ids.into());
                Ok(Value::Object(ret))
            }
            Response::Error { message } => Err(message),
            other => Err(format!("unexpected answer from the master: {other:?}")),
        }
    }
}
