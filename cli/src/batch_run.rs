//! `halite -b`: Salt's batch run over the master's control socket. A `test.ping` finds the
//! targeted minions that answer; the `Scheduler` then starts them a few at a time, each
//! group one job to a list target, and every return is printed as Salt's batch prints it
//! (the return beside its `retcode`). A job whose minions stay silent past the timeout is
//! asked about with `saltutil.find_job`, as `halite` does, before they are given up on.

use crate::batch::{executing_line, BatchSize, Scheduler};
use crate::output::{self, Format, MinionResult};
use crate::sink::Sink;
use crate::{current_user, Client};
use halite_common::control::{Request, Response};
use halite_common::target::MAX_TARGET_BYTES;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// An exit code and the message for stderr.
pub type Failure = (i32, String);
type EventData = Map<String, Value>;

/// What to run, and how.
pub struct Options {
    pub tgt: Value,
    pub tgt_type: String,
    pub fun: String,
    pub arg: Vec<Value>,
    /// Seconds of silence before `saltutil.find_job` (the ping's too).
    pub timeout: Duration,
    pub size: BatchSize,
    /// `--batch-wait`: how long a finished minion's slot stays held.
    pub wait: Duration,
    pub format: Option<Format>,
    /// `--static`: no `Executing run` lines, every return in one block at the end.
    pub quiet: bool,
    /// `--failhard`: start no one else once a minion returns a non-zero retcode.
    pub failhard: bool,
}

/// Runs the batch; the exit code is Salt's: the highest retcode a minion returned (1 for
/// one that does not fit an exit status), or with `--static` 0, or 2 when nothing returned.
pub fn run(client: Client, opts: &Options, sink: &mut Sink) -> Result<i32, Failure> {
    let mut jobs =
        Jobs { client, pending: VecDeque::new(), watched: Vec::new(), timeout: opts.timeout };
    let Some(ping) = jobs.publish(opts.tgt.clone(), &opts.tgt_type, "test.ping", Vec::new())?
    else {
        if !opts.quiet {
            println!("No minions matched the target.");
        }
        return Ok(static_end(opts, &[], sink));
    };
    let targeted = ping.minions.clone();
    jobs.watch(ping);
    let mut answered = BTreeSet::new();
    while !jobs.watched.is_empty() {
        for (id, done) in jobs.turn(None)? {
            if matches!(done, Done::Returned { .. }) {
                answered.insert(id);
            }
        }
    }
    let answered: Vec<String> = answered.into_iter().collect();
    if answered.is_empty() {
        return Ok(static_end(opts, &[], sink));
    }
    if !opts.quiet {
        for id in targeted.iter().filter(|id| answered.binary_search(id).is_err()) {
            println!("Minion {id} did not respond. No job will be sent.");
        }
    }
    let size = opts.size.of(answered.len());
    let mut scheduler = Scheduler::new(answered, size, opts.wait);
    let mut highest = 0i64;
    let mut collected: Vec<(String, MinionResult)> = Vec::new();
    'batch: loop {
        let next = scheduler.start(Instant::now());
        if !next.is_empty() {
            if !opts.quiet {
                print!("{}", executing_line(&next));
            }
            let list = Value::from(next.clone());
            match jobs.publish(list, "list", &opts.fun, opts.arg.clone())? {
                Some(job) => jobs.watch(Published { minions: next, ..job }),
                // Every key went away since the ping: nobody is left to wait for.
                None => next.iter().for_each(|id| scheduler.finished(id, Instant::now())),
            }
        }
        if scheduler.done() {
            break;
        }
        for (id, done) in jobs.turn(scheduler.next_release())? {
            scheduler.finished(&id, Instant::now());
            let (result, failed) = match done {
                Done::Returned { ret, retcode, out } => {
                    highest = highest.max(retcode);
                    (MinionResult::Returned { ret, retcode, out }, retcode > 0)
                }
                Done::Silent => (MinionResult::NoResponse, false),
            };
            let who = id.clone();
            match opts.quiet {
                // Salt's static batch shows a silent minion as an empty return.
                true if result == MinionResult::NoResponse => {
                    let empty = Value::Object(Map::new());
                    collected
                        .push((id, MinionResult::Returned { ret: empty, retcode: 0, out: None }))
                }
                true => collected.push((id, result)),
                false => sink.display(&block(&id, &result, opts.format)),
            }
            if failed && opts.failhard {
                // Salt's log line; the minions still running finish on their own.
                eprintln!(
                    "[ERROR   ] Minion {who} returned with non-zero exit code. Batch run stopped \
                     due to failhard"
                );
                break 'batch;
            }
        }
    }
    Ok(match opts.quiet {
        true => static_end(opts, &collected, sink),
        false => exit_status(highest),
    })
}

