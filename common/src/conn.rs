//! A framed, buffered, non-blocking connection over any `Read + Write` stream.
//!
//! Reading stops at `WouldBlock` or after a per-turn budget (the caller re-polls the
//! connection next turn); `send` only appends to the output buffer and the caller asks for
//! WRITABLE while [`Conn::wants_write`] is true. Short writes are normal, not errors.

use crate::wire::{encode_frame, Decoder, WireError};
use std::io::{self, ErrorKind, Read, Write};

/// Bytes read from one connection per turn before yielding to the others.
pub const READ_BUDGET: usize = 256 * 1024;

/// What a read turn produced.
#[derive(Debug, Default)]
pub struct ReadTurn {
    pub frames: Vec<Vec<u8>>,
    /// The peer closed (EOF), or the stream failed, or a frame was refused: close after
    /// handling `frames`.
    pub closed: Option<String>,
    /// The budget ran out before `WouldBlock`: read again next turn.
    pub more: bool,
}

/// One peer's stream with its decoder and output buffer.
#[derive(Debug)]
pub struct Conn<S> {
    pub stream: S,
    decoder: Decoder,
    out: Vec<u8>,
    out_pos: usize,
    max_out: usize,
}

impl<S: Read + Write> Conn<S> {
    /// `max_frame` bounds incoming frames; `max_out` bounds unsent output (a peer that does not
    /// read is cut off rather than allowed to grow our memory).
    pub fn new(stream: S, max_frame: usize, max_out: usize) -> Conn<S> {
        Conn { stream, decoder: Decoder::new(max_frame), out: Vec::new(), out_pos: 0, max_out }
    }

    /// Changes the largest incoming frame accepted from now on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.decoder.set_max(max_frame);
    }

    /// Reads what is available (up to the budget) and splits it into frames.
    pub fn read(&mut self) -> ReadTurn {
        let mut turn = ReadTurn::default();
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        loop {
            if total >= READ_BUDGET {
                turn.more = true;
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    turn.closed = Some("peer closed the connection".into());
                    break;
                }
                Ok(n) => {
                    total += n;
                    self.decoder.push(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    turn.closed = Some(format!("read failed: {e}"));
                    break;
                }
            }
        }
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => turn.frames.push(frame),
                Ok(None) => break,
                Err(e @ WireError::TooLarge { .. }) => {
                    turn.closed = Some(e.to_string());
                    break;
                }
            }
        }
        turn
    }

    /// Queues one frame. Fails when the peer has left too much output unread.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        if self.out.len() - self.out_pos + payload.len() > self.max_out {
            return Err(format!("peer is not reading: over {} bytes queued", self.max_out));
        }
        encode_frame(payload, &mut self.out);
        Ok(())
    }

    /// Writes queued output until done or `WouldBlock`.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
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

    /// A stream that yields scripted reads and accepts at most `write_limit` bytes per call.
    struct Script {
        reads: VecDeque<io::Result<Vec<u8>>>,
        written: Vec<u8>,
        write_limit: usize,
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
        let stream = Script { reads: reads.into(), written: Vec::new(), write_limit };
        Conn::new(stream, 1024, 64)
    }

    #[test]
    fn frames_split_across_reads_then_eof() {
        let mut c = script(vec![Ok(vec![0, 0, 0, 2, b'h']), Ok(vec![b'i', 0, 0]), Ok(vec![])], 0);
        let turn = c.read();
        assert_eq!(turn.frames, [b"hi".to_vec()]);
        assert_eq!(turn.closed.as_deref(), Some("peer closed the connection"));
    }

    #[test]
    fn oversized_frame_closes() {
        let mut c = script(vec![Ok(vec![0, 0, 4, 1])], 0);
        assert!(c.read().closed.unwrap().contains("exceeds max_frame_bytes"));
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
        assert!(c.send(&[0; 40]).is_err());
    }
}
