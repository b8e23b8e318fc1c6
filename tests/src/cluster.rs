//! Halite-specific fixtures over the generic harness: a master and minions in one temp dir,
//! their config files, `halite-key` runs, and reading the event log.

use crate::{bin, run, run_with_stdin, wait_until, Daemon, Output, TempDir};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long any daemon gets to reach a state a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running `halite-master` in its own directory tree.
pub struct Master {
    pub dir: TempDir,
    pub daemon: Daemon,
    pub addr: SocketAddr,
    conf: PathBuf,
}

impl Master {
    /// Starts a master on `127.0.0.1:0` with `extra` appended to its config.
    pub fn start(extra: &str) -> Master {
        let dir = TempDir::new();
        Master::start_in(dir, 0, extra)
    }

    /// A master whose reactor is `rules` (YAML list items, `SLS` standing for the directory
    /// the `files` are written to, which lives as long as the returned `TempDir`).
    pub fn with_reactor(rules: &str, files: &[(&str, &str)], extra: &str) -> (Master, TempDir) {
        let sls = TempDir::new();
        for (name, text) in files {
            sls.write(name, text);
        }
        let rules = rules.replace("SLS", &sls.path().display().to_string());
        (Master::start(&format!("reactor:\n{rules}\n{extra}")), sls)
    }

    /// Starts a master in an existing tree (a restart), on `port` (0 = any).
    pub fn start_in(dir: TempDir, port: u16, extra: &str) -> Master {
        Master::start_inner(dir, port, extra, None)
    }

    /// Starts a master whose RLIMIT_NOFILE is `nofile` (set by `sh`'s `ulimit -n`, then exec).
    pub fn start_with_nofile(extra: &str, nofile: u32) -> Master {
        Master::start_inner(TempDir::new(), 0, extra, Some(nofile))
    }

