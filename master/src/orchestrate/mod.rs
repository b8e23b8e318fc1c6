//! Salt's orchestrate runner (`state.orchestrate`, alias `state.orch`): an orchestration SLS
//! from `file_roots`, run by the state engine (`halite_states`) with Salt's `salt.*` states,
//! each orchestration on its own thread. The thread talks to its master exactly as a CLI
//! does, over the control socket ([`remote`]), so the loop never waits for it; its result
//! comes back to the loop through a callback (the master posts it as a continuation).
//!
//! Depends on nothing in `core`: the master hands it its settings and the runner's arguments.

pub mod remote;
pub mod saltmod;

use crate::fileserver::{NoFunctions, RootFiles};
use halite_common::proto::split_args;
use halite_common::reactor::functions::lookup;
use halite_common::reactor::Client as Kind;
use halite_states::value::{py_str, split_input, truthy};
use halite_states::{pillar, Host, Options};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Orchestrations allowed to run at once; past it a new one is refused at once.
pub const MAX_RUNNING: usize = 16;

/// Orchestrations running in this process (one master per process).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// What the master knows that an orchestration needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The master's control socket.
    pub socket: PathBuf,
    /// `file_roots` of `base`.
    pub roots: Vec<PathBuf>,
    /// The master's `timeout`: how long a step waits for returns unless it says `timeout`.
    pub timeout: Duration,
    /// Salt's `opts['id']` of the master's minion: `<host>_master`.
    pub master_id: String,
    /// Who runs it (`Reactor` for a reaction): the steps' jobs are published as this user.
    pub user: String,
    /// The runner's jid (Salt's `orchestration_jid`), for the log.
    pub jid: String,
    /// The causal chain of the reaction that started it (empty from a CLI): the steps'
    /// requests carry it, so their jobs' events count towards the reactor's depth limit.
    pub cause: Vec<String>,
}

/// One orchestration, its arguments checked.
pub struct Orchestration {
    pub mods: Vec<String>,
    pub opts: Options,
    pub settings: Settings,
}

impl std::fmt::Debug for Orchestration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Options`' Debug hides the pillar.
        write!(f, "Orchestration {{ mods: {:?}, opts: {:?} }}", self.mods, self.opts)
    }
}

/// `<host>_master`, the key Salt's orchestrate return is under.
pub fn master_id() -> String {
    format!("{}_master", halite_common::config::hostname())
}

impl Orchestration {
    /// Binds the runner's `arg` to Salt's `orchestrate(mods, saltenv='base', test=None,
    /// exclude=None, pillar=None, pillarenv=None, pillar_enc=None, orchestration_jid=None)`
    /// (`fun` is `state.orchestrate` or `state.orch`).
    pub fn from_args(fun: &str, arg: &[Value], settings: Settings) -> Result<Self, String> {
        let (args, kwargs) = split_args(arg);
        let signature = lookup(Kind::Runner, fun)?;
        signature.check_call(&args, &kwargs)?;
        let params: Vec<&str> = signature
            .required
            .iter()
            .copied()
            .chain(signature.defaults.iter().map(|d| d.0))
            .collect();
        let get = |name: &str| {
            let at = params.iter().position(|p| *p == name)?;
            args.get(at).or_else(|| kwargs.get(name)).filter(|v| !v.is_null())
        };
        let mods = get("mods").and_then(split_input).unwrap_or_default();
        if mods.is_empty() {
            return Err(format!("{fun} needs the orchestration SLS to run (mods)"));
        }
        if let Some(env) = get("saltenv").map(py_str).filter(|env| env != "base") {
            return Err(format!("saltenv '{env}' is not available: Halite serves only 'base'"));
        }
        let pillar = pillar::inline(get("pillar")).map_err(|e| e.to_string())?;
        let exclude = match get("exclude") {
            None => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(|x| Value::from(x.trim())).collect(),
            Some(Value::Array(items)) => items.clone(),
            Some(other) => vec![other.clone()],
        };
        let test = get("test").is_some_and(truthy);
        Ok(Orchestration { mods, opts: Options { test, pillar, exclude }, settings })
    }

    /// Salt's return: `{"data": {"<host>_master": <the run>}, "outputter": "highstate",
    /// "retcode": 0|1}` (1 when a step failed or the SLS did not compile).
    pub fn run(self) -> Value {
        let Orchestration { mods, opts, settings } = self;
        let id = settings.master_id.clone();
        log::info!("orchestration {} runs {}", settings.jid, mods.join(","));
        let host = Host {
            id: id.clone(),
            grains: Map::new(),
            fs: Arc::new(RootFiles::new("file_roots", settings.roots.clone())),
            functions: Arc::new(NoFunctions),
            modules: Arc::new(saltmod::SaltStates::new(remote::Remote::new(&settings))),
        };
        let answer = halite_states::sls(&host, &mods, &opts);
        let retcode = i64::from(answer.retcode != 0);
        log::info!("orchestration {} done, retcode {retcode}", settings.jid);
        let mut data = Map::new();
        data.insert(id, answer.value);
        let mut ret = Map::new();
        ret.insert("data".into(), Value::Object(data));
        ret.insert("outputter".into(), "highstate".into());
        ret.insert("retcode".into(), retcode.into());
        Value::Object(ret)
    }
}

/// Starts `orch` on its own thread; `done` gets its return there. Refused past
/// [`MAX_RUNNING`] at once, or when no thread can be started.
pub fn spawn(orch: Orchestration, done: impl FnOnce(Value) + Send + 'static) -> Result<(), String> {
    let running = RUNNING.fetch_add(1, Ordering::SeqCst);
    let slot = Slot;
    if running >= MAX_RUNNING {
        return Err(format!(
            "too many orchestrations running ({MAX_RUNNING}); not started, try again later"
        ));
    }
    let name = format!("orch-{}", orch.settings.jid);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _slot = slot;
            done(orch.run());
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the orchestration thread: {e}"))
}

/// One of the [`MAX_RUNNING`] places, given back when dropped (the thread ended, even by a
/// panic, or it never started).
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
