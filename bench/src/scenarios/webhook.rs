//! Webhook throughput: one keep-alive HTTP client POSTs GitHub-signed hooks one after the
//! other (each answered before the next is sent, as a CI system does), and the clock runs
//! until every hook event is in the master's event log.

use super::{thousands, Bench};
use crate::procs::{median, Follow, Result};
use halite_common::crypto::hmac_sha256;
use halite_common::encoding::hex;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret-0123456789";

/// A signed `POST /hook/bench/<n>`.
fn request(n: usize) -> Vec<u8> {
    let body = format!(r#"{{"ref": "refs/heads/main", "after": "{n:040}"}}"#);
    let sig = hex(&hmac_sha256(SECRET.as_bytes(), body.as_bytes()));
    format!(
        "POST /hook/bench/{n} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={sig}\r\nContent-Length: {}\r\n\r\n\
         {body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response head and its body; `Err` unless it is a 200.
fn response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                if !head.starts_with("HTTP/1.1 200 ") {
                    return Err(format!("webhook answered {head:?}"));
                }
                buf.drain(..end + 4 + len);
                return Ok(());
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("the master closed the webhook connection".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading a webhook response: {e}")),
        }
    }
}

impl Bench {
    /// Hooks/s from one keep-alive client into the event log.
    pub fn webhook(&mut self) -> Result<()> {
        let (count, reps) = if self.quick { (2_000, 1) } else { (20_000, 3) };
        eprintln!("webhook: {count} signed hooks from one keep-alive client");
        let config = format!(
            "webhook_port: 0\nwebhook_rate_limit: 0\nwebhook_tokens:\n  bench: {{secret: {SECRET}, \
             tags: ['salt/netapi/hook/bench/*']}}\n"
        );
        let mut master = self.master("webhook", &config, |_| Ok(()))?;
        let line = master.daemon.wait_line("webhooks on ")?;
        let addr = line.split("webhooks on ").nth(1).unwrap_or_default().trim().to_string();
        let mut stream = TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let requests: Vec<Vec<u8>> = (0..count).map(request).collect();
        let mut rates = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..reps {
            let mut log = Follow::from_end(&master.event_log());
            let start = Instant::now();
            for req in &requests {
                stream.write_all(req).map_err(|e| format!("sending a webhook: {e}"))?;
                response(&mut stream, &mut buf)?;
            }
            log.wait_count("\"tag\":\"salt/netapi/hook/bench/", count)?;
            rates.push(count as f64 / start.elapsed().as_secs_f64());
        }
        let rate = median(rates);
        self.row(
            "webhook",
            "webhooks/s into the event log, one keep-alive client, HMAC-signed, one in flight"
                .into(),
            format!("{}/s", thousands(rate as usize)),
            "",
            None,
        );
        Ok(())
    }
}
