//! A framed, buffered, non-blocking connection over any `Read + Write` stream.
//! ([`Conn::raw`] is the same without framing, for a protocol parsed elsewhere: HTTP.)
//!
//! Reading stops at `WouldBlock` or after a per-turn budget (the caller re-polls the
//! connection next turn); `send` only appends to the output buffer and the caller asks for
//! WRITABLE while [`Conn::wants_write`] is true. Short writes are normal, not errors.

use crate::wire::{encode_frame, Decoder, WireError};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Bytes read from one connection per turn before yielding to the others.
pub const READ_BUDGET: usize = 256 * 1024;

/// Why a connection must be closed (or a frame could not be queued on it).
///
/// `Display` is the reason daemons log ("closed connection ...: <reason>"); a `String` can be
/// made from it so callers returning `Result<_, String>` keep using `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnError {
    /// The peer closed its end (EOF on read).
    PeerClosed,
    /// Reading from the stream failed.
    Read { kind: ErrorKind, message: String },
    /// Writing to the stream failed (a write of zero bytes counts as `WriteZero`).
    Write { kind: ErrorKind, message: String },
    /// The peer sent a frame the decoder refused (e.g. longer than the current maximum).
    Frame(WireError),
    /// Queuing would leave `len` bytes unsent, past the connection's `max` backlog: the peer
    /// is not reading.
    Backlog { len: usize, max: usize },
    /// `len` bytes are (or would be) unsent, past the connection's soft backlog, and the
    /// peer has taken less than `step` bytes of its output in `stalled` (see [`Patience`]).
    Stalled { len: usize, stalled: Duration, step: usize },
}

impl ConnError {
    fn read(e: &io::Error) -> ConnError {
        ConnError::Read { kind: e.kind(), message: e.to_string() }
    }

    fn write(e: &io::Error) -> ConnError {
        ConnError::Write { kind: e.kind(), message: e.to_string() }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::PeerClosed => f.write_str("peer closed the connection"),
            ConnError::Read { message, .. } => write!(f, "read failed: {message}"),
            ConnError::Write { message, .. } => write!(f, "write failed: {message}"),
            ConnError::Frame(e) => e.fmt(f),
            ConnError::Backlog { max, .. } => {
                write!(f, "peer is not reading: over {max} bytes queued")
            }
            ConnError::Stalled { len, stalled, step } => {
                let secs = stalled.as_secs();
                write!(f, "peer is not reading: {len} bytes queued, under {step} taken in {secs} s")
            }
        }
    }
}

/// No `source()`: `Frame`'s text already is the `WireError`'s, a chain would print it twice.
impl std::error::Error for ConnError {}

impl From<WireError> for ConnError {
    fn from(e: WireError) -> ConnError {
        ConnError::Frame(e)
    }
}

impl From<ConnError> for String {
    fn from(e: ConnError) -> String {
        e.to_string()
    }
}

/// Moves the decoder's complete frames into `frames`.
fn drain(decoder: &mut Decoder, frames: &mut Vec<Vec<u8>>) -> Result<(), WireError> {
    while let Some(frame) = decoder.next_frame()? {
        frames.push(frame);
    }
    Ok(())
}

/// What a read turn produced.
#[derive(Debug, Default)]
pub struct ReadTurn {
    pub frames: Vec<Vec<u8>>,
    /// The peer closed (EOF), or the stream failed, or a frame was refused: close after
    /// handling `frames`.
    pub closed: Option<ConnError>,
    /// The budget ran out before `WouldBlock`: read again next turn.
    pub more: bool,
}

/// How far a peer that keeps reading may fall behind: past `soft` bytes unsent, a frame is
/// still queued while the peer has taken at least `step` bytes of its output within the last
/// `stall` (a client reading a burst of big answers as fast as it can is not a slow reader;
/// one taking a byte now and then is); `max_out` stays the hard cap.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub soft: usize,
    pub stall: Duration,
    pub step: usize,
}

/// A [`Patience`] and what the connection last saw of the peer's progress.
#[derive(Debug)]
struct Progress {
    patience: Patience,
    /// Bytes written in all when the peer was last seen taking a `step` (or had taken all),
    /// and when that was.
    seen: (u64, Instant),
}

