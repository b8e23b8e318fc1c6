//! The minion's side of the `salt://` file server: job threads ask, the loop forwards the
//! question over the session and routes the answer back. Fetched files are cached under
//! `cachedir/files/base/` and fetched again only when the master's hash differs.

use crate::states::Fileserver;
use halite_common::crypto::sha256_hex;
use halite_common::encoding::unbase64;
use halite_common::files::write_cache;
use halite_common::proto::{FileOp, FileReply};
use mio::Waker;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a job waits for one answer (a master that went away mid-fetch).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One question from a job thread, with where to send the answer.
pub struct FileCall {
    pub op: FileOp,
    pub reply: Sender<FileReply>,
}

/// The job threads' handle: a channel to the loop plus the cache directory.
pub struct RemoteFiles {
    calls: Mutex<Sender<FileCall>>,
    waker: Arc<Waker>,
    cache: PathBuf,
}

impl RemoteFiles {
    /// The handle for jobs, and the receiving end the loop drains.
    pub fn new(waker: Arc<Waker>, cachedir: &Path) -> (RemoteFiles, Receiver<FileCall>) {
        let (tx, rx) = mpsc::channel();
        let files =
            RemoteFiles { calls: Mutex::new(tx), waker, cache: cachedir.join("files/base") };
        (files, rx)
    }

    fn ask(&self, op: FileOp) -> Result<FileReply, String> {
        let (reply, answer) = mpsc::channel();
        let sent =
            self.calls.lock().map_err(|_| "minion is stopping")?.send(FileCall { op, reply });
        sent.map_err(|_| "minion is stopping")?;
        let _ = self.waker.wake();
        match answer.recv_timeout(ANSWER_TIMEOUT) {
            Ok(FileReply::Error { message }) => Err(message),
            Ok(reply) => Ok(reply),
            Err(_) => Err("no answer from the master's file server".into()),
        }
    }

    /// Where `path` is cached; `None` for a path that could leave the cache directory.
    fn cached(&self, path: &str) -> Option<PathBuf> {
        let relative = Path::new(path);
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.cache.join(relative))
    }
}

impl Fileserver for RemoteFiles {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let path = path.strip_prefix("salt://").unwrap_or(path);
        let (sha256, size) = match self.ask(FileOp::Hash { path: path.into() })? {
            FileReply::Hash { sha256, size } => (sha256, size),
            other => return Err(format!("unexpected file server answer: {other:?}")),
        };
        let cached = self.cached(path).ok_or_else(|| format!("salt://{path}: refused"))?;
        if let Ok(bytes) = std::fs::read(&cached) {
            if sha256_hex(&bytes) == sha256 {
                return Ok(bytes);
            }
        }
        let mut data = Vec::with_capacity(size.min(64 << 20) as usize);
        while (data.len() as u64) < size {
            let offset = data.len() as u64;
            match self.ask(FileOp::Read { path: path.into(), offset })? {
                FileReply::Chunk { data: chunk, .. } => {
                    let bytes = unbase64(&chunk).ok_or("file server sent bad base64")?;
                    if bytes.is_empty() {
                        return Err(format!("salt://{path} changed while being fetched"));
                    }
                    data.extend_from_slice(&bytes);
                }
                other => return Err(format!("unexpected file server answer: {other:?}")),
            }
        }
        if sha256_hex(&data) != sha256 {
            return Err(format!("salt://{path} changed while being fetched; try again"));
        }
        if let Some(dir) = cached.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = write_cache(&cached, &data, 0o600) {
            log::warn!("cannot cache salt://{path}: {e}");
        }
        Ok(data)
    }

    fn hash(&self, path: &str) -> Result<String, String> {
        let path = path.strip_prefix("salt://").unwrap_or(path);
        match self.ask(FileOp::Hash { path: path.into() })? {
            FileReply::Hash { sha256, .. } => Ok(sha256),
            other => Err(format!("unexpected file server answer: {other:?}")),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        match self.ask(FileOp::List)? {
            FileReply::List { paths } => Ok(paths),
            other => Err(format!("unexpected file server answer: {other:?}")),
        }
    }
}

/// The loop's side: questions in flight, by request number.
#[derive(Default)]
pub struct InFlight {
    next: u64,
    waiting: HashMap<u64, Sender<FileReply>>,
}

impl InFlight {
    /// Numbers a call and keeps its reply channel.
    pub fn start(&mut self, reply: Sender<FileReply>) -> u64 {
        self.next += 1;
        self.waiting.insert(self.next, reply);
        self.next
    }

    /// Routes an answer to the job that asked.
    pub fn finish(&mut self, req: u64, reply: FileReply) {
        if let Some(tx) = self.waiting.remove(&req) {
            let _ = tx.send(reply);
        }
    }

    /// The session ended: every waiting job gets an error at once.
    pub fn fail_all(&mut self, why: &str) {
        for (_, tx) in self.waiting.drain() {
            let _ = tx.send(FileReply::Error { message: why.to_string() });
        }
    }
}
