//! The master's disk worker: one thread that writes and removes key files (each change fsynced,
//! file and directory, but for pending keys) in the order they were submitted, the ops queued
//! together as one batch, and reports each result back to the loop through a channel and a
//! wake-up (a `mio::Waker` in the daemon), as the minion's job threads do. The loop never
//! waits for the disk; it applies results when they come.

use halite_common::files::Staged;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

/// Most ops run as one batch.
const MAX_BATCH: usize = 512;

/// One change on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// Replace `path` with `data` atomically and durably (temp file, fsync, rename, fsync of
    /// the directory).
    Write { path: PathBuf, data: Vec<u8>, mode: u32 },
    /// Replace `path` with `data` atomically but not durably (no fsync): for what a crash may
    /// lose at no cost. A pending key is a request (its minion asks again, as a Salt master's
    /// never-fsynced `minions_pre` would have it), and most are accepted or removed before the
    /// kernel writes them back, so they cost no disk write at all: on a disk doing ~1,000
    /// small writes a second, an fsynced pend halved how fast new minions could come in.
    Unsynced { path: PathBuf, data: Vec<u8>, mode: u32 },
    /// Remove `path` and sync its directory; already gone is fine.
    Remove { path: PathBuf },
    /// Write `path` as `Write` does, then remove `from` only if that worked: a failed move
    /// loses no key.
    Move { from: PathBuf, path: PathBuf, data: Vec<u8>, mode: u32 },
}

impl DiskOp {
    fn path(&self) -> &PathBuf {
        match self {
            DiskOp::Write { path, .. }
            | DiskOp::Unsynced { path, .. }
            | DiskOp::Remove { path }
            | DiskOp::Move { path, .. } => path,
        }
    }
}

/// Runs a batch of ops (every op queued when the thread got to them), with the durability of
/// running them one by one but fewer journal commits: every new file is written, then every
/// durable one is synced (each still costs its own data write, ~1 ms on the disk measured),
/// then, in submission order, renamed into place or unlinked, then each directory a durable op
/// touched is synced once. A flood of new minions costs one file sync per accepted key and a
/// few directory syncs per batch, instead of five syncs per key.
fn run_batch(batch: &[(u64, DiskOp)]) -> Vec<Done> {
    let mut errors: Vec<Option<io::Error>> = batch.iter().map(|_| None).collect();
    let mut staged: Vec<Option<Staged>> = batch
        .iter()
        .zip(&mut errors)
        .map(|((_, op), error)| match op {
            DiskOp::Write { path, data, mode }
            | DiskOp::Unsynced { path, data, mode }
            | DiskOp::Move { path, data, mode, .. } => {
                Staged::write(path, data, *mode).map_err(|e| *error = Some(e)).ok()
            }
            DiskOp::Remove { .. } => None,
        })
        .collect();
    for ((slot, error), (_, op)) in staged.iter_mut().zip(&mut errors).zip(batch) {
        if matches!(op, DiskOp::Unsynced { .. }) {
            continue;
        }
        if let Some(Err(e)) = slot.as_ref().map(Staged::sync) {
            *slot = None; // dropped: its temp file is removed
            *error = Some(e);
        }
    }
    // Directories to sync, and which ops need each one.
    let mut dirs: Vec<(PathBuf, Vec<usize>)> = Vec::new();
    let mut touched = |dir: PathBuf, i: usize| match dirs.iter_mut().find(|(d, _)| *d == dir) {
        Some((_, ops)) => ops.push(i),
        None => dirs.push((dir, vec![i])),
    };
    for (i, (_, op)) in batch.iter().enumerate() {
        if errors[i].is_some() {
            continue; // a Move whose write failed keeps its source
        }
        let done = match (op, staged[i].take()) {
            (DiskOp::Write { .. }, Some(file)) => file.commit().map(|dir| touched(dir, i)),
            (DiskOp::Unsynced { .. }, Some(file)) => file.commit().map(drop),
            (DiskOp::Move { from, .. }, Some(file)) => file.commit().and_then(|dir| {
                touched(dir, i);
                unlink(from).map(|dir| dir.map_or((), |dir| touched(dir, i)))
            }),
            (DiskOp::Remove { path }, _) => {
                unlink(path).map(|dir| dir.map_or((), |d| touched(d, i)))
            }
            (_, None) => Ok(()), // failed above
        };
        if let Err(e) = done {
            errors[i] = Some(e);
        }
    }
    for (dir, ops) in dirs {
        if let Err(e) = halite_common::files::sync_dir(&dir) {
            for i in ops {
                errors[i].get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
            }
        }
    }
    batch
        .iter()
        .zip(errors)
        .map(|((ticket, op), error)| Done {
            ticket: *ticket,
            error: error.map(|e| {
                let (path, e) = (op.path().display().to_string(), e.to_string());
                // The errors of `Staged` and `sync_dir` name their file already.
                match e.contains(&path) || e.contains('/') {
                    true => e,
                    false => format!("{path}: {e}"),
                }
            }),
        })
        .collect()
}

