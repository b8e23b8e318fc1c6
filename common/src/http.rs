//! HTTP/1.x requests in and responses out, sans-IO: a push parser with hard limits (head
//! size, header count, body size) for the master's HTTP listeners (webhooks, metrics),
//! kept here, without sockets, like the frame codec (and fuzzed like it).
//! It reads `Content-Length` bodies only: a request with `Transfer-Encoding` is refused with
//! 411, which also shuts out the `Content-Length`/`Transfer-Encoding` smuggling tricks.

use std::fmt;

/// What a parser may hold. A request past them is refused before more of it is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers together, with the blank line ending them, in bytes.
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
}

impl Limits {
    /// 16 KiB of head, 64 headers (GitHub sends about 15), and `max_body`.
    pub fn new(max_body: usize) -> Limits {
        Limits { max_head: 16 * 1024, max_headers: 64, max_body }
    }
}

/// One whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path of the request target, without its query.
    pub path: String,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Why a request is refused before it is whole; every one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP, or broken framing (400).
    Malformed(String),
    /// Request line and headers over `max_head` bytes or `max_headers` lines (431).
    HeadTooLarge,
    /// `Content-Length` over `max_body` (413), said before the body is read.
    BodyTooLarge { len: u64, max: usize },
    /// `Transfer-Encoding` (chunked bodies) is not read (411).
    LengthRequired,
    /// An HTTP version other than 1.0 and 1.1 (505).
    Version(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::LengthRequired => 411,
            HttpError::Version(_) => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed request: {why}"),
            HttpError::HeadTooLarge => f.write_str("request headers too large"),
            HttpError::BodyTooLarge { len, max } => {
                write!(f, "request body of {len} bytes is over {max}")
            }
            HttpError::LengthRequired => {
                f.write_str("Transfer-Encoding is not supported: send a Content-Length")
            }
            HttpError::Version(v) => write!(f, "HTTP version {v} is not supported"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The head of a request whose body is still arriving.
#[derive(Debug)]
struct Head {
    request: Request,
    length: usize,
}

/// A push parser for one connection's requests, pipelined ones included.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    buf: Vec<u8>,
    head: Option<Head>,
    /// `Expect: 100-continue` was asked for the request whose body is awaited.
    continue_wanted: bool,
    /// How much of `buf` the search for the head's end has covered without finding it: a
    /// head arriving a byte at a time is scanned once, not once per read.
    searched: usize,
    /// Bytes looked at by that search in all (tests check it stays linear).
    #[cfg(test)]
    scanned: usize,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            buf: Vec::new(),
            head: None,
            continue_wanted: false,
            searched: 0,
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held: the unparsed rest of what was pushed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether part of a request has arrived (an idle keep-alive connection has none).
    pub fn started(&self) -> bool {
        self.head.is_some() || self.buf.iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// The `Content-Length` of the request whose head is parsed and whose body is still
    /// arriving (so the caller can budget it before it is buffered).
    pub fn awaited_body(&self) -> Option<usize> {
        self.head.as_ref().map(|h| h.length).filter(|&len| self.buf.len() < len)
    }

    /// Once per request: whether its client waits for `100 Continue` before sending the body.
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.continue_wanted)
    }

    /// The next whole request, `None` while more bytes are needed. After an error the parser
    /// must not be used again (the connection closes).
    pub fn next_request(&mut self) -> Result<Option<Request>, HttpError> {
        if self.head.is_none() {
            // Empty lines before a request line are skipped (RFC 9112 §2.2).
            let blank = self.buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            self.buf.drain(..blank);
            // The last two bytes searched may begin the blank line: look at them again.
            let from = self.searched.saturating_sub(blank).saturating_sub(2);
            #[cfg(test)]
            {
                self.scanned += self.buf.len() - from.min(self.buf.len());
            }
            let Some((end, next)) = head_end(&self.buf, from) else {
                self.searched = self.buf.len();
                if self.buf.len() > self.limits.max_head {
                    return Err(HttpError::HeadTooLarge);
                }
                return Ok(None);
            };
            // The limit counts the blank line too: then a head is refused alike whether it
            // arrived at once or a byte at a time (found by the fuzzer).
            if next > self.limits.max_head {
                return Err(HttpError::HeadTooLarge);
            }
            let head = parse_head(&self.buf[..end], &self.limits)?;
            self.buf.drain(..next);
            self.searched = 0;
            self.continue_wanted = head.length > 0
                && header(&head.request.headers, "expect")
                    .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
                && self.buf.len() < head.length;
            self.head = Some(head);
        }
        let Some(head) = &self.head else { return Ok(None) };
        if self.buf.len() < head.length {
            return Ok(None);
        }
        let Some(Head { mut request, length }) = self.head.take() else { return Ok(None) };
        request.body = self.buf.drain(..length).collect();
        self.continue_wanted = false;
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
        Ok(Some(request))
    }
}

