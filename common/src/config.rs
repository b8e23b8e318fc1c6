//! Master and minion configuration: YAML with Salt's key names, read from `DIR/master` (or
//! `DIR/minion`) plus `DIR/<name>.d/*.conf`, validated into structs with no `Option` left where
//! a default exists. All problems are reported at once, each with its key.

use log::LevelFilter;
use serde_json::{Map, Value as Json};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::wire::DEFAULT_MAX_FRAME_BYTES;

/// Where `-c` points by default.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/halite";

/// One configuration problem, tied to its key (or file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

/// Every problem found in one load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", e.key, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A validated config and the warnings (unknown keys) to log once logging is up.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub config: T,
    pub warnings: Vec<String>,
    /// Every key this load looked up, set or not: the keys the daemon knows (the `redis.*`
    /// keys only when `event_return` is set). The shipped `dist/etc` files are checked with it.
    pub keys: BTreeSet<String>,
}

/// The master's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterConfig {
    pub root_dir: PathBuf,
    pub interface: IpAddr,
    pub ret_port: u16,
    pub pki_dir: PathBuf,
    pub cachedir: PathBuf,
    pub sock_dir: PathBuf,
    pub event_log_file: PathBuf,
    pub auto_accept: bool,
    pub autosign_file: Option<PathBuf>,
    pub autoreject_file: Option<PathBuf>,
    /// 0 = unlimited.
    pub max_minions: usize,
    /// Listen queue of the minion port (Salt's `zmq_backlog`).
    pub zmq_backlog: u32,
    /// Minion connections allowed to be unauthenticated at once (handshake or pending key);
    /// never more than half the descriptors RLIMIT_NOFILE leaves for minions.
    pub max_pending_connections: usize,
    /// The same, per source address.
    pub max_pending_connections_per_ip: usize,
    /// Keys allowed in `minions_pre`; past it a new id hears `full`. 0 = unlimited.
    pub max_pending_keys: usize,
    /// New pending keys one source address may create per minute; 0 = no limit.
    pub pending_key_rate: u32,
    pub log_level: LevelFilter,
    /// Salt's `log_file`: also log to this file (none: stderr only), at `log_level_logfile`.
    pub log_file: Option<PathBuf>,
    pub log_level_logfile: LevelFilter,
    pub max_frame_bytes: usize,
    pub keepalive_interval: Duration,
    /// Seconds the `halite` CLI waits for returns by default (Salt's `timeout`).
    pub timeout: Duration,
    /// How long jobs stay in the job cache (Salt's `keep_jobs_seconds`, or `keep_jobs` hours).
    pub keep_jobs: Duration,
    /// The event log is rotated when it grows past this many bytes.
    pub event_log_max_bytes: u64,
    /// How many rotated event logs (`events.log.1` …) are kept.
    pub event_log_keep: u32,
    /// Event-log bytes the log thread may have left to write before the master stops reading
    /// minions and HTTP clients (a stalled log disk costs this much memory, not more).
    pub event_log_backlog_bytes: usize,
    /// Bytes of minion returns the job cache may have left to look up or store before the
    /// master stops reading minions and HTTP clients (a stalled cache disk costs this much).
    pub job_cache_backlog_bytes: usize,
    /// Largest event data accepted from a minion or a script, in bytes of JSON.
    pub max_event_bytes: usize,
    /// Fire `salt/presence/present` and `salt/presence/change` every `loop_interval`.
    pub presence_events: bool,
    /// Seconds between the master's maintenance passes (presence, job cache pruning).
    pub loop_interval: Duration,
    /// `file_roots:` per environment (`base` first in lookups), as Salt's; not prefixed by
    /// `root_dir` (Salt does not either).
    pub file_roots: std::collections::BTreeMap<String, Vec<PathBuf>>,
    /// `pillar_roots:` per environment, as Salt's (default `base: [/srv/pillar]`): where
    /// `top.sls` and the pillar SLS files the master compiles per minion live.
    pub pillar_roots: std::collections::BTreeMap<String, Vec<PathBuf>>,
    /// `reactor:` rules, in config order.
    pub reactor: Vec<crate::reactor::Rule>,
    /// Past this causal depth the reactor refuses to react (loop protection).
    pub reactor_max_depth: usize,
    /// Renders allowed per SLS file per second; 0 = no limit.
    pub reactor_rate_limit: u32,
    /// Address space of the render worker process (`RLIMIT_AS`): what one render may allocate.
    pub reactor_render_max_bytes: u64,
    /// Render time (ms) allowed per SLS file per second; 0 = no limit. Both budgets are kept
    /// per source address for `salt/auth` events.
    pub reactor_render_budget_ms: u32,
    /// The webhook listener (`webhook_*` keys); off unless `webhook_port` is set.
    pub webhook: WebhookConfig,
    /// The Prometheus endpoint (`metrics_port`, `metrics_interface`); off unless
    /// `metrics_port` is set.
    pub metrics: MetricsConfig,
    /// The master's id (Salt's `id`, default `<host name>_master`): the `master` field of
    /// forwarded events and the name of its checkpoint.
    pub id: String,
    /// `event_return: redis`: every event logged is also forwarded to a Redis stream.
    pub event_return: Option<EventReturn>,
}

/// Where and which events go out (`event_return: redis`), with the keys of Salt's redis
/// returner (`redis.host`, `redis.port`, `redis.db`, `redis.password`,
/// `redis.unix_socket_path`).
#[derive(Clone, PartialEq)]
pub struct EventReturn {
    pub host: String,
    pub port: u16,
    /// When set, the forwarder connects to this Unix socket instead of `host:port`.
    pub unix_socket_path: Option<PathBuf>,
    pub db: u32,
    pub password: Option<String>,
    /// The stream key (`event_return_stream`, default `halite:events`).
    pub stream: String,
    /// `XADD MAXLEN ~` (`event_return_maxlen`; 0 = never trimmed).
    pub maxlen: u64,
    /// Tag globs (Salt's `event_return_whitelist`; empty = every tag).
    pub whitelist: Vec<String>,
    /// Tag globs never forwarded (`event_return_blacklist`), checked after the whitelist.
    pub blacklist: Vec<String>,
}