/// Salt's batch exits with the highest retcode; one that is no exit status (a hostile
/// minion's 256 would wrap to 0 in Python's `sys.exit`) is 1. Negative ones never count.
fn exit_status(highest: i64) -> i32 {
    match highest {
        ..=0 => 0,
        1..=255 => highest as i32,
        _ => 1,
    }
}

/// `--static`'s one block, and its exit code (2 and Salt's message when nothing returned).
fn static_end(opts: &Options, results: &[(String, MinionResult)], sink: &mut Sink) -> i32 {
    if !opts.quiet {
        return 0;
    }
    sink.display(&output::render_static(results, "", Format::choose(opts.format, None)));
    match results.is_empty() {
        true => {
            eprintln!("ERROR: No return received");
            2
        }
        false => 0,
    }
}

/// One return as Salt's batch prints it: the minion's value beside `retcode` (a silent
/// minion: `{}` alone), in the outputter the return asks for unless `--out` says.
pub fn block(id: &str, result: &MinionResult, format: Option<Format>) -> String {
    let MinionResult::Returned { ret, retcode, out } = result else {
        let empty =
            MinionResult::Returned { ret: Value::Object(Map::new()), retcode: 0, out: None };
        return output::render_one(id, &empty, "", Format::choose(format, None));
    };
    let mut data = Map::new();
    data.insert("retcode".into(), Value::from(*retcode));
    data.insert(id.to_string(), ret.clone());
    if format.is_none() && out.as_deref() == Some("highstate") {
        // Salt's highstate outputter prints each top-level key as a host, `retcode` first.
        return format!("retcode:\n    {retcode}\n{}", crate::highstate::render(id, ret));
    }
    output::render_value(&Value::Object(data), Format::choose(format, out.as_deref()))
}

/// A publish's answer.
struct Published {
    jid: String,
    minions: Vec<String>,
    connected: Vec<String>,
}

/// How a watched minion ended.
enum Done {
    Returned {
        ret: Value,
        retcode: i64,
        out: Option<String>,
    },
    /// Silent past the timeout and not running the job any more.
    Silent,
}

/// One watched job.
struct Watched {
    jid: String,
    outstanding: BTreeSet<String>,
    connected: HashSet<String>,
    deadline: Instant,
    asking: Option<Asking>,
}

/// A `saltutil.find_job` round for a job's silent minions.
struct Asking {
    prefixes: Vec<String>,
    asked: HashSet<String>,
    running: bool,
    deadline: Instant,
}

/// The jobs being watched on one control connection.
struct Jobs {
    client: Client,
    /// Events read while waiting for a publish's answer.
    pending: VecDeque<(String, EventData)>,
    watched: Vec<Watched>,
    timeout: Duration,
}

impl Jobs {
    /// Publishes with `watch`; None when no minion matched. Events arriving meanwhile wait
    /// in `pending`.
    fn publish(
        &mut self,
        tgt: Value,
        tgt_type: &str,
        fun: &str,
        arg: Vec<Value>,
    ) -> Result<Option<Published>, Failure> {
        let request = Request::Publish {
            tgt,
            tgt_type: tgt_type.into(),
            fun: fun.into(),
            arg,
            user: current_user(),
            watch: true,
        };
        self.client.send(&request).map_err(|e| (2, e.to_string()))?;
        loop {
            match self.client.receive(None).map_err(|e| (2, e.to_string()))? {
                Some(Response::Published { jid, minions, connected, .. }) => {
                    return Ok(Some(Published { jid, minions, connected }))
                }
                Some(Response::Event { tag, data }) => self.pending.push_back((tag, data)),
                Some(Response::Error { message }) if message.starts_with("No minions matched") => {
                    println!("{message}");
                    return Ok(None);
                }
                Some(Response::Error { message }) => return Err((2, message)),
                Some(other) => {
                    return Err((2, format!("unexpected answer from the master: {other:?}")))
                }
                None => return Err((2, "timed out talking to the master".into())),
            }
        }
    }

