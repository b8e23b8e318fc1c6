//! The blocking client of the master's control socket (`<sock_dir>/master.sock`), the one
//! socket in `common`: the CLIs use it, and so does the master's orchestrator, whose threads
//! talk to their own master exactly as a CLI does.

use crate::config;
use crate::control::{Request, Response, SOCKET_NAME};
use crate::wire::{encode_frame, Decoder, DEFAULT_MAX_FRAME_BYTES};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a CLI could not get an answer from the master.
#[derive(Debug)]
pub enum ClientError {
    Config(config::ConfigErrors),
    /// Nothing listens on the control socket: the master is not running (or another `-c`).
    NotRunning {
        socket: PathBuf,
        source: io::Error,
    },
    /// The socket is there but only the master's user (and root) may open it (mode 0600).
    Forbidden {
        socket: PathBuf,
    },
    Io(io::Error),
    Protocol(String),
    /// The master closed the connection (it stopped, or dropped a too-slow subscriber).
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Config(e) => write!(f, "bad master configuration:\n{e}"),
            ClientError::NotRunning { socket, source } => write!(
                f,
                "the master is not running (cannot connect to {}: {source}); start \
                 halite-master with the same -c directory",
                socket.display()
            ),
            ClientError::Forbidden { socket } => write!(
                f,
                "permission denied on the control socket {}: only root and the user the master \
                 runs as (halite, under the packaged unit) may use it",
                socket.display()
            ),
            ClientError::Io(e) => write!(f, "control socket: {e}"),
            ClientError::Protocol(e) => write!(f, "unexpected answer from the master: {e}"),
            ClientError::Closed => f.write_str(
                "the master closed the connection (it stopped, or dropped this client for \
                 reading too slowly)",
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// What a failed connect means: a running master that does not let this user in is not a
/// master that is not running.
fn connect_error(socket: &Path, source: io::Error) -> ClientError {
    let socket = socket.to_path_buf();
    match source.kind() {
        io::ErrorKind::PermissionDenied => ClientError::Forbidden { socket },
        _ => ClientError::NotRunning { socket, source },
    }
}

/// A blocking connection to the master's control socket.
pub struct Client {
    stream: UnixStream,
    decoder: Decoder,
}

impl Client {
    /// Connects to the master configured in `config_dir`.
    pub fn from_config_dir(config_dir: &Path) -> Result<Client, ClientError> {
        let cfg = config::load_master(config_dir).map_err(ClientError::Config)?.config;
        Client::connect(&cfg.sock_dir.join(SOCKET_NAME))
    }

    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|e| connect_error(socket, e))?;
        Ok(Client { stream, decoder: Decoder::new(DEFAULT_MAX_FRAME_BYTES * 8) })
    }

    /// Sends one request and waits for its response.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request)?;
        self.receive(None)?.ok_or_else(|| ClientError::Protocol("no answer".into()))
    }

    /// Sends a request without waiting.
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut frame = Vec::new();
        let payload = serde_json::to_vec(request).expect("requests serialise");
        encode_frame(&payload, &mut frame);
        send_all(&self.stream, &frame).map_err(ClientError::Io)
    }

    /// The next message from the master; `Ok(None)` when `wait` passes first (`None` = forever).
    /// The master closing the stream is an error: it never does so without a reason.
    pub fn receive(&mut self, wait: Option<Duration>) -> Result<Option<Response>, ClientError> {
        self.receive_with(wait, || {})
    }

    /// [`Client::receive`], calling `before_read` once before it would read the socket (no
    /// whole frame buffered): a CLI writes out what it holds then, not once per frame.
    pub fn receive_with(
        &mut self,
        wait: Option<Duration>,
        mut before_read: impl FnMut(),
    ) -> Result<Option<Response>, ClientError> {
        let deadline = wait.map(|w| Instant::now() + w);
        // Allocated on the first read only: most calls find a frame already decoded.
        let mut buf = Vec::new();
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => {
                    return crate::control::decode_response(&payload)
                        .map(Some)
                        .map_err(|e| ClientError::Protocol(e.to_string()));
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let timeout = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
                None => None,
            };
            if buf.is_empty() {
                before_read();
            }
            self.stream.set_read_timeout(timeout).map_err(ClientError::Io)?;
            buf.resize(64 * 1024, 0);
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::Io(e)),
            }
        }
    }
}

/// Writes all of `bytes` without raising SIGPIPE (the CLIs restore its default for stdout): a
/// master gone mid-request is an error to report, not a silent death.
fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for `bytes.len()` bytes and the descriptor is `stream`'s.
        let sent = unsafe {
            libc::send(stream.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL)
        };
        match sent {
            n if n >= 0 => bytes = &bytes[n as usize..],
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connect_names_who_may_use_the_socket() {
        let socket = Path::new("/run/halite/master/master.sock");
        let denied = connect_error(socket, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(
            denied.to_string(),
            "permission denied on the control socket /run/halite/master/master.sock: only root \
             and the user the master runs as (halite, under the packaged unit) may use it"
        );
        let absent = connect_error(socket, io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(absent, ClientError::NotRunning { .. }), "{absent}");
        assert!(absent.to_string().starts_with("the master is not running"));
    }
}