impl fmt::Debug for EventReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReturn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("unix_socket_path", &self.unix_socket_path)
            .field("db", &self.db)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .field("whitelist", &self.whitelist)
            .field("blacklist", &self.blacklist)
            .finish()
    }
}

/// The master's HTTP webhook listener: salt-api's `/hook`, with tokens of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `webhook_port`: `None` = no listener (the default); 0 = any free port.
    pub port: Option<u16>,
    /// `webhook_interface` (default 127.0.0.1: put a TLS proxy in front).
    pub interface: IpAddr,
    /// `webhook_tokens`, by name, sorted.
    pub tokens: Vec<WebhookToken>,
    /// `webhook_max_body`: the largest request body, in bytes (default 1 MiB).
    pub max_body: usize,
    /// `webhook_timeout`: seconds a request (headers and body) may take to arrive, and an
    /// idle keep-alive connection may stay open (default 10).
    pub timeout: Duration,
    /// `webhook_max_connections`, in all and `webhook_max_connections_per_ip` per address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// `webhook_rate_limit`: requests per source address per minute; 0 = no limit.
    pub rate_limit: u32,
}

/// The master's Prometheus endpoint (`GET /metrics`, `GET /healthz`). Salt has none: the keys
/// are Halite's own.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// `metrics_port`: `None` = no listener (the default); 0 = any free port.
    pub port: Option<u16>,
    /// `metrics_interface` (default 127.0.0.1: the counters are for the host's own scraper,
    /// or a proxy in front).
    pub interface: IpAddr,
}

/// One `webhook_tokens` entry: who knows `secret` may fire the tags its globs allow.
#[derive(Clone, PartialEq)]
pub struct WebhookToken {
    pub name: String,
    pub secret: String,
    /// Globs (fnmatch: `*` crosses `/`) over the whole fired tag, `salt/netapi/hook/<path>`.
    pub tags: Vec<String>,
}

impl fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookToken")
            .field("name", &self.name)
            .field("secret", &"(hidden)")
            .field("tags", &self.tags)
            .finish()
    }
}

/// The shortest `webhook_tokens` secret accepted: anything shorter can be guessed.
pub const MIN_WEBHOOK_SECRET: usize = 16;

/// The minion's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MinionConfig {
    pub root_dir: PathBuf,
    pub id: String,
    /// The masters in the order they are tried, each with its port (`host:port` entries, or
    /// `master_port`): one, unless `master_type` is `failover`. `random_master` shuffles them
    /// when the minion starts.
    pub masters: Vec<MasterAddress>,
    pub master_port: u16,
    /// `failover`: one master at a time, the next when it is lost (Salt's `master_type`).
    pub failover: bool,
    /// Seconds between checks that the master is alive (0 = only the keepalive's).
    pub master_alive_interval: Duration,
    /// Go back to the first master once it answers again (failover only).
    pub master_failback: bool,
    /// Seconds between those checks (0 = `master_alive_interval`).
    pub master_failback_interval: Duration,
    pub random_master: bool,
    pub master_finger: Option<String>,
    pub pki_dir: PathBuf,
    pub cachedir: PathBuf,
    pub sock_dir: PathBuf,
    pub grains: Map<String, Json>,
    pub acceptance_wait_time: Duration,
    pub acceptance_wait_time_max: Duration,
    pub recon_default: Duration,
    pub recon_max: Duration,
    pub rejected_retry: bool,
    pub log_level: LevelFilter,
    /// Salt's `log_file`: also log to this file (none: stderr only), at `log_level_logfile`.
    pub log_file: Option<PathBuf>,
    pub log_level_logfile: LevelFilter,
    pub max_frame_bytes: usize,
    pub keepalive_interval: Duration,
    /// Salt's `beacons:` as written (JSON `null` when absent); the minion checks each beacon
    /// itself, so that a bad one is logged and switched off without stopping the minion.
    pub beacons: Json,
}

/// One master a minion may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddress {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for MasterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl MasterAddress {
    /// `host`, `host:port`, `[v6]:port` or a bare IPv6 address (with `default_port`).
    pub fn parse(text: &str, default_port: u16) -> Option<MasterAddress> {
        let text = text.trim();
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']')?;
                match after.strip_prefix(':') {
                    Some(port) => (host, port.parse().ok()?),
                    None if after.is_empty() => (host, default_port),
                    None => return None,
                }
            }
            None => match text.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, port.parse().ok()?),
                _ => (text, default_port),
            },
        };
        (!host.is_empty() && port != 0).then(|| MasterAddress { host: host.into(), port })
    }
}

/// Reads `DIR/master` and `DIR/master.d/*.conf`; a missing main file means all defaults.
pub fn load_master(dir: &Path) -> Result<Loaded<MasterConfig>, ConfigErrors> {
    let (map, exposed) = read_dir_config(dir, "master")?;
    let mut loaded = parse_master_map(map, &cwd())?;
    for (file, keys) in exposed {
        loaded.warnings.push(format!(
            "{} holds secrets ({}) and every user can read it: make it 0640, in the group the \
             master runs as",
            file.display(),
            keys.join(", ")
        ));
    }
    Ok(note_missing(loaded, dir, "master"))
}

/// Salt starts on its defaults when the config file is missing; so does Halite, but says so
/// (a mistyped `-c` otherwise means a master on 0.0.0.0:4506 with `/etc/halite`).
fn note_missing<T>(mut loaded: Loaded<T>, dir: &Path, name: &str) -> Loaded<T> {
    let file = dir.join(name);
    if !file.exists() {
        loaded.warnings.push(format!("no config file {}: using the defaults", file.display()));
    }
    loaded
}

