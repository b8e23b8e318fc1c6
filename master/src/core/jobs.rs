//! Publishing jobs and taking their returns: target resolution against accepted keys and
//! cached grains, Salt's job events, the job cache, and the minions' grains cache.

use super::Core;
use crate::jobset::JobMinions;
use halite_common::control::KeyStatus;
use halite_common::control::Response;
use halite_common::event::{nesting_problem, object, TagFilter};
use halite_common::proto::{hide_pillar, JobReturn, Publish, ToMinion};
use halite_common::target::Target;
use mio::Token;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Salt's text when a target matches nothing.
pub const NO_MATCH: &str =
    "No minions matched the target. No command was sent, no jid was assigned.";

/// What a publish request asks for.
pub struct JobRequest {
    pub tgt: Value,
    pub tgt_type: String,
    pub fun: String,
    pub arg: Vec<Value>,
    pub user: String,
}

/// A job the master published lately.
pub struct RecentJob {
    /// Who the job went to, and who has returned (a return sent again after a reconnect is
    /// dropped).
    pub minions: JobMinions,
    pub cause: Vec<String>,
}

/// A return checked against its job, waiting for the end of the turn to be stored.
pub(crate) struct QueuedReturn {
    token: Token,
    jid: String,
    id: String,
    /// The JSON text of its `salt/job/<jid>/ret/<id>` data ([`return_data`]).
    data: String,
    cause: Vec<String>,
    /// Its frame's size, counted in [`Core::returns_in`] until it is stored.
    bytes: usize,
}

/// The data of `salt/job/<jid>/ret/<id>` as JSON text, Salt's fields in the order a map built
/// field by field would hold them (the bus appends `_stamp`). Written once, for the job cache
/// and the event both: a map per return (~2 KiB) held by each of a ping's 10,000 returns
/// until they were stored was most of the master's peak, and was serialised twice.
fn return_data(id: &str, ret: &JobReturn) -> String {
    #[derive(serde::Serialize)]
    struct ReturnData<'a> {
        cmd: &'static str,
        id: &'a str,
        success: bool,
        #[serde(rename = "return")]
        ret: &'a Value,
        retcode: i64,
        jid: &'a str,
        fun: &'a str,
        fun_args: &'a [Value],
        #[serde(skip_serializing_if = "Option::is_none")]
        out: Option<&'a str>,
        /// Unix seconds, as Salt's return events carry.
        ts: u64,
        user: &'a str,
    }
    let data = ReturnData {
        cmd: "_return",
        id,
        success: ret.success,
        ret: &ret.ret,
        retcode: ret.retcode,
        jid: &ret.jid,
        fun: &ret.fun,
        fun_args: &ret.fun_args,
        out: ret.out.as_deref(),
        ts: halite_common::time::unix_seconds(),
        user: &ret.user,
    };
    serde_json::to_string(&data).expect("a return always serialises")
}

/// What the job cache holds for an old job: its load and who returned.
type OldJob = std::io::Result<Option<(Map<String, Value>, HashSet<String>)>>;

/// Read-back jobs kept at most, and minion entries in them (see [`OldJobs`]).
const KEPT_OLD_JOBS: usize = 64;
const KEPT_OLD_IDS: usize = 20_000;
/// Returns for jobs being read back one minion may have waiting: past them one is dropped
/// unacknowledged (the minion sends it again after its next reconnect).
const MAX_OLD_RETURNS_PER_MINION: usize = 64;
/// Reads of old jobs that served a minion nothing (the job was not sent to it, or it had
/// returned already) it may cause in a minute: past them its returns for jobs not kept
/// wait for the next minute (at most [`MAX_OLD_RETURNS_PER_MINION`] of them, as ever).
/// A minion catching up returns for jobs it was sent and that miss its return: those reads
/// (and those of jobs the cache does not hold, a failed open) are not counted.
const WASTED_OLD_READS_PER_MINUTE: u32 = 64;
const MINUTE: Duration = Duration::from_secs(60);
/// Bytes of returns put off to their minion's next minute, all minions together: past them
/// one is dropped unacknowledged (sent again after a reconnect).
pub(super) const MAX_DEFERRED_BYTES: usize = 16 * 1024 * 1024;

/// Late returns, for jobs no longer among the recent ones (older, or from before a restart).
/// One read of the job cache per job serves every return waiting for it, each minion may
/// have [`MAX_OLD_RETURNS_PER_MINION`] waiting, and what was read back is kept apart from the
/// recent jobs, a few at most: a minion returning for old jobs again and again once made
/// the job thread parse a whole `returns.jsonl` per frame, and pushed the running jobs out.
#[derive(Default)]
pub(crate) struct OldJobs {
    pub(super) kept: HashMap<String, RecentJob>,
    order: std::collections::VecDeque<String>,
    ids: usize,
    /// Returns waiting for their job's read, by jid.
    pub(super) waiting: HashMap<String, Vec<OldReturn>>,
    /// How many of those each minion has.
    pub(super) by_minion: HashMap<String, usize>,
    /// Per minion: when its minute started, and the reads in it that served it nothing
    /// ([`WASTED_OLD_READS_PER_MINUTE`]; a minion cycling through more real old jobs than
    /// are kept had each one's `returns.jsonl` read again and again).
    pub(super) wasted: HashMap<String, (Instant, u32)>,
    /// Returns put off to the minion's next minute (counted in `by_minion`), and their
    /// frames' bytes ([`MAX_DEFERRED_BYTES`] at most).
    pub(super) deferred: HashMap<String, Vec<OldReturn>>,
    pub(super) deferred_bytes: usize,
}

