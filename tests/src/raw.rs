//! A hand-driven minion connection for hostile-input tests: raw bytes, single frames, or the
//! real handshake step by step, over a blocking socket with timeouts.

use halite_common::crypto::{self, KeyPair, PublicKey};
use halite_common::handshake::{self, MinionHandshake, Session, Verdict};
use halite_common::proto::{ToMaster, ToMinion};
use halite_common::wire::{encode_frame, Decoder};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// A hello for `id` with a fresh key, boxed for `master`, as a hostile client would send it
/// (any id: `MinionHandshake::start` checks none, the master must refuse what is wrong).
pub fn hello_for(id: &str, master: &PublicKey) -> Vec<u8> {
    MinionHandshake::start(id, &KeyPair::generate(), master).expect("a real master key").1
}

/// A protocol version 1 hello for `id`, built by hand as a version 1 minion sealed it (JSON
/// with the version inside, sealed to `master` from an ephemeral key).
pub fn v1_hello_for(id: &str, master: &PublicKey) -> Vec<u8> {
    let hello = serde_json::json!({
        "version": 1,
        "id": id,
        "public": KeyPair::generate().public.to_pem(),
        "challenge": "ab".repeat(32),
    });
    crypto::seal(&serde_json::to_vec(&hello).expect("a hello serialises"), master)
}

/// One raw TCP connection to a master.
pub struct RawConn {
    pub stream: TcpStream,
    decoder: Decoder,
}

impl RawConn {
    /// Connects and reads the master's greeting; returns the master key it presented.
    pub fn connect(addr: SocketAddr) -> (RawConn, PublicKey) {
        RawConn::greeted(TcpStream::connect(addr).expect("connect to master"))
    }

    fn greeted(stream: TcpStream) -> (RawConn, PublicKey) {
        crypto::init();
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut conn = RawConn { stream, decoder: Decoder::new(64 << 20) };
        let greeting = conn.read_frame().expect("greeting frame");
        let master = handshake::parse_greeting(&greeting).expect("valid greeting");
        (conn, master)
    }

    /// Like [`RawConn::connect`], from the local address `source` (any `127.x.y.z` works on
    /// Linux loopback), so one test can be many hosts. `None` if the master closed the
    /// connection before greeting it.
    pub fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> Option<(RawConn, PublicKey)> {
        crypto::init();
        let stream = tcp_from(source, addr);
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut conn = RawConn { stream, decoder: Decoder::new(64 << 20) };
        let greeting = conn.read_frame()?;
        let master = handshake::parse_greeting(&greeting).expect("valid greeting");
        Some((conn, master))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // The master may already have hung up; the test checks that separately.
        let _ = self.stream.write_all(bytes);
    }

    pub fn send_frame(&mut self, payload: &[u8]) {
        let mut out = Vec::new();
        encode_frame(payload, &mut out);
        self.send_raw(&out);
    }

    /// Closes our sending side (the master sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The next frame, or `None` if the master closed the connection first.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("master frames are sane") {
                return Some(frame);
            }
            assert!(Instant::now() < deadline, "no frame from the master within {IO_TIMEOUT:?}");
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether the master closes the connection (EOF or reset) within the timeout, ignoring
    /// any frames it sends first.
    pub fn closed_by_master(&mut self) -> bool {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// A minion speaking the real protocol by hand.
pub struct RawMinion {
    pub conn: RawConn,
    pub keys: KeyPair,
    pub session: Session,
}

impl RawMinion {
    /// Connects as `id` with a fresh key and completes the handshake; the master must accept
    /// (use `auto_accept`). Sends `Ready` so the session is live.
    pub fn authenticate(addr: SocketAddr, id: &str) -> RawMinion {
        let mut raw = RawMinion::accepted(addr, id);
        raw.send(&ToMaster::Ready { grains: Default::default(), transient: false });
        raw
    }

    /// Like [`RawMinion::authenticate`] but stops at the Accepted verdict, without `Ready`:
    /// the connection waits in the master's AwaitReady step.
    pub fn accepted(addr: SocketAddr, id: &str) -> RawMinion {
        let (mut conn, master) = RawConn::connect(addr);
        let keys = KeyPair::generate();
        let (hs, hello) = MinionHandshake::start(id, &keys, &master).expect("a real master key");
        conn.send_frame(&hello);
        let reply = conn.read_frame().expect("verdict");
        let Verdict::Accepted(session) = hs.on_reply(&reply).expect("valid verdict") else {
            panic!("master did not accept {id}");
        };
        RawMinion { conn, keys, session }
    }

    /// Seals and sends; returns the frame payload so a test can replay or corrupt it.
    pub fn send(&mut self, msg: &ToMaster) -> Vec<u8> {
        let frame = self.session.seal(msg).expect("seal");
        self.conn.send_frame(&frame);
        frame
    }

    /// Reads and opens the next session message.
    pub fn recv(&mut self) -> Option<ToMinion> {
        let frame = self.conn.read_frame()?;
        Some(self.session.open(&frame).expect("master frames open"))
    }
}

/// A blocking TCP connection to `addr` (IPv4) from the local address `source`: std cannot bind
/// before connecting, so this goes through libc.
pub fn tcp_from(source: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(addr) = addr else { panic!("tcp_from needs an IPv4 address") };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let (local, remote) = (sockaddr(source, 0), sockaddr(*addr.ip(), addr.port()));
    // SAFETY: plain socket calls on a descriptor we create; the sockaddr structs live across
    // the calls and `len` is their size. The descriptor is owned by the `TcpStream` at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let rc = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "bind {source}: {}", std::io::Error::last_os_error());
        let rc = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "connect {addr} from {source}: {}", std::io::Error::last_os_error());
        stream
    }
}
