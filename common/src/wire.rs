//! Sans-IO frame codec: a 4-byte big-endian length, then that many payload bytes.
//!
//! The only place that knows the byte layout of a frame. The length is checked against the
//! configured maximum before a single payload byte is buffered for it, so a hostile 4 GiB
//! prefix costs nothing.

use std::fmt;

/// Default for `max_frame_bytes`: large enough for a file chunk or a big job return.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
const HEADER: usize = 4;

/// Errors the decoder reports; after one, the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The peer announced a frame longer than the maximum.
    TooLarge { len: u64, max: usize },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds max_frame_bytes {max}")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Accumulates bytes from a stream and yields whole frames.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl Decoder {
    pub fn new(max_frame_bytes: usize) -> Decoder {
        Decoder { buf: Vec::new(), start: 0, max: max_frame_bytes }
    }

    /// Changes the largest frame accepted from now on (raised once a session is live).
    pub fn set_max(&mut self, max_frame_bytes: usize) {
        self.max = max_frame_bytes;
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Gives back the buffer once everything in it is consumed: for a connection gone quiet
    /// (10,000 idle minions each keeping even a kilobyte would hold 10 MB for nothing). Not
    /// per frame: a busy connection would reallocate on every read.
    pub fn shrink_idle(&mut self) {
        if self.start == self.buf.len() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Bytes of buffer held.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let pending = &self.buf[self.start..];
        if pending.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
        if len > self.max {
            return Err(WireError::TooLarge { len: len as u64, max: self.max });
        }
        if pending.len() < HEADER + len {
            return Ok(None);
        }
        let frame = pending[HEADER..HEADER + len].to_vec();
        self.start += HEADER + len;
        // Compact once the consumed prefix dominates, so the buffer does not grow forever.
        if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

/// Appends one frame carrying `payload` to `out`.
///
/// Panics if the payload is longer than `u32::MAX`; callers bound payloads far below that.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("frame payload over 4 GiB");
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(p, &mut out);
        }
        out
    }

    #[track_caller]
    fn check(stream: &[u8], max: usize, expected: &[&[u8]]) {
        // Whole, then split at every byte offset, then byte by byte.
        let mut splits: Vec<Vec<&[u8]>> = vec![vec![stream]];
        for at in 0..=stream.len() {
            splits.push(vec![&stream[..at], &stream[at..]]);
        }
        splits.push(stream.chunks(1).collect());
        for pieces in splits {
            let mut decoder = Decoder::new(max);
            let mut got = Vec::new();
            for piece in pieces {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, expected);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    /// An idle connection gives back its buffer (10,000 idle minions).
    #[test]
    fn a_drained_decoder_keeps_no_buffer() {
        let mut d = Decoder::new(1 << 20);
        let mut bytes = Vec::new();
        encode_frame(&[7u8; 100_000], &mut bytes);
        encode_frame(b"small", &mut bytes);
        d.push(&bytes);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 100_000);
        assert!(d.buf.capacity() >= 100_000, "still holding the next frame");
        assert_eq!(d.next_frame().unwrap().unwrap(), b"small");
        d.shrink_idle();
        assert_eq!(d.buf.capacity(), 0);
        assert_eq!(d.buffered(), 0);
        d.push(&bytes[..10]);
        d.shrink_idle();
        assert_eq!(d.buffered(), 10, "a partial frame is kept");
    }

    #[test]
    fn frames_survive_every_split() {
        check(&frames(&[b"hello"]), 16, &[b"hello"]);
        check(&frames(&[b"", b"a", b"", b"bc"]), 16, &[b"", b"a", b"", b"bc"]);
        check(&frames(&[&[0u8; 16], b"x"]), 16, &[&[0u8; 16], b"x"]);
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload_arrives() {
        let mut decoder = Decoder::new(1024);
        decoder.push(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            decoder.next_frame(),
            Err(WireError::TooLarge { len: u32::MAX as u64, max: 1024 })
        );
        let mut decoder = Decoder::new(4);
        decoder.push(&frames(&[b"12345"])[..4]);
        assert_eq!(decoder.next_frame(), Err(WireError::TooLarge { len: 5, max: 4 }));
    }

    #[test]
    fn truncated_frames_wait_for_more() {
        let stream = frames(&[b"abcdef"]);
        for cut in 0..stream.len() {
            let mut decoder = Decoder::new(64);
            decoder.push(&stream[..cut]);
            assert_eq!(decoder.next_frame(), Ok(None));
            assert_eq!(decoder.buffered(), cut);
        }
    }

    #[test]
    fn long_streams_compact_their_buffer() {
        let mut decoder = Decoder::new(1 << 20);
        let payload = vec![7u8; 1000];
        let one = frames(&[&payload]);
        for _ in 0..1000 {
            decoder.push(&one);
            assert_eq!(decoder.next_frame().unwrap().unwrap(), payload);
        }
        assert!(decoder.buf.capacity() < 256 * 1024);
    }
}
