//! The reactor's per-second budgets, sans-IO: renders (`reactor_rate_limit`) and render time
//! (`reactor_render_budget_ms`) per budget key — an SLS entry, or for an event with a source
//! address (`salt/auth`) the entry *from that address*, so one source cannot use up another's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why an event is not rendered: the SLS entries over which budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Rate(Vec<String>),
    Time(Vec<String>),
}

/// One second of one key.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    renders: u32,
    spent: Duration,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window { start: now, renders: 0, spent: Duration::ZERO }
    }
}

/// Every key's current window.
#[derive(Debug, Default)]
pub struct Budgets {
    windows: HashMap<String, Window>,
}

/// The budget key of each SLS entry of an event from `source`.
pub fn keys(files: &[String], source: Option<IpAddr>) -> Vec<String> {
    files
        .iter()
        .map(|sls| match source {
            Some(ip) => format!("{sls} from {ip}"),
            None => sls.clone(),
        })
        .collect()
}

impl Budgets {
    /// Counts one render under each of `keys` (paired with `files`), or says which budget
    /// refuses it this second: over `rate` renders first, then `time` spent (0 = no limit).
    pub fn admit(
        &mut self,
        files: &[String],
        keys: &[String],
        rate: u32,
        time: Duration,
        now: Instant,
    ) -> Option<Refusal> {
        let mut over_rate = Vec::new();
        let mut over_time = Vec::new();
        for (sls, key) in files.iter().zip(keys) {
            let w = self.windows.entry(key.clone()).or_insert(Window::new(now));
            if now.duration_since(w.start) >= Duration::from_secs(1) {
                *w = Window::new(now);
            }
            if rate > 0 && w.renders >= rate {
                over_rate.push(sls.clone());
            } else if !time.is_zero() && w.spent >= time {
                over_time.push(sls.clone());
            }
        }
        if !over_rate.is_empty() {
            return Some(Refusal::Rate(over_rate));
        }
        if !over_time.is_empty() {
            return Some(Refusal::Time(over_time));
        }
        for key in keys {
            if let Some(w) = self.windows.get_mut(key) {
                w.renders += 1;
            }
        }
        None
    }

    /// Charges a finished render's time to the current window of each of `keys`.
    pub fn charge(&mut self, keys: &[String], took: Duration) {
        for key in keys {
            if let Some(w) = self.windows.get_mut(key) {
                w.spent += took;
            }
        }
    }

    /// Forgets windows that ended (many sources must not grow the map for good).
    pub fn prune(&mut self, now: Instant) {
        self.windows.retain(|_, w| now.duration_since(w.start) < Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn render_time_is_budgeted_per_file_and_second() {
        let (mut b, t0, ms) = (Budgets::default(), Instant::now(), Duration::from_millis);
        let (files, other) = (s(&["costly.sls"]), s(&["cheap.sls"]));
        assert_eq!(b.admit(&files, &files, 0, ms(100), t0), None);
        b.charge(&files, ms(60));
        assert_eq!(b.admit(&files, &files, 0, ms(100), t0 + ms(1)), None);
        b.charge(&files, ms(60));
        let refused = b.admit(&files, &files, 0, ms(100), t0 + ms(2));
        assert_eq!(refused, Some(Refusal::Time(files.clone())));
        // Another file has its own budget; the next second starts afresh.
        assert_eq!(b.admit(&other, &other, 0, ms(100), t0 + ms(3)), None);
        assert_eq!(b.admit(&files, &files, 0, ms(100), t0 + ms(1000)), None);
        // No limit at 0.
        b.charge(&files, ms(5000));
        assert_eq!(b.admit(&files, &files, 0, Duration::ZERO, t0 + ms(1001)), None);
    }

    #[test]
    fn the_rate_is_checked_first_and_an_event_counts_only_when_admitted() {
        let (mut b, t0, ms) = (Budgets::default(), Instant::now(), Duration::from_millis);
        let files = s(&["a.sls", "b.sls"]);
        assert_eq!(b.admit(&files, &files, 2, ms(100), t0), None);
        b.charge(&files[..1], ms(200));
        assert_eq!(b.admit(&files, &files, 2, ms(100), t0), Some(Refusal::Time(s(&["a.sls"]))));
        let b_only = s(&["b.sls"]);
        assert_eq!(b.admit(&b_only, &b_only, 2, ms(100), t0), None);
        assert_eq!(b.admit(&files, &files, 2, ms(100), t0), Some(Refusal::Rate(s(&["b.sls"]))));
    }

    #[test]
    fn sources_have_their_own_windows_and_old_windows_are_forgotten() {
        let (mut b, t0, ms) = (Budgets::default(), Instant::now(), Duration::from_millis);
        let files = s(&["Minion.sls"]);
        let flood = keys(&files, Some("127.0.0.2".parse().unwrap()));
        let real = keys(&files, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(flood, s(&["Minion.sls from 127.0.0.2"]));
        assert_eq!(keys(&files, None), files);
        for _ in 0..3 {
            assert_eq!(b.admit(&files, &flood, 3, ms(100), t0), None);
        }
        assert_eq!(b.admit(&files, &flood, 3, ms(100), t0), Some(Refusal::Rate(files.clone())));
        assert_eq!(b.admit(&files, &real, 3, ms(100), t0), None);
        b.prune(t0 + ms(999));
        assert_eq!(b.windows.len(), 2);
        b.prune(t0 + ms(1000));
        assert!(b.windows.is_empty());
    }
}
