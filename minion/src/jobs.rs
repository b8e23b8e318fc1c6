//! Runs published jobs off the loop: one thread per job, results sent back over a channel and
//! a `mio::Waker`, so a long `cmd.run` never delays a `test.ping`. A panicking function
//! becomes a failed return; the minion lives on.

use crate::functions::{self, Context, Outcome};
use halite_common::proto::{JobReturn, Publish, ToMaster};
use halite_common::time::unix_seconds;
use mio::Waker;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

/// How many recent jids are remembered to drop duplicate publishes.
const SEEN_JIDS: usize = 4096;

/// A job that is running on a worker thread.
#[derive(Debug)]
struct Running {
    fun: String,
    arg: Vec<Value>,
    started: Instant,
}

/// The minion's jobs: running ones, recently seen jids, and the worker channel.
pub struct Jobs {
    ctx: Arc<Context>,
    waker: Arc<Waker>,
    tx: Sender<JobReturn>,
    rx: Receiver<JobReturn>,
    running: HashMap<String, Running>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
}

/// The return of `publish` with `outcome`.
pub(crate) fn to_return(publish: &Publish, outcome: Outcome) -> JobReturn {
    JobReturn {
        jid: publish.jid.clone(),
        fun: publish.fun.clone(),
        fun_args: halite_common::proto::hide_pillar(&publish.arg),
        ret: outcome.ret,
        retcode: outcome.retcode,
        success: outcome.retcode == 0,
        out: outcome.out,
        user: publish.user.clone(),
    }
}

impl Jobs {
    pub fn new(ctx: Context, waker: Arc<Waker>) -> Jobs {
        let (tx, rx) = mpsc::channel();
        Jobs {
            ctx: Arc::new(ctx),
            waker,
            tx,
            rx,
            running: HashMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// Starts a published job. What needs no thread is answered at once, as messages for the
    /// master: `saltutil.find_job` from the running table, `event.send` as an event plus its
    /// return. A duplicate jid gives nothing.
    pub fn start(&mut self, publish: Publish) -> Vec<ToMaster> {
        if !self.fresh(&publish.jid) {
            return Vec::new();
        }
        if publish.fun == "saltutil.find_job" {
            return vec![ToMaster::Return(to_return(&publish, self.find_job(&publish.arg)))];
        }
        if publish.fun == "event.send" || publish.fun == "event.fire_master" {
            let (event, outcome) = match event_from_args(&publish.fun, &publish.arg) {
                Ok((tag, data)) => (
                    Some(ToMaster::Event {
                        tag,
                        data,
                        ts: unix_seconds(),
                        ack: false,
                        jid: Some(publish.jid.clone()),
                    }),
                    Outcome { ret: true.into(), retcode: 0, out: None },
                ),
                Err(message) => {
                    (None, Outcome { ret: message.into(), retcode: 1, out: Some("nested".into()) })
                }
            };
            let ret = ToMaster::Return(to_return(&publish, outcome));
            return event.into_iter().chain([ret]).collect();
        }
        log::info!("job {}: {} starting", publish.jid, publish.fun);
        self.running.insert(
            publish.jid.clone(),
            Running { fun: publish.fun.clone(), arg: publish.arg.clone(), started: Instant::now() },
        );
        let (ctx, tx, waker) = (Arc::clone(&self.ctx), self.tx.clone(), Arc::clone(&self.waker));
        let job = publish.clone();
        let spawned =
            std::thread::Builder::new().name(format!("job-{}", publish.jid)).spawn(move || {
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                    functions::call(&job.fun, &job.arg, &ctx)
                }))
                .unwrap_or_else(|_| Outcome {
                    ret: format!("ERROR executing '{}': the function crashed", job.fun).into(),
                    retcode: 1,
                    out: Some("nested".into()),
                });
                // The loop may be gone at shutdown; nothing to do then.
                let _ = tx.send(to_return(&job, outcome));
                let _ = waker.wake();
            });
        match spawned {
            Ok(_) => Vec::new(),
            Err(e) => {
                self.running.remove(&publish.jid);
                let outcome = Outcome {
                    ret: format!("ERROR executing '{}': cannot start a thread: {e}", publish.fun)
                        .into(),
                    retcode: 1,
                    out: Some("nested".into()),
                };
                vec![ToMaster::Return(to_return(&publish, outcome))]
            }
        }
    }

    /// Whether `jid` is new (remembered from now on); a duplicate publish is logged.
    pub fn fresh(&mut self, jid: &str) -> bool {
        if !self.seen.insert(jid.to_string()) {
            log::debug!("dropping duplicate publish of job {jid}");
            return false;
        }
        self.seen_order.push_back(jid.to_string());
        if self.seen_order.len() > SEEN_JIDS {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Whether a state run is in progress (Salt's `disable_during_state_run` test: a running
    /// job whose function matches `state.*`).
    pub fn state_running(&self) -> bool {
        self.running.values().any(|job| job.fun.starts_with("state."))
    }

    /// Returns of jobs that finished since the last call.
    pub fn finished(&mut self) -> Vec<JobReturn> {
        let done: Vec<JobReturn> = self.rx.try_iter().collect();
        for ret in &done {
            if let Some(job) = self.running.remove(&ret.jid) {
                log::info!(
                    "job {}: {} done in {:?} (retcode {})",
                    ret.jid,
                    job.fun,
                    job.started.elapsed(),
                    ret.retcode
                );
            }
        }
        done
    }

    /// Salt's `saltutil.find_job`: what the job is if it still runs here, else `{}`.
    fn find_job(&self, arg: &[Value]) -> Outcome {
        let jid = arg.first().and_then(Value::as_str).unwrap_or_default();
        let ret = match self.running.get(jid) {
            Some(job) => serde_json::json!({
                "jid": jid,
                "fun": job.fun,
                "arg": job.arg,
                "pid": std::process::id(),
            }),
            None => serde_json::json!({}),
        };
        Outcome { ret, retcode: 0, out: None }
    }
}

/// Salt's `event.send TAG [DATA] [key=value ...]` and `event.fire_master DATA TAG`: the tag
/// and the data map (keyword args merged in, `data` winning) for the master's bus.
pub fn event_from_args(fun: &str, arg: &[Value]) -> Result<(String, Value), String> {
    let (args, mut kwargs) = functions::split_args(arg);
    let (tag, data) = match fun {
        "event.fire_master" => {
            (args.get(1).or(kwargs.get("tag")), args.first().or(kwargs.get("data")))
        }
        _ => (args.first().or(kwargs.get("tag")), args.get(1).or(kwargs.get("data"))),
    };
    let tag = match tag {
        Some(Value::String(tag)) if !tag.is_empty() => tag.clone(),
        _ => return Err(format!("Passed invalid arguments to {fun}: a non-empty tag is required")),
    };
    let mut map = serde_json::Map::new();
    match data.cloned() {
        None | Some(Value::Null) => {}
        Some(Value::Object(d)) => map = d,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(d)) => map = d,
            _ => return Err(format!("Passed invalid arguments to {fun}: data must be a mapping")),
        },
        Some(_) => {
            return Err(format!("Passed invalid arguments to {fun}: data must be a mapping"))
        }
    }
    kwargs.remove("tag");
    kwargs.remove("data");
    for (k, v) in kwargs {
        map.entry(k).or_insert(v);
    }
    Ok((tag, Value::Object(map)))
}
