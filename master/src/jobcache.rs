//! The job cache on the master's disk: every publish and every return, so nothing is lost
//! when no CLI is waiting. Layout: `cachedir/jobs/<jid>/load.json` and
//! `cachedir/jobs/<jid>/returns.jsonl`, one `{"id": …, "data": …}` line per return, appended
//! (a file per return made every return an inode allocation: 10,000 returns took seconds).
//!
//! Invariant: a jid reaches a path only after [`is_jid`], an id only after `validate_id`.

use halite_common::files::{open_line_log, read_json_lines, write_cache};
use halite_common::id::validate_id;
use halite_common::time::Utc;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Salt's `is_jid` for the jids Halite makes: exactly 20 ASCII digits.
pub fn is_jid(jid: &str) -> bool {
    jid.len() == 20 && jid.bytes().all(|b| b.is_ascii_digit())
}

/// Hands out unique, increasing jids: the UTC time, or one more than the last when two jobs
/// start in the same microsecond (or the clock stepped back).
#[derive(Debug, Default)]
pub struct JidGen {
    last: u128,
}

impl JidGen {
    pub fn allocate(&mut self) -> String {
        let now: u128 = Utc::now().jid().parse().expect("jids are digits");
        self.last = now.max(self.last + 1);
        format!("{:020}", self.last)
    }
}

/// Salt's `jid_to_time`: `2024, May 01 10:00:00.123456`.
pub fn jid_to_time(jid: &str) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    if !is_jid(jid) {
        return String::new();
    }
    let month: usize = jid[4..6].parse().unwrap_or(1);
    format!(
        "{}, {} {} {}:{}:{}.{}",
        &jid[0..4],
        MONTHS[month.clamp(1, 12) - 1],
        &jid[6..8],
        &jid[8..10],
        &jid[10..12],
        &jid[12..14],
        &jid[14..20]
    )
}

/// The jobs directory and its retention.
#[derive(Debug)]
pub struct JobCache {
    dir: PathBuf,
    keep: Duration,
    /// The returns file last appended to: the returns of one job arrive together.
    appending: Option<(String, File)>,
}

const RETURNS: &str = "returns.jsonl";

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// `{"id":…,"data":…}` and a newline, appended to `out`; `data` is the JSON text of the return
/// event's data (one object on one line, as `serde_json` writes it).
fn return_line(id: &str, data: &str, out: &mut Vec<u8>) -> io::Result<()> {
    validate_id(id).map_err(|e| invalid(e.to_string()))?;
    if data.contains('\n') || !data.starts_with('{') {
        return Err(invalid(format!("the return of {id} is not one JSON object on one line")));
    }
    out.extend_from_slice(br#"{"id":"#);
    serde_json::to_writer(&mut *out, id)?;
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"}\n");
    Ok(())
}

impl JobCache {
    pub fn open(cachedir: &Path, keep: Duration) -> io::Result<JobCache> {
        let dir = cachedir.join("jobs");
        fs::create_dir_all(&dir)?;
        Ok(JobCache { dir, keep, appending: None })
    }

    fn job_dir(&self, jid: &str) -> io::Result<PathBuf> {
        match is_jid(jid) {
            true => Ok(self.dir.join(jid)),
            false => Err(invalid(format!("'{jid}' is not a job id"))),
        }
    }

    /// Stores the publish load (the `salt/job/<jid>/new` data).
    pub fn save_load(&self, jid: &str, load: &Map<String, Value>) -> io::Result<()> {
        let dir = self.job_dir(jid)?;
        fs::create_dir_all(&dir)?;
        write_cache(&dir.join("load.json"), &serde_json::to_vec(load)?, 0o600)
    }

    /// Stores one minion's return from its map.
    #[cfg(test)]
    fn save_return(&mut self, jid: &str, id: &str, data: &Map<String, Value>) -> io::Result<()> {
        let text = serde_json::to_string(data)?;
        self.save_returns(&[(jid, id, &text)]).pop().expect("one result per return")
    }

