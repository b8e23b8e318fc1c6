//! The forwarder's Redis connection: blocking, with timeouts, on the forwarder's own thread.
//! A batch of stream entries and the checkpoint after them are one `MULTI`/`EXEC`, so the
//! stream never holds a batch the checkpoint does not count.

use super::tail::Position;
use halite_common::config::EventReturn;
use halite_common::resp::{self, Reply, RespError};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to Redis failed; the connection is dropped after any of them.
#[derive(Debug)]
pub enum RedisError {
    Io(io::Error),
    Protocol(RespError),
    /// The server refused a command (its error text: `WRONGPASS …`, `NOAUTH …`, …).
    Refused {
        command: &'static str,
        message: String,
    },
    /// The stream key holds another type: nothing can be added to it.
    NotAStream {
        key: String,
        kind: String,
    },
    /// A checkpoint that is not one this forwarder wrote.
    BadCheckpoint(String),
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Io(e) => write!(f, "{e}"),
            RedisError::Protocol(e) => write!(f, "{e}"),
            RedisError::Refused { command, message } => write!(f, "{command}: {message}"),
            RedisError::NotAStream { key, kind } => {
                write!(f, "key {key} holds a {kind}, not a stream")
            }
            RedisError::BadCheckpoint(text) => write!(f, "unreadable checkpoint {text:?}"),
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(e: io::Error) -> Self {
        RedisError::Io(e)
    }
}

/// One entry to add: the event's tag and its data as JSON text.
pub struct Entry<'a> {
    pub tag: &'a str,
    pub data: &'a str,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connection that has authenticated, selected its database and checked the stream key.
pub struct Redis {
    stream: Stream,
    inbuf: Vec<u8>,
    /// How much of `inbuf` was parsed already.
    read: usize,
    out: Vec<u8>,
    key: String,
    checkpoint_key: String,
    maxlen: u64,
    master: String,
}

impl Redis {
    /// Connects as `cfg` says; `master` names the checkpoint and fills each entry's `master`.
    pub fn connect(cfg: &EventReturn, master: &str) -> Result<Redis, RedisError> {
        let stream = match &cfg.unix_socket_path {
            Some(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Stream::Unix(s)
            }
            None => {
                let addrs = (cfg.host.as_str(), cfg.port).to_socket_addrs()?;
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                let mut connected = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = connected.ok_or(last)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
        };
        let mut redis = Redis {
            stream,
            inbuf: Vec::new(),
            read: 0,
            out: Vec::new(),
            key: cfg.stream.clone(),
            checkpoint_key: format!("{}:checkpoint:{master}", cfg.stream),
            maxlen: cfg.maxlen,
            master: master.to_string(),
        };
        if let Some(password) = &cfg.password {
            redis.call("AUTH", &["AUTH", password])?;
        }
        if cfg.db != 0 {
            redis.call("SELECT", &["SELECT", &cfg.db.to_string()])?;
        }
        // XADD would fail on another type inside EXEC, where failures do not undo the rest.
        let key = redis.key.clone();
        match redis.call("TYPE", &["TYPE", &key])? {
            Reply::Simple(kind) if kind == "stream" || kind == "none" => {}
            Reply::Simple(kind) => return Err(RedisError::NotAStream { key, kind }),
            other => return Err(unexpected("TYPE", &other)),
        }
        Ok(redis)
    }

    /// This master's checkpoint, if it has one.
    pub fn checkpoint(&mut self) -> Result<Option<Position>, RedisError> {
        let key = self.checkpoint_key.clone();
        match self.call("GET", &["GET", &key])? {
            Reply::Bulk(None) => Ok(None),
            Reply::Bulk(Some(text)) => serde_json::from_slice(&text)
                .map(Some)
                .map_err(|_| RedisError::BadCheckpoint(String::from_utf8_lossy(&text).into())),
            other => Err(unexpected("GET", &other)),
        }
    }

    /// Adds `entries` and moves the checkpoint to `to`, all or nothing.
    pub fn store(&mut self, entries: &[Entry<'_>], to: Position) -> Result<(), RedisError> {
        let maxlen = self.maxlen.to_string();
        let checkpoint = serde_json::to_string(&to).expect("positions serialise");
        self.out.clear();
        resp::command(&mut self.out, &["MULTI"]);
        for entry in entries {
            let mut args: Vec<&str> = vec!["XADD", &self.key];
            if self.maxlen > 0 {
                args.extend(["MAXLEN", "~", &maxlen]);
            }
            args.extend(["*", "tag", entry.tag, "data", entry.data, "master", &self.master]);
            resp::command(&mut self.out, &args);
        }
        resp::command(&mut self.out, &["SET", &self.checkpoint_key, &checkpoint]);
        resp::command(&mut self.out, &["EXEC"]);
        let out = std::mem::take(&mut self.out);
        let written = self.stream.io().write_all(&out);
        self.out = out;
        written?;
        // MULTI's +OK, a +QUEUED per command (or the error that will abort EXEC), then EXEC's.
        let mut queue_error = None;
        for _ in 0..entries.len() + 2 {
            if let Reply::Error(e) = self.reply()? {
                queue_error.get_or_insert(e);
            }
        }
        match self.reply()? {
            Reply::Array(Some(items)) if items.len() == entries.len() + 1 => {
                match items.iter().find_map(Reply::error) {
                    // Stored in part: cannot happen after the TYPE check short of a server
                    // fault, and is said loudly when it does.
                    Some(e) => Err(RedisError::Refused { command: "EXEC", message: e.to_string() }),
                    None => Ok(()),
                }
            }
            Reply::Error(e) => Err(RedisError::Refused {
                command: "EXEC",
                message: queue_error.map_or(e.clone(), |q| format!("{e} ({q})")),
            }),
            other => Err(unexpected("EXEC", &other)),
        }
    }

    /// One command and its reply; a server error is a `Refused`.
    fn call(&mut self, command: &'static str, args: &[&str]) -> Result<Reply, RedisError> {
        self.out.clear();
        resp::command(&mut self.out, args);
        let out = std::mem::take(&mut self.out);
        let written = self.stream.io().write_all(&out);
        self.out = out;
        written?;
        match self.reply()? {
            Reply::Error(message) => Err(RedisError::Refused { command, message }),
            reply => Ok(reply),
        }
    }

    fn reply(&mut self) -> Result<Reply, RedisError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let unread = &self.inbuf[self.read..];
            if let Some((reply, used)) = resp::parse(unread).map_err(RedisError::Protocol)? {
                self.read += used;
                return Ok(reply);
            }
            // Whole replies are parsed in place; the buffer is compacted only to read more.
            self.inbuf.drain(..self.read);
            self.read = 0;
            let n = self.stream.io().read(&mut chunk)?;
            if n == 0 {
                return Err(RedisError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn unexpected(command: &'static str, reply: &Reply) -> RedisError {
    RedisError::Refused { command, message: format!("unexpected reply {reply:?}") }
}
