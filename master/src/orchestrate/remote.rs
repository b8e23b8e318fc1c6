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
    cause: Vec<String>,
}

/// A job's outcome: who it went to, and the `salt/job/<jid>/ret/<id>` data of those that
/// returned within the timeout, in return order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Gathered {
    pub minions: Vec<String>,
    pub returns: Vec<(String, Map<String, Value>)>,
}

/// A publish's answer: the jid, the expected minions, the connected ones.
type Published = (String, Vec<String>, Vec<String>);

/// The returns of one job, as they come.
struct Job {
    jid: String,
    prefix: String,
    minions: Vec<String>,
    expected: HashSet<String>,
    seen: HashSet<String>,
    returns: Vec<(String, Map<String, Value>)>,
}

impl Job {
    fn new(jid: &str, minions: Vec<String>) -> Job {
        let prefix = format!("salt/job/{jid}/ret/");
        let expected = minions.iter().cloned().collect();
        let (seen, returns) = (HashSet::new(), Vec::new());
        Job { jid: jid.to_string(), prefix, minions, expected, seen, returns }
    }

    fn done(&self) -> bool {
        self.seen.len() >= self.minions.len()
    }

    /// Takes the event if it is a return of this job from one of its minions (first only).
    fn take(&mut self, tag: &str, data: Map<String, Value>) -> bool {
        let Some(id) = tag.strip_prefix(&self.prefix) else { return false };
        if self.expected.contains(id) && self.seen.insert(id.to_string()) {
            self.returns.push((id.to_string(), data));
        }
        true
    }
}

/// The next message within `wait`.
fn receive(client: &mut Client, wait: Duration) -> Result<Option<Response>, String> {
    client.receive(Some(wait)).map_err(|e| e.to_string())
}

impl Remote {
    pub fn new(settings: &Settings) -> Remote {
        Remote {
            socket: settings.socket.clone(),
            user: settings.user.clone(),
            timeout: settings.timeout,
            cause: settings.cause.clone(),
        }
    }

    /// `request`, under the orchestration's causal chain when it has one.
    fn caused(&self, request: Request) -> Request {
        match self.cause.is_empty() {
            true => request,
            false => Request::Caused { cause: self.cause.clone(), request: Box::new(request) },
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

    /// Publishes `fun` and waits until every targeted minion returned, or `timeout` passed
    /// with none of the silent ones still running the job (asked with `saltutil.find_job`,
    /// as `halite` and Salt's client do). A target matching no minion is no error: nobody
    /// returns.
    pub fn cmd(
        &self,
        tgt: Value,
        tgt_type: &str,
        fun: &str,
        arg: Vec<Value>,
        timeout: Duration,
    ) -> Result<Gathered, String> {
        let mut client = self.connect()?;
        let published = self.publish(&mut client, tgt, tgt_type, fun, arg, None)?;
        let (jid, minions, connected) = match published {
            Some(published) => published,
            None => return Ok(Gathered::default()),
        };
        log::info!("orchestration step: job {jid} ({fun}) to {} minions", minions.len());
        let mut job = Job::new(&jid, minions);
        let mut deadline = Instant::now() + timeout;
        while !job.done() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let silent: Vec<String> =
                    connected.iter().filter(|id| !job.seen.contains(*id)).cloned().collect();
                if silent.is_empty()
                    || !self.still_running(&mut client, &mut job, silent, timeout)?
                {
                    break;
                }
                deadline = Instant::now() + timeout;
                continue;
            }
            if let Some(Response::Event { tag, data }) = receive(&mut client, left)? {
                job.take(&tag, data);
            }
        }
        Ok(Gathered { minions: job.minions, returns: job.returns })
    }

    /// Publishes with `watch`: the jid, the expected minions and the connected ones, or `None`
    /// when the target matched nothing. Returns of `earlier`, a job watched on the same
    /// connection, that arrive before the answer are taken.
    fn publish(
        &self,
        client: &mut Client,
        tgt: Value,
        tgt_type: &str,
        fun: &str,
        arg: Vec<Value>,
        mut earlier: Option<&mut Job>,
    ) -> Result<Option<Published>, String> {
        let request = Request::Publish {
            tgt,
            tgt_type: tgt_type.to_string(),
            fun: fun.to_string(),
            arg,
            user: self.user.clone(),
            watch: true,
        };
        client.send(&self.caused(request)).map_err(|e| e.to_string())?;
        loop {
            match client.receive(None).map_err(|e| e.to_string())? {
                Some(Response::Published { jid, minions, connected, .. }) => {
                    return Ok(Some((jid, minions, connected)))
                }
                Some(Response::Error { message }) if message.starts_with("No minions matched") => {
                    return Ok(None)
                }
                Some(Response::Error { message }) => return Err(message),
                Some(Response::Event { tag, data }) => {
                    if let Some(job) = earlier.as_deref_mut() {
                        job.take(&tag, data);
                    }
                }
                other => return Err(format!("unexpected answer from the master: {other:?}")),
            }
        }
    }

    /// Asks the `silent` minions whether they still run `job` (`saltutil.find_job`); true if
    /// any does. Returns of the job itself that arrive meanwhile are taken.
    fn still_running(
        &self,
        client: &mut Client,
        job: &mut Job,
        silent: Vec<String>,
        timeout: Duration,
    ) -> Result<bool, String> {
        let arg = vec![Value::from(job.jid.clone())];
        let find =
            self.publish(client, silent.into(), "list", "saltutil.find_job", arg, Some(job))?;
        let Some((find_jid, asked, _)) = find else { return Ok(false) };
        let mut find = Job::new(&find_jid, asked);
        // Salt's `gather_job_timeout` is 10 s.
        let deadline = Instant::now() + timeout.min(Duration::from_secs(10));
        while !find.done() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(Response::Event { tag, data }) = receive(client, left)? {
                if !find.take(&tag, data.clone()) {
                    job.take(&tag, data);
                }
            }
        }
        let busy = |(_, data): &(String, Map<String, Value>)| {
            data.get("return").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
        };
        Ok(find.returns.iter().any(busy))
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
        match self.connect()?.request(&self.caused(request)).map_err(|e| e.to_string())? {
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
        let request = self.caused(Request::KeyApply { action, keys: chosen });
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
