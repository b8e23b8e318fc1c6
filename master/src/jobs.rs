//! Publishing jobs and taking their returns: target resolution against accepted keys and
//! cached grains, Salt's job events, the job cache, and the minions' grains cache.

use crate::core::Core;
use halite_common::control::KeyStatus;
use halite_common::event::{object, TagFilter};
use halite_common::proto::{JobReturn, Publish, ToMinion};
use halite_common::target::Target;
use mio::Token;
use serde_json::{Map, Value};
use std::collections::HashSet;

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
    /// Who the job went to.
    pub minions: HashSet<String>,
    /// Who has returned (a return sent again after a reconnect is dropped).
    pub returned: HashSet<String>,
    pub cause: Vec<String>,
}

/// What went out.
pub struct Published {
    pub jid: String,
    pub minions: Vec<String>,
    pub missing: Vec<String>,
    pub connected: Vec<String>,
}

impl Core {
    /// Resolves the target, fires the job events, stores the load and sends the job to every
    /// matching connected minion. With `watch`, `client` streams the job's returns. `cause`
    /// is the causal chain of a reaction's job (empty otherwise): its events and its returns
    /// carry it.
    pub(crate) fn publish(
        &mut self,
        req: JobRequest,
        watch: Option<Token>,
        cause: &[String],
    ) -> Result<Published, String> {
        if req.fun.is_empty() || req.fun.len() > 256 {
            return Err("bad function name".into());
        }
        let target = Target::parse(&req.tgt, &req.tgt_type).map_err(|e| e.to_string())?;
        let accepted = self
            .store
            .ids(KeyStatus::Accepted)
            .map_err(|e| format!("cannot read accepted keys: {e}"))?;
        let (minions, missing) = self.expected(&target, &req, &accepted);
        if minions.is_empty() {
            return Err(NO_MATCH.into());
        }
        let jid = self.jids.allocate();
        let minion_list = || Value::from(minions.clone());
        let load = object([
            ("jid", jid.clone().into()),
            ("tgt_type", req.tgt_type.clone().into()),
            ("tgt", req.tgt.clone()),
            ("user", req.user.clone().into()),
            ("fun", req.fun.clone().into()),
            ("arg", req.arg.clone().into()),
            ("minions", minion_list()),
            ("missing", missing.clone().into()),
        ]);
        // Recorded before anything goes out: a job the cache does not hold would have its
        // returns dropped as an unknown job after a master restart.
        if let Err(e) = self.jobs.save_load(&jid, &load) {
            log::error!("job cache: cannot store job {jid}: {e}; not published");
            return Err(format!("cannot record the job in the job cache: {e}"));
        }
        self.remember_job(&jid, &minions, cause);
        self.bus.fire_caused(jid.clone(), object([("minions", minion_list())]), cause);
        self.bus.fire_caused(format!("salt/job/{jid}/new"), load, cause);
        self.bus.fire_caused(
            format!("salt/job/{jid}/publish"),
            object([
                ("fun", req.fun.clone().into()),
                ("arg", req.arg.clone().into()),
                ("tgt", req.tgt.clone()),
                ("jid", jid.clone().into()),
                ("ret", "".into()),
                ("tgt_type", req.tgt_type.clone().into()),
                ("user", req.user.clone().into()),
            ]),
            cause,
        );
        if let Some(token) = watch {
            if let Some(client) = self.controls.get_mut(&token) {
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
        let mut connected = Vec::new();
        for id in &minions {
            let Some(&token) = self.live.get(id) else {
                continue;
            };
            match self.send_session(token, &publish) {
                Ok(()) => connected.push(id.clone()),
                Err(reason) => self.close_peer(token, &reason),
            }
        }
        log::info!("job {jid} published to {}/{} minions", connected.len(), minions.len());
        Ok(Published { jid, minions, missing, connected })
    }

    /// Expected minions (accepted and matching) and, for list targets, listed ids without key.
    fn expected(
        &self,
        target: &Target,
        req: &JobRequest,
        accepted: &[String],
    ) -> (Vec<String>, Vec<String>) {
        let minions: Vec<String> = accepted
            .iter()
            .filter(|id| target.matches(id, self.grains.get(*id)))
            .cloned()
            .collect();
        let mut missing = Vec::new();
        if req.tgt_type == "list" {
            let listed: Vec<String> = match &req.tgt {
                Value::Array(items) => {
                    items.iter().filter_map(|v| v.as_str().map(String::from)).collect()
                }
                Value::String(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
                _ => Vec::new(),
            };
            let matched: HashSet<&String> = minions.iter().collect();
            missing =
                listed.into_iter().filter(|id| !id.is_empty() && !matched.contains(id)).collect();
        }
        (minions, missing)
    }

    /// Stores a minion's return and fires `salt/job/<jid>/ret/<id>`. The id is the session's,
    /// never one the minion wrote into the return. False only when the return could not be
    /// stored (the minion keeps it and sends it again); refused returns count as handled.
    pub(crate) fn on_return(&mut self, id: &str, ret: JobReturn) -> bool {
        if !crate::jobcache::is_jid(&ret.jid) {
            log::warn!("minion {id} returned for invalid jid {:?}; ignored", ret.jid);
            return true;
        }
        // Only a minion the job was published to may return for it (after a master restart
        // the stored load says who that was).
        if !self.recent_jobs.contains_key(&ret.jid) {
            // Older than the jobs kept in memory, or from before a restart: the job cache
            // says who the job went to and who returned.
            // Only a job the cache really holds is kept: a made-up jid must not evict real
            // jobs, and a failed read is retried (no ack) rather than remembered as "nobody".
            let load = match self.jobs.load(&ret.jid) {
                Ok(Some(load)) => load,
                Ok(None) => {
                    log::warn!("minion {id} returned for unknown job {}; ignored", ret.jid);
                    return true;
                }
                Err(e) => {
                    log::error!("job cache: cannot read job {}: {e}", ret.jid);
                    return false;
                }
            };
            let returned = match self.jobs.returned_ids(&ret.jid) {
                Ok(returned) => returned,
                Err(e) => {
                    log::error!("job cache: cannot read the returns of {}: {e}", ret.jid);
                    return false;
                }
            };
            let minions = load.get("minions").and_then(Value::as_array);
            let minions: HashSet<String> = minions
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(String::from))
                .collect();
            self.keep_job(&ret.jid, RecentJob { minions, returned, cause: Vec::new() });
        }
        let job = self.recent_jobs.get_mut(&ret.jid).expect("kept above");
        if !job.minions.contains(id) {
            log::warn!("minion {id} returned for job {} it was not sent; ignored", ret.jid);
            return true;
        }
        if job.returned.contains(id) {
            // Sent again after a reconnect, before our ack reached the minion.
            log::debug!("duplicate return from {id} for job {}; already stored", ret.jid);
            return true;
        }
        let cause = job.cause.clone();
        // `event.send` in a job: the minion cannot know the master refused its event.
        let ret = match self.refused_events.remove(&(ret.jid.clone(), id.to_string())) {
            Some(reason) => JobReturn {
                ret: format!("The master refused the event: {reason}").into(),
                retcode: 1,
                success: false,
                out: Some("nested".into()),
                ..ret
            },
            None => ret,
        };
        let mut data = object([
            ("cmd", "_return".into()),
            ("id", id.into()),
            ("success", ret.success.into()),
            ("return", ret.ret),
            ("retcode", ret.retcode.into()),
            ("jid", ret.jid.clone().into()),
            ("fun", ret.fun.into()),
            ("fun_args", ret.fun_args.into()),
        ]);
        if let Some(out) = ret.out {
            data.insert("out".into(), out.into());
        }
        // Salt's return events carry `ts` (Unix seconds) too.
        data.insert("ts".into(), halite_common::time::unix_seconds().into());
        data.insert("user".into(), ret.user.into());
        let stored = match self.jobs.save_return(&ret.jid, id, &data) {
            Ok(()) => {
                if let Some(job) = self.recent_jobs.get_mut(&ret.jid) {
                    job.returned.insert(id.to_string());
                }
                true
            }
            Err(e) => {
                log::error!("job cache: cannot store return of {id} for {}: {e}", ret.jid);
                false
            }
        };
        log::debug!("return from {id} for job {}", ret.jid);
        // A reaction's job: its returns carry the reaction's causal chain.
        self.bus.fire_caused(format!("salt/job/{}/ret/{id}", ret.jid), data, &cause);
        stored
    }

    /// Remembers who a new job went to and the causal chain it was published under.
    fn remember_job(&mut self, jid: &str, minions: &[String], cause: &[String]) {
        let job = RecentJob {
            minions: minions.iter().cloned().collect(),
            returned: HashSet::new(),
            cause: cause.to_vec(),
        };
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
    /// writing only when they changed.
    pub(crate) fn remember_grains(&mut self, id: &str, grains: Map<String, Value>) {
        if self.grains.get(id) == Some(&grains) {
            return; // a reconnect with the same grains: nothing to write
        }
        self.grains.insert(id.to_string(), grains);
        if let Err(e) = self.grains_cache.record(id, &self.grains[id], &self.grains) {
            log::error!("cannot cache grains of {id}: {e}");
        }
    }

    /// Ids with a live session, among the accepted keys.
    pub(crate) fn accepted_ids(&self) -> Result<Vec<String>, String> {
        self.store.ids(KeyStatus::Accepted).map_err(|e| format!("cannot read accepted keys: {e}"))
    }
}
