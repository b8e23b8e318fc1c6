//! `halite-minion call`: Salt's `salt-call` for what reaches the master. It authenticates with
//! the minion's own keys in a one-shot session beside the daemon's (which it does not
//! replace), fires `event.send`/`event.fire_master` on the master's bus, and waits for the
//! master to confirm or refuse it.

use crate::jobs::event_from_args;
use halite_common::config::MinionConfig;
use halite_common::crypto;
use halite_common::files::{load_or_create_pair, read_cached_master_key};
use halite_common::handshake::{self, MinionHandshake, Verdict};
use halite_common::proto::{ToMaster, ToMinion};
use halite_common::time::unix_seconds;
use halite_common::wire::{encode_frame, Decoder};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Turns shell words into Salt-style args as `salt-call` does: each word read as YAML
/// (`data={a: 1}` is a map, `flag=True` a boolean), `key=value` words gathered into one
/// trailing kwarg map.
pub fn words_to_args(words: &[String]) -> Vec<Value> {
    halite_common::saltargs::parse_cli_args(words)
}

/// Runs `fun` with `words`; returns what to print, or the error to report.
/// A connection to the first master that takes one (each in turn with failover).
fn connect_first(cfg: &MinionConfig) -> Result<TcpStream, String> {
    let mut why = String::new();
    for master in &cfg.masters {
        let addr = match (master.host.as_str(), master.port).to_socket_addrs() {
            Ok(mut addrs) => addrs.next(),
            Err(_) => None,
        };
        let Some(addr) = addr else {
            why = format!("cannot resolve master '{}'", master.host);
            continue;
        };
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => why = format!("cannot connect to master {addr}: {e}"),
        }
    }
    Err(why)
}

pub fn call(cfg: &MinionConfig, fun: &str, words: &[String]) -> Result<String, String> {
    if fun != "event.send" && fun != "event.fire_master" {
        return Err(format!(
            "'{fun}' is not available through halite-minion call (only event.send and \
             event.fire_master; run other functions with `halite <minion> {fun}` on the master)"
        ));
    }
    let (tag, data) = event_from_args(fun, &words_to_args(words))?;
    crypto::init();
    let keys =
        load_or_create_pair(&cfg.pki_dir.join("minion.key"), &cfg.pki_dir.join("minion.pub"))
            .map_err(|e| format!("minion key: {e}"))?;
    let stream = connect_first(cfg)?;
    let mut link = Blocking { stream, decoder: Decoder::new(cfg.max_frame_bytes) };
    link.stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;

    let presented = handshake::parse_greeting(&link.recv()?).map_err(|e| e.to_string())?;
    let cached = read_cached_master_key(&cfg.pki_dir.join("minion_master.pub"))
        .map_err(|e| e.to_string())?;
    if cached.is_none() && cfg.master_finger.is_none() {
        return Err("the master's key is not known yet: start halite-minion once first".into());
    }
    handshake::check_master_key(&presented, cached.as_ref(), cfg.master_finger.as_deref())
        .map_err(|e| e.to_string())?;
    let (hs, hello) =
        MinionHandshake::start(&cfg.id, &keys, &presented).map_err(|e| e.to_string())?;
    link.send(&hello)?;
    let mut session = match hs.on_reply(&link.recv()?).map_err(|e| e.to_string())? {
        Verdict::Accepted(session) => session,
        Verdict::Pending => return Err("this minion's key is not accepted yet".into()),
        other => return Err(format!("the master refused this minion's key ({other:?})")),
    };
    let ready = ToMaster::Ready { grains: Default::default(), transient: true };
    link.send(&session.seal(&ready).map_err(|e| e.to_string())?)?;
    let event =
        ToMaster::Event { tag: tag.clone(), data, ts: unix_seconds(), ack: true, jid: None };
    link.send(&session.seal(&event).map_err(|e| e.to_string())?)?;
    loop {
        let msg: ToMinion = session.open(&link.recv()?).map_err(|e| e.to_string())?;
        match msg {
            ToMinion::EventAck { tag: acked } if acked == tag => {
                return Ok("local:\n    True\n".into())
            }
            ToMinion::EventRefused { reason, .. } => {
                return Err(format!("the master refused the event: {reason}"))
            }
            // Keepalive or anything else meanwhile: keep waiting for our answer.
            _ => {}
        }
    }
}

/// A blocking framed stream.
struct Blocking {
    stream: TcpStream,
    decoder: Decoder,
}

impl Blocking {
    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut frame = Vec::new();
        encode_frame(payload, &mut frame);
        self.stream.write_all(&frame).map_err(|e| format!("write to master: {e}"))
    }

    fn recv(&mut self) -> Result<Vec<u8>, String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(|e| e.to_string())? {
                return Ok(frame);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("the master closed the connection".into()),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) => return Err(format!("read from master: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_salt_args() {
        let words: Vec<String> =
            ["myco/tag", "data={\"a\": 1}", "n=3"].iter().map(|s| s.to_string()).collect();
        let args = words_to_args(&words);
        assert_eq!(
            args,
            [
                Value::from("myco/tag"),
                serde_json::json!({"data": {"a": 1}, "n": 3, "__kwarg__": true})
            ]
        );
        let (tag, data) = event_from_args("event.send", &args).unwrap();
        assert_eq!(tag, "myco/tag");
        assert_eq!(data, serde_json::json!({"a": 1, "n": 3}));
        assert!(event_from_args("event.send", &[]).is_err());
        // A second positional word is the data, and must be a mapping.
        let text: Vec<String> = ["t", "text"].iter().map(|s| s.to_string()).collect();
        assert!(event_from_args("event.send", &words_to_args(&text)).is_err());
        assert!(event_from_args("event.send", &words_to_args(&["t".into(), "data=[1]".into()]))
            .is_err());
        let (tag, _) =
            event_from_args("event.fire_master", &[serde_json::json!({}), "t2".into()]).unwrap();
        assert_eq!(tag, "t2");
    }

    #[test]
    fn words_are_yaml_as_salt_call_reads_them() {
        let words: Vec<String> =
            ["myco/yaml", "data={a: 1}", "flag=True"].iter().map(|s| s.to_string()).collect();
        let (_, data) = event_from_args("event.send", &words_to_args(&words)).unwrap();
        assert_eq!(data, serde_json::json!({"a": 1, "flag": true}));
    }
}