/// Reads `DIR/minion` and `DIR/minion.d/*.conf`; `id` defaults to the host name.
pub fn load_minion(dir: &Path) -> Result<Loaded<MinionConfig>, ConfigErrors> {
    let (map, _) = read_dir_config(dir, "minion")?;
    parse_minion_map(map, &cwd(), &hostname()).map(|loaded| note_missing(loaded, dir, "minion"))
}

/// Parses master YAML text (what unit tests call); relative `root_dir` is taken from `cwd`.
pub fn parse_master(text: &str, cwd: &Path) -> Result<Loaded<MasterConfig>, ConfigErrors> {
    parse_master_map(parse_yaml(text, "master")?, cwd)
}

/// Parses minion YAML text; `default_id` stands in for the host name.
pub fn parse_minion(
    text: &str,
    cwd: &Path,
    default_id: &str,
) -> Result<Loaded<MinionConfig>, ConfigErrors> {
    parse_minion_map(parse_yaml(text, "minion")?, cwd, default_id)
}

fn parse_master_map(map: Mapping, cwd: &Path) -> Result<Loaded<MasterConfig>, ConfigErrors> {
    let mut r = Reader::new(map);
    let root_dir = r.root_dir(cwd);
    let config = MasterConfig {
        interface: r.parsed("interface", "0.0.0.0".parse().unwrap(), "an IP address"),
        ret_port: r.int("ret_port", 4506, 0, 65535) as u16,
        pki_dir: r.path("pki_dir", "/etc/halite/pki/master", &root_dir),
        cachedir: r.path("cachedir", "/var/cache/halite/master", &root_dir),
        sock_dir: r.path("sock_dir", "/var/run/halite/master", &root_dir),
        event_log_file: r.path("event_log_file", "/var/log/halite/events.log", &root_dir),
        auto_accept: r.bool("auto_accept", false),
        autosign_file: r.opt_path("autosign_file", &root_dir),
        autoreject_file: r.opt_path("autoreject_file", &root_dir),
        max_minions: r.int("max_minions", 0, 0, u32::MAX as u64) as usize,
        zmq_backlog: r.int("zmq_backlog", 1000, 1, 65535) as u32,
        max_pending_connections: r.int("max_pending_connections", 1024, 1, 1 << 20) as usize,
        max_pending_connections_per_ip: r.int("max_pending_connections_per_ip", 64, 1, 1 << 20)
            as usize,
        max_pending_keys: r.int("max_pending_keys", 1000, 0, u32::MAX as u64) as usize,
        pending_key_rate: r.int("pending_key_rate", 60, 0, 1_000_000) as u32,
        log_level: r.log_level("log_level", None),
        log_file: r.opt_path("log_file", &root_dir),
        log_level_logfile: r.log_level("log_level_logfile", Some("log_level")),
        max_frame_bytes: r.int("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES as u64, 1024, 1 << 30)
            as usize,
        keepalive_interval: r.seconds("keepalive_interval", 30, 1, 86_400),
        timeout: r.seconds("timeout", 5, 1, 86_400),
        // Salt 3006's `keep_jobs_seconds` wins over the older `keep_jobs` (hours).
        keep_jobs: {
            // 0 keeps every job, as in Salt.
            let hours = Duration::from_secs(3600 * r.int("keep_jobs", 24, 0, 24 * 3650));
            match r.get("keep_jobs_seconds") {
                Some(_) => r.seconds("keep_jobs_seconds", 86_400, 0, 86_400 * 3650),
                None => hours,
            }
        },
        event_log_max_bytes: r.int("event_log_max_bytes", 100 << 20, 4096, u64::MAX >> 1),
        event_log_keep: r.int("event_log_keep", 5, 1, 1000) as u32,
        event_log_backlog_bytes: r.int("event_log_backlog_bytes", 64 << 20, 64 << 10, 1 << 40)
            as usize,
        job_cache_backlog_bytes: r.int("job_cache_backlog_bytes", 64 << 20, 64 << 10, 1 << 40)
            as usize,
        max_event_bytes: r.int("max_event_bytes", 1 << 20, 256, 1 << 30) as usize,
        presence_events: r.bool("presence_events", false),
        loop_interval: r.seconds("loop_interval", 60, 1, 86_400),
        file_roots: r.roots("file_roots", "/srv/salt"),
        pillar_roots: r.roots("pillar_roots", "/srv/pillar"),
        reactor: r.reactor(),
        reactor_max_depth: r.int("reactor_max_depth", 8, 1, 1000) as usize,
        reactor_rate_limit: r.int("reactor_rate_limit", 100, 0, 1_000_000) as u32,
        reactor_render_max_bytes: r.int("reactor_render_max_bytes", 256 << 20, 32 << 20, 1 << 40),
        reactor_render_budget_ms: r.int("reactor_render_budget_ms", 250, 0, 1_000) as u32,
        webhook: r.webhook(),
        metrics: r.metrics(),
        id: r.string("id").unwrap_or_else(|| format!("{}_master", hostname())),
        event_return: r.event_return(),
        root_dir,
    };
    r.finish(config)
}

fn parse_minion_map(
    map: Mapping,
    cwd: &Path,
    default_id: &str,
) -> Result<Loaded<MinionConfig>, ConfigErrors> {
    let mut r = Reader::new(map);
    let root_dir = r.root_dir(cwd);
    let id = r.string("id").unwrap_or_else(|| default_id.to_string());
    if let Err(e) = crate::id::validate_id(&id) {
        r.error("id", e.to_string());
    }
    let acceptance_wait_time = r.seconds("acceptance_wait_time", 10, 0, 86_400);
    let max = r.seconds("acceptance_wait_time_max", 0, 0, 86_400);
    let master_port = r.int("master_port", 4506, 1, 65535) as u16;
    let failover = r.master_type();
    let alive = r.seconds("master_alive_interval", 0, 0, 86_400);
    let config = MinionConfig {
        masters: r.masters(master_port, failover),
        master_port,
        failover,
        master_alive_interval: alive,
        master_failback: r.bool("master_failback", false),
        master_failback_interval: match r.seconds("master_failback_interval", 0, 0, 86_400) {
            d if d.is_zero() => alive,
            d => d,
        },
        random_master: r.bool("random_master", false),
        master_finger: r.string("master_finger"),
        pki_dir: r.path("pki_dir", "/etc/halite/pki/minion", &root_dir),
        cachedir: r.path("cachedir", "/var/cache/halite/minion", &root_dir),
        sock_dir: r.path("sock_dir", "/var/run/halite/minion", &root_dir),
        grains: r.grains(),
        acceptance_wait_time,
        acceptance_wait_time_max: max.max(acceptance_wait_time),
        recon_default: Duration::from_millis(r.int("recon_default", 1000, 1, 3_600_000)),
        recon_max: Duration::from_millis(r.int("recon_max", 10_000, 1, 3_600_000)),
        rejected_retry: r.bool("rejected_retry", false),
        log_level: r.log_level("log_level", None),
        log_file: r.opt_path("log_file", &root_dir),
        log_level_logfile: r.log_level("log_level_logfile", Some("log_level")),
        max_frame_bytes: r.int("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES as u64, 1024, 1 << 30)
            as usize,
        keepalive_interval: r.seconds("keepalive_interval", 30, 1, 86_400),
        beacons: r.json("beacons"),
        id,
        root_dir,
    };
    r.finish(config)
}

/// Walks one mapping, recording which keys were read and every bad value.
struct Reader {
    map: Mapping,
    used: BTreeSet<String>,
    errors: Vec<ConfigError>,
}

impl Reader {
    fn new(map: Mapping) -> Reader {
        Reader { map, used: BTreeSet::new(), errors: Vec::new() }
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError { key: key.into(), message: message.into() });
    }

    /// The value under `key`, unless absent or null (YAML `key:` means "default").
    fn get(&mut self, key: &str) -> Option<Value> {
        self.used.insert(key.to_string());
        self.map.get(key).filter(|v| !v.is_null()).cloned()
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => b,
            // Salt's YAML 1.1 also reads these as booleans.
            Some(Value::String(s)) if matches!(s.to_lowercase().as_str(), "yes" | "on") => true,
            Some(Value::String(s)) if matches!(s.to_lowercase().as_str(), "no" | "off") => false,
            Some(other) => {
                self.error(key, format!("expected true or false, got {}", show(&other)));
                default
            }
        }
    }

    fn int(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let value = match self.get(key) {
            None => return default,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.error(key, format!("expected a whole number from {min} to {max}"));
                default
            }
        }
    }

    fn seconds(&mut self, key: &str, default: u64, min: u64, max: u64) -> Duration {
        Duration::from_secs(self.int(key, default, min, max))
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.error(key, format!("expected a string, got {}", show(&other)));
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str, default: T, what: &str) -> T {
        match self.string(key) {
            None => default,
            Some(s) => s.trim().parse().unwrap_or_else(|_| {
                self.error(key, format!("'{s}' is not {what}"));
                default
            }),
        }
    }

    fn root_dir(&mut self, cwd: &Path) -> PathBuf {
        let root = PathBuf::from(self.string("root_dir").unwrap_or_else(|| "/".into()));
        cwd.join(root)
    }

    fn path(&mut self, key: &str, default: &str, root: &Path) -> PathBuf {
        let raw = self.string(key).unwrap_or_else(|| default.into());
        rooted(root, Path::new(&raw))
    }

    fn opt_path(&mut self, key: &str, root: &Path) -> Option<PathBuf> {
        self.string(key).map(|raw| rooted(root, Path::new(&raw)))
    }

    /// A level under `key`; when it is unset, the one under `fallback`, else info.
    fn log_level(&mut self, key: &str, fallback: Option<&str>) -> LevelFilter {
        let fallback = fallback.and_then(|k| self.map.get(k)).and_then(Value::as_str);
        let fallback = fallback.unwrap_or("info").to_string();
        let own = self.string(key);
        let inherited = own.is_none();
        let level = own.unwrap_or(fallback);
        match parse_log_level(&level) {
            Some(l) => l,
            // The other key's own check says what is wrong with it.
            None if inherited => LevelFilter::Info,
            None => {
                self.error(
                    key,
                    format!(
                        "'{level}' is not one of quiet, critical, error, warning, info, debug, \
                         trace, garbage, all"
                    ),
                );
                LevelFilter::Info
            }
        }
    }

    /// `master_type`: `str` (one master) or `failover`; Salt's `func` and `disable` are not
    /// built.
    fn master_type(&mut self) -> bool {
        match self.string("master_type").as_deref().map(str::trim) {
            None | Some("str") => false,
            Some("failover") => true,
            Some(other) => {
                self.error("master_type", format!("'{other}' is not one of str, failover"));
                false
            }
        }
    }

    /// `master`: a host (`host:port`), or a list of them for `master_type: failover`.
    fn masters(&mut self, port: u16, failover: bool) -> Vec<MasterAddress> {
        let default = || vec![MasterAddress { host: "salt".into(), port }];
        let names: Vec<String> = match self.get("master") {
            None => return default(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Sequence(list)) if !list.is_empty() => {
                match list.iter().map(|v| v.as_str().map(String::from)).collect() {
                    Some(names) => names,
                    None => {
                        self.error("master", "expected a list of host names");
                        return default();
                    }
                }
            }
            Some(other) => {
                self.error("master", format!("expected a host name, got {}", show(&other)));
                return default();
            }
        };
        if names.len() > 1 && !failover {
            self.error(
                "master",
                "several masters need master_type: failover (one master at a time; Halite \
                 has no hot multi-master, where each event would be reacted to once per master)",
            );
            return default();
        }
        let mut masters = Vec::new();
        for name in names {
            match MasterAddress::parse(&name, port) {
                Some(m) => masters.push(m),
                None => self.error("master", format!("'{name}' is not a host or host:port")),
            }
        }
        if masters.is_empty() {
            return default();
        }
        masters
    }

    /// `file_roots`/`pillar_roots`: environment → absolute directories (`base: [default]`).
    fn roots(
        &mut self,
        key: &str,
        default: &str,
    ) -> std::collections::BTreeMap<String, Vec<PathBuf>> {
        let default = || [("base".to_string(), vec![PathBuf::from(default)])].into_iter().collect();
        let Some(value) = self.get(key) else { return default() };
        let parsed: Result<std::collections::BTreeMap<String, Vec<String>>, _> =
            serde_yaml::from_value(value);
        match parsed {
            Ok(map) if map.values().flatten().all(|p| Path::new(p).is_absolute()) => map
                .into_iter()
                .map(|(env, roots)| (env, roots.into_iter().map(PathBuf::from).collect()))
                .collect(),
            Ok(_) => {
                self.error(key, "every root must be an absolute path");
                default()
            }
            Err(_) => {
                self.error(key, "expected a mapping of environment to a list of directories");
                default()
            }
        }
    }

    /// `event_return` (a returner name or a list of them, as Salt) and, for `redis`, its keys.
    fn event_return(&mut self) -> Option<EventReturn> {
        let names = match self.get("event_return")? {
            Value::String(s) => vec![s],
            Value::Sequence(list) => {
                list.iter().filter_map(|v| v.as_str().map(String::from)).collect()
            }
            other => {
                self.error(
                    "event_return",
                    format!("expected a returner name, got {}", show(&other)),
                );
                return None;
            }
        };
        if names.iter().any(|n| n != "redis") || names.is_empty() {
            self.error("event_return", "only the redis returner is supported");
            return None;
        }
        let password = self.string("redis.password").filter(|p| !p.is_empty());
        Some(EventReturn {
            host: self.string("redis.host").unwrap_or_else(|| "salt".into()),
            port: self.int("redis.port", 6379, 1, 65535) as u16,
            unix_socket_path: self.string("redis.unix_socket_path").map(PathBuf::from),
            db: self.int("redis.db", 0, 0, 1 << 20) as u32,
            password,
            stream: self
                .string("event_return_stream")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "halite:events".into()),
            maxlen: self.int("event_return_maxlen", 1_000_000, 0, u64::MAX >> 1),
            whitelist: self.globs("event_return_whitelist"),
            blacklist: self.globs("event_return_blacklist"),
        })
    }

    /// A list of tag globs (a single string is a list of one).
    fn globs(&mut self, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Sequence(list)) if list.iter().all(|v| v.is_string()) => {
                list.iter().filter_map(|v| v.as_str().map(String::from)).collect()
            }
            Some(other) => {
                self.error(key, format!("expected a list of tag globs, got {}", show(&other)));
                Vec::new()
            }
        }
    }

    fn reactor(&mut self) -> Vec<crate::reactor::Rule> {
        let Some(value) = self.get("reactor") else { return Vec::new() };
        match crate::reactor::parse_rules(&value) {
            Ok(rules) => rules,
            Err(problems) => {
                for problem in problems {
                    self.error("reactor", problem);
                }
                Vec::new()
            }
        }
    }

    fn webhook(&mut self) -> WebhookConfig {
        let set = self.get("webhook_port").is_some();
        let port = set.then(|| self.int("webhook_port", 0, 0, 65535) as u16);
        let tokens = self.webhook_tokens();
        if port.is_some() && tokens.is_empty() {
            self.error(
                "webhook_tokens",
                "webhook_port is set but no token is configured: every request would be refused",
            );
        }
        WebhookConfig {
            port,
            interface: self.parsed("webhook_interface", [127, 0, 0, 1].into(), "an IP address"),
            tokens,
            // The event holds the body twice (`body`, `post`), and JSON escapes a control
            // character in six bytes: 4 MiB keeps the worst event under the CLIs' 64 MiB frames.
            max_body: self.int("webhook_max_body", 1 << 20, 0, 4 << 20) as usize,
            timeout: self.seconds("webhook_timeout", 10, 1, 3600),
            max_connections: self.int("webhook_max_connections", 256, 1, 1 << 20) as usize,
            max_connections_per_ip: self.int("webhook_max_connections_per_ip", 16, 1, 1 << 20)
                as usize,
            rate_limit: self.int("webhook_rate_limit", 600, 0, 1_000_000) as u32,
        }
    }

    fn metrics(&mut self) -> MetricsConfig {
        let set = self.get("metrics_port").is_some();
        MetricsConfig {
            port: set.then(|| self.int("metrics_port", 0, 0, 65535) as u16),
            interface: self.parsed("metrics_interface", [127, 0, 0, 1].into(), "an IP address"),
        }
    }

    /// `webhook_tokens: {NAME: {secret: TEXT, tags: [GLOB, ...]}}`.
    fn webhook_tokens(&mut self) -> Vec<WebhookToken> {
        const KEY: &str = "webhook_tokens";
        let Some(value) = self.get(KEY) else { return Vec::new() };
        let Value::Mapping(map) = value else {
            self.error(KEY, "expected a mapping of token name to {secret: ..., tags: [...]}");
            return Vec::new();
        };
        let mut tokens = Vec::new();
        for (name, entry) in map {
            let Some(name) = name.as_str().map(str::to_string) else {
                self.error(KEY, "token names must be strings");
                continue;
            };
            let key = format!("{KEY}.{name}");
            let secret = entry.get("secret").and_then(Value::as_str).unwrap_or_default();
            let tags: Option<Vec<String>> = entry
                .get("tags")
                .and_then(Value::as_sequence)
                .map(|list| list.iter().filter_map(|t| t.as_str().map(str::to_string)).collect());
            let extra = entry.as_mapping().map_or(0, |m| {
                m.keys().filter(|k| !matches!(k.as_str(), Some("secret" | "tags"))).count()
            });
            match (entry.as_mapping(), tags) {
                (None, _) => self.error(&key, "expected {secret: ..., tags: [...]}"),
                _ if secret.len() < MIN_WEBHOOK_SECRET => self.error(
                    &key,
                    format!("secret must be a string of at least {MIN_WEBHOOK_SECRET} characters"),
                ),
                (_, None) => self.error(&key, "tags must be a list of tag globs"),
                (_, Some(tags)) if tags.is_empty() => {
                    self.error(&key, "tags must name at least one tag glob")
                }
                _ if extra > 0 => self.error(&key, "only secret and tags may be set"),
                (_, Some(tags)) => tokens.push(WebhookToken { name, secret: secret.into(), tags }),
            }
        }
        tokens.sort_by(|a, b| a.name.cmp(&b.name));
        tokens
    }

    fn grains(&mut self) -> Map<String, Json> {
        match self.get("grains") {
            None => Map::new(),
            Some(v @ Value::Mapping(_)) => match serde_json::to_value(&v) {
                Ok(Json::Object(map)) => map,
                _ => {
                    self.error("grains", "grain names must be strings");
                    Map::new()
                }
            },
            Some(other) => {
                self.error("grains", format!("expected a mapping, got {}", show(&other)));
                Map::new()
            }
        }
    }

    /// A value kept as JSON for its user to check (`Null` when absent).
    fn json(&mut self, key: &str) -> Json {
        let value = self.get(key).map(|v| serde_json::to_value(&v));
        match value {
            None => Json::Null,
            Some(Ok(json)) => json,
            Some(Err(e)) => {
                self.error(key, format!("cannot be read as JSON: {e}"));
                Json::Null
            }
        }
    }

    fn finish<T>(self, config: T) -> Result<Loaded<T>, ConfigErrors> {
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let warnings = self
            .map
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !self.used.contains(*k))
            .map(|k| format!("unknown config key '{k}' ignored"))
            .collect();
        Ok(Loaded { config, warnings, keys: self.used })
    }
}

