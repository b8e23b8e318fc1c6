//! Salt's rolling batch (`salt -b N|N%`, salt/cli/batch.py) without I/O: the batch size and
//! its rounding, and the `Scheduler` that says which minions start when, so at most N run at
//! once and a finished minion's slot is held for `--batch-wait`. `batch_run` drives it.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// `-b`'s value: a count, or a percentage of the minions that answered the ping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    Count(usize),
    Percent(f64),
}

impl BatchSize {
    /// `3`, `10%` or `%10`, as Salt's `get_bnum` reads them; else Salt's text for invalid
    /// batch data. Zero, negative and non-finite sizes are refused too (Salt would loop
    /// forever or crash on them).
    pub fn parse(text: &str) -> Result<BatchSize, String> {
        let invalid = || {
            format!("Invalid batch data sent: {text}\nData must be in the form of %10, 10% or 3")
        };
        if text.contains('%') {
            let pct: f64 = text.trim_matches('%').trim().parse().map_err(|_| invalid())?;
            if !pct.is_finite() || pct <= 0.0 {
                return Err(invalid());
            }
            return Ok(BatchSize::Percent(pct));
        }
        match text.trim().parse::<usize>() {
            Ok(0) | Err(_) => Err(invalid()),
            Ok(n) => Ok(BatchSize::Count(n)),
        }
    }

    /// How many run at once out of `minions`: Salt's `pct / 100 * minions`, rounded up
    /// below one and down from there (`10%` of 5 is 1, `50%` of 5 is 2); at least one.
    pub fn of(self, minions: usize) -> usize {
        match self {
            BatchSize::Count(n) => n,
            BatchSize::Percent(pct) => {
                let share = pct / 100.0 * minions as f64;
                let n = if share < 1.0 { share.ceil() } else { share.floor() };
                // Above 100% the cast saturates; nothing runs more than all minions anyway.
                (n as usize).max(1)
            }
        }
    }
}

/// `--batch-wait`'s seconds (Salt's float: a negative wait is none), refused with optparse's
/// text when not a number, and past a year (Salt's datetime arithmetic overflows first).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let invalid = || format!("option --batch-wait: invalid floating-point value: '{text}'");
    let secs: f64 = text.trim().parse().map_err(|_| invalid())?;
    if !secs.is_finite() {
        return Err(invalid());
    }
    if secs > 365.0 * 86400.0 {
        return Err(format!("option --batch-wait: {text} seconds is more than a year"));
    }
    Duration::try_from_secs_f64(secs.max(0.0)).map_err(|_| invalid())
}

/// Which minions to start next. Minions start in the order given; a minion that finished
/// (returned, or given up on) frees its slot at once, or `wait` later.
#[derive(Debug)]
pub struct Scheduler {
    to_run: VecDeque<String>,
    active: BTreeSet<String>,
    /// When each held slot is freed, in order (every hold has the same length).
    held: VecDeque<Instant>,
    size: usize,
    wait: Duration,
}

impl Scheduler {
    pub fn new(minions: Vec<String>, size: usize, wait: Duration) -> Scheduler {
        Scheduler {
            to_run: minions.into(),
            active: BTreeSet::new(),
            held: VecDeque::new(),
            size: size.max(1),
            wait,
        }
    }

    /// The minions to start at `now` (none when every slot is busy or held).
    pub fn start(&mut self, now: Instant) -> Vec<String> {
        while self.held.front().is_some_and(|t| *t <= now) {
            self.held.pop_front();
        }
        let busy = self.active.len() + self.held.len();
        let free = self.size.saturating_sub(busy).min(self.to_run.len());
        let next: Vec<String> = self.to_run.drain(..free).collect();
        self.active.extend(next.iter().cloned());
        next
    }

    /// `id` is done; its slot is held until `now + wait`. Unknown ids are ignored.
    pub fn finished(&mut self, id: &str, now: Instant) {
        if self.active.remove(id) && !self.wait.is_zero() {
            self.held.push_back(now + self.wait);
        }
    }

    /// When a held slot frees, if minions are still waiting to start.
    pub fn next_release(&self) -> Option<Instant> {
        match self.to_run.is_empty() {
            true => None,
            false => self.held.front().copied(),
        }
    }

