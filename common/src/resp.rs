//! RESP2, the Redis wire protocol, sans-IO: commands encoded into a buffer, replies parsed
//! from one, with caps so a hostile or broken server cannot make the reader allocate without
//! bound. The master's event forwarder drives it over a blocking socket.

use std::fmt;

/// The largest bulk string or array a reply may announce, and the deepest nesting.
pub const MAX_BULK_BYTES: usize = 64 << 20;
pub const MAX_ARRAY_LEN: usize = 1 << 20;
pub const MAX_DEPTH: usize = 8;

/// One reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …`: the command failed; the text is the server's.
    Error(String),
    Int(i64),
    /// `$-1` is `Bulk(None)` (a missing key).
    Bulk(Option<Vec<u8>>),
    /// `*-1` is `Array(None)` (an aborted `EXEC`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The server's error text, if this reply (or, for an array, any element) is one.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            Reply::Array(Some(items)) => items.iter().find_map(Reply::error),
            _ => None,
        }
    }
}

/// A reply that does not follow the protocol (the connection cannot be trusted after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// A type byte that is none of `+ - : $ *`.
    UnknownType(u8),
    /// A length or integer that is not a number, or a negative length other than -1.
    BadNumber(String),
    /// A bulk string or array past the caps above, or nested deeper.
    TooLarge { what: &'static str, len: usize, max: usize },
    /// A bulk string not ended by CRLF.
    MissingCrlf,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(b) => write!(f, "not a RESP reply (type byte 0x{b:02x})"),
            RespError::BadNumber(s) => write!(f, "bad number in a RESP reply: {s:?}"),
            RespError::TooLarge { what, len, max } => {
                write!(f, "RESP {what} of {len} is over the cap of {max}")
            }
            RespError::MissingCrlf => f.write_str("RESP bulk string not ended by CRLF"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends one command (an array of bulk strings) to `out`.
pub fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses the first whole reply in `buf`: `Ok(Some((reply, bytes used)))`, or `Ok(None)` when
/// more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::TooLarge { what: "nesting", len: depth, max: MAX_DEPTH });
    }
    let Some((line, next)) = line(buf, at) else { return Ok(None) };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(RespError::UnknownType(b'\r'));
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), next))),
        b'-' => Ok(Some((Reply::Error(text()), next))),
        b':' => Ok(Some((Reply::Int(number(rest)?), next))),
        b'$' => {
            let Some(len) = length(rest, "bulk string", MAX_BULK_BYTES)? else {
                return Ok(Some((Reply::Bulk(None), next)));
            };
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::MissingCrlf);
            }
            Ok(Some((Reply::Bulk(Some(buf[next..end].to_vec())), end + 2)))
        }
        b'*' => {
            let Some(len) = length(rest, "array", MAX_ARRAY_LEN)? else {
                return Ok(Some((Reply::Array(None), next)));
            };
            // Never reserve what the peer announced: the elements have to arrive first.
            let mut items = Vec::new();
            let mut pos = next;
            for _ in 0..len {
                match parse_at(buf, pos, depth + 1)? {
                    Some((item, used)) => {
                        items.push(item);
                        pos = used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), pos)))
        }
        other => Err(RespError::UnknownType(other)),
    }
}

/// The line starting at `at` without its CRLF, and where the next one starts.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn number(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| RespError::BadNumber(String::from_utf8_lossy(digits).into_owned()))
}

/// A length: `None` for -1 (null), refused past `max` before anything is allocated.
fn length(digits: &[u8], what: &'static str, max: usize) -> Result<Option<usize>, RespError> {
    match number(digits)? {
        -1 => Ok(None),
        n if n < 0 => Err(RespError::BadNumber(n.to_string())),
        n if n as u64 > max as u64 => Err(RespError::TooLarge { what, len: n as usize, max }),
        n => Ok(Some(n as usize)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &[u8], expected: Reply) {
        assert_eq!(parse(input), Ok(Some((expected.clone(), input.len()))));
        // Every strict prefix asks for more bytes, never fails or answers early.
        for cut in 0..input.len() {
            assert_eq!(parse(&input[..cut]), Ok(None), "cut at {cut} of {input:?}");
        }
    }

    #[test]
    fn replies_parse_whole_and_wait_when_cut_anywhere() {
        check(b"+OK\r\n", Reply::Simple("OK".into()));
        check(b"-ERR wrong\r\n", Reply::Error("ERR wrong".into()));
        check(b":-42\r\n", Reply::Int(-42));
        check(b"$5\r\nhe\r\no\r\n", Reply::Bulk(Some(b"he\r\no".to_vec())));
        check(b"$0\r\n\r\n", Reply::Bulk(Some(Vec::new())));
        check(b"$-1\r\n", Reply::Bulk(None));
        check(b"*-1\r\n", Reply::Array(None));
        check(
            b"*3\r\n+QUEUED\r\n*1\r\n$2\r\n1-\r\n-WRONGTYPE x\r\n",
            Reply::Array(Some(vec![
                Reply::Simple("QUEUED".into()),
                Reply::Array(Some(vec![Reply::Bulk(Some(b"1-".to_vec()))])),
                Reply::Error("WRONGTYPE x".into()),
            ])),
        );
    }

    #[test]
    fn two_replies_in_one_buffer_parse_one_at_a_time() {
        let buf = b"+OK\r\n:1\r\n";
        let (first, used) = parse(buf).unwrap().unwrap();
        assert_eq!(first, Reply::Simple("OK".into()));
        assert_eq!(parse(&buf[used..]).unwrap(), Some((Reply::Int(1), 4)));
    }

    #[test]
    fn hostile_replies_are_refused_before_allocating() {
        let huge = format!("${}\r\n", MAX_BULK_BYTES + 1);
        assert!(matches!(parse(huge.as_bytes()), Err(RespError::TooLarge { .. })));
        let many = format!("*{}\r\n", MAX_ARRAY_LEN + 1);
        assert!(matches!(parse(many.as_bytes()), Err(RespError::TooLarge { .. })));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert!(matches!(parse(deep.as_bytes()), Err(RespError::TooLarge { .. })));
        assert_eq!(parse(b"$-2\r\n"), Err(RespError::BadNumber("-2".into())));
        assert_eq!(parse(b":x\r\n"), Err(RespError::BadNumber("x".into())));
        assert_eq!(parse(b"$1\r\nab\r\n"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"?\r\n"), Err(RespError::UnknownType(b'?')));
        assert_eq!(parse(b"\r\n"), Err(RespError::UnknownType(b'\r')));
        assert!(parse(b"$99999999999999999999999\r\n").is_err());
    }

    #[test]
    fn an_error_inside_an_exec_reply_is_found() {
        let exec =
            Reply::Array(Some(vec![Reply::Bulk(Some(b"1-0".to_vec())), Reply::Error("E".into())]));
        assert_eq!(exec.error(), Some("E"));
        assert_eq!(Reply::Simple("OK".into()).error(), None);
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &["SET", "k", "a b"]);
        command(&mut out, &[b"GET".as_slice(), b"\r\n"]);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n*2\r\n$3\r\nGET\r\n$2\r\n\r\n\r\n"
        );
    }
}