    fn start_inner(dir: TempDir, port: u16, extra: &str, nofile: Option<u32>) -> Master {
        let conf = dir.join("master-conf");
        let root = dir.join("master");
        let defaults = format!(
            "root_dir: {}\ninterface: 127.0.0.1\nret_port: {port}\nlog_level: debug\n",
            root.display()
        );
        dir.write("master-conf/master", merge_yaml(&defaults, extra));
        let mut cmd = match nofile {
            None => Command::new(bin("halite-master")),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""));
                sh.arg(bin("halite-master"));
                sh
            }
        };
        cmd.arg("-c").arg(&conf).current_dir(dir.path());
        let daemon = Daemon::spawn(cmd, "master");
        let ready = daemon.wait_for_line(r"halite-master ready: minions on (\S+),", WAIT);
        let addr = ready[1].as_deref().expect("address").parse().expect("socket address");
        Master { dir, daemon, addr, conf }
    }

    /// Stops the master with SIGTERM and waits for it; returns the tree for a restart.
    pub fn stop(mut self) -> TempDir {
        self.daemon.signal(15);
        let status = self.daemon.wait_exit(WAIT).expect("master did not stop on SIGTERM");
        assert!(status.success(), "master exited with {status:?}");
        self.dir
    }

    /// Kills the master with SIGKILL (no clean-up); returns the tree for a restart.
    pub fn kill(self) -> TempDir {
        let Master { dir, daemon, .. } = self;
        drop(daemon);
        dir
    }

    pub fn conf_dir(&self) -> &Path {
        &self.conf
    }

    pub fn pki(&self) -> PathBuf {
        self.dir.join("master/etc/halite/pki/master")
    }

    pub fn event_log(&self) -> PathBuf {
        self.dir.join("master/var/log/halite/events.log")
    }

    /// Runs `halite-key -c <conf> ARGS` with stdin closed.
    pub fn key(&self, args: &[&str]) -> Output {
        run(Command::new(bin("halite-key")).arg("-c").arg(&self.conf).args(args))
    }

    /// Runs `halite -c <conf> ARGS`.
    pub fn halite(&self, args: &[&str]) -> Output {
        run(Command::new(bin("halite")).arg("-c").arg(&self.conf).args(args))
    }

    /// A `halite -c <conf> ARGS` command, to spawn in the background.
    pub fn halite_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("halite"));
        cmd.arg("-c").arg(&self.conf).args(args);
        cmd
    }

    /// Runs `halite-run -c <conf> ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        run(Command::new(bin("halite-run")).arg("-c").arg(&self.conf).args(args))
    }

    /// Runs `halite-key` answering `input` at its prompt.
    pub fn key_answering(&self, args: &[&str], input: &str) -> Output {
        run_with_stdin(Command::new(bin("halite-key")).arg("-c").arg(&self.conf).args(args), input)
    }

    /// Every event logged so far, as (tag, data). A last line still being written (no newline
    /// yet: the master's buffered writer can flush a batch mid-line) is left for the next read.
    pub fn events(&self) -> Vec<(String, Value)> {
        let mut text = std::fs::read_to_string(self.event_log()).unwrap_or_default();
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        text.lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("event log line is not JSON ({e}): {line}"));
                (v["tag"].as_str().expect("tag").to_string(), v["data"].clone())
            })
            .collect()
    }

    /// Waits until an event satisfying `pred(tag, data)` is in the log; returns its data.
    #[track_caller]
    pub fn wait_event_where(&self, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
        let mut found = None;
        wait_until(WAIT, what, || {
            found = self.events().into_iter().find(|(t, d)| pred(t, d)).map(|(_, d)| d);
            found.is_some()
        });
        found.unwrap()
    }

    /// Waits until an event with `tag` whose data satisfies `pred` is in the log; returns it.
    #[track_caller]
    pub fn wait_event(&self, tag: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        wait_until(WAIT, &format!("event {tag} in the event log"), || {
            found = self.events().into_iter().find(|(t, d)| t == tag && pred(d)).map(|(_, d)| d);
            found.is_some()
        });
        found.unwrap()
    }

    /// The minion ids with a live session, from the master itself.
    pub fn presence(&self) -> Vec<String> {
        use halite_common::control::{Request, Response, SOCKET_NAME};
        let socket = self.dir.join("master/var/run/halite/master").join(SOCKET_NAME);
        let mut client = halite_cli::Client::connect(&socket).expect("control socket");
        match client.request(&Request::Presence).expect("presence") {
            Response::Presence { up } => up,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A running `halite-minion`.
pub struct Minion {
    pub daemon: Daemon,
    pub root: PathBuf,
    pub conf: PathBuf,
    pub id: String,
}

impl Minion {
    /// Starts minion `id` for `master`, its tree in `<master dir>/minion-<name>`, with `extra`
    /// config appended. `name` lets two minions share an id with different keys.
    pub fn start(master: &Master, id: &str, name: &str, extra: &str) -> Minion {
        Minion::start_for(&master.dir, master.addr, id, name, extra)
    }

    /// Starts a minion whose tree lives in `dir`, pointed at `addr`.
    pub fn start_for(dir: &TempDir, addr: SocketAddr, id: &str, name: &str, extra: &str) -> Minion {
        let root = dir.join(format!("minion-{name}"));
        let conf = dir.join(format!("minion-{name}-conf"));
        let defaults = format!(
            "root_dir: {}\nid: {id}\nmaster: 127.0.0.1\nmaster_port: {}\n\
             acceptance_wait_time: 1\nrecon_default: 100\nrecon_max: 500\nlog_level: debug\n",
            root.display(),
            addr.port()
        );
        dir.write(format!("minion-{name}-conf/minion"), merge_yaml(&defaults, extra));
        let mut cmd = Command::new(bin("halite-minion"));
        cmd.arg("-c").arg(&conf).current_dir(dir.path());
        let daemon = Daemon::spawn(cmd, &format!("minion-{name}"));
        Minion { daemon, root, conf, id: id.to_string() }
    }

    #[track_caller]
    pub fn wait_authenticated(&self) {
        self.daemon.wait_for_line(r"authenticated to master", WAIT);
    }

    #[track_caller]
    pub fn wait_pending(&self) {
        self.daemon.wait_for_line(r"pending acceptance", WAIT);
    }

    pub fn pki(&self) -> PathBuf {
        self.root.join("etc/halite/pki/minion")
    }

    /// Runs `halite-minion -c <conf> call ARGS` (Salt's salt-call).
    pub fn call(&self, args: &[&str]) -> Output {
        run(Command::new(bin("halite-minion")).arg("-c").arg(&self.conf).arg("call").args(args))
    }
}

/// `defaults` with the keys of `extra` (YAML mappings) replacing or added.
pub fn merge_yaml(defaults: &str, extra: &str) -> String {
    let mut base: serde_yaml::Mapping = serde_yaml::from_str(defaults).expect("defaults are YAML");
    if !extra.trim().is_empty() {
        let more: serde_yaml::Mapping = serde_yaml::from_str(extra).expect("extra config is YAML");
        base.extend(more);
    }
    serde_yaml::to_string(&base).expect("mapping serialises")
}