pub(super) struct OldReturn {
    token: Token,
    id: String,
    ret: JobReturn,
    bytes: usize,
}

impl OldJobs {
    /// Whether `id` has had its minute's worth of reads that served it nothing.
    fn wasted_up(&mut self, id: &str, now: Instant) -> bool {
        self.prune_one(id, now);
        self.wasted.get(id).is_some_and(|(_, n)| *n >= WASTED_OLD_READS_PER_MINUTE)
    }

    fn waste(&mut self, id: &str, now: Instant) {
        self.prune_one(id, now);
        self.wasted.entry(id.to_string()).or_insert((now, 0)).1 += 1;
    }

    fn prune_one(&mut self, id: &str, now: Instant) {
        if self.wasted.get(id).is_some_and(|(start, _)| now.duration_since(*start) >= MINUTE) {
            self.wasted.remove(id);
        }
    }

    /// Forgets minutes that have ended (housekeeping).
    pub(super) fn prune(&mut self, now: Instant) {
        self.wasted.retain(|_, (start, _)| now.duration_since(*start) < MINUTE);
    }

    fn keep(&mut self, jid: &str, job: RecentJob) {
        self.ids += job.minions.len();
        if let Some(old) = self.kept.insert(jid.to_string(), job) {
            self.ids -= old.minions.len();
        } else {
            self.order.push_back(jid.to_string());
        }
        while self.order.len() > 1 && (self.order.len() > KEPT_OLD_JOBS || self.ids > KEPT_OLD_IDS)
        {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(job) = self.kept.remove(&old) {
                self.ids -= job.minions.len();
            }
        }
    }
}

/// A job waiting for its load to be written.
struct Job {
    jid: String,
    req: JobRequest,
    minions: Vec<String>,
    missing: Vec<String>,
    load: Map<String, Value>,
    origin: Origin,
    watch: bool,
    cause: Vec<String>,
}

/// The job cache (or the grains cache), locked on the disk job thread (the loop never holds
/// it). A panic while it was held leaves nothing half-written that matters: the lock is
/// taken back.
pub(crate) fn lock<T>(cache: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Publishes at most between a request and its load's write, for CLIs and for reactions
/// each: their targets parsed, or matched against the fleet's grains, or waiting for that.
/// Past it a publish is refused at once, so a flood of reactions with costly targets queues
/// bounded work and memory, and never takes a CLI's room.
pub const MAX_PREPARING: usize = 256;

/// Reactions' publishes at most in their lane from one source (the peer behind the events
/// they answer, `Event::source`): a source whose events lead to jobs with costly targets
/// fills a quarter of the lane, and the other sources' reactions still find room.
pub const MAX_PREPARING_PER_SOURCE: usize = MAX_PREPARING / 4;

/// Grains or pillar matches under way at once in each lane, each holding a snapshot of the
/// fleet (an id and two shared texts per accepted minion); the others wait without one.
const MAX_FLEET_MATCHES: usize = 2;

/// Where a publish's target is parsed and matched: CLIs' on the job thread (`Core::io`),
/// reactions' on the reaction thread (`Core::reaction_io`), so a costly reaction target (up
/// to `MAX_TARGET_REGEXES` regexes, from event data) delays other reactions only, never a
/// CLI's publish or the job cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Cli = 0,
    Reaction = 1,
}

/// The publishes between request and load write ([`MAX_PREPARING`]), per [`Lane`].
#[derive(Default)]
pub(crate) struct Preparing {
    count: [usize; 2],
    /// Reactions' publishes per source ([`MAX_PREPARING_PER_SOURCE`]).
    by_source: std::collections::HashMap<std::net::IpAddr, usize>,
    matching: [usize; 2],
    waiting: [std::collections::VecDeque<(Target, Pending)>; 2],
}

impl Preparing {
    /// Counts a publish in, or says why there is no room for it.
    fn admit(&mut self, origin: &Origin) -> Result<(), String> {
        let lane = origin.lane();
        if self.count[lane as usize] >= MAX_PREPARING {
            let whose = if lane == Lane::Cli { "jobs" } else { "reactions' jobs" };
            return Err(format!(
                "the master is busy: {MAX_PREPARING} {whose} are waiting for their targets to \
                 be matched; try again"
            ));
        }
        if let Some(ip) = source(origin) {
            if self.by_source.get(&ip).is_some_and(|&n| n >= MAX_PREPARING_PER_SOURCE) {
                return Err(format!(
                    "the master is busy: {MAX_PREPARING_PER_SOURCE} jobs of reactions to events \
                     from {ip} are waiting for their targets to be matched; try again"
                ));
            }
            *self.by_source.entry(ip).or_default() += 1;
        }
        self.count[lane as usize] += 1;
        Ok(())
    }

