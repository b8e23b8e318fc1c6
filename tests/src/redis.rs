//! A real `redis-server` for the forwarding tests: started in a temp dir on a free loopback
//! port, restartable on the same port with its data (append-only file), and a small blocking
//! client over `halite_common::resp` to read what arrived.

use crate::{Daemon, TempDir};
use halite_common::resp::{self, Reply};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A running `redis-server` (or a stopped one, between `stop` and `start`).
pub struct RedisServer {
    pub dir: TempDir,
    pub port: u16,
    password: Option<String>,
    daemon: Option<Daemon>,
}

impl RedisServer {
    /// Starts one on a free port; `password` sets `requirepass`.
    pub fn start(password: Option<&str>) -> RedisServer {
        assert!(
            Command::new("redis-server").arg("--version").output().is_ok(),
            "redis-server is not installed: scripts/test installs it (apt-get install redis-server)"
        );
        let mut dir = TempDir::new();
        // A port the kernel just gave out and took back; another process taking it before
        // redis binds is retried with a fresh one (that is set-up, not the test, retrying).
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut server =
                RedisServer { dir, port, password: password.map(String::from), daemon: None };
            if server.try_start() {
                return server;
            }
            dir = server.dir;
        }
        panic!("redis-server could not bind a free port five times");
    }

    /// Starts it again on its port, with the data it had.
    pub fn restart(&mut self) {
        assert!(self.try_start(), "redis-server did not start again on port {}", self.port);
    }

    fn try_start(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .current_dir(self.dir.path());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        let daemon = Daemon::spawn(cmd, "redis");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let lines = daemon.lines();
            if lines.iter().any(|l| l.contains("Ready to accept connections")) {
                self.daemon = Some(daemon);
                return true;
            }
            if lines.iter().any(|l| l.contains("Address already in use")) {
                return false;
            }
            assert!(std::time::Instant::now() < deadline, "redis-server did not start: {lines:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops it (SIGTERM; the append-only file keeps what it had).
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.signal(15);
            daemon.wait_exit(Duration::from_secs(20)).expect("redis-server did not stop");
        }
    }

    /// A client connection (authenticated when the server has a password).
    pub fn client(&self) -> RedisClient {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut client = RedisClient { stream, buf: Vec::new() };
        if let Some(pw) = &self.password {
            assert_eq!(client.call(&["AUTH", pw]), Reply::Simple("OK".into()));
        }
        client
    }
}

/// A blocking client for tests.
pub struct RedisClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RedisClient {
    pub fn call(&mut self, args: &[&str]) -> Reply {
        let mut out = Vec::new();
        resp::command(&mut out, args);
        self.stream.write_all(&out).unwrap();
        loop {
            if let Some((reply, used)) = resp::parse(&self.buf).unwrap() {
                self.buf.drain(..used);
                return reply;
            }
            let mut chunk = [0; 64 * 1024];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "redis closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Every entry of a stream, in order, as maps of field to value.
    pub fn entries(&mut self, stream: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let Reply::Array(Some(items)) = self.call(&["XRANGE", stream, "-", "+"]) else {
            return Vec::new();
        };
        items
            .into_iter()
            .map(|item| {
                let Reply::Array(Some(mut parts)) = item else { panic!("entry {item:?}") };
                let Some(Reply::Array(Some(fields))) = parts.pop() else { panic!("fields") };
                fields.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect()
            })
            .collect()
    }
}

fn text(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}