/// Where the head ends (before its blank line) and where what follows starts, searching
/// from `from` (no blank line begins before it). A bare LF is taken as a line end, as most
/// servers do.
fn head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from.min(buf.len());
    while let Some(at) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + at;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some((nl, nl + 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((nl, nl + 3)),
            _ => i = nl + 1,
        }
    }
    None
}

fn malformed(why: impl Into<String>) -> HttpError {
    HttpError::Malformed(why.into())
}

/// RFC 9110's `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_head(head: &[u8], limits: &Limits) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("request line is not METHOD TARGET VERSION"));
    };
    if !is_token(method) {
        return Err(malformed("bad method"));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("bad request target"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        // Named in the log: printable ASCII only.
        v if v.starts_with("HTTP/") && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(HttpError::Version(v.into()))
        }
        _ => return Err(malformed("bad HTTP version")),
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(malformed("folded header line"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed("header line without a colon"));
        };
        if !is_token(name) {
            return Err(malformed("bad header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(malformed("control character in a header value"));
        }
        if headers.len() == limits.max_headers {
            return Err(HttpError::HeadTooLarge);
        }
        headers.push((name.to_string(), value.to_string()));
    }
    if header(&headers, "transfer-encoding").is_some() {
        return Err(HttpError::LengthRequired);
    }
    let mut length: Option<u64> = None;
    for (_, value) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("bad Content-Length"));
        }
        let n: u64 = value.parse().map_err(|_| malformed("bad Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(malformed("conflicting Content-Length headers"));
        }
        length = Some(n);
    }
    let length = length.unwrap_or(0);
    if length > limits.max_body as u64 {
        return Err(HttpError::BodyTooLarge { len: length, max: limits.max_body });
    }
    let connection = |token: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = match http10 {
        true => connection("keep-alive"),
        false => !connection("close"),
    };
    let path = target.split(['?', '#']).next().unwrap_or_default().to_string();
    let request = Request { method: method.into(), path, headers, body: Vec::new(), keep_alive };
    Ok(Head { request, length: length as usize })
}

