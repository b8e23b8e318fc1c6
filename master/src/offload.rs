//! Blocking work off the master's loop: one thread runs jobs (job-cache writes, reads and scans,
//! the file server's reads and hashes, grains-cache appends) in submission order, and hands
//! each job's continuation back to the loop through a channel and a wake-up. The loop applies
//! continuations when they come; it never waits for the disk. Other threads (orchestrations)
//! hand their results back the same way through a [`Poster`].

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;

/// What the loop does with a job's result, on the loop, with the state `C`.
pub type Then<C> = Box<dyn FnOnce(&mut C) + Send>;

type Job<C> = Box<dyn FnOnce() -> Then<C> + Send>;

/// The loop's handle on the worker thread.
pub struct Offload<C> {
    tx: Sender<Job<C>>,
    rx: Receiver<Then<C>>,
    /// Continuations posted by other threads: not counted as jobs, so `busy` and
    /// `wait_idle` see only the worker's.
    posted: Receiver<Then<C>>,
    poster: Poster<C>,
    submitted: u64,
    completed: u64,
}

impl<C> std::fmt::Debug for Offload<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Offload {{ submitted: {}, completed: {} }}", self.submitted, self.completed)
    }
}

impl<C: 'static> Offload<C> {
    /// Starts the thread `name`; `wake` is called once results are waiting (after a run of
    /// jobs, not after each: a burst of returns costs one wake-up).
    pub fn spawn(name: &str, wake: impl Fn() + Send + Sync + 'static) -> io::Result<Offload<C>> {
        let (tx, jobs) = mpsc::channel::<Job<C>>();
        let (done, rx) = mpsc::channel::<Then<C>>();
        let (post, posted) = mpsc::channel::<Then<C>>();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
        let poster = Poster { tx: post, wake: Arc::clone(&wake) };
        thread::Builder::new().name(name.into()).spawn(move || {
            // Ends when the loop drops its sender (the master stopping).
            while let Ok(job) = jobs.recv() {
                let mut next = Some(job);
                while let Some(job) = next.take() {
                    // A job that panics (a bug) costs its own result, not the thread: the
                    // loop gets a continuation that does nothing, and the log says so.
                    let then = catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|_| {
                        log::error!("a disk job panicked; its result is lost");
                        Box::new(|_: &mut C| {})
                    });
                    if done.send(then).is_err() {
                        return;
                    }
                    next = jobs.try_recv().ok();
                }
                wake();
            }
        })?;
        Ok(Offload { tx, rx, posted, poster, submitted: 0, completed: 0 })
    }

    /// A handle other threads post continuations through.
    pub fn poster(&self) -> Poster<C> {
        self.poster.clone()
    }

    /// Queues `job`, which runs on the worker and returns what the loop does next.
    pub fn submit(&mut self, job: impl FnOnce() -> Then<C> + Send + 'static) {
        self.submitted += 1;
        if self.tx.send(Box::new(job)).is_err() {
            log::error!("the disk job thread is gone; a job was dropped");
        }
    }

    /// Continuations that have come back since the last call: the jobs' in submission order,
    /// then those posted by other threads, in posting order.
    pub fn finished(&mut self) -> Vec<Then<C>> {
        let mut done: Vec<Then<C>> = self.rx.try_iter().collect();
        self.completed += done.len() as u64;
        done.extend(self.posted.try_iter());
        done
    }

    /// Whether jobs are queued or running.
    pub fn busy(&self) -> bool {
        self.completed < self.submitted
    }

    /// Blocks until every submitted job is done (shutdown, tests) and returns the rest.
    pub fn wait_idle(&mut self) -> Vec<Then<C>> {
        let mut out = self.finished();
        while self.busy() {
            match self.rx.recv() {
                Ok(then) => {
                    self.completed += 1;
                    out.push(then);
                }
                Err(_) => break, // the thread died: nothing more will come
            }
        }
        out
    }
}

/// A cloneable handle for a thread that is not the worker (an orchestration) to give the
/// loop a continuation: the same wake-up as the worker's results.
pub struct Poster<C> {
    tx: Sender<Then<C>>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl<C> Clone for Poster<C> {
    fn clone(&self) -> Poster<C> {
        Poster { tx: self.tx.clone(), wake: Arc::clone(&self.wake) }
    }
}

impl<C> Poster<C> {
    /// Queues `then` for the loop and wakes it; false when the loop is gone (the master
    /// stopped: nobody is left to hear the result).
    pub fn post(&self, then: Then<C>) -> bool {
        let sent = self.tx.send(then).is_ok();
        if sent {
            (self.wake)();
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};

    #[test]
    fn jobs_run_in_order_and_their_continuations_come_back_in_order() {
        // The wake-up follows the run's last result: `wait_idle` may return before it.
        let (woke, wakes) = std::sync::mpsc::channel();
        let woke = Mutex::new(woke);
        let mut off: Offload<Vec<u32>> = Offload::spawn("t", move || {
            let _ = woke.lock().unwrap().send(());
        })
        .unwrap();
        for i in 0..100u32 {
            off.submit(move || Box::new(move |seen: &mut Vec<u32>| seen.push(i)));
        }
        let mut seen = Vec::new();
        for then in off.wait_idle() {
            then(&mut seen);
        }
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(!off.busy());
        assert!(wakes.recv_timeout(std::time::Duration::from_secs(30)).is_ok(), "never woken");
    }

    #[test]
    fn a_job_that_panics_costs_only_its_own_result() {
        let mut off: Offload<Vec<u32>> = Offload::spawn("t", || {}).unwrap();
        off.submit(|| panic!("a bug"));
        off.submit(|| Box::new(|seen: &mut Vec<u32>| seen.push(2)));
        let mut seen = Vec::new();
        for then in off.wait_idle() {
            then(&mut seen);
        }
        assert_eq!(seen, [2]);
    }

    /// Another thread's continuation reaches the loop with a wake-up, and is not mistaken
    /// for a job's: `busy` still waits for the job still running.
    #[test]
    fn a_posted_continuation_wakes_the_loop_and_is_not_counted_as_a_job() {
        let wakes = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&wakes);
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let held = Arc::clone(&gate);
        let mut off: Offload<Vec<u32>> = Offload::spawn("t", move || {
            *counted.lock().unwrap() += 1;
        })
        .unwrap();
        off.submit(move || {
            let (open, cv) = &*held;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Box::new(|seen: &mut Vec<u32>| seen.push(1))
        });
        let poster = off.poster();
        std::thread::spawn(move || assert!(poster.post(Box::new(|seen| seen.push(7)))))
            .join()
            .unwrap();
        assert_eq!(*wakes.lock().unwrap(), 1, "the post woke the loop");
        let mut seen = Vec::new();
        for then in off.finished() {
            then(&mut seen);
        }
        assert_eq!(seen, [7]);
        assert!(off.busy(), "the job still runs");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        for then in off.wait_idle() {
            then(&mut seen);
        }
        assert_eq!(seen, [7, 1]);
    }

    /// The loop never waits: `finished` returns at once while a job is still running.
    #[test]
    fn finished_does_not_wait_for_a_running_job() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let held = Arc::clone(&gate);
        let mut off: Offload<u32> = Offload::spawn("t", || {}).unwrap();
        off.submit(move || {
            let (open, cv) = &*held;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Box::new(|n: &mut u32| *n += 1)
        });
        assert!(off.finished().is_empty());
        assert!(off.busy());
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let mut n = 0;
        for then in off.wait_idle() {
            then(&mut n);
        }
        assert_eq!(n, 1);
    }
}
