//! The master's disk worker: one thread that writes and removes key files (each change fsynced,
//! file and directory) in the
//! order they were submitted, and reports each result back to the loop through a channel and a
//! wake-up (a `mio::Waker` in the daemon), as the minion's job threads do. The loop never
//! waits for the disk; it applies results when they come.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

/// One change on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// Replace `path` with `data` atomically and durably (temp file, fsync, rename, fsync of
    /// the directory).
    Write { path: PathBuf, data: Vec<u8>, mode: u32 },
    /// Remove `path` and sync its directory; already gone is fine.
    Remove { path: PathBuf },
    /// Write `path` as `Write` does, then remove `from` only if that worked: a failed move
    /// loses no key.
    Move { from: PathBuf, path: PathBuf, data: Vec<u8>, mode: u32 },
}

impl DiskOp {
    fn run(&self) -> io::Result<()> {
        match self {
            DiskOp::Write { path, data, mode } => {
                halite_common::files::write_atomic(path, data, *mode)
            }
            DiskOp::Remove { path } => remove(path),
            DiskOp::Move { from, path, data, mode } => {
                halite_common::files::write_atomic(path, data, *mode)?;
                remove(from)
            }
        }
    }

    fn path(&self) -> &PathBuf {
        match self {
            DiskOp::Write { path, .. } | DiskOp::Remove { path } | DiskOp::Move { path, .. } => {
                path
            }
        }
    }
}

/// Unlinks `path`, then syncs its directory so that the removal (a Move's source, a deleted
/// key) survives a crash: else a rejected key could come back as accepted or pending.
fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => halite_common::files::sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The result of the op submitted as `ticket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub ticket: u64,
    /// The error, naming the file, when the op failed.
    pub error: Option<String>,
}

/// The loop's handle on the worker thread. Tickets count up from 1 in submission order, and
/// results come back in that order.
#[derive(Debug)]
pub struct DiskWorker {
    tx: Sender<(u64, DiskOp)>,
    rx: Receiver<Done>,
    submitted: u64,
    completed: u64,
}

impl DiskWorker {
    /// Starts the thread; `wake` is called after each result is sent.
    pub fn spawn(wake: impl Fn() + Send + 'static) -> io::Result<DiskWorker> {
        let (tx, ops) = mpsc::channel::<(u64, DiskOp)>();
        let (done, rx) = mpsc::channel();
        thread::Builder::new().name("disk".into()).spawn(move || {
            // Ends when the loop drops its sender (the master stopping).
            for (ticket, op) in ops {
                let error = op.run().err().map(|e| {
                    let (path, e) = (op.path().display().to_string(), e.to_string());
                    // `write_atomic`'s errors name the file already.
                    match e.contains(&path) {
                        true => e,
                        false => format!("{path}: {e}"),
                    }
                });
                if done.send(Done { ticket, error }).is_err() {
                    return;
                }
                wake();
            }
        })?;
        Ok(DiskWorker { tx, rx, submitted: 0, completed: 0 })
    }

    /// Queues `op`; returns its ticket. If the thread is gone the op fails at once (reported
    /// by the next `finished`), never silently.
    pub fn submit(&mut self, op: DiskOp) -> u64 {
        self.submitted += 1;
        let ticket = self.submitted;
        if let Err(mpsc::SendError((_, op))) = self.tx.send((ticket, op)) {
            log::error!("disk worker is gone; not written: {}", op.path().display());
        }
        ticket
    }

    /// The last ticket handed out (0 before any).
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Whether ops are queued or running.
    pub fn busy(&self) -> bool {
        self.completed < self.submitted
    }

    /// Results that have come back since the last call, in ticket order. Also what notices a
    /// dead thread (a panic wakes nobody): the loop calls this from housekeeping too, and the
    /// ops the thread still owed come back failed.
    pub fn finished(&mut self) -> Vec<Done> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(done) => out.push(done),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    let owed = self.completed.max(out.last().map_or(0, |d: &Done| d.ticket)) + 1;
                    out.extend((owed..=self.submitted).map(|ticket| Done {
                        ticket,
                        error: Some("the disk worker thread died".into()),
                    }));
                    break;
                }
            }
        }
        if let Some(last) = out.last() {
            self.completed = last.ticket;
        }
        out
    }

    /// Blocks until every submitted op is done and returns the results (start-up, tests).
    pub fn wait_idle(&mut self) -> Vec<Done> {
        let mut out = self.finished();
        while self.busy() {
            match self.rx.recv() {
                Ok(done) => {
                    self.completed = done.ticket;
                    out.push(done);
                }
                Err(_) => out.extend(self.finished()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn ops_run_in_order_and_report_failures_by_ticket() {
        let dir = std::env::temp_dir().join(format!("halite-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&wakes);
        let mut worker = DiskWorker::spawn(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let file = dir.join("k");
        let write =
            |data: &[u8]| DiskOp::Write { path: file.clone(), data: data.into(), mode: 0o644 };
        assert_eq!(worker.submit(write(b"one")), 1);
        assert_eq!(worker.submit(write(b"two")), 2);
        let missing = dir.join("no/such/dir/k");
        worker.submit(DiskOp::Write { path: missing, data: vec![], mode: 0o644 });
        worker.submit(DiskOp::Remove { path: dir.join("never-there") });
        // A move whose write fails keeps its source.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        let from = file.clone();
        worker.submit(DiskOp::Move { from, path: blocked, data: vec![], mode: 0o644 });
        assert!(worker.busy());
        let done = worker.wait_idle();
        assert_eq!(done.iter().map(|d| d.ticket).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(done[4].error.is_some());
        assert_eq!(done[0].error, None);
        assert!(done[2].error.as_deref().unwrap().contains("no/such/dir/k"), "{done:?}");
        assert_eq!(done[3].error, None);
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        // Each wake precedes the next op; the last one may still be on its way.
        assert!(wakes.load(Ordering::SeqCst) >= 3);
        assert!(!worker.busy());
        assert!(worker.finished().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue #10: a worker that dies (here its wake-up panics after the first result) wakes
    /// nobody again. Asking `finished` without a wake, as housekeeping does, must fail every
    /// op it still owed, those submitted after its death too, instead of leaving them busy.
    #[test]
    fn a_dead_worker_is_found_without_a_wake_and_fails_what_it_owed() {
        let dir = std::env::temp_dir().join(format!("halite-disk-dead-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut worker = DiskWorker::spawn(|| panic!("wake failed (test)")).unwrap();
        let write = |name: &str| DiskOp::Write { path: dir.join(name), data: vec![], mode: 0o644 };
        worker.submit(write("a"));
        worker.submit(write("b"));
        let mut done = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while worker.busy() {
            assert!(std::time::Instant::now() < deadline, "dead worker never noticed: {done:?}");
            done.extend(worker.finished());
            std::thread::yield_now();
        }
        worker.submit(write("c"));
        done.extend(worker.finished());
        let died = Some("the disk worker thread died".to_string());
        let expected = [
            Done { ticket: 1, error: None },
            Done { ticket: 2, error: died.clone() },
            Done { ticket: 3, error: died },
        ];
        assert_eq!(done, expected);
        assert!(!worker.busy());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