/// Salt's `root_dir` rule: every path lives under `root_dir` unless it already does.
pub fn rooted(root: &Path, path: &Path) -> PathBuf {
    if path.starts_with(root) {
        return path.to_path_buf();
    }
    let relative: PathBuf =
        path.components().filter(|c| !matches!(c, std::path::Component::RootDir)).collect();
    root.join(relative)
}

/// Salt's log level names.
pub fn parse_log_level(level: &str) -> Option<LevelFilter> {
    Some(match level.trim().to_lowercase().as_str() {
        "quiet" => LevelFilter::Off,
        "critical" | "error" => LevelFilter::Error,
        "warning" | "warn" => LevelFilter::Warn,
        "info" | "profile" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" | "garbage" | "all" => LevelFilter::Trace,
        _ => return None,
    })
}

fn show(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default().trim().to_string()
}

fn parse_yaml(text: &str, origin: &str) -> Result<Mapping, ConfigErrors> {
    let fail = |message: String| ConfigErrors(vec![ConfigError { key: origin.into(), message }]);
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(map)) => Ok(map),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(other) => Err(fail(format!("expected a mapping of settings, got {}", show(&other)))),
        Err(e) => Err(fail(format!("invalid YAML: {e}"))),
    }
}

/// Whether every user may read `file`.
fn world_readable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// Keys whose values are secrets: a file that sets one should not be readable by everyone.
const SECRET_KEYS: [&str; 2] = ["webhook_tokens", "redis.password"];

