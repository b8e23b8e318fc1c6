//! What an unauthenticated network may cost the master: how many connections may wait for
//! authentication (in all and per source address), how many descriptors minions may take, and
//! how fast one address may create pending keys (the HTTP listeners use the same counters
//! for their connections, and the webhooks for their requests). Counting only: the core decides.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Descriptors kept back for everything that is not a minion socket: the control socket and
/// its clients, key files, the job and grains caches, the event log, epoll, signals, wakers.
pub const FD_RESERVE: u64 = 64;

/// Why a new minion connection is closed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every descriptor network connections (minions, webhook and metrics clients) may use
    /// is taken.
    Descriptors { budget: usize },
    /// Too many connections in all are still unauthenticated.
    Total { max: usize },
    /// Too many connections from this address are still unauthenticated.
    PerAddress { max: usize },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Descriptors { budget } => write!(
                f,
                "all {budget} file descriptors for network connections are in use (RLIMIT_NOFILE)"
            ),
            Refusal::Total { max } => write!(
                f,
                "{max} connections already await authentication (max_pending_connections)"
            ),
            Refusal::PerAddress { max } => write!(
                f,
                "{max} connections from this address already await authentication \
                 (max_pending_connections_per_ip)"
            ),
        }
    }
}

/// The "source" a limit counts per: the address for IPv4 (and IPv4-mapped IPv6), the /64 for
/// IPv6, since one IPv6 host is routinely given a whole /64 and could otherwise be 2^64
/// sources.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Counts connections that are not yet a live session, in all and per source (`source_of`).
#[derive(Debug)]
pub struct Admission {
    /// Descriptors network connections (minions live or not, HTTP clients) may hold in all.
    budget: usize,
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    /// `nofile` is the soft RLIMIT_NOFILE. Unauthenticated connections get at most half the
    /// descriptor budget, so a flood cannot take the room live minions reconnect into.
    pub fn new(nofile: u64, max_total: usize, max_per_ip: usize) -> Admission {
        let budget = nofile.saturating_sub(FD_RESERVE).max(8);
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        Admission {
            budget,
            max_total: max_total.min(budget / 2).max(1),
            max_per_ip,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip`, or says why it must be closed. `open` is how many
    /// network connections are open now: minions (live or not) and HTTP clients together,
    /// whichever listener counts, so that no listener spends the reserve.
    pub fn admit(&mut self, ip: IpAddr, open: usize) -> Result<(), Refusal> {
        if open >= self.budget {
            return Err(Refusal::Descriptors { budget: self.budget });
        }
        // Per address first: an address at its cap is refused even when the total is full
        // too (the core makes room past the total for other addresses only).
        if self.per_ip.get(&source_of(ip)).is_some_and(|&n| n >= self.max_per_ip) {
            return Err(Refusal::PerAddress { max: self.max_per_ip });
        }
        if self.total >= self.max_total {
            return Err(Refusal::Total { max: self.max_total });
        }
        *self.per_ip.entry(source_of(ip)).or_insert(0) += 1;
        self.total += 1;
        Ok(())
    }

    /// A counted connection became a live session or closed.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = source_of(ip);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Connections counted now (unauthenticated).
    pub fn unauthenticated(&self) -> usize {
        self.total
    }

    /// The source with the most connections counted (the first found among equals).
    pub fn crowded(&self) -> Option<IpAddr> {
        self.per_ip.iter().max_by_key(|(_, n)| **n).map(|(ip, _)| *ip)
    }
}

/// New pending keys per source (`source_of`): at most `per_minute` in any rolling minute (a window
/// per address, reset when it ends). Forgotten addresses are swept by `prune`. The webhook
/// listener counts its requests per source with one too (`webhook_rate_limit`).
#[derive(Debug)]
pub struct PendingRate {
    per_minute: u32,
    windows: HashMap<IpAddr, (Instant, u32)>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl PendingRate {
    pub fn new(per_minute: u32) -> PendingRate {
        PendingRate { per_minute, windows: HashMap::new() }
    }

    /// The limit (0 = none).
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Whether `ip` may create one more pending key now; counts it when it may. 0 = no limit.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let (start, used) = self.windows.entry(source_of(ip)).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *used) = (now, 0);
        }
        if *used >= self.per_minute {
            return false;
        }
        *used += 1;
        true
    }

    /// Drops windows that have ended (housekeeping), so the map stays as small as the set of
    /// addresses seen in the last minute.
    pub fn prune(&mut self, now: Instant) {
        self.windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
    }
}

/// The soft RLIMIT_NOFILE of this process (`u64::MAX` when unlimited or unknown).
pub fn nofile_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes one `rlimit` into the struct we own and reads nothing else.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 if limit.rlim_cur != libc::RLIM_INFINITY => limit.rlim_cur,
        _ => u64::MAX,
    }
}

/// Log lines one unauthenticated peer can cause (a refused or closed connection) allowed per
/// [`LOG_WINDOW`]; past it they are counted, and said in one line when the window ends. A
/// flood of connections then costs the log a few lines a second, not one per connection.
pub const LOG_LINES: u32 = 20;
pub const LOG_WINDOW: Duration = Duration::from_secs(1);

/// Of [`LOG_LINES`], the lines one key (a minion's id, with [`LogLimiter::allow_from`]) may
/// have in a window: one hostile minion's flood leaves room for the lines about the others.
pub const LOG_LINES_PER_KEY: u32 = LOG_LINES / 4;

/// The per-window budget of log lines for what hostile peers cause.
#[derive(Debug, Default)]
pub struct LogLimiter {
    window: Option<Instant>,
    lines: u32,
    suppressed: u64,
    /// This window's lines logged and suppressed per key ([`LogLimiter::allow_from`]).
    by_key: HashMap<String, (u32, u64)>,
}

/// What a window suppressed ([`LogLimiter::flush`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Suppressed {
    pub lines: u64,
    /// The key with the most suppressed lines, and how many (keyed lines only).
    pub loudest: Option<(String, u64)>,
}

impl LogLimiter {
    /// Whether one more line may be logged at `now`; if not, it is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.roll(now);
        if self.lines < LOG_LINES {
            self.lines += 1;
            return true;
        }
        self.suppressed += 1;
        false
    }

    /// [`LogLimiter::allow`] for a line about `key`, which may have [`LOG_LINES_PER_KEY`] of
    /// the window's lines.
    pub fn allow_from(&mut self, key: &str, now: Instant) -> bool {
        self.roll(now);
        let (logged, suppressed) = match self.by_key.get_mut(key) {
            Some(counts) => counts,
            None => self.by_key.entry(key.to_string()).or_default(),
        };
        if self.lines < LOG_LINES && *logged < LOG_LINES_PER_KEY {
            (self.lines, *logged) = (self.lines + 1, *logged + 1);
            return true;
        }
        *suppressed += 1;
        self.suppressed += 1;
        false
    }

    /// A window that ended with nothing suppressed gives way to a new one.
    fn roll(&mut self, now: Instant) {
        let start = *self.window.get_or_insert(now);
        if now.duration_since(start) >= LOG_WINDOW && self.suppressed == 0 {
            (self.window, self.lines) = (Some(now), 0);
            self.by_key.clear();
        }
    }

    /// Once a window with suppressed lines has ended: what was suppressed (the caller logs
    /// that), and a new window starts.
    pub fn flush(&mut self, now: Instant) -> Option<Suppressed> {
        let start = self.window?;
        if self.suppressed == 0 || now.duration_since(start) < LOG_WINDOW {
            return None;
        }
        let lines = std::mem::take(&mut self.suppressed);
        let loudest = std::mem::take(&mut self.by_key)
            .into_iter()
            .filter(|(_, (_, suppressed))| *suppressed > 0)
            .max_by(|a, b| a.1 .1.cmp(&b.1 .1).then_with(|| b.0.cmp(&a.0)))
            .map(|(key, (_, suppressed))| (key, suppressed));
        (self.window, self.lines) = (Some(now), 0);
        Some(Suppressed { lines, loudest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_its_ipv4() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(source_of(v6("2001:db8:1:2:aaaa::1")), v6("2001:db8:1:2::"));
        assert_eq!(source_of(v6("::ffff:10.0.0.7")), v6("10.0.0.7"));
        assert_eq!(source_of(ip(5)), ip(5));
        // One host cycling through its /64 is one address to the caps and the rate.
        let mut a = Admission::new(FD_RESERVE + 100, 30, 2);
        assert_eq!(a.admit(v6("2001:db8::1"), 0), Ok(()));
        assert_eq!(a.admit(v6("2001:db8::ffff:2"), 1), Ok(()));
        assert_eq!(a.admit(v6("2001:db8::3:0:0:3"), 2), Err(Refusal::PerAddress { max: 2 }));
        assert_eq!(a.admit(v6("2001:db8:0:1::1"), 2), Ok(()), "the next /64 is another source");
        a.release(v6("2001:db8::9"));
        assert_eq!(a.unauthenticated(), 2);
        let mut rate = PendingRate::new(1);
        let now = Instant::now();
        assert!(rate.allow(v6("2001:db8::1"), now));
        assert!(!rate.allow(v6("2001:db8::2"), now));
    }

    #[test]
    fn admission_caps_per_address_in_all_and_by_descriptors() {
        let mut a = Admission::new(FD_RESERVE + 100, 30, 2);
        assert_eq!(a.admit(ip(1), 0), Ok(()));
        assert_eq!(a.admit(ip(1), 1), Ok(()));
        assert_eq!(a.admit(ip(1), 2), Err(Refusal::PerAddress { max: 2 }));
        a.release(ip(1));
        assert_eq!(a.admit(ip(1), 2), Ok(()));
        // Releasing an address never counted changes nothing.
        a.release(ip(9));
        assert_eq!(a.unauthenticated(), 2);
        for n in 2..30 {
            assert_eq!(a.admit(ip(n as u8 + 10), n), Ok(()), "connection {n}");
        }
        assert_eq!(a.admit(ip(200), 30), Err(Refusal::Total { max: 30 }));
        // An address at its own cap hears that, not the total (which the core makes room in).
        assert_eq!(a.admit(ip(1), 30), Err(Refusal::PerAddress { max: 2 }));
        assert_eq!(a.admit(ip(200), 100), Err(Refusal::Descriptors { budget: 100 }));
    }

    #[test]
    fn unauthenticated_connections_get_half_the_descriptors() {
        let mut a = Admission::new(FD_RESERVE + 20, 1000, 1000);
        for n in 0..10 {
            assert_eq!(a.admit(ip(1), n), Ok(()));
        }
        assert_eq!(a.admit(ip(1), 10), Err(Refusal::Total { max: 10 }));
        assert!(a.admit(ip(1), 10).unwrap_err().to_string().contains("max_pending_connections"));
    }

    #[test]
    fn pending_rate_is_per_address_and_per_minute() {
        let t0 = Instant::now();
        let mut rate = PendingRate::new(2);
        assert!(rate.allow(ip(1), t0));
        assert!(rate.allow(ip(1), t0));
        assert!(!rate.allow(ip(1), t0 + Duration::from_secs(59)));
        assert!(rate.allow(ip(2), t0));
        assert!(rate.allow(ip(1), t0 + WINDOW));
        rate.prune(t0 + WINDOW + Duration::from_secs(1));
        assert_eq!(rate.windows.len(), 1);
        assert!(PendingRate::new(0).allow(ip(1), t0));
    }

    #[test]
    fn log_lines_past_the_budget_are_counted_and_said_once_the_window_ends() {
        let t0 = Instant::now();
        let mut log = LogLimiter::default();
        let allowed = (0..1000).filter(|_| log.allow(t0)).count();
        assert_eq!(allowed, LOG_LINES as usize);
        assert_eq!(log.flush(t0 + LOG_WINDOW / 2), None, "not before the window ends");
        // Still suppressed until the count is said: no line is lost between the two.
        assert!(!log.allow(t0 + LOG_WINDOW));
        let lines = 1000 - LOG_LINES as u64 + 1;
        assert_eq!(log.flush(t0 + LOG_WINDOW), Some(Suppressed { lines, loudest: None }));
        assert_eq!(log.flush(t0 + LOG_WINDOW * 3), None, "said once");
        assert!(log.allow(t0 + LOG_WINDOW), "a new window");
        // A quiet window rolls over by itself.
        let mut quiet = LogLimiter::default();
        assert!(quiet.allow(t0));
        assert!(quiet.allow(t0 + LOG_WINDOW * 5));
    }

    /// Found by review: one limiter for every minion let one minion's flood of refused
    /// requests use up the window, so the warnings about every other minion were only a count.
    #[test]
    fn one_key_has_a_quarter_of_the_lines_and_is_named_when_suppressed() {
        let t0 = Instant::now();
        let mut log = LogLimiter::default();
        let flood = (0..1000).filter(|_| log.allow_from("evil", t0)).count();
        assert_eq!(flood, LOG_LINES_PER_KEY as usize);
        let others = (0..3).filter(|i| log.allow_from(&format!("m{i}"), t0)).count();
        assert_eq!(others, 3, "the others' lines still go out");
        let lines = 1000 - LOG_LINES_PER_KEY as u64;
        let loudest = Some(("evil".to_string(), lines));
        let said = log.flush(t0 + LOG_WINDOW).expect("suppressed lines are said");
        assert_eq!(said, Suppressed { lines, loudest });
        assert!(log.allow_from("evil", t0 + LOG_WINDOW), "a new window, a new share");
    }
}