/// Unlinks `path`; returns its directory, to be synced so that the removal (a Move's source,
/// a deleted key) survives a crash (else a rejected key could come back as accepted or
/// pending). `None` when it was already gone.
fn unlink(path: &Path) -> io::Result<Option<PathBuf>> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(path.parent().unwrap_or(Path::new(".")).to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
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
            while let Ok(first) = ops.recv() {
                let mut batch = vec![first];
                batch.extend(ops.try_iter().take(MAX_BATCH - 1));
                for result in run_batch(&batch) {
                    if done.send(result).is_err() {
                        return;
                    }
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
        // One wake-up per batch, after its results: the last may still be on its way.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while wakes.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "results but no wake-up");
            std::thread::yield_now();
        }
        assert!(!worker.busy());
        assert!(worker.finished().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue #10: a worker that dies (here its wake-up panics after the first batch) wakes
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
        let mut done = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while worker.busy() {
            assert!(std::time::Instant::now() < deadline, "first write never done: {done:?}");
            done.extend(worker.finished());
            std::thread::yield_now();
        }
        // Its result came back; the wake-up after it killed the thread (or is about to: the
        // thread takes no op between sending a batch's results and waking).
        worker.submit(write("b"));
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

    /// Ops queued together run as one batch, with each one's own result and the semantics of
    /// running them one by one: in order, a failed write's Move keeping its source, unsynced
    /// writes among synced ones.
    #[test]
    fn a_batch_keeps_the_order_and_the_failures_of_its_ops() {
        let dir = std::env::temp_dir().join(format!("halite-disk-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pre")).unwrap();
        std::fs::create_dir_all(dir.join("acc")).unwrap();
        std::fs::create_dir_all(dir.join("acc/blocked/inside")).unwrap();
        let write = |p: &str, data: &str| DiskOp::Write {
            path: dir.join(p),
            data: data.as_bytes().to_vec(),
            mode: 0o600,
        };
        let mv = |from: &str, to: &str| DiskOp::Move {
            from: dir.join(from),
            path: dir.join(to),
            data: b"key".to_vec(),
            mode: 0o600,
        };
        let mut batch = Vec::new();
        for n in 0..50 {
            // Pending keys are written unsynced: the same semantics, without the fsync.
            batch.push(match write(&format!("pre/m{n}"), "key") {
                DiskOp::Write { path, data, mode } if n % 2 == 0 => {
                    DiskOp::Unsynced { path, data, mode }
                }
                op => op,
            });
            batch.push(mv(&format!("pre/m{n}"), &format!("acc/m{n}")));
        }
        batch.push(write("pre/x", "key"));
        batch.push(mv("pre/x", "acc/blocked")); // a directory: the write fails
        batch.push(write("pre/y", "one"));
        batch.push(write("pre/y", "two"));
        batch.push(DiskOp::Remove { path: dir.join("pre/y") });
        batch.push(write("no/such/dir/z", ""));
        let ops: Vec<(u64, DiskOp)> = batch.into_iter().zip(1..).map(|(op, t)| (t, op)).collect();
        let done = run_batch(&ops);
        assert_eq!(done.len(), ops.len());
        let failed: Vec<u64> =
            done.iter().filter(|d| d.error.is_some()).map(|d| d.ticket).collect();
        assert_eq!(failed, [102, 106], "{done:?}");
        assert!(done[105].error.as_deref().unwrap().contains("no/such/dir/z"), "{done:?}");
        for n in 0..50 {
            assert!(!dir.join(format!("pre/m{n}")).exists());
            assert_eq!(std::fs::read(dir.join(format!("acc/m{n}"))).unwrap(), b"key");
        }
        assert!(dir.join("pre/x").exists(), "a failed move lost its source");
        assert!(!dir.join("pre/y").exists());
        let left: Vec<_> = std::fs::read_dir(dir.join("pre")).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "temp files left behind: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