/// The merged config of `DIR/NAME` and `DIR/NAME.d/*.conf`, and the files among them that set
/// [`SECRET_KEYS`] keys (named) while every user may read them.
type Exposed = Vec<(PathBuf, Vec<&'static str>)>;
fn read_dir_config(dir: &Path, name: &str) -> Result<(Mapping, Exposed), ConfigErrors> {
    let mut files = vec![dir.join(name)];
    let drop_in = dir.join(format!("{name}.d"));
    if let Ok(entries) = std::fs::read_dir(&drop_in) {
        let mut extra: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    let mut merged = Mapping::new();
    let mut errors = Vec::new();
    let mut exposed = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if i == 0 && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors
                    .push(ConfigError { key: file.display().to_string(), message: e.to_string() });
                continue;
            }
        };
        match parse_yaml(&text, &file.display().to_string()) {
            Ok(map) => {
                let keys: Vec<&str> =
                    SECRET_KEYS.into_iter().filter(|key| map.contains_key(*key)).collect();
                if !keys.is_empty() && world_readable(file) {
                    exposed.push((file.clone(), keys));
                }
                merged.extend(map)
            }
            Err(ConfigErrors(mut e)) => errors.append(&mut e),
        }
    }
    match errors.is_empty() {
        true => Ok((merged, exposed)),
        false => Err(ConfigErrors(errors)),
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

/// The user this process acts as, for job and event `user` fields: `$SUDO_USER`, `$USER`,
/// else `root`.
pub fn process_user() -> String {
    ["SUDO_USER", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "root".into())
}

/// The host name, as Salt's default minion id.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(text: &str) -> Result<Loaded<MasterConfig>, ConfigErrors> {
        parse_master(text, Path::new("/work"))
    }

    #[test]
    fn event_return_reads_salts_redis_keys_and_hides_the_password() {
        assert_eq!(master("").unwrap().config.event_return, None);
        let c = master(
            "event_return: redis\nredis.host: 10.0.0.5\nredis.port: 6380\nredis.db: 2\n\
             redis.password: s3cret\nevent_return_whitelist: ['salt/job/*']\n\
             event_return_blacklist: salt/auth\nid: m1\n",
        )
        .unwrap()
        .config;
        let er = c.event_return.unwrap();
        assert_eq!((er.host.as_str(), er.port, er.db), ("10.0.0.5", 6380, 2));
        assert_eq!(er.password.as_deref(), Some("s3cret"));
        assert_eq!((er.stream.as_str(), er.maxlen), ("halite:events", 1_000_000));
        assert_eq!(er.whitelist, ["salt/job/*"]);
        assert_eq!(er.blacklist, ["salt/auth"]);
        assert!(!format!("{er:?}").contains("s3cret"));
        assert_eq!(c.id, "m1");
        // Salt's list form, and its default host.
        let listed = master("event_return: [redis]").unwrap().config.event_return.unwrap();
        assert_eq!((listed.host.as_str(), listed.port), ("salt", 6379));
        let bad = master("event_return: mysql\nevent_return_blacklist: {a: 1}").unwrap_err();
        assert_eq!(bad.0.len(), 1, "{bad}");
        assert!(bad.to_string().contains("only the redis returner"), "{bad}");
        let bad = master("event_return: redis\nevent_return_blacklist: {a: 1}").unwrap_err();
        assert!(bad.to_string().starts_with("event_return_blacklist: expected a list"), "{bad}");
    }

    #[test]
    fn master_defaults() {
        let c = master("").unwrap().config;
        assert_eq!(c.ret_port, 4506);
        assert_eq!(c.pki_dir, Path::new("/etc/halite/pki/master"));
        assert!(!c.auto_accept);
        assert_eq!(c.log_level, LevelFilter::Info);
        assert_eq!(c.keep_jobs, Duration::from_secs(86_400));
        let hours = master("keep_jobs: 2").unwrap().config;
        assert_eq!(hours.keep_jobs, Duration::from_secs(7200));
        let seconds = master("keep_jobs: 2\nkeep_jobs_seconds: 5").unwrap().config;
        assert_eq!(seconds.keep_jobs, Duration::from_secs(5));
        // What an unauthenticated network may cost: on by default, 0 lifts the key limits.
        assert_eq!((c.max_pending_connections, c.max_pending_connections_per_ip), (1024, 64));
        assert_eq!((c.max_pending_keys, c.pending_key_rate), (1000, 60));
        let open = master("max_pending_keys: 0\npending_key_rate: 0").unwrap().config;
        assert_eq!((open.max_pending_keys, open.pending_key_rate), (0, 0));
        assert!(master("max_pending_connections: 0").is_err());
        assert!(master("max_pending_connections_per_ip: 0").is_err());
    }

    #[test]
    fn webhooks_are_off_by_default_and_need_strong_tokens() {
        let c = master("").unwrap().config.webhook;
        assert_eq!((c.port, c.interface), (None, "127.0.0.1".parse().unwrap()));
        assert_eq!((c.max_body, c.timeout, c.rate_limit), (1 << 20, Duration::from_secs(10), 600));
        let on = master(
            "webhook_port: 0\nwebhook_tokens:\n  ci: {secret: 0123456789abcdef, tags: ['salt/netapi/hook/ci/*']}\n",
        )
        .unwrap()
        .config
        .webhook;
        assert_eq!(on.port, Some(0));
        assert_eq!(on.tokens[0].name, "ci");
        assert_eq!(on.tokens[0].tags, ["salt/netapi/hook/ci/*"]);
        assert!(!format!("{:?}", on.tokens[0]).contains("0123456789abcdef"), "secret in Debug");
        let err = master(
            "webhook_port: 8000\nwebhook_tokens:\n  short: {secret: abc, tags: [x]}\n  \
             none: {secret: 0123456789abcdef}\n  odd: {secret: 0123456789abcdef, tags: [x], \
             user: root}\n  list: [a]\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "webhook_tokens.short",
                "webhook_tokens.none",
                "webhook_tokens.odd",
                "webhook_tokens.list",
                "webhook_tokens"
            ]
        );
        assert!(master("webhook_port: 8000").unwrap_err().to_string().contains("no token"));
        assert!(master("webhook_max_body: 4194305").is_err());
    }

    #[test]
    fn metrics_are_off_by_default_and_on_loopback_when_on() {
        let c = master("").unwrap().config.metrics;
        assert_eq!((c.port, c.interface), (None, "127.0.0.1".parse().unwrap()));
        let on = master("metrics_port: 9108").unwrap().config.metrics;
        assert_eq!((on.port, on.interface), (Some(9108), "127.0.0.1".parse().unwrap()));
        let any = master("metrics_port: 0\nmetrics_interface: '::1'").unwrap().config.metrics;
        assert_eq!((any.port, any.interface), (Some(0), "::1".parse().unwrap()));
        let err = master("metrics_port: 70000\nmetrics_interface: localhost").unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["metrics_port", "metrics_interface"]);
    }

    #[test]
    fn root_dir_prefixes_every_path() {
        let c = master("root_dir: run\npki_dir: /etc/x\ncachedir: cache\nsock_dir: /work/run/s\n")
            .unwrap()
            .config;
        assert_eq!(c.root_dir, Path::new("/work/run"));
        assert_eq!(c.pki_dir, Path::new("/work/run/etc/x"));
        assert_eq!(c.cachedir, Path::new("/work/run/cache"));
        assert_eq!(c.sock_dir, Path::new("/work/run/s"));
        assert_eq!(c.event_log_file, Path::new("/work/run/var/log/halite/events.log"));
    }

    #[test]
    fn file_roots_default_and_validation() {
        let c = master("").unwrap().config;
        assert_eq!(c.file_roots["base"], [PathBuf::from("/srv/salt")]);
        let c = master("file_roots:\n  base: [/a, /b]\n  dev: [/c]\n").unwrap().config;
        assert_eq!(c.file_roots["base"], [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(master("file_roots:\n  base: [relative]\n").is_err());
        assert!(master("file_roots: [/a]\n").is_err());
        assert_eq!(c.pillar_roots["base"], [PathBuf::from("/srv/pillar")]);
        let c = master("pillar_roots:\n  base: [/p]\n").unwrap().config;
        assert_eq!(c.pillar_roots["base"], [PathBuf::from("/p")]);
        assert!(master("pillar_roots:\n  base: [relative]\n").is_err());
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let err =
            master("ret_port: 70000\nauto_accept: maybe\ninterface: nowhere\nlog_level: loud\n")
                .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["interface", "ret_port", "auto_accept", "log_level"]);
        assert!(err.to_string().contains("ret_port: expected a whole number from 0 to 65535"));
    }

    #[test]
    fn salt_spellings_and_unknown_keys() {
        let loaded = master("auto_accept: True\nopen_mode: yes\nret_port: '4600'\n").unwrap();
        assert!(loaded.config.auto_accept);
        assert_eq!(loaded.config.ret_port, 4600);
        assert_eq!(loaded.warnings, ["unknown config key 'open_mode' ignored"]);
        assert!(master("auto_accept: yes").unwrap().config.auto_accept);
        assert!(master("- a\n- b").is_err());
        assert!(master("a: [").unwrap_err().to_string().contains("invalid YAML"));
    }

    #[test]
    fn minion_id_master_and_grains() {
        let c = parse_minion(
            "master: 127.0.0.1\nmaster_port: 4700\ngrains:\n  roles: [web]\n",
            Path::new("/"),
            "host1",
        )
        .unwrap()
        .config;
        assert_eq!(c.id, "host1");
        assert_eq!(c.masters, [MasterAddress { host: "127.0.0.1".into(), port: 4700 }]);
        assert!(!c.failover);
        assert_eq!(c.grains["roles"], serde_json::json!(["web"]));
        assert_eq!(c.acceptance_wait_time_max, Duration::from_secs(10));
        let err = parse_minion("id: ../evil\nmaster: [a, b]\n", Path::new("/"), "h").unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["id", "master"]);
    }

    #[test]
    fn failover_masters_with_their_ports() {
        let c = parse_minion(
            "master: ['a', 'b:4600', '[::1]:4700', '::1', ' c ']\nmaster_type: failover\n\
             master_alive_interval: 5\nmaster_failback: true\nrandom_master: yes\n",
            Path::new("/"),
            "h",
        )
        .unwrap()
        .config;
        let shown: Vec<String> = c.masters.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, ["a:4506", "b:4600", "[::1]:4700", "[::1]:4506", "c:4506"]);
        assert!(c.failover && c.master_failback && c.random_master);
        assert_eq!(c.master_alive_interval, Duration::from_secs(5));
        assert_eq!(c.master_failback_interval, Duration::from_secs(5));
        let err = |text: &str| parse_minion(text, Path::new("/"), "h").unwrap_err().to_string();
        assert!(err("master: [a, b]").contains("need master_type: failover"));
        assert!(err("master: [a, 'b:x']\nmaster_type: failover").contains("'b:x' is not a host"));
        assert!(err("master: a\nmaster_type: func").contains("master_type: 'func' is not one"));
        assert!(err("master: [a, 1]\nmaster_type: failover").contains("a list of host names"));
    }

    #[test]
    fn drop_in_files_override_the_main_file() {
        let dir = std::env::temp_dir().join(format!("halite-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("master.d")).unwrap();
        std::fs::write(dir.join("master"), "ret_port: 1\nauto_accept: false\n").unwrap();
        std::fs::write(dir.join("master.d/b.conf"), "ret_port: 3\n").unwrap();
        std::fs::write(dir.join("master.d/a.conf"), "ret_port: 2\nauto_accept: true\n").unwrap();
        std::fs::write(dir.join("master.d/ignored.txt"), "ret_port: 9\n").unwrap();
        let loaded = load_master(&dir).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        // A directory without the main file: the defaults, and a warning saying so.
        let bare = load_minion(&dir).unwrap();
        assert_eq!(bare.warnings.len(), 1);
        assert!(bare.warnings[0].starts_with("no config file "), "{:?}", bare.warnings);
        std::fs::write(dir.join("master.d/c.conf"), "ret_port: [\n").unwrap();
        let err = load_master(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.ret_port, 3);
        assert!(c.auto_accept);
        assert!(err.contains("c.conf"), "{err}");
    }

    /// Review of issue #14: the installer and the package make `/etc/halite/master` 0644 (as
    /// Salt's), and `webhook_tokens` secrets are written there: any local user could read one
    /// and fire hook events the reactor acts on. The master now says which file to close.
    #[test]
    fn webhook_secrets_in_a_file_every_user_can_read_are_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("halite-config-secret-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("master.d")).unwrap();
        let tokens = "webhook_port: 0\nwebhook_tokens:\n  ci: {secret: 0123456789abcdef0123, \
                      tags: ['salt/netapi/hook/x']}\n";
        std::fs::write(dir.join("master"), "ret_port: 1\n").unwrap();
        std::fs::write(dir.join("master.d/hooks.conf"), tokens).unwrap();
        let mode = |path: &str, mode: u32| {
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(dir.join(path), perms).unwrap();
        };
        mode("master", 0o644);
        mode("master.d/hooks.conf", 0o644);
        let loaded = load_master(&dir).unwrap();
        let file = dir.join("master.d/hooks.conf");
        assert_eq!(
            loaded.warnings,
            [format!(
                "{} holds secrets (webhook_tokens) and every user can read it: make it 0640, \
                 in the group the master runs as",
                file.display()
            )]
        );
        mode("master.d/hooks.conf", 0o640);
        let loaded = load_master(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }
}
