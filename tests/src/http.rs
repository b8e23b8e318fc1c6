//! A blocking HTTP/1.1 client for the master's HTTP listeners (webhooks, metrics), by hand:
//! tests write exact bytes (pipelined, truncated, oversized) and read each response whole.

use crate::cluster::WAIT;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// A connection whose reads give up after [`WAIT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// One response: status, headers (names lower-cased), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one response (its `Content-Length` body) off `stream`.
#[track_caller]
pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!("connection ended before a response head: {other:?}, got {buf:?}"),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    let len: usize =
        headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    Response { status, headers, body: String::from_utf8(body).unwrap() }
}

/// Sends `request` on a new connection and reads the answer.
#[track_caller]
pub fn exchange(addr: SocketAddr, request: &[u8]) -> (Response, TcpStream) {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    let response = read_response(&mut stream);
    (response, stream)
}

/// Whether the master closed `stream` (EOF or reset) after what was read.
pub fn closed_by_master(stream: &mut TcpStream) -> bool {
    let mut rest = [0u8; 64];
    matches!(stream.read(&mut rest), Ok(0))
        || matches!(stream.read(&mut rest), Err(e) if e.kind() == ErrorKind::ConnectionReset)
}