/// One peer's stream with its decoder and output buffer.
#[derive(Debug)]
pub struct Conn<S> {
    pub stream: S,
    /// `None`: raw bytes, each read's chunk handed on as one "frame", output sent as it is.
    decoder: Option<Decoder>,
    out: Vec<u8>,
    out_pos: usize,
    max_out: usize,
    /// Bytes written to the stream since the connection was made.
    written: u64,
    progress: Option<Progress>,
}

impl<S: Read + Write> Conn<S> {
    /// `max_frame` bounds incoming frames; `max_out` bounds unsent output (a peer that does not
    /// read is cut off rather than allowed to grow our memory).
    pub fn new(stream: S, max_frame: usize, max_out: usize) -> Conn<S> {
        let decoder = Some(Decoder::new(max_frame));
        Conn { stream, decoder, out: Vec::new(), out_pos: 0, max_out, written: 0, progress: None }
    }

    /// Lets the peer hold more than `patience.soft` unsent while it keeps reading (see
    /// [`Conn::send_at`]); `now` starts the clock.
    pub fn with_patience(mut self, patience: Patience, now: Instant) -> Conn<S> {
        self.progress = Some(Progress { patience, seen: (self.written, now) });
        self
    }

    /// An unframed connection: `read` hands on what each turn read (at most [`READ_BUDGET`]
    /// bytes) as one chunk in `frames`, and `send` queues bytes as they are. The caller parses
    /// and bounds what it buffers.
    pub fn raw(stream: S, max_out: usize) -> Conn<S> {
        Conn {
            stream,
            decoder: None,
            out: Vec::new(),
            out_pos: 0,
            max_out,
            written: 0,
            progress: None,
        }
    }

