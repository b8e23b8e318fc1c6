//! Runs published jobs off the loop: one thread per job, results sent back over a channel and
//! a `mio::Waker`, so a long `cmd.run` never delays a `test.ping`. A panicking function
//! becomes a failed return; the minion lives on.

use crate::functions::{self, Context, Outcome};
use halite_common::proto::{JobReturn, Publish};
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

fn to_return(publish: &Publish, outcome: Outcome) -> JobReturn {
    JobReturn {
        jid: publish.jid.clone(),
        fun: publish.fun.clone(),
        fun_args: publish.arg.clone(),
        ret: outcome.ret,
        retcode: outcome.retcode,
        success: outcome.retcode == 0,
        out: outcome.out,
        user: publish.user.clone(),
    }
}

impl Jobs {
    pub fn new(ctx: Context, waker: Waker) -> Jobs {
        let (tx, rx) = mpsc::channel();
        Jobs {
            ctx: Arc::new(ctx),
            waker: Arc::new(waker),
            tx,
            rx,
            running: HashMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// Starts a published job. Returns a result at once for what needs no thread (duplicates
    /// give `None`, `saltutil.find_job` answers from the running table).
    pub fn start(&mut self, publish: Publish) -> Option<JobReturn> {
        if !self.seen.insert(publish.jid.clone()) {
            log::debug!("dropping duplicate publish of job {}", publish.jid);
            return None;
        }
        self.seen_order.push_back(publish.jid.clone());
        if self.seen_order.len() > SEEN_JIDS {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if publish.fun == "saltutil.find_job" {
            return Some(to_return(&publish, self.find_job(&publish.arg)));
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
            Ok(_) => None,
            Err(e) => {
                self.running.remove(&publish.jid);
                let outcome = Outcome {
                    ret: format!("ERROR executing '{}': cannot start a thread: {e}", publish.fun)
                        .into(),
                    retcode: 1,
                    out: Some("nested".into()),
                };
                Some(to_return(&publish, outcome))
            }
        }
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