    fn watch(&mut self, job: Published) {
        if job.minions.is_empty() {
            return;
        }
        self.watched.push(Watched {
            jid: job.jid,
            outstanding: job.minions.into_iter().collect(),
            connected: job.connected.into_iter().collect(),
            deadline: Instant::now() + self.timeout,
            asking: None,
        });
    }

    /// Waits for the next event (until `wake` at the latest, or the nearest job deadline),
    /// handles it and the deadlines passed; returns the minions that ended.
    fn turn(&mut self, wake: Option<Instant>) -> Result<Vec<(String, Done)>, Failure> {
        let mut ended = Vec::new();
        let deadline = self
            .watched
            .iter()
            .map(|w| w.asking.as_ref().map_or(w.deadline, |a| a.deadline))
            .chain(wake)
            .min();
        let event = match self.pending.pop_front() {
            Some(event) => Some(event),
            None => {
                let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                match self.client.receive(Some(wait.unwrap_or(self.timeout))) {
                    Ok(Some(Response::Event { tag, data })) => Some((tag, data)),
                    Ok(_) => None,
                    Err(e) => return Err((2, e.to_string())),
                }
            }
        };
        if let Some((tag, data)) = event {
            self.on_event(&tag, &data, &mut ended);
            // Like Salt's poll of each job, take the returns that come together as one
            // group, so they print before the next `Executing run` line.
            while let Some((tag, data)) = self.quick_event()? {
                self.on_event(&tag, &data, &mut ended);
            }
        }
        self.expire(Instant::now(), &mut ended)?;
        self.watched.retain(|w| !w.outstanding.is_empty());
        Ok(ended)
    }

