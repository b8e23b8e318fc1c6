//! The minion's pillar, compiled by the master (`pillar_roots`) and held in memory only:
//! the loop asks for it on every new session and on `saltutil.refresh_pillar`, and stores
//! the master's answer here; job threads read it (`pillar.*`, state runs) and ask for a
//! refresh through a channel, as they ask the file server. Pillar is secret: never logged,
//! never written to disk.

use mio::Waker;
use serde_json::{Map, Value};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a job waits for the first pillar of this process, or for a refresh.
const WAIT: Duration = Duration::from_secs(30);

/// A job thread's refresh request: the loop answers once the new pillar is stored.
pub type Refresh = Sender<Result<(), String>>;

/// The pillar the job threads share.
pub struct Pillar {
    state: Mutex<Loaded>,
    arrived: Condvar,
    refreshes: Mutex<Sender<Refresh>>,
    waker: Arc<Waker>,
}

#[derive(Default)]
struct Loaded {
    pillar: Arc<Map<String, Value>>,
    /// A master answer has come since the process started.
    loaded: bool,
}

impl Pillar {
    /// The shared pillar, and the receiving end of refresh requests the loop drains.
    pub fn new(waker: Arc<Waker>) -> (Arc<Pillar>, Receiver<Refresh>) {
        let (tx, rx) = mpsc::channel();
        let pillar = Pillar {
            state: Mutex::new(Loaded::default()),
            arrived: Condvar::new(),
            refreshes: Mutex::new(tx),
            waker,
        };
        (Arc::new(pillar), rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current pillar; a job that starts before the first one arrived (the session just
    /// came up) waits for it a while, then goes on with what there is.
    pub fn current(&self) -> Arc<Map<String, Value>> {
        let deadline = Instant::now() + WAIT;
        let mut state = self.lock();
        while !state.loaded {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("no pillar from the master yet; going on without it");
                break;
            }
            state = match self.arrived.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        Arc::clone(&state.pillar)
    }

    /// Salt's `saltutil.refresh_pillar(wait=True, timeout)`: asks the master for a new
    /// compile and waits until it is stored, at most `timeout`.
    pub fn refresh(&self, timeout: Duration) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        let sent = self.refreshes.lock().map_err(|_| "minion is stopping")?.send(tx);
        sent.map_err(|_| "minion is stopping")?;
        let _ = self.waker.wake();
        rx.recv_timeout(timeout).unwrap_or_else(|_| Err("no pillar from the master in time".into()))
    }

    /// The loop stores the master's answer.
    pub fn store(&self, pillar: Map<String, Value>) {
        let mut state = self.lock();
        state.pillar = Arc::new(pillar);
        state.loaded = true;
        self.arrived.notify_all();
    }
}

/// The loop's side: the request in flight and who waits for it, and who waits for the one
/// after (a refresh asked while a compile runs must see a compile that started after it).
#[derive(Default)]
pub struct Fetch {
    next_req: u64,
    /// The request the master is compiling.
    pub in_flight: Option<u64>,
    waiting: Vec<Refresh>,
    next: Vec<Refresh>,
}

impl Fetch {
    /// Numbers a new request, unless one is in flight (then `refresh` waits for the next).
    /// `Some(req)`: send `PillarRequest { req }` now.
    pub fn ask(&mut self, refresh: Option<Refresh>) -> Option<u64> {
        if self.in_flight.is_some() {
            self.next.extend(refresh);
            return None;
        }
        self.waiting.extend(refresh);
        self.next_req += 1;
        self.in_flight = Some(self.next_req);
        self.in_flight
    }

    /// The answer to `req` came: those waiting for it are told, and the next request is
    /// numbered when someone waits for one (`Some(req)`: send it).
    pub fn answered(&mut self, req: u64) -> Option<u64> {
        if self.in_flight != Some(req) {
            return None; // from an older session
        }
        self.in_flight = None;
        for tx in self.waiting.drain(..) {
            let _ = tx.send(Ok(()));
        }
        let next = std::mem::take(&mut self.next);
        match next.is_empty() {
            true => None,
            false => {
                let req = self.ask(None);
                self.waiting = next;
                req
            }
        }
    }

    /// The session ended: nobody will answer.
    pub fn fail_all(&mut self, why: &str) {
        self.in_flight = None;
        for tx in self.waiting.drain(..).chain(self.next.drain(..)) {
            let _ = tx.send(Err(why.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_during_a_compile_waits_for_the_next_one() {
        let mut fetch = Fetch::default();
        assert_eq!(fetch.ask(None), Some(1)); // the session's first request
        let (early, early_rx) = mpsc::channel();
        assert_eq!(fetch.ask(Some(early)), None);
        assert_eq!(fetch.answered(7), None); // not ours
        assert!(early_rx.try_recv().is_err());
        assert_eq!(fetch.answered(1), Some(2)); // compiled before the refresh: ask again
        assert!(early_rx.try_recv().is_err());
        assert_eq!(fetch.answered(2), None);
        assert_eq!(early_rx.try_recv().unwrap(), Ok(()));
        let (late, late_rx) = mpsc::channel();
        assert_eq!(fetch.ask(Some(late)), Some(3));
        fetch.fail_all("gone");
        assert_eq!(late_rx.try_recv().unwrap(), Err("gone".to_string()));
        assert_eq!(fetch.ask(None), Some(4));
    }
}
