//! Shared pieces of the CLIs: finding and talking to the master's control socket.

use halite_common::config;
use halite_common::control::{Request, Response, SOCKET_NAME};
use halite_common::wire::{encode_frame, Decoder, DEFAULT_MAX_FRAME_BYTES};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why a CLI could not get an answer from the master.
#[derive(Debug)]
pub enum ClientError {
    Config(config::ConfigErrors),
    /// Nothing listens on the control socket: the master is not running (or another `-c`).
    NotRunning {
        socket: PathBuf,
        source: io::Error,
    },
    Io(io::Error),
    Protocol(String),
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
            ClientError::Io(e) => write!(f, "control socket: {e}"),
            ClientError::Protocol(e) => write!(f, "unexpected answer from the master: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A blocking connection to the master's control socket.
pub struct Client {
    stream: UnixStream,
    decoder: Decoder,
}

impl Client {
    /// Connects to the master configured in `config_dir`.
    pub fn from_config_dir(config_dir: &Path) -> Result<Client, ClientError> {
        let cfg = config::load_master(config_dir)
            .map_err(ClientError::Config)?
            .config;
        Client::connect(&cfg.sock_dir.join(SOCKET_NAME))
    }

    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::NotRunning {
            socket: socket.to_path_buf(),
            source,
        })?;
        Ok(Client {
            stream,
            decoder: Decoder::new(DEFAULT_MAX_FRAME_BYTES * 8),
        })
    }

    /// Sends one request and waits for its response.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut frame = Vec::new();
        encode_frame(
            &serde_json::to_vec(request).expect("requests serialise"),
            &mut frame,
        );
        self.stream.write_all(&frame).map_err(ClientError::Io)?;
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => {
                    return serde_json::from_slice(&payload)
                        .map_err(|e| ClientError::Protocol(e.to_string()));
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let n = self.stream.read(&mut buf).map_err(ClientError::Io)?;
            if n == 0 {
                return Err(ClientError::Protocol("master closed the connection".into()));
            }
            self.decoder.push(&buf[..n]);
        }
    }
}
pub mod keys;
pub mod args;
pub mod output;
