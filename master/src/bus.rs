//! The master's in-process event queue and the event log it drains into.
//!
//! Producers only push ([`Bus::fire`], or [`Bus::fire_caused`] with the causal chain passed
//! explicitly); the loop drains the queue once per turn into a batch of lines, which the
//! core hands to its log thread ([`EventLog::append_all`]); once the batch is written, the
//! core gives the events to the subscribers and the reactor. Firing an event never does I/O,
//! and the loop never writes the log.

use halite_common::event::{minion_event_line, stamped_event_line, Event};
use halite_common::files::{make_private, open_line_log};
use halite_common::time::Utc;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The event queue, and the event log it drains into (written on the log thread only).
#[derive(Debug)]
pub struct Bus {
    queue: VecDeque<Queued>,
    log: Arc<Mutex<EventLog>>,
    /// The log's counters as of the last batch written.
    counts: LogCounts,
}

impl Bus {
    /// Opens (creating) the event log, rotated past `max_bytes` keeping `keep` old files;
    /// failing that, the master must not start.
    pub fn open(log_path: &Path, max_bytes: u64, keep: u32) -> io::Result<Bus> {
        let log = Arc::new(Mutex::new(EventLog::open(log_path, max_bytes, keep)?));
        Ok(Bus { queue: VecDeque::new(), log, counts: LogCounts::default() })
    }

    /// Stamps and queues an event nothing on the bus caused (a CLI, a minion, housekeeping):
    /// its chain is empty.
    pub fn fire(&mut self, tag: impl Into<String>, data: Map<String, Value>) {
        self.fire_from(tag, data, None, &[]);
    }

    /// Queues an event a reaction led to: `cause` is the chain of tags (oldest first) that
    /// ends with the event the reaction answered; the reactor limits its depth.
    pub fn fire_caused(
        &mut self,
        tag: impl Into<String>,
        data: Map<String, Value>,
        cause: &[String],
    ) {
        self.fire_from(tag, data, None, cause);
    }

    /// [`Bus::fire_caused`] for an event a peer at `source` caused (the reactor budgets by
    /// source).
    pub fn fire_from(
        &mut self,
        tag: impl Into<String>,
        data: Map<String, Value>,
        source: Option<IpAddr>,
        cause: &[String],
    ) {
        let mut event = Event::new(tag, data);
        event.chain = cause.to_vec();
        event.source = source;
        log::trace!("event {}", event.tag);
        self.queue.push_back(Queued::Event(event));
    }

    /// Stamps and queues a minion's event whose `data` is canonical JSON text
    /// ([`halite_common::canonical`]): its line is written now from that text, and its data
    /// is parsed only if the reactor wants the tag when the queue is drained. The same line
    /// and data as [`Bus::fire_from`] with `wrap_minion_event(id, tag, data, ts)`.
    pub fn fire_minion(
        &mut self,
        minion: MinionEvent<'_>,
        source: Option<IpAddr>,
        cause: &[String],
    ) {
        let stamp = Utc::now().stamp();
        let (line, data) = minion_event_line(minion.tag, minion.id, minion.data, minion.ts, &stamp);
        let event =
            Event { tag: minion.tag.to_string(), data: Map::new(), chain: cause.to_vec(), source };
        log::trace!("event {}", event.tag);
        self.queue.push_back(Queued::Line { event, line, data });
    }

    /// Stamps and queues an event whose data is already the JSON text of an object (a job
    /// return's, written once for the job cache and this line): as [`Bus::fire_caused`] with
    /// that object, which is parsed only if the reactor wants the tag.
    pub fn fire_text(&mut self, tag: impl Into<String>, data: &str, cause: &[String]) {
        let tag = tag.into();
        let (line, data) = stamped_event_line(&tag, data, &Utc::now().stamp());
        let event = Event { tag, data: Map::new(), chain: cause.to_vec(), source: None };
        log::trace!("event {}", event.tag);
        self.queue.push_back(Queued::Line { event, line, data });
    }

    /// Whether events wait to be drained (the loop then polls without sleeping).
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Every queued event, each with the line it is to be logged as: the log thread writes
    /// the lines, and subscribers get the same line, not a second serialisation. Past its
    /// line, an event's data is read only by the reactor: an event keeps it only if `wants`
    /// its tag (the data of a ping's 10,000 returns is not held while the log is written).
    pub fn drain(&mut self, wants: impl Fn(&str) -> bool) -> Vec<Logged> {
        let drained = self.queue.drain(..);
        drained
            .map(|queued| match queued {
                Queued::Event(mut event) => {
                    let line = event.to_json_line();
                    let has_data = wants(&event.tag);
                    if !has_data {
                        event.data = Map::new();
                    }
                    Logged { line, event, has_data }
                }
                Queued::Line { mut event, line, data } => {
                    let mut has_data = wants(&event.tag);
                    if has_data {
                        match serde_json::from_str(&line[data]) {
                            Ok(data) => event.data = data,
                            Err(e) => {
                                log::error!("event {} not given to the reactor: {e}", event.tag);
                                has_data = false;
                            }
                        }
                    }
                    Logged { line, event, has_data }
                }
            })
            .collect()
    }