    /// Counts a publish out: its target is matched (or failed).
    fn done(&mut self, origin: &Origin) {
        self.count[origin.lane() as usize] -= 1;
        if let Some(ip) = source(origin) {
            if let Some(n) = self.by_source.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.by_source.remove(&ip);
                }
            }
        }
    }
}

/// What `f` gives, and how long it took (a reaction's target work is charged to its budget).
fn timed<T>(f: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let started = std::time::Instant::now();
    (f(), started.elapsed())
}

/// The source a publish counts against: a reaction's event's peer.
fn source(origin: &Origin) -> Option<std::net::IpAddr> {
    match origin {
        Origin::Reaction(r) => r.source,
        Origin::Cli(_) => None,
    }
}

/// A publish request waiting for its target to be parsed and matched.
struct Pending {
    req: JobRequest,
    origin: Origin,
    watch: bool,
    cause: Vec<String>,
}

/// An accepted minion as a target sees it: its id, and its grains and pillar as kept (JSON
/// text) if the target looks at them.
pub(super) struct Member {
    id: String,
    grains: Option<Arc<str>>,
    pillar: Option<Arc<str>>,
}

/// What a target is matched against: [`Core::fleet`].
pub(super) type Fleet = Vec<Member>;

/// [`Target::parse`], counted per thread in tests (the loop must never do it).
fn parse_target(tgt: &Value, tgt_type: &str) -> Result<Target, String> {
    #[cfg(test)]
    TARGETS_PARSED.with(|n| n.set(n.get() + 1));
    Target::parse(tgt, tgt_type).map_err(|e| e.to_string())
}

#[cfg(test)]
thread_local! {
    static TARGETS_PARSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many targets this thread has parsed.
#[cfg(test)]
pub(super) fn targets_parsed_here() -> u64 {
    TARGETS_PARSED.with(|n| n.get())
}

/// The minions of `fleet` that `target` matches, and for a list target the listed ids that
/// have no accepted key. Pillar terms see each minion's last compiled pillar (none yet: no
/// match). Parses grains and pillar texts: run on the job thread.
pub(super) fn expected(
    target: &Target,
    req: &JobRequest,
    fleet: Fleet,
) -> (Vec<String>, Vec<String>) {
    let parse = |text: &Option<Arc<str>>| text.as_deref().and_then(crate::grainscache::parse);
    let minions: Vec<String> = fleet
        .into_iter()
        .filter(|m| {
            target.matches_with(&m.id, parse(&m.grains).as_ref(), parse(&m.pillar).as_ref())
        })
        .map(|m| m.id)
        .collect();
    let missing = unlisted(target, req, &minions);
    (minions, missing)
}

/// For a list target, the listed ids that are not among `minions` (no accepted key), as the
/// target read them (no second reading of `tgt` that could split it differently).
fn unlisted(target: &Target, req: &JobRequest, minions: &[String]) -> Vec<String> {
    let (true, Some(listed)) = (req.tgt_type == "list", target.exact_ids()) else {
        return Vec::new();
    };
    let matched: HashSet<&str> = minions.iter().map(String::as_str).collect();
    listed.into_iter().filter(|id| !matched.contains(id)).map(String::from).collect()
}

/// Who asked for a job or a runner, and so who hears how it went once the disk has answered.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A CLI on the control socket: it gets the `Response`.
    Cli(Token),
    /// A reaction: a failure becomes its `salt/reactor/error`.
    Reaction(super::reactor::ReactionRef),
}

impl Origin {
    fn lane(&self) -> Lane {
        match self {
            Origin::Cli(_) => Lane::Cli,
            Origin::Reaction(_) => Lane::Reaction,
        }
    }
}

impl Core {
    /// Resolves the target and has the load written to the job cache; once it is there
    /// ([`Core::publish_recorded`]) fires the job events and sends the job to every matching
    /// connected minion. With `watch`, the CLI streams the job's returns. `cause` is the
    /// causal chain of a reaction's job (empty otherwise): its events and its returns carry
    /// it. `Err` is a refusal known at once (a bad function name); a bad target or one that
    /// matches nothing is answered to `origin` once the job thread has parsed it.
    ///
    /// The target is parsed off the loop, in its [`Lane`]: one can compile up to
    /// `MAX_TARGET_REGEXES` regexes, tens of milliseconds for a hostile one (and a
    /// reaction's target may come from a minion's event data). A target that looks at grains
    /// or pillar is matched there too, since that parses every minion's stored text. A
    /// reaction's parse and match time is charged to its event's render budget.
    pub(crate) fn publish(
        &mut self,
        req: JobRequest,
        origin: Origin,
        watch: bool,
        cause: &[String],
    ) -> Result<(), String> {
        if req.fun.is_empty() || req.fun.len() > 256 {
            return Err("bad function name".into());
        }
        let lane = origin.lane();
        self.preparing.admit(&origin)?;
        let job = Pending { req, origin, watch, cause: cause.to_vec() };
        self.lane_io(lane).submit(move || {
            let (target, took) = timed(|| parse_target(&job.req.tgt, &job.req.tgt_type));
            Box::new(move |core: &mut Core| {
                core.charge(&job.origin, took);
                match target {
                    Ok(target) => core.publish_parsed(target, job),
                    Err(why) => {
                        core.preparing.done(&job.origin);
                        core.answer(&job.origin, Err(why))
                    }
                }
            })
        });
        Ok(())
    }

