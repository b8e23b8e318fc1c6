//! The metrics endpoint's side of the core: the counters the core keeps for it (jobs, events
//! by first tag segment, job timeouts), the process sample read from `/proc` at most once a
//! second, the answers to `GET /metrics` and `GET /healthz`, and the one writer of the
//! Prometheus text exposition format (0.0.4) every series goes through.

use super::Core;
use crate::webhook::Refusal;
use halite_common::control::KeyStatus;
use halite_common::http::Request;
use mio::Token;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The exposition format's media type.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a process sample (`/proc/self`) is reused: scrapes faster than this cost no
/// procfs reads, however many clients ask.
const SAMPLE_FOR: Duration = Duration::from_secs(1);

/// Jobs whose timeout is still running, at most: past it, the oldest is no longer watched
/// (the master keeps 10,000 recent jobs; a job it forgot cannot be judged anyway).
const WATCHED_JOBS: usize = 10_000;

/// The label values events are counted under: a tag's first segment when it is one of
/// these, else `other`, so hostile tags cannot create series.
const EVENT_PREFIXES: [&str; 3] = ["salt", "halite", "other"];

/// What the core counts for the endpoint (other counters live where their subject does:
/// the reactor's `Stats`, the event log's in `Bus`, the forwarder's shared status).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) jobs_published: u64,
    pub(crate) job_returns: u64,
    pub(crate) jobs_timed_out: u64,
    /// Events drained from the bus, by `EVENT_PREFIXES` index.
    events: [u64; 3],
    /// Published jobs and when their `timeout` passes, oldest first (one timeout for all,
    /// so the deadlines are in order).
    deadlines: VecDeque<(Instant, String)>,
    process: Option<(Instant, Process)>,
}

/// The master process as `/proc/self` shows it; a field is `None` where it cannot be read.
#[derive(Debug, Default, Clone, Copy)]
struct Process {
    rss_bytes: Option<u64>,
    open_fds: Option<u64>,
}

impl Process {
    fn read() -> Process {
        let status = std::fs::read_to_string("/proc/self/status").ok();
        // Listing the directory opens one descriptor, which the listing shows too.
        let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1));
        Process {
            rss_bytes: status.as_deref().and_then(vm_rss_bytes),
            open_fds: fds.ok().map(|n| n as u64),
        }
    }
}

/// `VmRSS` from `/proc/<pid>/status` text, in bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The label value an event with `tag` is counted under.
fn event_prefix(tag: &str) -> usize {
    let first = tag.split('/').next().unwrap_or_default();
    EVENT_PREFIXES[..2].iter().position(|p| *p == first).unwrap_or(2)
}

impl Metrics {
    /// Counts drained events by their tag's first segment.
    pub(crate) fn count_event(&mut self, tag: &str) {
        self.events[event_prefix(tag)] += 1;
    }

    /// A job went out at `now`; it times out at `now + timeout` unless all returned.
    pub(crate) fn watch_job(&mut self, jid: &str, deadline: Instant) {
        if self.deadlines.len() >= WATCHED_JOBS {
            self.deadlines.pop_front();
        }
        self.deadlines.push_back((deadline, jid.to_string()));
    }

    /// The jobs whose timeout has passed by `now`, taken off the watch.
    pub(crate) fn due_jobs(&mut self, now: Instant) -> Vec<String> {
        let due = self.deadlines.iter().take_while(|(at, _)| *at <= now).count();
        self.deadlines.drain(..due).map(|(_, jid)| jid).collect()
    }

    /// The process sample, read again when older than `SAMPLE_FOR`.
    fn process(&mut self, now: Instant) -> Process {
        match self.process {
            Some((at, sample)) if now.saturating_duration_since(at) < SAMPLE_FOR => sample,
            _ => {
                let sample = Process::read();
                self.process = Some((now, sample));
                sample
            }
        }
    }
}

/// A metric family's type.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// The text exposition format, written family by family: `# HELP` and `# TYPE` once, then its
/// samples. Label values and help text are escaped here, and nowhere else.
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Exposition {
        debug_assert!(valid_name(name), "{name}");
        debug_assert!(!matches!(kind, Kind::Counter) || name.ends_with("_total"), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) -> &mut Exposition {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (n, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label) && !label.contains(':'), "{label}");
                let comma = if n == 0 { "" } else { "," };
                let _ = write!(self.text, "{comma}{label}=\"{}\"", escape(value, true));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// A family of one sample without labels.
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: u64) {
        self.family(name, kind, help).sample(name, &[], value);
    }
}