    /// The event log, for the log thread.
    pub fn log(&self) -> Arc<Mutex<EventLog>> {
        Arc::clone(&self.log)
    }

    /// What the event log has written since the start (for the metrics endpoint).
    pub fn log_counts(&self) -> LogCounts {
        self.counts
    }

    /// The log thread wrote a batch: its counters now.
    pub fn logged(&mut self, counts: LogCounts) {
        self.counts = counts;
    }
}

/// A queued event.
#[derive(Debug)]
enum Queued {
    Event(Event),
    /// A minion's event with its line already written; `data` is the span of the line that
    /// holds the event's data object. `event.data` is empty until the drain.
    Line {
        event: Event,
        line: String,
        data: Range<usize>,
    },
}

/// A minion's event as [`Bus::fire_minion`] takes it: `data` is canonical JSON text.
#[derive(Debug, Clone, Copy)]
pub struct MinionEvent<'a> {
    pub tag: &'a str,
    /// The authenticated id.
    pub id: &'a str,
    pub data: &'a str,
    pub ts: u64,
}

/// The event log's counters since the master started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogCounts {
    /// Bytes appended (lines and their newlines).
    pub bytes: u64,
    pub rotations: u64,
}

/// The log, locked on the log thread (the loop never holds it); a panic while it was held
/// leaves whole lines only, so the lock is taken back.
pub fn lock(log: &Mutex<EventLog>) -> std::sync::MutexGuard<'_, EventLog> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An event drained from the bus, with its event-log line (`{"tag":…,"data":…}`).
#[derive(Debug)]
pub struct Logged {
    pub event: Event,
    pub line: String,
    /// Whether `event.data` is still there: the core drops it while the line is written
    /// when no reactor rule wants the tag (the line is all the rest reads).
    pub has_data: bool,
}

/// Append-only JSON-lines file of every event, rotated by size.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    /// Bytes in the current file (written or buffered).
    size: u64,
    max_bytes: u64,
    keep: u32,
    counts: LogCounts,
}

impl EventLog {
    fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<EventLog> {
        let file = open_append(path)?;
        let size = file.get_ref().metadata()?.len();
        let counts = LogCounts::default();
        let path = path.to_path_buf();
        let opened = EventLog { path, file: Some(file), size, max_bytes, keep, counts };
        // Rotations an older master left readable by others.
        for n in 1..=keep {
            let rotated = opened.numbered(n);
            if let Err(e) = File::open(&rotated).and_then(|f| make_private(&f, &rotated)) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("cannot make {} private: {e}", rotated.display());
                }
            }
        }
        Ok(opened)
    }

    fn numbered(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}.{n}", self.path.display()))
    }

    /// Appends a batch's lines and flushes them (on the log thread); the counters after it.
    pub fn append_all(&mut self, events: &[Logged]) -> LogCounts {
        for logged in events {
            self.append(&logged.event.tag, &logged.line);
        }
        self.flush();
        self.counts
    }

    fn append(&mut self, tag: &str, line: &str) {
        if self.size >= self.max_bytes {
            self.rotate();
        }
        let path = &self.path;
        let Some(file) = self.file.as_mut() else {
            log::error!("event log {} is not open; event {tag} NOT logged", path.display());
            return;
        };
        self.size += line.len() as u64 + 1;
        let written = file.write_all(line.as_bytes()).and_then(|()| file.write_all(b"\n"));
        match written {
            Ok(()) => self.counts.bytes += line.len() as u64 + 1,
            Err(e) => log::error!(
                "cannot write event log {}: {e}; event {tag} NOT logged",
                path.display()
            ),
        }
    }

    fn flush(&mut self) {
        if let Some(Err(e)) = self.file.as_mut().map(|f| f.flush()) {
            log::error!("cannot flush event log {}: {e}", self.path.display());
        }
    }

    /// `events.log` → `events.log.1` → … → `events.log.<keep>` (dropped), then a fresh file.
    /// Rotation happens between events, so every file holds whole lines only.
    fn rotate(&mut self) {
        self.flush();
        let _ = std::fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        match std::fs::rename(&self.path, self.numbered(1)) {
            Ok(()) => self.counts.rotations += 1,
            Err(e) => log::error!("cannot rotate event log {}: {e}", self.path.display()),
        }
        self.reopen();
    }

    /// Opens the path afresh (after rotation, or SIGHUP once logrotate moved the file).
    pub fn reopen(&mut self) {
        self.flush();
        match open_append(&self.path) {
            Ok(file) => {
                self.size = file.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
                self.file = Some(file);
                log::info!("event log {} (re)opened", self.path.display());
            }
            Err(e) => {
                // Keep writing to the old handle rather than losing events.
                log::error!("cannot reopen event log {}: {e}", self.path.display());
            }
        }
    }
}