    fn lane_io(&mut self, lane: Lane) -> &mut crate::offload::Offload<Core> {
        match lane {
            Lane::Cli => &mut self.io,
            Lane::Reaction => &mut self.reaction_io,
        }
    }

    /// A reaction's target work is its event's render time.
    fn charge(&mut self, origin: &Origin, took: std::time::Duration) {
        if let Origin::Reaction(r) = origin {
            self.charge_reaction(r, took);
        }
    }

    /// The target is parsed: the minions it matches are found (here, or on the job thread
    /// with the grains and pillar texts it needs), then the load is written.
    fn publish_parsed(&mut self, target: Target, job: Pending) {
        let lane = job.origin.lane();
        if !target.uses_grains() && !target.uses_pillar() {
            let minions: Vec<String> = (self.candidates(&target).into_iter())
                .filter(|id| target.matches_with(id, None, None))
                .map(String::from)
                .collect();
            let missing = unlisted(&target, &job.req, &minions);
            self.preparing.done(&job.origin);
            return self.record_job(job, minions, missing);
        }
        self.preparing.waiting[lane as usize].push_back((target, job));
        self.start_fleet_matches(lane);
    }

    /// Hands the lane's waiting grains or pillar matches to its thread, [`MAX_FLEET_MATCHES`]
    /// at a time, each with its snapshot of the fleet taken now.
    fn start_fleet_matches(&mut self, lane: Lane) {
        let at = lane as usize;
        while self.preparing.matching[at] < MAX_FLEET_MATCHES {
            let Some((target, job)) = self.preparing.waiting[at].pop_front() else { return };
            self.preparing.matching[at] += 1;
            let fleet = self.fleet(&target);
            self.lane_io(lane).submit(move || {
                let ((minions, missing), took) = timed(|| expected(&target, &job.req, fleet));
                Box::new(move |core: &mut Core| {
                    core.charge(&job.origin, took);
                    core.preparing.matching[at] -= 1;
                    core.preparing.done(&job.origin);
                    core.record_job(job, minions, missing);
                    core.start_fleet_matches(lane);
                })
            });
        }
    }

    /// Has the load of a job that matched `minions` written to the job cache (or answers
    /// that it matched none).
    fn record_job(&mut self, job: Pending, minions: Vec<String>, missing: Vec<String>) {
        let Pending { req, origin, watch, cause } = job;
        if minions.is_empty() {
            return self.answer(&origin, Err(NO_MATCH.into()));
        }
        let jid = self.jids.allocate();
        // Inline pillar (`pillar=`) goes to the targeted minions only: the job cache and the
        // job events get it hidden.
        let shown_arg = hide_pillar(&req.arg);
        let load = object([
            ("jid", jid.clone().into()),
            ("tgt_type", req.tgt_type.clone().into()),
            ("tgt", req.tgt.clone()),
            ("user", req.user.clone().into()),
            ("fun", req.fun.clone().into()),
            ("arg", shown_arg.into()),
            ("minions", minions.clone().into()),
            ("missing", missing.clone().into()),
        ]);
        // Recorded before anything goes out: a job the cache does not hold would have its
        // returns dropped as an unknown job after a master restart.
        let cache = Arc::clone(&self.jobs);
        self.io.submit(move || {
            let saved = lock(&cache).save_load(&jid, &load);
            let job = Job { jid, req, minions, missing, load, origin, watch, cause };
            Box::new(move |core: &mut Core| core.publish_recorded(job, saved))
        });
    }

    /// The load is on disk (or could not be written: then nothing goes out, and whoever
    /// asked hears why).
    fn publish_recorded(&mut self, job: Job, saved: std::io::Result<()>) {
        let Job { jid, req, minions, missing, load, origin, watch, cause } = job;
        if let Err(e) = saved {
            log::error!("job cache: cannot store job {jid}: {e}; not published");
            let why = format!("cannot record the job in the job cache: {e}");
            return self.answer(&origin, Err(why));
        }
        self.remember_job(&jid, &minions, &cause);
        self.job_published(&jid);
        let minion_list = || Value::from(minions.clone());
        self.bus.fire_caused(jid.clone(), object([("minions", minion_list())]), &cause);
        self.bus.fire_caused(format!("salt/job/{jid}/new"), load, &cause);
        self.bus.fire_caused(
            format!("salt/job/{jid}/publish"),
            object([
                ("fun", req.fun.clone().into()),
                ("arg", hide_pillar(&req.arg).into()),
                ("tgt", req.tgt.clone()),
                ("jid", jid.clone().into()),
                ("ret", "".into()),
                ("tgt_type", req.tgt_type.clone().into()),
                ("user", req.user.clone().into()),
            ]),
            &cause,
        );
        if let (Origin::Cli(token), true) = (&origin, watch) {
            if let Some(client) = self.controls.get_mut(token) {
                client.subs.push(TagFilter::Prefix(format!("salt/job/{jid}/ret/")));
            }
        }
        let publish = ToMinion::Publish(Publish {
            jid: jid.clone(),
            fun: req.fun,
            arg: req.arg,
            tgt: req.tgt,
            tgt_type: req.tgt_type,
            user: req.user,
        });
        // The CLI hears first which minions the job goes to, then their returns.
        let connected: Vec<String> =
            minions.iter().filter(|id| self.live.contains_key(*id)).cloned().collect();
        let published = Response::Published {
            jid: jid.clone(),
            minions: minions.clone(),
            missing,
            connected: connected.clone(),
        };
        self.answer(&origin, Ok(published));
        // Serialised once; sealed for each minion's session.
        let publish = halite_common::handshake::encode_message(&publish);
        for id in &connected {
            let token = self.live[id];
            if let Err(reason) = self.send_with_acks(token, Some(&publish)) {
                self.close_peer(token, &reason);
            }
        }
        log::info!("job {jid} published to {}/{} minions", connected.len(), minions.len());
    }

