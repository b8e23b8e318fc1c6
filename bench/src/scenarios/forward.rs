//! Event forwarding (`event_return: redis`): the master logs a backlog while Redis is away,
//! then Redis comes up and the clock runs from the first entry in the stream to the last, so
//! the number is the forwarder's own rate (read the log, pipelined `MULTI`/`EXEC` batches),
//! not the rate events come in at.

use super::{thousands, Bench};
use crate::procs::{Daemon, Follow, Result, TempDir, STEP};
use crate::swarm;
use halite_common::resp::{self, Reply};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

impl Bench {
    /// Events/s from the event log into a local Redis stream.
    pub fn forward(&mut self) -> Result<()> {
        let (members, count) = if self.quick { (10, 20_000) } else { (100, 200_000) };
        eprintln!("forward: a backlog of {count} events into a local Redis");
        if Command::new("redis-server").arg("--version").output().is_err() {
            return Err("redis-server is not installed (apt-get install redis-server)".into());
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let keys =
            swarm::load_keys(self.keys.path(), "forward", members).map_err(|e| e.to_string())?;
        let config = format!(
            "event_return: redis\nredis.host: 127.0.0.1\nredis.port: {port}\n\
             event_return_whitelist: ['bench/event*']\n"
        );
        let master = self.master("forward", &config, |dir| {
            swarm::pre_accept(&dir.join("root/etc/halite/pki/master"), &keys)
                .map_err(|e| e.to_string())
        })?;
        let (mut swarm, _) = self.swarm(&master, "forward", members)?;
        let mut log = Follow::from_end(&master.event_log());
        swarm.command(&format!("events {count}"))?;
        // Every `bench/event/K` and the closing `bench/events/done`.
        let expected = count as u64 + 1;
        log.wait_count("\"tag\":\"bench/event", count + 1)?;
        swarm.wait_line("events sent: ")?;

        let dir = TempDir::new("forward-redis")?;
        let redis_log = dir.join("redis.log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
            .args(["--appendonly", "no", "--logfile"])
            .arg(&redis_log)
            .arg("--dir")
            .arg(dir.path());
        let mut redis = Daemon::spawn(cmd, redis_log, "redis-server")?;
        redis.wait_line("Ready to accept connections")?;
        let mut client = Client::connect(port)?;
        let deadline = Instant::now() + STEP;
        let mut first: Option<(Instant, u64)> = None;
        let (end, len) = loop {
            let len = client.xlen("halite:events")?;
            let now = Instant::now();
            if len > 0 && first.is_none() {
                first = Some((now, len));
            }
            if len >= expected {
                break (now, len);
            }
            if now > deadline {
                self.failures.push(format!("forward: {len} of {expected} events reached Redis"));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let (start, at_start) = first.expect("seen before the end");
        let secs = (end - start).as_secs_f64().max(1e-6);
        let rate = (len - at_start) as f64 / secs;
        self.row(
            "forward",
            format!(
                "events/s forwarded from the event log into a local Redis stream (a backlog of \
                 {}, batches of 1,000 in one MULTI/EXEC each)",
                thousands(count)
            ),
            format!("{}/s", thousands(rate as usize)),
            "> 100,000/s",
            Some(rate > 100_000.0),
        );
        drop(redis);
        Ok(())
    }
}

/// Enough of a Redis client to count a stream.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        Ok(Client { stream, buf: Vec::new() })
    }

    fn xlen(&mut self, key: &str) -> Result<u64> {
        let mut out = Vec::new();
        resp::command(&mut out, &["XLEN", key]);
        self.stream.write_all(&out).map_err(|e| e.to_string())?;
        loop {
            match resp::parse(&self.buf).map_err(|e| e.to_string())? {
                Some((Reply::Int(n), used)) => {
                    self.buf.drain(..used);
                    return Ok(n.max(0) as u64);
                }
                Some((other, _)) => return Err(format!("XLEN answered {other:?}")),
                None => {}
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("redis closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
