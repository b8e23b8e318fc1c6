//! The master's allocator: mimalloc 2, tuned to give memory back to the system within a
//! millisecond.
//!
//! The static binaries are linked with musl, whose allocator takes a lock on every call and
//! unmaps a group of blocks as soon as it empties, to map it again on the next loop turn:
//! under a flood of minion events a static master spent ~40% of its time in it, its page
//! faults and its `mmap`/`munmap` (perf; 90,000 `mmap` calls per 600,000 events). With
//! mimalloc the same master takes 25-30% less CPU per event, per handshake and per
//! `test.ping` (BENCHMARKS.md). Its defaults commit memory ahead and purge it 10 ms after
//! it is freed, which kept 14 MiB more resident with 10,000 minions connected; without
//! eager arena commits and with a 1 ms purge delay it holds what musl's did.

use std::os::raw::{c_int, c_long};

pub use mimalloc::MiMalloc;

extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
}

/// mimalloc 2's `mi_option_t` values (`mimalloc.h`); a test reads their defaults back, so a
/// renumbering in an update fails it.
const ARENA_EAGER_COMMIT: c_int = 4;
const PURGE_DELAY: c_int = 15;

/// Sets the options above; called first thing in `main` (they apply to memory mapped from
/// then on).
pub fn tune() {
    // SAFETY: plain setters of mimalloc's option table, valid at any time and thread-safe.
    unsafe {
        mi_option_set(ARENA_EAGER_COMMIT, 0);
        mi_option_set(PURGE_DELAY, 1);
    }
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
    }
}