    /// Tells whoever asked how it went: a CLI gets the response (or an `Error`), a reaction's
    /// failure becomes its `salt/reactor/error`.
    pub(crate) fn answer(&mut self, origin: &Origin, result: Result<Response, String>) {
        match (origin, result) {
            (Origin::Cli(token), Ok(response)) => self.send_control(*token, &response),
            (Origin::Cli(token), Err(message)) => {
                self.send_control(*token, &Response::Error { message })
            }
            (Origin::Reaction(_), Ok(_)) => {}
            (Origin::Reaction(r), Err(message)) => self.reaction_failed(r, message),
        }
    }

    /// The accepted ids a target can match: those it names, for a target of exact ids (looked
    /// up in the key index), else every accepted id (not copied).
    fn candidates<'a>(&'a self, target: &'a Target) -> Vec<&'a str> {
        match target.exact_ids() {
            Some(ids) => {
                let mut ids: Vec<&str> =
                    ids.into_iter().filter(|id| self.store.has(KeyStatus::Accepted, id)).collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            None => self.store.ids_iter(KeyStatus::Accepted).map(String::as_str).collect(),
        }
    }

    /// [`Core::candidates`] with the grains and pillar text the target looks at, for the job
    /// thread to match (the texts shared, not copied).
    pub(super) fn fleet(&self, target: &Target) -> Fleet {
        let (grains, pillar) = (target.uses_grains(), target.uses_pillar());
        let member = |id: &str| Member {
            id: id.to_string(),
            grains: grains.then(|| self.grains.get(id).cloned()).flatten(),
            pillar: pillar.then(|| self.pillar.compiled.get(id).cloned()).flatten(),
        };
        self.candidates(target).into_iter().map(member).collect()
    }

    /// A minion's return on connection `token`. The id is the session's, never one the minion
    /// wrote into the return. A return of a job no longer in memory waits for the job cache
    /// to say who the job went to; every return is stored before it is acknowledged.
    /// `bytes` (its frame's size) count against `job_cache_backlog_bytes` until the job cache
    /// is done with it.
    pub(crate) fn on_return(&mut self, token: Token, id: &str, mut ret: JobReturn, bytes: usize) {
        if !crate::jobcache::is_jid(&ret.jid) {
            // No ack: ours only send jids they were given, and an ack would echo it.
            let jid = halite_common::logging::clip(&ret.jid);
            return self.minion_warn(
                id,
                format_args!("minion {id} returned for invalid jid {jid:?}; dropped"),
            );
        }
        // Too deep for the CLIs and the job cache to read back: the job still gets an answer
        // from this minion, a failure that says why.
        let deep =
            nesting_problem(&ret.ret).or_else(|| ret.fun_args.iter().find_map(nesting_problem));
        if let Some(why) = deep {
            let jid = &ret.jid;
            self.minion_warn(id, format_args!("minion {id}'s return for job {jid} refused: {why}"));
            ret.ret = Value::String(format!("The master refused this return: {why}"));
            ret.fun_args.clear();
            (ret.retcode, ret.success) = (1, false);
        }
        if self.job_mut(&ret.jid).is_some() {
            return self.take_return(token, id.to_string(), ret, bytes);
        }
        // Older than the jobs kept in memory, or from before a restart: the job cache says
        // who the job went to and who returned.
        if self.old_jobs.by_minion.get(id).is_some_and(|&n| n >= MAX_OLD_RETURNS_PER_MINION) {
            let jid = &ret.jid;
            return self.minion_warn(
                id,
                format_args!(
                    "minion {id} returned for old job {jid} with {MAX_OLD_RETURNS_PER_MINION} \
                     returns for old jobs waiting; dropped (it is sent again)"
                ),
            );
        }
        *self.old_jobs.by_minion.entry(id.to_string()).or_default() += 1;
        self.returns_in(bytes);
        self.read_old(OldReturn { token, id: id.to_string(), ret, bytes });
    }

    /// A return for an old job (counted in `by_minion`): joins the read of its job, or has
    /// it read, or, when its minion has had its minute's reads that served it nothing,
    /// waits for the next minute (it may be the very return a catch-up is for).
    fn read_old(&mut self, old: OldReturn) {
        let jid = old.ret.jid.clone();
        if let Some(waiting) = self.old_jobs.waiting.get_mut(&jid) {
            return waiting.push(old); // its job is being read already
        }
        if self.job_mut(&jid).is_some() {
            // Read back since it was put off.
            self.old_done(&old);
            return self.take_return(old.token, old.id, old.ret, old.bytes);
        }
        let id = old.id.clone();
        if self.old_jobs.wasted_up(&id, self.now) {
            if self.old_jobs.deferred_bytes + old.bytes > MAX_DEFERRED_BYTES {
                self.old_done(&old);
                return self.minion_warn(
                    &id,
                    format_args!(
                        "minion {id} returned for old job {jid}: its reads this minute served \
                         it nothing and {} MiB of such returns wait; dropped (it is sent again)",
                        MAX_DEFERRED_BYTES >> 20
                    ),
                );
            }
            self.minion_warn(
                &id,
                format_args!(
                    "minion {id} returned for old job {jid}: {WASTED_OLD_READS_PER_MINUTE} old \
                     jobs read for it this minute served it nothing; it waits for the next"
                ),
            );
            // Put off, it is held outside `job_cache_backlog_bytes` (a minute of it there
            // would stop the reading of every minion), within its own bound.
            self.returns_out(old.bytes);
            self.old_jobs.deferred_bytes += old.bytes;
            return self.old_jobs.deferred.entry(id).or_default().push(old);
        }
        self.old_jobs.waiting.insert(jid.clone(), vec![old]);
        let cache = Arc::clone(&self.jobs);
        self.io.submit(move || {
            let found = {
                let cache = lock(&cache);
                cache.load(&jid).and_then(|load| match load {
                    Some(load) => cache.returned_ids(&jid).map(|r| Some((load, r))),
                    None => Ok(None),
                })
            };
            Box::new(move |core: &mut Core| core.old_job_read(jid, found))
        });
    }

    /// An old return is no longer waiting (taken, or dropped).
    fn old_done(&mut self, old: &OldReturn) {
        self.returns_out(old.bytes);
        if let Some(n) = self.old_jobs.by_minion.get_mut(&old.id) {
            *n -= 1;
            if *n == 0 {
                self.old_jobs.by_minion.remove(&old.id);
            }
        }
    }

    /// Housekeeping: minutes that ended are forgotten, and the returns put off in them are
    /// read now.
    pub(super) fn old_jobs_tick(&mut self, now: Instant) {
        self.old_jobs.prune(now);
        let due: Vec<String> = (self.old_jobs.deferred.keys())
            .filter(|id| !self.old_jobs.wasted.contains_key(*id))
            .cloned()
            .collect();
        for id in due {
            for old in self.old_jobs.deferred.remove(&id).unwrap_or_default() {
                self.old_jobs.deferred_bytes -= old.bytes;
                self.returns_in(old.bytes);
                // Its session gone (it sends the return again on the next), the connection
                // may be another minion's by now: its ack must not go there.
                if self.live.get(&old.id) != Some(&old.token) {
                    self.old_done(&old);
                    continue;
                }
                self.read_old(old);
            }
        }
    }

    /// An old job is read back: the returns that waited for it are taken. Only a job the
    /// cache really holds is kept: a failed read is retried (no ack) rather than remembered
    /// as "nobody".
    fn old_job_read(&mut self, jid: String, found: OldJob) {
        let waiting = self.old_jobs.waiting.remove(&jid).unwrap_or_default();
        for old in &waiting {
            self.old_done(old);
        }
        if self.job_mut(&jid).is_none() {
            let (load, returned) = match found {
                Ok(Some(found)) => found,
                Ok(None) => {
                    for OldReturn { token, id, .. } in waiting {
                        self.minion_warn(
                            &id,
                            format_args!("minion {id} returned for unknown job {jid}; ignored"),
                        );
                        self.ack_return(token, &id, jid.clone());
                    }
                    return;
                }
                Err(e) => return log::error!("job cache: cannot read job {jid}: {e}"),
            };
            let minions = load.get("minions").and_then(Value::as_array);
            let mut minions =
                JobMinions::new(minions.into_iter().flatten().filter_map(Value::as_str));
            for id in &returned {
                minions.mark_returned(id);
            }
            for old in &waiting {
                if !minions.contains(&old.id) || minions.has_returned(&old.id) {
                    self.old_jobs.waste(&old.id, self.now);
                }
            }
            self.old_jobs.keep(&jid, RecentJob { minions, cause: Vec::new() });
        }
        for OldReturn { token, id, ret, bytes } in waiting {
            self.take_return(token, id, ret, bytes);
        }
    }

    /// A job's bookkeeping: a recent one, or one read back for late returns.
    fn job_mut(&mut self, jid: &str) -> Option<&mut RecentJob> {
        match self.recent_jobs.get_mut(jid) {
            Some(job) => Some(job),
            None => self.old_jobs.kept.get_mut(jid),
        }
    }

    /// Checks a return against its job, fires `salt/job/<jid>/ret/<id>` and has it stored;
    /// the minion's ack waits for the store. Refused returns count as handled (acked).
    fn take_return(&mut self, token: Token, id: String, ret: JobReturn, bytes: usize) {
        let Some(job) = self.job_mut(&ret.jid) else {
            // A read-back job that many more have pushed out meanwhile: sent again later.
            return log::debug!("return from {id} for job {}: job no longer kept", ret.jid);
        };
        if !job.minions.contains(&id) {
            let jid = &ret.jid;
            self.minion_warn(
                &id,
                format_args!("minion {id} returned for job {jid} it was not sent; ignored"),
            );
            return self.ack_return(token, &id, ret.jid);
        }
        if !job.minions.mark_returned(&id) {
            // Sent again after a reconnect, before our ack reached the minion. If the first
            // copy is still being stored, this one's ack waits for that store: acked now, a
            // store that then failed lost the return for good.
            log::debug!("duplicate return from {id} for job {}", ret.jid);
            let key = (ret.jid, id);
            if let Some(waiting) = self.returns_storing.get_mut(&key) {
                // One ack per connection, however many copies it sends while the disk is slow.
                if !waiting.contains(&token) {
                    waiting.push(token);
                }
                return;
            }
            return self.ack_return(token, &key.1, key.0);
        }
        let cause = job.cause.clone();
        self.returns_storing.insert((ret.jid.clone(), id.clone()), Vec::new());
        // `event.send` in a job: the minion cannot know the master refused its event.
        let refused = match self.refused_events.is_empty() {
            true => None, // the usual case: no key to build
            false => self.refused_events.remove(&(ret.jid.clone(), id.clone())),
        };
        let ret = match refused {
            Some(reason) => JobReturn {
                ret: format!("The master refused the event: {reason}").into(),
                retcode: 1,
                success: false,
                out: Some("nested".into()),
                ..ret
            },
            None => ret,
        };
        let data = return_data(&id, &ret);
        let jid = ret.jid;
        log::debug!("return from {id} for job {jid}");
        self.returns_in(bytes);
        self.returns_queued.push(QueuedReturn { token, jid, id, data, cause, bytes });
    }

    /// Has the returns taken this turn stored, as one job on the disk thread (one write per
    /// job's run of returns, one wake-up back); each is acked and its event fired once the
    /// batch is written. Called at the end of every turn ([`super::Input::Tick`]).
    pub(super) fn store_returns(&mut self) {
        if self.returns_queued.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.returns_queued);
        let cache = Arc::clone(&self.jobs);
        self.io.submit(move || {
            let refs: Vec<(&str, &str, &str)> =
                batch.iter().map(|r| (r.jid.as_str(), r.id.as_str(), r.data.as_str())).collect();
            let stored = lock(&cache).save_returns(&refs);
            drop(refs);
            Box::new(move |core: &mut Core| {
                for (r, stored) in batch.into_iter().zip(stored) {
                    core.returns_out(r.bytes);
                    core.return_stored(r.token, r.jid, r.id, r.data, r.cause, stored);
                }
            })
        });
    }