/// Escapes text for the format: `\` and newline always, `"` in label values.
fn escape(text: &str, label_value: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Core {
    /// Answers one request on the metrics listener: `GET /metrics` (the text), `GET /healthz`
    /// (`ok` from the loop itself; 503 once stopping), 404 for any other path and 405 for any
    /// other method (both close). `false` when the connection was closed.
    pub(super) fn serve_metrics(&mut self, conn: Token, addr: SocketAddr, req: &Request) -> bool {
        let path = req.path.as_str();
        if path != "/metrics" && path != "/healthz" {
            // The path is printable ASCII (the parser's rule); only its length is bounded here.
            let reason = format!("no such path {path:.200}");
            self.refuse_http(conn, addr, &Refusal { status: 404, reason, header: None });
            return false;
        }
        if req.method != "GET" {
            let reason = format!("method {} is not allowed", req.method);
            let header = Some(("Allow", "GET"));
            self.refuse_http(conn, addr, &Refusal { status: 405, reason, header });
            return false;
        }
        match (path, self.stopping) {
            ("/metrics", _) => {
                log::debug!("metrics scraped by {addr}");
                let text = self.metrics_text();
                self.answer_http(conn, req, 200, CONTENT_TYPE, text.as_bytes())
            }
            (_, false) => self.answer_http(conn, req, 200, "text/plain", b"ok"),
            (_, true) => self.answer_http(conn, req, 503, "text/plain", b"stopping"),
        }
    }

    /// A job went out: its timeout (the master's `timeout`) starts now.
    pub(super) fn job_published(&mut self, jid: &str) {
        self.metrics.jobs_published += 1;
        self.metrics.watch_job(jid, self.now + self.cfg.timeout);
    }

    /// Housekeeping: every job whose timeout passed while a minion it went to had not
    /// returned counts as timed out (whether or not the return comes later).
    pub(super) fn job_timeouts(&mut self, now: Instant) {
        for jid in self.metrics.due_jobs(now) {
            let Some(job) = self.recent_jobs.get(&jid) else { continue };
            if job.minions.returned_count() < job.minions.len() {
                self.metrics.jobs_timed_out += 1;
            }
        }
    }

    /// Every series, as of now.
    pub(crate) fn metrics_text(&mut self) -> String {
        let mut out = Exposition { text: String::with_capacity(4096) };
        let version = env!("CARGO_PKG_VERSION");
        out.family("halite_build_info", Kind::Gauge, "The master's version, as a label.").sample(
            "halite_build_info",
            &[("version", version)],
            1,
        );
        let live = self.live.len() as u64;
        out.single("halite_minions_connected", Kind::Gauge, "Minions with a live session.", live);
        let keys = "halite_minion_keys";
        out.family(keys, Kind::Gauge, "Minion keys by state (halite-key -L).");
        for (state, status) in [
            ("accepted", KeyStatus::Accepted),
            ("pending", KeyStatus::Pending),
            ("rejected", KeyStatus::Rejected),
            ("denied", KeyStatus::Denied),
        ] {
            out.sample(keys, &[("state", state)], self.store.count(status) as u64);
        }
        let m = &self.metrics;
        out.single(
            "halite_jobs_published_total",
            Kind::Counter,
            "Jobs sent to minions (their load written to the job cache).",
            m.jobs_published,
        );
        out.single(
            "halite_job_returns_total",
            Kind::Counter,
            "Job returns stored and acknowledged (duplicates and strays not counted).",
            m.job_returns,
        );
        out.single(
            "halite_jobs_timed_out_total",
            Kind::Counter,
            "Jobs with a minion that had not returned when the master's timeout passed.",
            m.jobs_timed_out,
        );
        let events = "halite_events_total";
        out.family(events, Kind::Counter, "Events on the bus, by their tag's first segment.");
        for (prefix, count) in EVENT_PREFIXES.iter().zip(m.events) {
            out.sample(events, &[("prefix", prefix)], count);
        }
        let s = self.reactor.stats;
        for (name, help, value) in [
            ("halite_reactor_matched_total", "Events that matched a reactor rule.", s.matched),
            ("halite_reactor_rendered_total", "Reactor SLS files rendered.", s.rendered),
            ("halite_reactor_reactions_total", "Reactions run.", s.reactions),
            ("halite_reactor_errors_total", "Reactor errors (salt/reactor/error).", s.errors),
        ] {
            out.single(name, Kind::Counter, help, value);
        }
        let refused = "halite_reactor_refused_total";
        out.family(
            refused,
            Kind::Counter,
            "Events the reactor refused (salt/reactor/refused): over reactor_rate_limit, over \
             reactor_render_budget_ms, or other (depth, a full queue, stopping).",
        );
        let other = s.refused.saturating_sub(s.rate_refused + s.budget_refused);
        for (reason, value) in
            [("rate", s.rate_refused), ("budget", s.budget_refused), ("other", other)]
        {
            out.sample(refused, &[("reason", reason)], value);
        }
        let log = self.bus.log_counts();
        out.single(
            "halite_event_log_bytes_total",
            Kind::Counter,
            "Bytes appended to the event log.",
            log.bytes,
        );
        out.single(
            "halite_event_log_rotations_total",
            Kind::Counter,
            "Event log rotations (event_log_max_bytes).",
            log.rotations,
        );
        if let Some(f) = self.forward.as_ref().map(|f| f.counts()) {
            for (name, kind, help, value) in [
                (
                    "halite_forward_connected",
                    Kind::Gauge,
                    "1 while the event_return forwarder is connected to Redis.",
                    u64::from(f.connected),
                ),
                (
                    "halite_forward_events_total",
                    Kind::Counter,
                    "Events forwarded to the Redis stream.",
                    f.forwarded,
                ),
                (
                    "halite_forward_skipped_total",
                    Kind::Counter,
                    "Event-log lines not forwarded (event_return_whitelist/blacklist).",
                    f.skipped,
                ),
                (
                    "halite_forward_failures_total",
                    Kind::Counter,
                    "Failed attempts to reach or write to Redis.",
                    f.failures,
                ),
                (
                    "halite_forward_lag_events",
                    Kind::Gauge,
                    "Event-log lines not forwarded yet.",
                    f.behind_events,
                ),
                (
                    "halite_forward_lag_bytes",
                    Kind::Gauge,
                    "Event-log bytes not forwarded yet.",
                    f.behind_bytes,
                ),
            ] {
                out.single(name, kind, help, value);
            }
        }
        let process = self.metrics.process(self.now);
        if let Some(rss) = process.rss_bytes {
            let help = "Resident memory of the master process (VmRSS).";
            out.single("halite_process_resident_memory_bytes", Kind::Gauge, help, rss);
        }
        if let Some(fds) = process.open_fds {
            let help = "File descriptors the master process holds.";
            out.single("halite_process_open_fds", Kind::Gauge, help, fds);
        }
        let max = crate::limits::nofile_limit();
        let help = "The master's file descriptor limit (RLIMIT_NOFILE).";
        out.single("halite_process_max_fds", Kind::Gauge, help, max);
        out.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped_per_the_format() {
        assert_eq!(escape("a\"b\\c\nd", true), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("a\"b\\c\nd", false), "a\"b\\\\c\\nd");
        let mut out = Exposition { text: String::new() };
        out.family("x_total", Kind::Counter, "line one\nline two").sample(
            "x_total",
            &[("tag", "}\" 1\nevil 2")],
            3,
        );
        assert_eq!(
            out.text,
            "# HELP x_total line one\\nline two\n# TYPE x_total counter\n\
             x_total{tag=\"}\\\" 1\\nevil 2\"} 3\n"
        );
    }

    #[test]
    fn events_are_counted_under_a_bounded_set_of_prefixes() {
        let mut m = Metrics::default();
        for tag in ["salt/auth", "halite/x", "20261203081500123456", "salt", "", "sAlt/x"] {
            m.count_event(tag);
        }
        for n in 0..1000 {
            m.count_event(&format!("hostile{n}/\"}}\n"));
        }
        assert_eq!(m.events, [2, 1, 1003]);
    }

    #[test]
    fn vm_rss_is_read_from_status_text() {
        let status = "Name:\thalite-master\nVmHWM:\t  9000 kB\nVmRSS:\t    8192 kB\nThreads:\t5\n";
        assert_eq!(vm_rss_bytes(status), Some(8192 * 1024));
        assert_eq!(vm_rss_bytes("VmRSS: lots"), None);
        assert_eq!(vm_rss_bytes(""), None);
        let live = Process::read();
        assert!(live.rss_bytes.is_some_and(|b| b > 0) && live.open_fds.is_some_and(|n| n > 0));
    }

    #[test]
    fn job_deadlines_come_due_in_order_and_the_watch_is_bounded() {
        let mut m = Metrics::default();
        let t0 = Instant::now();
        m.watch_job("1", t0 + Duration::from_secs(5));
        m.watch_job("2", t0 + Duration::from_secs(6));
        assert!(m.due_jobs(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(m.due_jobs(t0 + Duration::from_secs(5)), ["1"]);
        for n in 0..WATCHED_JOBS + 5 {
            m.watch_job(&n.to_string(), t0 + Duration::from_secs(7));
        }
        assert_eq!(m.deadlines.len(), WATCHED_JOBS);
        assert_eq!(m.due_jobs(t0 + Duration::from_secs(7)).len(), WATCHED_JOBS);
    }
}
