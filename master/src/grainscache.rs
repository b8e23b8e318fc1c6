//! The grains each minion last reported, kept across restarts for grain targeting of
//! offline minions: one append-only file, `cachedir/grains.jsonl`, a `{"id": …, "grains": …}`
//! line per change, the last line of an id winning. Rewritten compactly when most of its
//! lines are superseded. (A file per minion cost two inode allocations per new minion,
//! which dominated 10,000 fresh connections.) The loop keeps [`Grains`]; the file is written
//! only on the job thread (`offload`), by [`GrainsCache::record`], which keeps its own map of
//! the same texts (shared, not copied) to compact from.

use halite_common::files::{open_line_log, read_json_lines, write_cache};
use halite_common::id::validate_id;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every minion's grains, by id, each kept as its JSON object text: a tenth of the memory of
/// parsed maps (10,000 minions with a real minion's ~27 grains), parsed again only for a
/// target that looks at grains ([`parse`]). The texts are shared with the cache's own map.
pub type Grains = HashMap<String, Arc<str>>;

/// A minion's grains as JSON text (what [`Grains`] holds).
pub fn text(grains: &Map<String, Value>) -> Arc<str> {
    // A real minion's grains are ~700 bytes: one allocation, not a doubling series.
    let mut text = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut text, grains) {
        Ok(()) => String::from_utf8(text).map_or_else(|_| "{}".into(), Arc::from),
        Err(_) => "{}".into(),
    }
}

/// Grains text back as a map (`None` if it does not parse, which [`text`] never gives).
pub fn parse(text: &str) -> Option<Map<String, Value>> {
    #[cfg(test)]
    PARSED.with(|n| n.set(n.get() + 1));
    serde_json::from_str(text).ok()
}

#[cfg(test)]
thread_local! {
    static PARSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many grains or pillar texts this thread has parsed.
#[cfg(test)]
pub fn parsed_here() -> u64 {
    PARSED.with(|n| n.get())
}

/// The file, how many lines it holds, and the grains it holds (the last line of each id).
#[derive(Debug)]
pub struct GrainsCache {
    path: PathBuf,
    file: Option<File>,
    lines: usize,
    all: Grains,
}

impl GrainsCache {
    /// Reads the cache (a missing or torn file gives what it can) and compacts it if needed.
    pub fn open(cachedir: &Path) -> (GrainsCache, Grains) {
        let path = cachedir.join("grains.jsonl");
        let mut grains = Grains::new();
        let entries = read_json_lines::<Value>(&path).unwrap_or_else(|e| {
            log::error!("cannot read {}: {e}", path.display());
            Vec::new()
        });
        let lines = entries.len();
        for entry in entries {
            let Value::Object(mut entry) = entry else { continue };
            if let (Some(Value::String(id)), Some(Value::Object(map))) =
                (entry.remove("id"), entry.remove("grains"))
            {
                if validate_id(&id).is_ok() {
                    grains.insert(id, text(&map));
                }
            }
        }
        let mut cache = GrainsCache { path, file: None, lines, all: grains.clone() };
        cache.compact_if_stale();
        (cache, grains)
    }

    /// Appends the new grains (JSON object text) of a batch of minions (a turn's worth of
    /// connecting minions) in one write, compacting the file when most of its lines are
    /// superseded.
    pub fn record_all(&mut self, batch: Vec<(String, Arc<str>)>) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(open_line_log(&self.path)?);
        }
        let file = self.file.as_mut().expect("opened above");
        let mut text = Vec::with_capacity(batch.iter().map(|(_, g)| g.len() + 64).sum());
        for (id, grains) in &batch {
            push_line(&mut text, id, grains);
        }
        file.write_all(&text)?;
        self.lines += batch.len();
        self.all.extend(batch);
        self.compact_if_stale();
        Ok(())
    }

    /// Rewrites the file with one line per minion when most lines are superseded.
    fn compact_if_stale(&mut self) {
        let all = &self.all;
        if self.lines <= 2 * all.len() + 1000 {
            return;
        }
        let mut ids: Vec<&String> = all.keys().collect();
        ids.sort();
        let mut text = Vec::new();
        for id in ids {
            push_line(&mut text, id, &all[id]);
        }
        match write_cache(&self.path, &text, 0o600) {
            Ok(()) => {
                self.file = None; // the old handle points at the replaced file
                self.lines = self.all.len();
            }
            Err(e) => log::error!("cannot compact {}: {e}", self.path.display()),
        }
    }
}

fn push_line(text: &mut Vec<u8>, id: &str, grains: &str) {
    text.extend_from_slice(br#"{"id":"#);
    serde_json::to_writer(&mut *text, id).expect("a string serialises");
    text.extend_from_slice(br#","grains":"#);
    text.extend_from_slice(grains.as_bytes());
    text.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grains(v: i64) -> Map<String, Value> {
        let Value::Object(map) = json!({"os": "Linux", "v": v}) else { unreachable!() };
        map
    }

    #[test]
    fn the_last_grains_of_each_minion_survive_a_restart_and_the_file_stays_small() {
        let dir = std::env::temp_dir().join(format!("halite-grains-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (mut cache, mut all) = GrainsCache::open(&dir);
        assert!(all.is_empty());
        for v in 0..3000 {
            let id = format!("m{}", v % 2);
            all.insert(id.clone(), text(&grains(v)));
            cache.record_all(vec![(id.clone(), text(&grains(v)))]).unwrap();
        }
        // A crash mid-line, inside a multi-byte character: the torn line is skipped, and the
        // next record after the restart is not glued onto it.
        let path = dir.join("grains.jsonl");
        let tear = b"{\"id\":\"m9\",\"grains\":{\"os\":\"\xc3";
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(tear).unwrap();
        let (mut restarted, again) = GrainsCache::open(&dir);
        assert_eq!(again, all);
        assert_eq!(parse(&again["m1"]).unwrap(), grains(2999));
        restarted.record_all(vec![("m3".into(), text(&grains(3)))]).unwrap();
        let (_, after) = GrainsCache::open(&dir);
        assert_eq!(parse(&after["m3"]).unwrap()["v"], 3);
        assert_eq!(after.len(), 3);
        let lines = std::fs::read(&path).unwrap().iter().filter(|&&b| b == b'\n').count();
        assert!(lines <= 1004, "compacted: {lines} lines");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