    /// Every minion started and finished.
    pub fn done(&self) -> bool {
        self.to_run.is_empty() && self.active.is_empty()
    }

    pub fn running(&self) -> usize {
        self.active.len()
    }
}

/// Salt's `"\nExecuting run on {sorted(next_)}\n"` line: a Python list of Python strings.
pub fn executing_line(ids: &[String]) -> String {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let mut out = String::from("\nExecuting run on [");
    for (i, id) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        halite_common::pyrepr::repr_str(id, &mut out);
    }
    out.push_str("]\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_round_as_salt() {
        assert_eq!(BatchSize::parse("3"), Ok(BatchSize::Count(3)));
        assert_eq!(BatchSize::parse("10%"), Ok(BatchSize::Percent(10.0)));
        assert_eq!(BatchSize::parse("%10"), Ok(BatchSize::Percent(10.0)));
        assert_eq!(BatchSize::parse("12.5%"), Ok(BatchSize::Percent(12.5)));
        for bad in ["", "x", "3.5", "-1", "0", "0%", "-5%", "nan%", "inf%", "%", "1e999%"] {
            let err = BatchSize::parse(bad).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "Invalid batch data sent: {bad}\nData must be in the form of %10, 10% or 3"
                )
            );
        }
        let pct = |p: f64, n| BatchSize::Percent(p).of(n);
        assert_eq!((pct(10.0, 5), pct(50.0, 5), pct(40.0, 5), pct(100.0, 5)), (1, 2, 2, 5));
        assert_eq!(
            (pct(10.0, 25), pct(1.0, 1000), pct(0.01, 3), pct(1e300, 4)),
            (2, 10, 1, usize::MAX)
        );
        assert_eq!(BatchSize::Count(2).of(5), 2);
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batch_wait_is_seconds_as_salt_reads_them() {
        assert_eq!(parse_wait("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_wait("-3"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("31536000"), Ok(Duration::from_secs(31_536_000)));
        for bad in ["x", "", "nan", "inf", "-inf", "1,5"] {
            assert_eq!(
                parse_wait(bad),
                Err(format!("option --batch-wait: invalid floating-point value: '{bad}'"))
            );
        }
        assert_eq!(
            parse_wait("1e300"),
            Err("option --batch-wait: 1e300 seconds is more than a year".into())
        );
    }

    #[test]
    fn at_most_size_run_and_a_return_frees_a_slot() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(ids(&["a", "b", "c", "d", "e"]), 2, Duration::ZERO);
        assert_eq!(s.start(t0), ids(&["a", "b"]));
        assert_eq!(s.start(t0), ids(&[]));
        s.finished("b", t0);
        s.finished("b", t0);
        s.finished("zz", t0);
        assert_eq!(s.start(t0), ids(&["c"]));
        assert_eq!(s.running(), 2);
        s.finished("a", t0);
        s.finished("c", t0);
        assert_eq!(s.start(t0), ids(&["d", "e"]));
        assert!(!s.done());
        s.finished("d", t0);
        s.finished("e", t0);
        assert!(s.done());
        assert_eq!(s.next_release(), None);
    }

    #[test]
    fn batch_wait_holds_the_slot() {
        let t0 = Instant::now();
        let wait = Duration::from_secs(2);
        let mut s = Scheduler::new(ids(&["a", "b", "c"]), 1, wait);
        assert_eq!(s.start(t0), ids(&["a"]));
        s.finished("a", t0 + Duration::from_secs(1));
        assert_eq!(s.start(t0 + Duration::from_secs(2)), ids(&[]));
        assert_eq!(s.next_release(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(s.start(t0 + Duration::from_secs(3)), ids(&["b"]));
        s.finished("b", t0 + Duration::from_secs(3));
        assert_eq!(s.start(t0 + Duration::from_secs(5)), ids(&["c"]));
        s.finished("c", t0 + Duration::from_secs(5));
        // Nothing left to start: the held slot no longer matters.
        assert_eq!(s.next_release(), None);
        assert!(s.done());
    }

    #[test]
    fn executing_lines_are_python_lists() {
        assert_eq!(
            executing_line(&ids(&["m2", "m1", "it's"])),
            "\nExecuting run on [\"it's\", 'm1', 'm2']\n\n"
        );
    }
}