/// The reason phrase of the statuses Halite answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A whole response: status line, `Content-Type`, `Content-Length`, `extra` headers,
/// `Connection: close` when `close`, then `body`.
pub fn response(
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &[u8] = b"POST /hook/deploy?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: \
        application/json\r\nContent-Length: 11\r\n\r\n{\"a\": true}";

    fn parser() -> Parser {
        Parser::new(Limits { max_head: 512, max_headers: 8, max_body: 64 })
    }

    /// Every request of `input` fed at once, and the parse's end (the error, or Ok).
    fn parse_all(input: &[u8]) -> (Vec<Request>, Result<(), HttpError>) {
        let mut p = parser();
        p.push(input);
        let mut got = Vec::new();
        loop {
            match p.next_request() {
                Ok(Some(r)) => got.push(r),
                Ok(None) => return (got, Ok(())),
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[track_caller]
    fn refused(input: &[u8], status: u16) {
        let (got, end) = parse_all(input);
        assert!(got.is_empty(), "{got:?}");
        let err = end.expect_err("refused");
        assert_eq!(err.status(), status, "{err}");
    }

    #[test]
    fn a_request_split_at_every_byte_parses_the_same() {
        let (whole, end) = parse_all(POST);
        assert_eq!(end, Ok(()));
        let whole = &whole[0];
        assert_eq!((whole.method.as_str(), whole.path.as_str()), ("POST", "/hook/deploy"));
        assert_eq!(whole.header("content-type"), Some("application/json"));
        assert_eq!(whole.body, b"{\"a\": true}");
        assert!(whole.keep_alive);
        for split in 0..=POST.len() {
            let mut p = parser();
            p.push(&POST[..split]);
            let first = p.next_request().unwrap();
            if split < POST.len() {
                assert_eq!(first, None, "complete at {split}");
                assert_eq!(p.started(), split > 0);
            }
            p.push(&POST[split..]);
            let got = first.or_else(|| p.next_request().unwrap());
            assert_eq!(got.as_ref(), Some(whole), "split at {split}");
            assert!(!p.started());
        }
    }

    /// A client sending its head a byte at a time must cost the master each byte once: the
    /// search for the blank line resumed where it stopped, not run again over the whole
    /// head on every read (16 KiB a byte at a time was ~130 million bytes scanned; found by
    /// AFL++ as inputs that took 0.3-0.7 s each).
    #[test]
    fn a_head_sent_a_byte_at_a_time_is_scanned_once() {
        let head = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(16_000));
        let mut p = Parser::new(Limits::new(64));
        let mut got = Vec::new();
        for byte in head.as_bytes() {
            p.push(std::slice::from_ref(byte));
            if let Some(request) = p.next_request().unwrap() {
                got.push(request);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("x-pad").map(str::len), Some(16_000));
        // Each read looks at its byte, and again at the two before it.
        assert!(
            p.scanned <= 3 * head.len(),
            "{} bytes scanned for a {}-byte head",
            p.scanned,
            head.len()
        );
    }

    #[test]
    fn pipelined_requests_come_out_in_order_and_bare_lf_is_a_line_end() {
        let mut input = POST.to_vec();
        input.extend_from_slice(b"\r\nGET /healthz HTTP/1.0\nConnection: keep-alive\n\n");
        input.extend_from_slice(
            b"GET /x HTTP/1.0\r\n\r\nGET /y HTTP/1.1\r\nConnection: Close\r\n\r\n",
        );
        let (got, end) = parse_all(&input);
        assert_eq!(end, Ok(()));
        let paths: Vec<(&str, bool)> =
            got.iter().map(|r| (r.path.as_str(), r.keep_alive)).collect();
        assert_eq!(
            paths,
            [("/hook/deploy", true), ("/healthz", true), ("/x", false), ("/y", false)]
        );
    }

    #[test]
    fn limits_are_enforced_before_buffering_more() {
        // A head that never ends is refused once it passes max_head, not when it ends.
        let mut p = parser();
        p.push(b"POST /hook/x HTTP/1.1\r\n");
        for _ in 0..40 {
            p.push(b"X-Pad: aaaaaaaaaa\r\n");
        }
        assert_eq!(p.next_request(), Err(HttpError::HeadTooLarge));
        let many: String = (0..9).map(|i| format!("H{i}: v\r\n")).collect();
        refused(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), 431);
        // The body's size is judged from Content-Length, before any of it arrives.
        let mut p = parser();
        p.push(b"POST /hook/x HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
        assert_eq!(p.next_request(), Err(HttpError::BodyTooLarge { len: 65, max: 64 }));
        refused(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
    }

    #[test]
    fn the_head_limit_counts_the_blank_line_however_the_head_arrives() {
        let pad = |n: usize| format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(n));
        let exact = pad(512 - pad(0).len());
        assert_eq!(exact.len(), 512);
        for (head, fits) in [(exact.clone(), true), (pad(512 - pad(0).len() + 1), false)] {
            let mut whole = parser();
            whole.push(head.as_bytes());
            let mut bytewise = parser();
            let mut last = Ok(None);
            for b in head.as_bytes() {
                bytewise.push(&[*b]);
                last = bytewise.next_request();
                if last.is_err() {
                    break;
                }
            }
            let at_once = whole.next_request();
            assert_eq!(at_once.is_ok(), fits, "{} bytes", head.len());
            assert_eq!(at_once.map(|r| r.is_some()), last.map(|r| r.is_some()));
        }
    }

    #[test]
    fn malformed_and_unsupported_requests_are_refused_with_their_status() {
        refused(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400); // TLS hello
        refused(b"GARBAGE\r\n\r\n", 400);
        refused(b"GET  / HTTP/1.1\r\n\r\n", 400);
        refused(b"GET hook HTTP/1.1\r\n\r\n", 400);
        refused(b"G(T / HTTP/1.1\r\n\r\n", 400);
        refused(b"GET / HTTP/2.0\r\n\r\n", 505);
        refused(b"GET / FTP/1.0\r\n\r\n", 400);
        refused(b"GET / HTTP/\x1b[2J\r\n\r\n", 400);
        refused(b"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400);
        refused(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400);
        refused(b"GET / HTTP/1.1\r\nBad Name: b\r\n\r\n", 400);
        refused(b"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n", 400);
        refused(b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n", 400);
        refused(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
        refused(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400);
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411);
        refused(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 411);
        // The same Content-Length twice is one length.
        let (got, end) =
            parse_all(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-length: 2\r\n\r\nok");
        assert_eq!((got[0].body.as_slice(), end), (&b"ok"[..], Ok(())));
    }

    #[test]
    fn expect_100_continue_is_asked_once_while_the_body_is_awaited() {
        let mut p = parser();
        p.push(b"POST /h HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(p.next_request(), Ok(None));
        assert_eq!(p.awaited_body(), Some(2));
        assert!(p.take_continue());
        assert!(!p.take_continue());
        p.push(b"ok");
        assert_eq!(p.awaited_body(), None);
        assert_eq!(p.next_request().unwrap().unwrap().body, b"ok");
        // The body already there: no interim answer.
        let mut p = parser();
        p.push(b"POST /h HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
        assert!(p.next_request().unwrap().is_some());
        assert!(!p.take_continue());
    }

    /// Mutants of real requests (a small xorshift, so every run sees the same ones): the parser
    /// never panics, never holds more than its limits allow, and a stream parses the same
    /// whether it arrives at once or split in two anywhere (pipelining and partial reads are
    /// one code path).
    #[test]
    fn mutants_never_panic_and_parse_the_same_however_split() {
        let seeds: [&[u8]; 4] = [
            POST,
            b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
            b"POST /hook/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let outcome = |input: &[u8], split: usize| {
            let mut p = parser();
            let mut got = Vec::new();
            for part in [&input[..split], &input[split..]] {
                p.push(part);
                loop {
                    match p.next_request() {
                        Ok(Some(r)) => got.push(r),
                        Ok(None) => break,
                        Err(e) => return (got, Some(e)),
                    }
                }
                assert!(p.buf.len() <= 512 + 64 + input.len(), "held too much");
            }
            (got, None)
        };
        for i in 0..20_000 {
            let mut input = seeds[i % seeds.len()].to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % (input.len() + 1);
                match next() % 4 {
                    0 if at < input.len() => input[at] = next() as u8,
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    2 => input.insert(at, b"\r\n :0/%"[(next() % 7) as usize]),
                    _ => {
                        let copy = input[at..].to_vec();
                        input.extend_from_slice(&copy[..copy.len().min(40)]);
                    }
                }
            }
            let whole = outcome(&input, input.len());
            let split = (next() as usize) % (input.len() + 1);
            assert_eq!(
                outcome(&input, split),
                whole,
                "{:?} split at {split}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn responses_carry_their_length_and_close_when_asked() {
        let r = response(401, "application/json", &[("Allow", "POST")], b"{}", true);
        let text = String::from_utf8(r).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
             Allow: POST\r\nConnection: close\r\n\r\n{}"
        );
    }
}
