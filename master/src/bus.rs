//! The master's in-process event queue and the event log it drains into.
//!
//! Producers only push ([`Bus::fire`]); the loop drains the queue once per turn into the
//! consumers (the event log here; live subscribers in `server`; the reactor comes next), so firing an
//! event never does I/O on the producer's path.

use halite_common::event::Event;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The event queue and its consumers.
#[derive(Debug)]
pub struct Bus {
    queue: VecDeque<Event>,
    log: EventLog,
}

impl Bus {
    /// Opens (creating) the event log; failing that, the master must not start.
    pub fn open(log_path: &Path) -> io::Result<Bus> {
        Ok(Bus {
            queue: VecDeque::new(),
            log: EventLog::open(log_path)?,
        })
    }

    /// Stamps and queues an event.
    pub fn fire(&mut self, tag: impl Into<String>, data: Map<String, Value>) {
        let event = Event::new(tag, data);
        log::debug!("event {}", event.tag);
        self.queue.push_back(event);
    }

    /// Logs every queued event and hands them back for the other consumers (subscribers).
    pub fn drain(&mut self) -> Vec<Event> {
        if self.queue.is_empty() {
            return Vec::new();
        }
        let events: Vec<Event> = self.queue.drain(..).collect();
        for event in &events {
            self.log.append(event);
        }
        self.log.flush();
        events
    }

    /// Reopens the log file (SIGHUP, after logrotate moved it).
    pub fn reopen_log(&mut self) {
        self.log.reopen();
    }
}

/// Append-only JSON-lines file of every event.
#[derive(Debug)]
struct EventLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl EventLog {
    fn open(path: &Path) -> io::Result<EventLog> {
        let file = open_append(path)?;
        Ok(EventLog {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    fn append(&mut self, event: &Event) {
        let Some(file) = self.file.as_mut() else {
            log::error!(
                "event log {} is not open; event {} NOT logged",
                self.path.display(),
                event.tag
            );
            return;
        };
        let mut line = event.to_json_line();
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            log::error!(
                "cannot write event log {}: {e}; event {} NOT logged",
                self.path.display(),
                event.tag
            );
        }
    }

    fn flush(&mut self) {
        if let Some(Err(e)) = self.file.as_mut().map(|f| f.flush()) {
            log::error!("cannot flush event log {}: {e}", self.path.display());
        }
    }

    fn reopen(&mut self) {
        self.flush();
        match open_append(&self.path) {
            Ok(file) => {
                self.file = Some(file);
                log::info!("reopened event log {}", self.path.display());
            }
            Err(e) => log::error!("cannot reopen event log {}: {e}", self.path.display()),
        }
    }
}

fn open_append(path: &Path) -> io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("event log {}: {e}", path.display())))?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}
