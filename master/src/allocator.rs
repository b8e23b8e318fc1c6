//! The master's allocator: mimalloc 2, tuned to give memory back to the system within a
//! tenth of a second; the render worker keeps the system's.
//!
//! The static binaries are linked with musl, whose allocator takes a lock on every call and
//! unmaps a group of blocks as soon as it empties, to map it again on the next loop turn:
//! under a flood of minion events a static master spent ~40% of its time in it, its page
//! faults and its `mmap`/`munmap` (perf; 90,000 `mmap` calls per 600,000 events). With
//! mimalloc the same master takes 25-30% less CPU per event, per handshake and per
//! `test.ping` (BENCHMARKS.md). Its defaults commit memory ahead, which kept 14 MiB more
//! resident with 10,000 minions connected: eager arena commits are off. Freed memory is
//! purged (given back) after 100 ms: after 1 ms, a flood of events faulted the same pages in
//! again every loop turn (235,000 page faults per 600,000 events, ~10% of the CPU per
//! event), while 1, 10 and 100 ms left the same resident size with 10,000 minions connected
//! (within the runs' spread). Transparent huge pages are off for the process: mimalloc asks
//! for them on its segments, so a segment touched anywhere held 2 MiB, and each purge of one
//! was a 2 MiB page zeroed again on the next touch (a glibc build held 12-14 MiB more with
//! 10,000 minions connected; the static build, no more). `PR_SET_THP_DISABLE` is inherited:
//! the render worker runs without them too.
//!
//! The render worker (the same binary, started with [`WORKER_ENV`] set) runs under
//! `RLIMIT_AS`, which counts address space reserved, not used: mimalloc's reservations (an
//! arena, 32 MiB segments) made the static worker fail its first allocations under the
//! default 256 MiB. It allocates little, so it uses the system's allocator, whose address
//! space is what it holds. The choice is made at the first allocation, from the
//! environment (read without allocating), and never changes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::raw::{c_int, c_long};
use std::sync::atomic::{AtomicU8, Ordering};

/// Set in the render worker's environment by the master that starts it.
pub const WORKER_ENV: &str = "HALITE_RENDER_WORKER";

extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
}

/// mimalloc 2's `mi_option_t` values (`mimalloc.h`); a test reads their defaults back, so a
/// renumbering in an update fails it.
const ARENA_EAGER_COMMIT: c_int = 4;
const PURGE_DELAY: c_int = 15;
const ALLOW_THP: c_int = 37;

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;
static CHOSEN: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The global allocator of `halite-master`: mimalloc, or the system's in the render worker.
pub struct Allocator;

impl Allocator {
    fn system(&self) -> bool {
        match CHOSEN.load(Ordering::Relaxed) {
            UNDECIDED => {
                // SAFETY: getenv with a NUL-terminated name; it allocates nothing. The first
                // allocation comes before any thread is started.
                let worker = unsafe { !libc::getenv(c"HALITE_RENDER_WORKER".as_ptr()).is_null() };
                let chosen = if worker { SYSTEM } else { MIMALLOC };
                CHOSEN.store(chosen, Ordering::Relaxed);
                chosen == SYSTEM
            }
            chosen => chosen == SYSTEM,
        }
    }
}

// SAFETY: each call goes to the allocator chosen before the first allocation, which never
// changes, so every block is freed or grown by the allocator that made it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.system() {
            true => System.alloc(layout),
            false => mimalloc::MiMalloc.alloc(layout),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.system() {
            true => System.alloc_zeroed(layout),
            false => mimalloc::MiMalloc.alloc_zeroed(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.system() {
            true => System.dealloc(ptr, layout),
            false => mimalloc::MiMalloc.dealloc(ptr, layout),
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match self.system() {
            true => System.realloc(ptr, layout, new_size),
            false => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
        }
    }
}

/// Sets mimalloc's options above; called first thing in `main` (they apply to memory
/// mapped from then on). Nothing to do in the render worker.
pub fn tune() {
    if Allocator.system() {
        return;
    }
    // SAFETY: plain setters of mimalloc's option table, valid at any time and thread-safe.
    unsafe {
        mi_option_set(ARENA_EAGER_COMMIT, 0);
        mi_option_set(PURGE_DELAY, 100);
        mi_option_set(ALLOW_THP, 0);
    }
    // SAFETY: prctl with integer arguments only. Where the system's THP setting is `always`,
    // mimalloc's option alone would not keep huge pages off the heap. It fails only on
    // kernels before 3.15, which have nothing to turn off; logging is not set up yet here.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn mi_option_get(option: c_int) -> c_long;
    }

    /// Nothing in the tests calls `tune`: each option reads its documented default.
    #[test]
    fn the_option_numbers_are_mimalloc_2s() {
        // SAFETY: a getter of mimalloc's option table.
        let get = |option| unsafe { mi_option_get(option) };
        assert_eq!(get(ARENA_EAGER_COMMIT), 2, "arena_eager_commit");
        assert_eq!(get(PURGE_DELAY), 10, "purge_delay");
        assert_eq!(get(ALLOW_THP), 1, "allow_thp");
    }

    #[test]
    fn the_worker_variable_is_the_one_read() {
        assert_eq!(c"HALITE_RENDER_WORKER".to_str(), Ok(WORKER_ENV));
    }
}