    /// A return is on disk (or failed to be: then no ack, so the minion sends it again after
    /// a reconnect). Its event fires either way; a reaction's job returns carry the chain.
    fn return_stored(
        &mut self,
        token: Token,
        jid: String,
        id: String,
        data: String,
        cause: Vec<String>,
        stored: std::io::Result<()>,
    ) {
        let tag = format!("salt/job/{jid}/ret/{id}");
        let key = (jid, id);
        let copies = self.returns_storing.remove(&key).unwrap_or_default();
        let (jid, id) = key;
        match stored {
            Ok(()) => {
                self.metrics.job_returns += 1;
                for copy in copies {
                    self.ack_return(copy, &id, jid.clone());
                }
                self.ack_return(token, &id, jid)
            }
            Err(e) => {
                log::error!("job cache: cannot store return of {id} for {jid}: {e}");
                if let Some(job) = self.job_mut(&jid) {
                    job.minions.unmark_returned(&id);
                }
            }
        }
        self.bus.fire_text(tag, &data, &cause);
    }

    /// Owes the minion an ack for a stored return. It is not sent at once: it goes out with
    /// the next frame to that minion (a job's publish, a keepalive) or alone 0.5 to 1 s
    /// later ([`Core::send_acks`]), so a fleet kept busy with jobs costs the master one write
    /// per minion and job, not two. Nothing depends on its timing: the minion keeps an
    /// unacknowledged return in memory and sends it again only after a reconnect, and the
    /// master drops a return it already has.
    fn ack_return(&mut self, token: Token, id: &str, jid: String) {
        // Only to the session that sent it: once it closed, its connection number may be
        // another minion's, which would take the ack for its own return of the same job.
        if self.live.get(id) != Some(&token) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&token) else { return };
        // One ack answers every copy: a return sent again and again (a duplicate, a job it
        // was not sent) is owed once, not once per copy read before the next tick.
        if peer.acks.iter().rev().take(8).any(|owed| *owed == jid) {
            return;
        }
        if peer.acks.is_empty() {
            self.acks_owed[0].push(token);
        }
        peer.acks.push(jid);
    }

    /// At a tick, sends the acks owed since before the last tick (each minion's in one
    /// write); `all` (at a stop) sends every ack owed.
    pub(crate) fn send_acks(&mut self, all: bool) {
        let mut due = std::mem::take(&mut self.acks_owed[1]);
        self.acks_owed[1] = std::mem::take(&mut self.acks_owed[0]);
        if all {
            due.append(&mut self.acks_owed[1]);
        }
        for token in due {
            let owed = self.peers.get(&token).is_some_and(|peer| !peer.acks.is_empty());
            if owed {
                if let Err(reason) = self.send_with_acks(token, None) {
                    self.close_peer(token, &reason);
                }
            }
        }
    }

    /// Remembers who a new job went to and the causal chain it was published under.
    fn remember_job(&mut self, jid: &str, minions: &[String], cause: &[String]) {
        let job = RecentJob { minions: JobMinions::new(minions), cause: cause.to_vec() };
        self.keep_job(jid, job);
    }

    /// Keeps a job's bookkeeping in memory: the last 10,000 jobs, and no more than 200,000
    /// minion entries in all (one job to 10,000 minions is big). A late return for a job no
    /// longer kept reads it back from the job cache.
    fn keep_job(&mut self, jid: &str, job: RecentJob) {
        const KEPT_JOBS: usize = 10_000;
        const KEPT_IDS: usize = 200_000;
        self.recent_ids += job.minions.len();
        match self.recent_jobs.insert(jid.to_string(), job) {
            Some(old) => self.recent_ids -= old.minions.len(),
            None => self.recent_order.push_back(jid.to_string()),
        }
        while self.recent_order.len() > 1
            && (self.recent_order.len() > KEPT_JOBS || self.recent_ids > KEPT_IDS)
        {
            let Some(old) = self.recent_order.pop_front() else { break };
            if let Some(job) = self.recent_jobs.remove(&old) {
                self.recent_ids -= job.minions.len();
            }
        }
    }

    /// Keeps a minion's grains in memory and on disk (grain targeting of offline minions),
    /// writing only when they changed, on the job thread.
    pub(crate) fn remember_grains(&mut self, id: &str, grains: Map<String, Value>) {
        let grains = crate::grainscache::text(&grains);
        if self.grains.get(id) == Some(&grains) {
            return; // a reconnect with the same grains: nothing to write
        }
        self.grains.insert(id.to_string(), Arc::clone(&grains));
        self.grains_queued.push((id.to_string(), grains));
    }

    /// Has the grains of the minions that connected this turn appended to the cache, as one
    /// job on the disk thread. Called at the end of every turn.
    pub(super) fn store_grains(&mut self) {
        if self.grains_queued.is_empty() {
            return;
        }
        let (cache, batch) =
            (Arc::clone(&self.grains_cache), std::mem::take(&mut self.grains_queued));
        self.io.submit(move || {
            let n = batch.len();
            if let Err(e) = lock(&cache).record_all(batch) {
                log::error!("cannot cache the grains of {n} minions: {e}");
            }
            Box::new(|_: &mut Core| {})
        });
    }

    /// Ids with a live session, among the accepted keys.
    pub(crate) fn accepted_ids(&self) -> Result<Vec<String>, String> {
        self.store.ids(KeyStatus::Accepted).map_err(|e| format!("cannot read accepted keys: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The text is what the map built field by field (Salt's order) serialises to.
    #[test]
    fn a_returns_data_text_is_its_map_in_salts_order() {
        for out in [None, Some("nested".to_string())] {
            let ret = JobReturn {
                jid: "20240501100000000001".into(),
                fun: "cmd.run".into(),
                fun_args: vec![json!("echo \"é\"\n"), json!({"b": 1, "a": [null]})],
                ret: json!({"z": 1, "a": "x\u{202e}"}),
                retcode: -3,
                success: false,
                out: out.clone(),
                user: "root".into(),
            };
            let text = return_data("m1", &ret);
            let got: Map<String, Value> = serde_json::from_str(&text).unwrap();
            let mut want = Map::new();
            want.insert("cmd".into(), json!("_return"));
            want.insert("id".into(), json!("m1"));
            want.insert("success".into(), json!(false));
            want.insert("return".into(), ret.ret.clone());
            want.insert("retcode".into(), json!(-3));
            want.insert("jid".into(), json!(ret.jid));
            want.insert("fun".into(), json!("cmd.run"));
            want.insert("fun_args".into(), json!(ret.fun_args));
            if let Some(out) = out {
                want.insert("out".into(), json!(out));
            }
            want.insert("ts".into(), got["ts"].clone());
            want.insert("user".into(), json!("root"));
            assert!(got["ts"].as_u64().is_some_and(|ts| ts > 1_700_000_000), "{text}");
            assert_eq!(text, serde_json::to_string(&want).unwrap());
        }
    }
}