    /// A pending event, or one arriving within 10 ms.
    fn quick_event(&mut self) -> Result<Option<(String, EventData)>, Failure> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(Some(event));
        }
        match self.client.receive(Some(Duration::from_millis(10))) {
            Ok(Some(Response::Event { tag, data })) => Ok(Some((tag, data))),
            Ok(_) => Ok(None),
            Err(e) => Err((2, e.to_string())),
        }
    }

    fn on_event(&mut self, tag: &str, data: &EventData, ended: &mut Vec<(String, Done)>) {
        let Some((jid, id)) = tag.strip_prefix("salt/job/").and_then(|t| t.split_once("/ret/"))
        else {
            return;
        };
        for w in &mut self.watched {
            if w.jid == jid {
                if w.outstanding.remove(id) {
                    ended.push((id.to_string(), returned(data)));
                }
                return;
            }
            let Some(ask) = &mut w.asking else { continue };
            if ask.prefixes.iter().any(|p| tag.starts_with(p.as_str())) && ask.asked.remove(id) {
                let busy =
                    data.get("return").and_then(Value::as_object).is_some_and(|m| !m.is_empty());
                ask.running |= busy;
                return;
            }
        }
    }

    /// Past a job's deadline, asks its silent connected minions with `saltutil.find_job`;
    /// once they answered (or 10 s passed), waits another timeout if one still runs the
    /// job, else gives the silent ones up.
    fn expire(&mut self, now: Instant, ended: &mut Vec<(String, Done)>) -> Result<(), Failure> {
        for i in 0..self.watched.len() {
            let w = &mut self.watched[i];
            match &w.asking {
                None if now >= w.deadline => {
                    let ask: Vec<String> = w
                        .outstanding
                        .iter()
                        .filter(|id| w.connected.contains(*id))
                        .cloned()
                        .collect();
                    if ask.is_empty() {
                        give_up(w, ended);
                        continue;
                    }
                    let jid = w.jid.clone();
                    let mut prefixes = Vec::new();
                    for chunk in list_targets(&ask) {
                        let arg = vec![Value::from(jid.clone())];
                        if let Some(job) =
                            self.publish(Value::from(chunk), "list", "saltutil.find_job", arg)?
                        {
                            prefixes.push(format!("salt/job/{}/ret/", job.jid));
                        }
                    }
                    let deadline = now + self.timeout.min(Duration::from_secs(10));
                    let asked = ask.into_iter().collect();
                    self.watched[i].asking =
                        Some(Asking { prefixes, asked, running: false, deadline });
                }
                Some(ask) if ask.asked.is_empty() || now >= ask.deadline => {
                    match ask.running {
                        true => w.deadline = now + self.timeout,
                        false => give_up(w, ended),
                    }
                    w.asking = None;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn give_up(w: &mut Watched, ended: &mut Vec<(String, Done)>) {
    for id in std::mem::take(&mut w.outstanding) {
        ended.push((id, Done::Silent));
    }
}

fn returned(data: &EventData) -> Done {
    Done::Returned {
        ret: data.get("return").cloned().unwrap_or(Value::Null),
        retcode: data.get("retcode").and_then(Value::as_i64).unwrap_or(0),
        out: data.get("out").and_then(Value::as_str).map(String::from),
    }
}

/// `ids` split into list targets that each fit the master's target size limit.
pub fn list_targets(ids: &[String]) -> Vec<Vec<String>> {
    let mut chunks: Vec<Vec<String>> = vec![Vec::new()];
    let mut bytes = 0;
    for id in ids {
        if bytes + id.len() + 1 > MAX_TARGET_BYTES && !chunks[chunks.len() - 1].is_empty() {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += id.len() + 1;
        chunks.last_mut().expect("one chunk at least").push(id.clone());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ret(value: Value, retcode: i64, out: Option<&str>) -> MinionResult {
        MinionResult::Returned { ret: value, retcode, out: out.map(String::from) }
    }

    #[test]
    fn blocks_are_salts_batch_output() {
        assert_eq!(
            block("m1", &ret(json!(true), 0, None), None),
            "m1:\n    True\nretcode:\n    0\n"
        );
        // Nested sorts the keys; json keeps Salt's order (retcode first).
        assert_eq!(block("z1", &ret(json!("hi"), 3, None), None), "retcode:\n    3\nz1:\n    hi\n");
        assert_eq!(
            block("m1", &ret(json!(true), 0, None), Some(Format::Json)),
            "{\n    \"retcode\": 0,\n    \"m1\": true\n}\n"
        );
        let silent = MinionResult::NoResponse;
        assert_eq!(block("m5", &silent, None), "m5:\n    ----------\n");
        assert_eq!(block("m5", &silent, Some(Format::Json)), "{\n    \"m5\": {}\n}\n");
        // A real empty return keeps its retcode.
        assert_eq!(
            block("m6", &ret(json!({}), 0, None), None),
            "m6:\n    ----------\nretcode:\n    0\n"
        );
    }

    #[test]
    fn a_state_return_is_the_highstate_text_after_its_retcode() {
        let state = json!({"test_|-x_|-x_|-succeed_without_changes": {
            "name": "x", "changes": {}, "result": true, "comment": "Success!",
            "__run_num__": 0, "start_time": "10:00:00.000000", "duration": 1.0, "__id__": "x"
        }});
        let text = block("web1", &ret(state.clone(), 0, Some("highstate")), None);
        assert!(text.starts_with("retcode:\n    0\nweb1:\n----------\n"), "{text}");
        assert!(text.ends_with(&crate::highstate::render("web1", &state)), "{text}");
        // --out wins over the return's outputter.
        let json = block("web1", &ret(json!(1), 2, Some("highstate")), Some(Format::Json));
        assert_eq!(json, "{\n    \"retcode\": 2,\n    \"web1\": 1\n}\n");
    }

    #[test]
    fn exit_statuses_never_wrap_to_success() {
        let codes: Vec<i32> = [0, 3, 255, 256, 512, i64::MAX].map(exit_status).to_vec();
        assert_eq!(codes, [0, 3, 255, 1, 1, 1]);
    }

    #[test]
    fn list_targets_fit_the_limit() {
        let ids: Vec<String> = (0..9000).map(|i| format!("minion-{i:05}")).collect();
        let chunks = list_targets(&ids);
        assert!(chunks.len() > 1);
        assert!(chunks
            .iter()
            .all(|c| c.iter().map(|id| id.len() + 1).sum::<usize>() <= MAX_TARGET_BYTES));
        assert_eq!(chunks.concat(), ids);
        assert_eq!(list_targets(&[]), vec![Vec::<String>::new()]);
    }
}
