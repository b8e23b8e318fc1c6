//! The thread where a beacon module that may block runs, one per such beacon (`service`
//! waits for `systemctl`, `log` reads a file, `diskusage`'s `statvfs` may hang on a dead
//! mount): the module goes there with its state and comes back with its events, through
//! channels and the loop's `Waker`.

use super::{Module, Payload};
use mio::Waker;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

type Done = (Box<dyn Module>, Vec<Payload>);

pub(super) struct Worker {
    jobs: Sender<Box<dyn Module>>,
    results: Receiver<Done>,
}

impl Worker {
    pub fn start(waker: Arc<Waker>) -> std::io::Result<Worker> {
        let (jobs, inbox) = mpsc::channel::<Box<dyn Module>>();
        let (outbox, results) = mpsc::channel();
        std::thread::Builder::new().name("beacons".into()).stack_size(256 * 1024).spawn(
            move || {
                for mut module in inbox {
                    // A module that panics loses its run, not the thread.
                    let run =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.check()));
                    let payloads = run.unwrap_or_default();
                    if outbox.send((module, payloads)).is_err() {
                        return; // the loop is gone
                    }
                    let _ = waker.wake();
                }
            },
        )?;
        Ok(Worker { jobs, results })
    }

    /// Hands a module to the thread; gives it back if the thread is gone.
    pub fn run(&self, module: Box<dyn Module>) -> Result<(), Box<dyn Module>> {
        self.jobs.send(module).map_err(|e| e.0)
    }

    /// Modules that finished their run, with their events.
    pub fn done(&self) -> Vec<Done> {
        self.results.try_iter().collect()
    }
}