    /// Changes the largest incoming frame accepted from now on (no-op on a raw connection).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        if let Some(decoder) = &mut self.decoder {
            decoder.set_max(max_frame);
        }
    }

    /// Reads what is available (up to the budget) and splits it into frames.
    pub fn read(&mut self) -> ReadTurn {
        self.read_turn(false)
    }

    /// [`Conn::read`] for edge-triggered readiness on a Linux socket, where every arrival
    /// (data, the peer's FIN) raises a new edge: a read shorter than the buffer found the
    /// socket empty, so the read that would only say `WouldBlock` is skipped (one system call
    /// per ready connection instead of two). `closing`: the readiness said the peer closed
    /// or failed, so the stream is read until it says so (its EOF raises no further edge).
    pub fn read_edge(&mut self, closing: bool) -> ReadTurn {
        self.read_turn(!closing)
    }

    fn read_turn(&mut self, short_is_idle: bool) -> ReadTurn {
        let mut turn = ReadTurn::default();
        let mut buf = [0u8; 16 * 1024];
        let (mut total, mut idle) = (0, false);
        let mut chunk = Vec::new();
        loop {
            if total >= READ_BUDGET {
                turn.more = true;
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    turn.closed = Some(ConnError::PeerClosed);
                    break;
                }
                Ok(n) => {
                    total += n;
                    match &mut self.decoder {
                        // Frames are taken out after every read, so the decoder holds at
                        // most one read and a partial frame, not the whole turn's budget.
                        Some(decoder) => {
                            decoder.push(&buf[..n]);
                            if let Err(e) = drain(decoder, &mut turn.frames) {
                                turn.closed = Some(e.into());
                                break;
                            }
                        }
                        None => chunk.extend_from_slice(&buf[..n]),
                    }
                    if short_is_idle && n < buf.len() {
                        idle = true;
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    idle = true;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    turn.closed = Some(ConnError::read(&e));
                    break;
                }
            }
        }
        match &mut self.decoder {
            Some(decoder) if idle => decoder.shrink_idle(),
            Some(_) => {}
            None if !chunk.is_empty() => turn.frames.push(chunk),
            None => {}
        }
        turn
    }

    /// Queues one frame. Fails when the peer has left too much output unread: more than
    /// `max_out` with this frame, unless nothing is queued (one answer bigger than the cap is
    /// not a slow reader).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        let queued = self.out.len() - self.out_pos;
        let len = queued + payload.len();
        if queued > 0 && len > self.max_out {
            return Err(ConnError::Backlog { len, max: self.max_out });
        }
        match self.decoder {
            Some(_) => encode_frame(payload, &mut self.out),
            None => self.out.extend_from_slice(payload),
        }
        Ok(())
    }

    /// [`Conn::send`], held to the connection's [`Patience`] if it has one: past the soft
    /// backlog the frame is refused when the peer has not taken a `step` of its output in
    /// the last `patience.stall`.
    pub fn send_at(&mut self, payload: &[u8], now: Instant) -> Result<(), ConnError> {
        match self.stalled_with(payload.len(), now) {
            Some(stalled) => Err(stalled),
            None => self.send(payload),
        }
    }

    /// Whether the peer has fallen behind past its [`Patience`]: the backlog is past the soft
    /// one and it has not taken a `step` of it for the whole stall (the driver looks, sends
    /// or not: a peer that stopped reading with a backlog owed held it until it went away).
    pub fn stalled(&mut self, now: Instant) -> Option<ConnError> {
        self.stalled_with(0, now)
    }

    fn stalled_with(&mut self, more: usize, now: Instant) -> Option<ConnError> {
        self.note_progress(now);
        let progress = self.progress.as_ref()?;
        let len = self.backlog() + more;
        let stalled = now.saturating_duration_since(progress.seen.1);
        (len > progress.patience.soft && stalled >= progress.patience.stall)
            .then_some(ConnError::Stalled { len, stalled, step: progress.patience.step })
    }

    /// Stamps the peer's progress with `now` if it took all, or a `step` more, since last.
    fn note_progress(&mut self, now: Instant) {
        let (backlog, written) = (self.backlog(), self.written);
        if let Some(progress) = &mut self.progress {
            let step = progress.patience.step as u64;
            if backlog == 0 || written >= progress.seen.0.saturating_add(step) {
                progress.seen = (written, now);
            }
        }
    }

    /// [`Conn::flush`], and what the peer took stamped with `now` (the time it was taken,
    /// not the time of the next frame for it).
    pub fn flush_at(&mut self, now: Instant) -> Result<(), ConnError> {
        self.flush()?;
        self.note_progress(now);
        Ok(())
    }

    /// Writes queued output until done or `WouldBlock`.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(ConnError::write(&ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.out_pos += n;
                    self.written += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ConnError::write(&e)),
            }
        }
        if self.out_pos == self.out.len() {
            // All sent: the buffer is given back (10,000 idle minions each keeping the
            // capacity of their last publish would hold megabytes for nothing).
            self.out = Vec::new();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 && self.out_pos >= self.out.len() / 2 {
            // Moved down only once half is sent: a client reading a 128 MiB backlog a
            // socket buffer at a time had the rest moved on every write (gigabytes copied).
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn backlog(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Whether output is waiting for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        self.out_pos < self.out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream that yields scripted reads and accepts at most `write_limit` bytes per call
    /// (none: `WouldBlock`), or fails every write with `write_error`.
    struct Script {
        reads: VecDeque<io::Result<Vec<u8>>>,
        written: Vec<u8>,
        write_limit: usize,
        write_error: Option<ErrorKind>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.reads.pop_front() {
                None => Err(ErrorKind::WouldBlock.into()),
                Some(Ok(bytes)) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
                Some(Err(e)) => Err(e),
            }
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(kind) = self.write_error {
                return Err(kind.into());
            }
            if self.write_limit == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.write_limit);
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn script(reads: Vec<io::Result<Vec<u8>>>, write_limit: usize) -> Conn<Script> {
        let stream =
            Script { reads: reads.into(), written: Vec::new(), write_limit, write_error: None };
        Conn::new(stream, 1024, 64)
    }

    /// The error and the reason daemons log for it (tests and operators match these texts).
    #[track_caller]
    fn check(got: Option<ConnError>, expected: ConnError, text: &str) {
        assert_eq!(got, Some(expected));
        assert_eq!(got.unwrap().to_string(), text);
    }

    #[test]
    fn frames_split_across_reads_then_eof() {
        let mut c = script(vec![Ok(vec![0, 0, 0, 2, b'h']), Ok(vec![b'i', 0, 0]), Ok(vec![])], 0);
        let turn = c.read();
        assert_eq!(turn.frames, [b"hi".to_vec()]);
        check(turn.closed, ConnError::PeerClosed, "peer closed the connection");
    }

    /// After an edge, a short read means the socket was empty: the next read is left for the
    /// next edge, unless the edge said the peer closed (its EOF raises no other).
    #[test]
    fn read_edge_stops_at_a_short_read_unless_the_peer_is_closing() {
        let reads = || vec![Ok(vec![0, 0, 0, 2, b'h', b'i']), Ok(vec![])];
        let mut c = script(reads(), 0);
        let turn = c.read_edge(false);
        assert_eq!((turn.frames, turn.closed, turn.more), (vec![b"hi".to_vec()], None, false));
        assert_eq!(c.stream.reads.len(), 1, "the EOF is left for the next edge");
        let mut c = script(reads(), 0);
        let turn = c.read_edge(true);
        assert_eq!(turn.frames, [b"hi".to_vec()]);
        check(turn.closed, ConnError::PeerClosed, "peer closed the connection");
    }

    #[test]
    fn a_raw_connection_hands_on_bytes_and_sends_them_unframed() {
        let stream = Script {
            reads: vec![Ok(b"GET / HT".to_vec()), Ok(b"TP/1.1\r\n".to_vec()), Ok(vec![])].into(),
            written: Vec::new(),
            write_limit: 100,
            write_error: None,
        };
        let mut c = Conn::raw(stream, 8);
        let turn = c.read();
        assert_eq!(turn.frames, [b"GET / HTTP/1.1\r\n".to_vec()]);
        check(turn.closed, ConnError::PeerClosed, "peer closed the connection");
        c.send(b"HTTP/1.1").unwrap();
        assert_eq!(c.send(b"!"), Err(ConnError::Backlog { len: 9, max: 8 }));
        c.flush().unwrap();
        assert_eq!(c.stream.written, b"HTTP/1.1");
    }

    #[test]
    fn oversized_frame_closes_with_the_wire_error() {
        let mut c = script(vec![Ok(vec![0, 0, 4, 1])], 0);
        let too_large = WireError::TooLarge { len: 1025, max: 1024 };
        let text = "frame of 1025 bytes exceeds max_frame_bytes 1024";
        check(c.read().closed, ConnError::Frame(too_large), text);
    }

    #[test]
    fn read_error_closes_with_its_kind_after_the_frames_before_it() {
        let reset = io::Error::new(ErrorKind::ConnectionReset, "reset by peer");
        let mut c = script(vec![Ok(vec![0, 0, 0, 1, b'x']), Err(reset)], 0);
        let turn = c.read();
        assert_eq!(turn.frames, [b"x".to_vec()]);
        let expected =
            ConnError::Read { kind: ErrorKind::ConnectionReset, message: "reset by peer".into() };
        check(turn.closed, expected, "read failed: reset by peer");
    }

    #[test]
    fn interrupted_read_is_retried_not_an_error() {
        let mut c = script(vec![Err(ErrorKind::Interrupted.into()), Ok(vec![0, 0, 0, 0])], 0);
        let turn = c.read();
        assert_eq!((turn.frames, turn.closed, turn.more), (vec![vec![]], None, false));
    }

    #[test]
    fn write_error_is_typed_and_keeps_the_output_queued() {
        let mut c = script(vec![], 0);
        c.stream.write_error = Some(ErrorKind::BrokenPipe);
        c.send(b"abc").unwrap();
        let got = c.flush().err();
        let message = io::Error::from(ErrorKind::BrokenPipe).to_string();
        let text = format!("write failed: {message}");
        check(got, ConnError::Write { kind: ErrorKind::BrokenPipe, message }, &text);
        assert!(c.wants_write());
    }

    #[test]
    fn short_writes_are_resumed_and_unread_output_is_bounded() {
        let mut c = script(vec![], 3);
        c.send(b"abcdef").unwrap();
        c.flush().unwrap();
        assert!(!c.wants_write());
        assert_eq!(c.stream.written, [0, 0, 0, 6, b'a', b'b', b'c', b'd', b'e', b'f']);
        c.stream.write_limit = 0;
        c.send(&[0; 40]).unwrap();
        c.flush().unwrap();
        assert!(c.wants_write());
        // 44 bytes queued (header and payload) + 40 more would pass the 64-byte backlog.
        let text = "peer is not reading: over 64 bytes queued";
        check(c.send(&[0; 40]).err(), ConnError::Backlog { len: 84, max: 64 }, text);
    }

    /// A frame bigger than the backlog cap is queued when nothing else is (an answer that
    /// size is not a slow reader), and nothing more until it has gone.
    #[test]
    fn one_frame_over_the_backlog_cap_fits_an_empty_queue() {
        let mut c = script(vec![], 0);
        c.send(&[1; 100]).unwrap();
        // 104 queued (header and payload), then 1 more.
        assert_eq!(c.send(b"x"), Err(ConnError::Backlog { len: 105, max: 64 }));
        c.stream.write_limit = 1000;
        c.flush().unwrap();
        c.send(b"x").unwrap();
    }

    /// The peer reads `n` bytes of what is queued.
    fn take(c: &mut Conn<Script>, n: usize) {
        let queued = &c.out[c.out_pos..c.out_pos + n];
        c.stream.written.extend_from_slice(queued);
        c.out_pos += n;
        c.written += n as u64;
    }

    /// A peer with patience may fall behind past the soft backlog while it keeps taking
    /// bytes (three 6 MB returns landing in one turn for a `halite` reading as fast as it
    /// can); once it has taken none for the whole stall, the next frame is refused, and the
    /// hard cap holds whatever it reads.
    #[test]
    fn a_reading_peer_may_pass_the_soft_backlog_a_stalled_one_may_not() {
        let t0 = Instant::now();
        let secs = |s| t0 + Duration::from_secs(s);
        let patience = Patience { soft: 64, stall: Duration::from_secs(30), step: 8 };
        let mut c = script(vec![], 0).with_patience(patience, t0);
        c.max_out = 1000;
        c.send_at(&[1; 100], secs(0)).unwrap();
        c.send_at(&[1; 100], secs(20)).unwrap(); // 208 queued: past soft, stalled 20 s only
        take(&mut c, 8); // it took 8 bytes at 25 s ...
        c.send_at(&[1; 100], secs(25)).unwrap();
        c.send_at(&[1; 100], secs(54)).unwrap(); // ... so 54 s is 29 s of stall
        let refused = c.send_at(b"x", secs(55));
        let stalled = Duration::from_secs(30);
        assert_eq!(refused, Err(ConnError::Stalled { len: 409, stalled, step: 8 }));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "peer is not reading: 409 bytes queued, under 8 taken in 30 s"
        );
        // Under the soft backlog nothing is refused for stalling; past the hard cap, always.
        let mut c = script(vec![], 0).with_patience(patience, t0);
        c.max_out = 300;
        c.send_at(&[1; 60], secs(0)).unwrap();
        for s in 1..4 {
            take(&mut c, 1);
            c.send_at(&[1; 60], secs(s)).unwrap();
        }
        assert_eq!(c.send_at(&[1; 60], secs(5)), Err(ConnError::Backlog { len: 313, max: 300 }));
        let mut c = script(vec![], 0).with_patience(patience, t0);
        c.max_out = 1000;
        c.send_at(&[1; 10], secs(0)).unwrap();
        c.send_at(&[1; 10], secs(100)).unwrap(); // 28 bytes: under soft, however long
                                                 // A connection idle since it was made may be sent more than the soft backlog at
                                                 // once: nothing owed was left untaken.
        let mut idle = script(vec![], 0).with_patience(patience, t0);
        idle.max_out = 1000;
        idle.send_at(&[1; 100], secs(100)).unwrap();
        // An empty queue restarts the clock: nothing owed was left untaken.
        c.stream.write_limit = 1000;
        c.flush().unwrap();
        c.stream.write_limit = 0;
        c.send_at(&[1; 100], secs(200)).unwrap();
        c.send_at(&[1; 100], secs(229)).unwrap();
        assert!(matches!(c.send_at(&[1; 100], secs(230)), Err(ConnError::Stalled { .. })));
    }

    /// A peer taking a byte now and then counted as reading: it held a backlog up to the
    /// hard cap for as long as it liked. Its progress counts in `step`s; the time is the
    /// flush's that saw it, not the next frame's; and a peer that stopped reading is seen
    /// stalled without any frame for it.
    #[test]
    fn a_peer_must_take_a_step_within_the_stall_and_is_looked_at_without_sends() {
        let t0 = Instant::now();
        let secs = |s| t0 + Duration::from_secs(s);
        let patience = Patience { soft: 64, stall: Duration::from_secs(30), step: 50 };
        let mut c = script(vec![], 0).with_patience(patience, t0);
        c.max_out = 10_000;
        c.send_at(&[1; 200], secs(0)).unwrap();
        for s in 1..=29 {
            take(&mut c, 1); // 29 bytes in 29 s: less than a step
            c.send_at(&[1; 10], secs(s)).unwrap();
        }
        take(&mut c, 1);
        let refused = c.send_at(&[1; 10], secs(30));
        assert!(matches!(refused, Err(ConnError::Stalled { .. })), "{refused:?}");
        // A step taken counts from when the flush took it.
        let mut c = script(vec![], 0).with_patience(patience, t0);
        c.max_out = 10_000;
        c.send_at(&[1; 200], secs(0)).unwrap();
        take(&mut c, 60);
        c.flush_at(secs(5)).unwrap();
        assert_eq!(c.stalled(secs(34)), None);
        let stalled = c.stalled(secs(35));
        let thirty = Duration::from_secs(30);
        assert_eq!(stalled, Some(ConnError::Stalled { len: 144, stalled: thirty, step: 50 }));
        // Under the soft backlog a quiet peer is never stalled; an empty queue restarts the
        // clock.
        let mut c = script(vec![], 0).with_patience(patience, t0);
        c.send_at(&[1; 10], secs(0)).unwrap();
        assert_eq!(c.stalled(secs(1000)), None);
        c.stream.write_limit = 1000;
        c.flush_at(secs(1000)).unwrap();
        c.stream.write_limit = 0;
        c.send_at(&[1; 100], secs(2000)).unwrap();
        assert_eq!(c.stalled(secs(2029)), None);
        assert!(c.stalled(secs(2030)).is_some());
    }

    /// Frames leave the decoder after every read (a turn's budget of small frames never
    /// gathers in it), and a quiet connection holds no buffer at all, in or out: 10,000 idle
    /// minions each keeping their last frames' capacity would hold megabytes for nothing.
    #[test]
    fn a_quiet_connection_holds_no_buffers() {
        let mut frame = Vec::new();
        encode_frame(&[1u8; 996], &mut frame);
        let mut reads: Vec<io::Result<Vec<u8>>> = (0..40).map(|_| Ok(frame.clone())).collect();
        reads.push(Ok(frame[..10].to_vec()));
        let stream = Script {
            reads: reads.into(),
            written: Vec::new(),
            write_limit: 1 << 20,
            write_error: None,
        };
        let mut c = Conn::new(stream, 1 << 20, 1 << 20);
        let turn = c.read();
        assert_eq!((turn.frames.len(), turn.closed, turn.more), (40, None, false));
        let decoder = c.decoder.as_ref().unwrap();
        assert_eq!(decoder.buffered(), 10, "the partial frame is kept");
        assert!(decoder.capacity() < 4 * 1024, "{} bytes held", decoder.capacity());
        c.stream.reads.push_back(Ok(frame[10..].to_vec()));
        assert_eq!(c.read().frames.len(), 1);
        assert_eq!(c.decoder.as_ref().unwrap().capacity(), 0);
        c.send(&[2u8; 500]).unwrap();
        c.flush().unwrap();
        assert_eq!(c.stream.written.len(), 504);
        assert_eq!(c.out.capacity(), 0);
    }

    #[test]
    fn callers_returning_string_errors_keep_using_the_question_mark() {
        fn queue(c: &mut Conn<Script>) -> Result<(), String> {
            c.send(&[0; 60])?;
            c.send(&[0; 1])?;
            Ok(())
        }
        let mut c = script(vec![], 0);
        assert_eq!(queue(&mut c), Err("peer is not reading: over 64 bytes queued".to_string()));
    }
}
