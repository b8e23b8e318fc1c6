//! Which master the minion talks to: its one master, or with `master_type: failover` each of
//! its masters in turn, one at a time, moving on when the current one is lost and (with
//! `master_failback`) going back to the first once it answers again. Decisions only; the loop
//! connects, probes and keeps time.

use halite_common::config::{MasterAddress, MinionConfig};
use std::time::{Duration, Instant};

/// Failback checks when neither `master_failback_interval` nor `master_alive_interval` is set.
const DEFAULT_FAILBACK_INTERVAL: Duration = Duration::from_secs(30);

/// What to do after losing (or failing to reach) the current master.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Try the next master now: not every master was tried since the last session.
    Now,
    /// Every master failed in turn: wait the reconnect backoff first.
    Backoff,
}

#[derive(Debug)]
pub struct Masters {
    list: Vec<MasterAddress>,
    current: usize,
    failover: bool,
    /// Masters that failed since the last session.
    failed: usize,
    failback: Option<Duration>,
    next_failback: Option<Instant>,
    /// The master the start events were last fired on.
    started_on: Option<usize>,
}

impl Masters {
    /// The config's masters, shuffled by `shuffle` when `random_master` is set.
    pub fn new(cfg: &MinionConfig, shuffle: impl FnOnce(&mut [MasterAddress])) -> Masters {
        let mut list = cfg.masters.clone();
        if cfg.failover && cfg.random_master {
            shuffle(&mut list);
        }
        let failback =
            (cfg.failover && cfg.master_failback).then(|| match cfg.master_failback_interval {
                d if d.is_zero() => DEFAULT_FAILBACK_INTERVAL,
                d => d,
            });
        Masters {
            list,
            current: 0,
            failover: cfg.failover,
            failed: 0,
            failback,
            next_failback: None,
            started_on: None,
        }
    }

    pub fn current(&self) -> &MasterAddress {
        &self.list[self.current]
    }

    /// Every master, in the order tried (for the start-up log line).
    pub fn all(&self) -> &[MasterAddress] {
        &self.list
    }

    /// The current master could not be reached or was lost: with failover, the next one is
    /// current now.
    pub fn lost(&mut self) -> Next {
        self.next_failback = None;
        if !self.failover || self.list.len() == 1 {
            return Next::Backoff;
        }
        self.current = (self.current + 1) % self.list.len();
        self.failed += 1;
        if self.failed < self.list.len() {
            Next::Now
        } else {
            self.failed = 0;
            Next::Backoff
        }
    }

    /// A session is up with the current master: whether the start events are due (they are
    /// fired once per process and master, so a failover's new master sees them too).
    pub fn live(&mut self, now: Instant) -> bool {
        self.failed = 0;
        self.next_failback = match (self.failback, self.current) {
            (Some(every), current) if current != 0 => Some(now + every),
            _ => None,
        };
        let due = self.started_on != Some(self.current);
        self.started_on = Some(self.current);
        due
    }

    /// The first master, when it is time to see whether it answers again.
    pub fn failback_due(&self, now: Instant) -> Option<&MasterAddress> {
        self.next_failback.filter(|&at| now >= at).map(|_| &self.list[0])
    }

    /// When the next failback check is due, if one is.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_failback
    }

    /// The first master did not answer: ask again one interval later.
    pub fn probe_failed(&mut self, now: Instant) {
        if let (Some(every), Some(_)) = (self.failback, self.next_failback) {
            self.next_failback = Some(now + every);
        }
    }

    /// The first master answered: it is current again.
    pub fn fail_back(&mut self) {
        self.current = 0;
        self.failed = 0;
        self.next_failback = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::config::parse_minion;
    use std::path::Path;

    fn masters(extra: &str) -> Masters {
        let text = format!("master: ['a:1', 'b:2', 'c:3']\nmaster_type: failover\n{extra}");
        let cfg = parse_minion(&text, Path::new("/"), "m").unwrap().config;
        Masters::new(&cfg, |list| list.reverse())
    }

    #[test]
    fn each_master_in_turn_then_the_backoff() {
        let mut m = masters("");
        let now = Instant::now();
        assert_eq!(m.current().host, "a");
        assert!(m.live(now), "start events on the first session");
        assert_eq!(m.lost(), Next::Now);
        assert_eq!(m.current().host, "b");
        assert_eq!(m.lost(), Next::Now);
        assert_eq!(m.current().host, "c");
        assert_eq!(m.lost(), Next::Backoff, "all three failed in a row");
        assert_eq!(m.current().host, "a");
        assert!(!m.live(now), "the same master again: no second start events");
        assert_eq!(m.lost(), Next::Now);
        assert!(m.live(now), "a new master hears the start events");
        assert_eq!(m.failback_due(now + Duration::from_secs(3600)), None, "no failback asked");
    }

    #[test]
    fn failback_checks_the_first_master_every_interval() {
        let mut m = masters("master_failback: true\nmaster_alive_interval: 5\n");
        let now = Instant::now();
        m.live(now);
        assert_eq!(m.next_deadline(), None, "on the first master there is nothing to check");
        m.lost();
        m.live(now);
        assert_eq!(m.failback_due(now), None);
        let due = now + Duration::from_secs(5);
        assert_eq!(m.next_deadline(), Some(due));
        assert_eq!(m.failback_due(due).map(|a| a.host.as_str()), Some("a"));
        m.probe_failed(due);
        assert_eq!(m.next_deadline(), Some(due + Duration::from_secs(5)));
        m.fail_back();
        assert_eq!(m.current().host, "a");
        assert!(m.live(due), "back on the first master: its start events again");
    }

    #[test]
    fn random_master_shuffles_and_one_master_never_moves() {
        let m = masters("random_master: true\n");
        assert_eq!(m.current().host, "c");
        let cfg = parse_minion("master: solo\n", Path::new("/"), "m").unwrap().config;
        let mut one = Masters::new(&cfg, |_| unreachable!());
        assert_eq!(one.lost(), Next::Backoff);
        assert_eq!(one.current().to_string(), "solo:4506");
    }
}