/// The log holds every return, `cmd.run` output included: 0600 like the job cache (an
/// existing looser file is tightened), and a line a crash cut short is ended first.
fn open_append(path: &Path) -> io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = open_line_log(path)
        .map_err(|e| io::Error::new(e.kind(), format!("event log {}: {e}", path.display())))?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The case a mutable "current cause" broke: an event fired after a reaction's events,
    /// with nothing clearing a field in between, must not inherit their chain.
    #[test]
    fn an_uncaused_event_has_an_empty_chain_right_after_a_caused_one() {
        let dir = std::env::temp_dir().join(format!("halite-bus-{}", std::process::id()));
        let mut bus = Bus::open(&dir.join("events.log"), 1 << 20, 1).unwrap();
        let chain = vec!["salt/auth".to_string(), "salt/job/1/ret/m".to_string()];
        bus.fire_caused("salt/reactor/error", Map::new(), &chain);
        bus.fire("salt/presence/present", Map::new());
        bus.fire_from("salt/auth", Map::new(), Some([127, 0, 0, 1].into()), &[]);
        let events: Vec<Event> = bus.drain(|_| true).into_iter().map(|l| l.event).collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(events[0].chain, chain);
        assert_eq!(events[1].chain, Vec::<String>::new(), "{}", events[1].tag);
        assert_eq!(events[2].chain, Vec::<String>::new(), "{}", events[2].tag);
    }

    #[test]
    fn a_batch_is_written_whole_with_its_bytes_and_rotations_counted() {
        let dir = std::env::temp_dir().join(format!("halite-bus-batch-{}", std::process::id()));
        let path = dir.join("events.log");
        let mut bus = Bus::open(&path, 100, 2).unwrap();
        for n in 0..6 {
            bus.fire(format!("t/{n}"), Map::new());
        }
        let batch = bus.drain(|_| true);
        assert!(!bus.pending() && batch.len() == 6);
        let counts = lock(&bus.log()).append_all(&batch);
        let bytes: u64 = batch.iter().map(|l| l.line.len() as u64 + 1).sum();
        assert_eq!(counts.bytes, bytes);
        // Rotated between lines past 100 bytes: every file holds whole lines.
        assert!(counts.rotations >= 1, "{counts:?}");
        let rotated = std::fs::read_to_string(dir.join("events.log.1")).unwrap();
        assert!(rotated.ends_with('\n') && rotated.lines().all(|l| l.starts_with(r#"{"tag":"t/"#)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A minion's event given as text keeps its data only for the reactor, and then the
    /// data is the wrapped event's, `_stamp` included, as the line says; its chain and source
    /// come along either way.
    #[test]
    fn a_minion_events_data_is_parsed_only_when_the_reactor_wants_it() {
        let dir = std::env::temp_dir().join(format!("halite-bus-raw-{}", std::process::id()));
        let mut bus = Bus::open(&dir.join("events.log"), 1 << 20, 1).unwrap();
        let chain = vec!["salt/auth".to_string()];
        let source = Some(IpAddr::from([127, 0, 0, 2]));
        for tag in ["wanted/1", "other/1"] {
            let event = MinionEvent { tag, id: "m1", data: r#"{"a":[1]}"#, ts: 5 };
            bus.fire_minion(event, source, &chain);
        }
        let drained = bus.drain(|tag| tag.starts_with("wanted/"));
        let _ = std::fs::remove_dir_all(&dir);
        let [wanted, other] = &drained[..] else { panic!("{drained:?}") };
        assert!(wanted.has_data && !other.has_data);
        assert!(other.event.data.is_empty());
        let line: Value = serde_json::from_str(&wanted.line).unwrap();
        assert_eq!(Value::Object(wanted.event.data.clone()), line["data"]);
        assert_eq!(wanted.event.data["data"], serde_json::json!({"a": [1]}));
        assert_eq!(wanted.event.data["id"], "m1");
        for logged in &drained {
            assert_eq!((&logged.event.chain, logged.event.source), (&chain, source));
        }
    }
}