    /// Stores a batch of returns (`(jid, id, data)`, `data` the JSON text of the
    /// `salt/job/<jid>/ret/<id>` data): one line each, appended to the job's returns file;
    /// the lines of consecutive returns of one job go out in one `write`, so the returns of a
    /// job to 10,000 minions cost a few system calls, not 10,000. One result per return, in
    /// order; a failed write fails every return it carried.
    pub fn save_returns(&mut self, returns: &[(&str, &str, &str)]) -> Vec<io::Result<()>> {
        let mut results: Vec<Option<io::Result<()>>> = returns.iter().map(|_| None).collect();
        let mut start = 0;
        while start < returns.len() {
            let jid = returns[start].0;
            let end = start + returns[start..].iter().take_while(|r| r.0 == jid).count();
            let mut lines = Vec::new();
            let mut carried = Vec::new();
            for (k, (_, id, data)) in returns.iter().enumerate().take(end).skip(start) {
                match return_line(id, data, &mut lines) {
                    Ok(()) => carried.push(k),
                    Err(e) => results[k] = Some(Err(e)),
                }
            }
            if !carried.is_empty() {
                let written = self.append_returns(jid, &lines);
                for k in carried {
                    results[k] = Some(match &written {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
            start = end;
        }
        results.into_iter().map(|r| r.expect("every return has a result")).collect()
    }

    /// Appends whole lines to `jid`'s returns file with one `write`.
    fn append_returns(&mut self, jid: &str, lines: &[u8]) -> io::Result<()> {
        let dir = self.job_dir(jid)?;
        if self.appending.as_ref().is_none_or(|(open, _)| open != jid) {
            self.appending = None;
            fs::create_dir_all(&dir)?;
            let file = open_line_log(&dir.join(RETURNS))?;
            self.appending = Some((jid.to_string(), file));
        }
        let (_, file) = self.appending.as_mut().expect("opened above");
        let written = file.write_all(lines);
        if written.is_err() {
            self.appending = None;
        }
        written
    }

    /// Every stored return of `jid`, by minion id (a torn last line from a crash is skipped).
    fn returns(&self, jid: &str) -> io::Result<BTreeMap<String, Value>> {
        let mut returns = BTreeMap::new();
        for entry in read_json_lines::<Value>(&self.job_dir(jid)?.join(RETURNS))? {
            let Value::Object(mut entry) = entry else { continue };
            if let (Some(Value::String(id)), Some(data)) =
                (entry.remove("id"), entry.remove("data"))
            {
                returns.insert(id, data);
            }
        }
        Ok(returns)
    }

    /// The ids whose return for `jid` is stored.
    pub fn returned_ids(&self, jid: &str) -> io::Result<HashSet<String>> {
        /// A stored return's line read for its id alone: the rest is skipped, not built.
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        let lines = read_json_lines::<Id>(&self.job_dir(jid)?.join(RETURNS))?;
        Ok(lines.into_iter().map(|line| line.id).collect())
    }

    /// `jobs.lookup_jid`: `{id: return}` for every minion that returned, sorted by id.
    pub fn lookup(&self, jid: &str) -> io::Result<Map<String, Value>> {
        let returns = self.returns(jid)?.into_iter();
        Ok(returns
            .map(|(id, data)| (id, data.get("return").cloned().unwrap_or(Value::Null)))
            .collect())
    }

    /// The stored load of `jid`, if any (a torn one counts as none).
    pub fn load(&self, jid: &str) -> io::Result<Option<Map<String, Value>>> {
        match self.read_load(jid) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(None),
            read => read,
        }
    }

    /// The stored load of `jid`: `None` when there is none, an error naming the file when it
    /// cannot be read or does not parse.
    fn read_load(&self, jid: &str) -> io::Result<Option<Map<String, Value>>> {
        let path = self.job_dir(jid)?.join("load.json");
        let named = |kind, e: &dyn std::fmt::Display| {
            io::Error::new(kind, format!("{}: {e}", path.display()))
        };
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| named(io::ErrorKind::InvalidData, &e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(named(e.kind(), &e)),
        }
    }

    /// `jobs.list_jobs`: `{jid: {Function, Arguments, Target, Target-type, User, StartTime}}`.
    /// A broken entry (unreadable or torn `load.json`, a stray file named like a jid) is
    /// logged and skipped: one bad job must not hide all the others.
    pub fn list(&self) -> io::Result<Map<String, Value>> {
        let mut jids: Vec<String> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|j| is_jid(j))
            .collect();
        jids.sort();
        let mut jobs = Map::new();
        for jid in jids {
            let load = match self.read_load(&jid) {
                Ok(Some(load)) => load,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("job cache: skipping job {jid}: {e}");
                    continue;
                }
            };
            let field = |k: &str| load.get(k).cloned().unwrap_or(Value::Null);
            let entry = halite_common::event::object([
                ("Function", field("fun")),
                ("Arguments", field("arg")),
                ("Target", field("tgt")),
                ("Target-type", field("tgt_type")),
                ("User", field("user")),
                ("StartTime", jid_to_time(&jid).into()),
            ]);
            jobs.insert(jid, Value::Object(entry));
        }
        Ok(jobs)
    }

    /// Removes jobs older than `keep_jobs`; returns how many.
    /// A `keep` of zero keeps every job (Salt's `keep_jobs: 0`).
    pub fn prune(&mut self, now: SystemTime) -> usize {
        if self.keep.is_zero() {
            return 0;
        }
        let cutoff = Utc::from_system(now - self.keep).jid();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(jid) = entry.file_name().into_string() else {
                continue;
            };
            if is_jid(&jid) && jid < cutoff && fs::remove_dir_all(entry.path()).is_ok() {
                // A return appended after this would go to an unlinked file and be lost.
                if self.appending.as_ref().is_some_and(|(open, _)| *open == jid) {
                    self.appending = None;
                }
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::event::object;

    #[test]
    fn jids_are_unique_and_increasing() {
        let mut gen = JidGen::default();
        let mut last = String::new();
        for _ in 0..1000 {
            let jid = gen.allocate();
            assert!(is_jid(&jid), "{jid}");
            assert!(jid > last);
            last = jid;
        }
        assert_eq!(jid_to_time("20240501100000123456"), "2024, May 01 10:00:00.123456");
        for bad in
            ["", "123", "2024050110000012345x", "../../proc/self/fd/0", "202405011000001234567"]
        {
            assert!(!is_jid(bad), "{bad}");
        }
    }

    /// One broken entry (a `load.json` that is a directory, a stray file named like a jid, a
    /// torn load) must not make `jobs.list_jobs` fail as a whole: it is skipped.
    #[test]
    fn list_skips_bad_entries() {
        let dir = std::env::temp_dir().join(format!("halite-jobcache-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = JobCache::open(&dir, Duration::from_secs(3600)).unwrap();
        let good = "20240501100000000002";
        cache.save_load(good, &object([("fun", "test.ping".into())])).unwrap();
        let jobs = dir.join("jobs");
        fs::create_dir_all(jobs.join("20240501100000000001/load.json")).unwrap();
        fs::write(jobs.join("20240501100000000003"), "stray").unwrap();
        fs::create_dir_all(jobs.join("20240501100000000004")).unwrap();
        fs::write(jobs.join("20240501100000000004/load.json"), "{\"fun\": \"te").unwrap();
        let listed = cache.list().unwrap();
        assert_eq!(listed.keys().collect::<Vec<_>>(), [good]);
        assert_eq!(listed[good]["Function"], "test.ping");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loads_and_returns_round_trip_and_old_jobs_are_pruned() {
        let dir = std::env::temp_dir().join(format!("halite-jobcache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut cache = JobCache::open(&dir, Duration::from_secs(3600)).unwrap();
        let jid = "20240501100000123456";
        let load = object([
            ("fun", "test.ping".into()),
            ("arg", Value::Array(vec![])),
            ("tgt", "*".into()),
        ]);
        cache.save_load(jid, &load).unwrap();
        cache.save_return(jid, "m1", &object([("return", true.into())])).unwrap();
        cache.save_return(jid, "m0", &object([("return", "x".into())])).unwrap();
        let returns = cache.lookup(jid).unwrap();
        assert_eq!(serde_json::to_string(&returns).unwrap(), r#"{"m0":"x","m1":true}"#);
        let ids = cache.returned_ids(jid).unwrap();
        assert_eq!(ids, HashSet::from(["m0".to_string(), "m1".to_string()]));
        // A crash mid-line leaves a torn last line: it is skipped, the rest still reads.
        let torn = dir.join("jobs").join(jid).join(RETURNS);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&torn)
            .unwrap()
            .write_all(b"{\"id\":\"m2\",\"data\":{\"return\":\"\xc3")
            .unwrap();
        assert_eq!(cache.lookup(jid).unwrap().len(), 2);
        // The next return after such a crash (a restarted master) is not glued onto it.
        let mut restarted = JobCache::open(&dir, Duration::from_secs(3600)).unwrap();
        restarted.save_return(jid, "m3", &object([("return", 3.into())])).unwrap();
        assert_eq!(restarted.lookup(jid).unwrap()["m3"], 3);
        assert_eq!(restarted.lookup(jid).unwrap().len(), 3);
        assert_eq!(cache.list().unwrap()[jid]["Function"], "test.ping");
        assert!(cache.save_return("../../etc", "m1", &Map::new()).is_err());
        assert!(cache.save_return(jid, "../m1", &Map::new()).is_err());
        assert!(cache.lookup("nope").is_err());
        assert!(cache.lookup("20990101000000000000").unwrap().is_empty());
        assert_eq!(cache.prune(SystemTime::now()), 1);
        assert!(cache.list().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A batch spanning two jobs stores each job's returns together; a bad id fails alone and
    /// leaves no half line behind.
    #[test]
    fn a_batch_of_returns_is_stored_per_job_and_a_bad_id_fails_alone() {
        let dir = std::env::temp_dir().join(format!("halite-jobbatch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut cache = JobCache::open(&dir, Duration::from_secs(3600)).unwrap();
        let (a, b) = ("20240501100000000001", "20240501100000000002");
        let data = r#"{"return":true}"#;
        let results = cache.save_returns(&[
            (a, "m1", data),
            (a, "../m2", data),
            (a, "m3", data),
            (b, "m1", data),
            ("../../etc", "m1", data),
            (a, "m4", "{\"return\":\n1}"),
        ]);
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, true, false, false]);
        assert_eq!(cache.returned_ids(a).unwrap(), HashSet::from(["m1".into(), "m3".into()]));
        assert_eq!(cache.returned_ids(b).unwrap(), HashSet::from(["m1".to_string()]));
        let lines = fs::read_to_string(dir.join("jobs").join(a).join(RETURNS)).unwrap();
        assert_eq!(lines.lines().count(), 2, "{lines}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
