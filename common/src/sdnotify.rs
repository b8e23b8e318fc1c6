//! systemd's readiness protocol (`sd_notify(3)`) without libsystemd: one datagram per state
//! change to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). Outside systemd the variable is unset and every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The daemon's side of the notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and removes it from the environment, so that the processes a
    /// daemon starts (jobs, the render worker) cannot speak for it. Call it before any thread
    /// starts.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { socket: None };
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let name = name.to_string_lossy().into_owned();
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name.as_bytes())
            }
            None => SocketAddr::from_pathname(&name),
        };
        let socket = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match socket {
            Ok(socket) => Notifier { socket: Some(socket) },
            Err(e) => {
                log::warn!("NOTIFY_SOCKET {name}: {e}; systemd will not hear from this daemon");
                Notifier { socket: None }
            }
        }
    }

    /// A notifier that says nothing (tests, `halite-minion call`).
    pub fn none() -> Notifier {
        Notifier { socket: None }
    }

    /// Sends `state` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…`, newline-separated);
    /// a failure is logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((socket, addr)) = &self.socket else { return };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
            log::debug!("sd_notify {state:?}: {e}");
        }
    }

    /// `RELOADING=1` with the `MONOTONIC_USEC` that systemd 253's `Type=notify-reload` wants.
    pub fn reloading(&self) {
        if self.socket.is_some() {
            self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        }
    }
}

/// `CLOCK_MONOTONIC` in microseconds.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_the_socket_and_the_variable_is_gone() {
        let dir = std::env::temp_dir().join(format!("halite-sdnotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        let notifier = Notifier::from_env();
        assert!(std::env::var_os("NOTIFY_SOCKET").is_none());
        notifier.notify("READY=1\nSTATUS=up");
        notifier.reloading();
        let mut buf = [0; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
        let n = listener.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"RELOADING=1\nMONOTONIC_USEC="));
        Notifier::none().notify("READY=1");
        let _ = std::fs::remove_dir_all(dir);
    }
}
