//! Harnesses for the minion socket (frames, handshake, session messages), the control socket
//! and the webhook listener's HTTP: everything before the reactor.

use halite_common::control::Request;
use halite_common::crypto::{KeyPair, PublicKey};
use halite_common::event::{self, Event, TagFilter};
use halite_common::handshake::{self, MinionHandshake, Verdict};
use halite_common::http::{self as web, HttpError, Limits, Parser};
use halite_common::proto::{HelloBody, RawEvent, ToMaster, ToMinion};
use halite_common::target::Target;
use halite_common::wire::{encode_frame, Decoder, WireError};
use serde_json::{json, Map, Value};

/// A minion's handshake waiting for its reply, and its challenge in hex (read back from the
/// hello with the key the master shares with the minion, as the real master would).
pub(crate) fn handshake_in_flight() -> (MinionHandshake, String) {
    let (master, minion) = (KeyPair::generate(), KeyPair::generate());
    let (handshake, hello) =
        MinionHandshake::start("minion1", &minion, &master.public).expect("a real master key");
    let (_, boxed) = handshake::parse_hello(&hello).expect("our own hello parses");
    let shared = master.shared_with(&minion.public).expect("a real minion key");
    let plain = shared.open(&boxed, handshake::HELLO_BOX).expect("our own hello opens");
    let body: HelloBody = serde_json::from_slice(&plain).expect("our own hello body parses");
    (handshake, body.challenge)
}

/// The first byte picks the frame limit and how the rest is cut into reads; the decoder must
/// give back exactly the frames the bytes hold, refuse an oversized length before buffering
/// its payload, and never buffer more than it was given.
pub(crate) fn wire(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else { return };
    let max = match control & 3 {
        0 => 0,
        1 => 16,
        2 => 300,
        _ => halite_common::wire::DEFAULT_MAX_FRAME_BYTES,
    };
    let chunk = 1 + usize::from(control >> 2);
    let mut decoder = Decoder::new(max);
    let (mut fed, mut consumed) = (0, Vec::new());
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        fed += piece.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "frame of {} over max {max}", frame.len());
                    encode_frame(&frame, &mut consumed);
                }
                Ok(None) => break,
                Err(WireError::TooLarge { len, max: m }) => {
                    assert!(len > m as u64 && m == max);
                    let at = consumed.len();
                    assert_eq!(stream[at..at + 4], (len as u32).to_be_bytes());
                    return;
                }
            }
        }
        assert_eq!(consumed.len() + decoder.buffered(), fed);
    }
    assert_eq!(consumed, stream[..consumed.len()], "frames differ from the stream");
}

/// The first byte picks the part: even, the hello's clear part (version, key, box); odd, the
/// box's plaintext. A hello the master takes has its version and a key that writes back as
/// it reads; a body it takes names a valid id and a 32-byte challenge.
pub(crate) fn hello(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else { return };
    if which % 2 == 0 {
        if let Ok((public, _)) = handshake::parse_hello(data) {
            let again = PublicKey::from_pem(&public.to_pem()).expect("a key reads back");
            assert_eq!(again, public);
        }
    } else if let Ok((id, challenge)) = handshake::parse_hello_body(data) {
        assert!(halite_common::id::validate_id(&id).is_ok(), "{id:?}");
        assert_eq!(challenge.len(), 32);
    }
}

pub(crate) fn greeting(data: &[u8]) {
    if let Ok(key) = handshake::parse_greeting(data) {
        let finger = key.fingerprint();
        assert!(handshake::check_master_key(&key, None, Some(&finger)).is_ok());
    }
}

/// Every `@@` in the input becomes the challenge; a reply without it must be refused.
pub(crate) fn reply(handshake: &MinionHandshake, challenge: &str, data: &[u8]) {
    let echoes = data.windows(2).any(|w| w == b"@@");
    let text = replace_all(data, b"@@", challenge.as_bytes());
    match handshake.parse_reply(&text) {
        Ok(Verdict::Accepted(mut session)) => {
            assert!(echoes, "accepted a reply that does not echo the challenge");
            let sealed = session.seal(&ToMaster::Ping { seq: 1 }).expect("fresh session seals");
            assert!(session.open::<ToMinion>(&sealed).is_err(), "own direction must not open");
        }
        Ok(_) => assert!(echoes, "took a verdict that does not echo the challenge"),
        Err(_) => {}
    }
}

fn replace_all(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// A session frame's plaintext, parsed as `Session::open` does; a minion's event then goes
/// through the master's tag rule and wrapping, and its log line must stay one JSON line.
pub(crate) fn session(data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else { return };
    if which % 2 == 1 {
        let _ = serde_json::from_slice::<ToMinion>(payload);
        return;
    }
    let parsed = serde_json::from_slice::<ToMaster>(payload);
    // The master's hot path reads an event with canonical data from its text: it must take
    // only what the full parse reads as that same event, and write the very line it makes.
    if let Some(raw) = RawEvent::parse(payload) {
        let Ok(ToMaster::Event { tag, data, ts, ack, jid }) = &parsed else {
            panic!("the hot path took what is not an event: {parsed:?}");
        };
        assert_eq!((&raw.tag, raw.ts, raw.ack, &raw.jid), (tag, *ts, *ack, jid));
        assert_eq!(raw.data.get(), serde_json::to_string(data).unwrap(), "data not canonical");
        let wrapped = event::wrap_minion_event("minion1", tag, data.clone(), *ts);
        let full = Event::new(tag.clone(), wrapped);
        let stamp = full.data["_stamp"].as_str().expect("a stamp");
        let (line, _) = event::minion_event_line(tag, "minion1", raw.data.get(), *ts, stamp);
        assert_eq!(line, full.to_json_line());
    }
    let Ok(msg) = parsed else { return };
    if let ToMaster::Event { tag, data, ts, .. } = &msg {
        if event::minion_tag_refusal(tag, "minion1").is_some() {
            return;
        }
        let (tag, data, ts) = (tag.clone(), data.clone(), *ts);
        let wrapped = event::wrap_minion_event("minion1", &tag, data, ts);
        assert_eq!(wrapped["id"], "minion1");
        one_line(&Event::new(tag, wrapped));
    }
    if let ToMaster::Beacons { events } = msg {
        for item in events {
            if let Ok(data) = event::beacon_event_data("minion1", &item.tag, item.data) {
                assert_eq!(data["id"], "minion1");
                one_line(&Event::new(item.tag, data));
            }
        }
    }
}

/// What the event log and `state.event` rely on: one event, one line, that reads back.
fn one_line(event: &Event) {
    let line = event.to_json_line();
    assert!(!line.contains('\n'), "event line breaks: {line:?}");
    let back: Value = serde_json::from_str(&line).expect("event line is JSON");
    assert_eq!(back["tag"], event.tag.as_str());
}

/// A control request, parsed as the master does, then what a request's strings drive: the
/// subscription filter and the publish target.
pub(crate) fn control(data: &[u8]) {
    match serde_json::from_slice::<Request>(data) {
        Ok(Request::Subscribe { tagmatch }) => {
            let filter = TagFilter::tagmatch(tagmatch.as_deref());
            for tag in ["salt/auth", "salt/job/20260101000000000000/ret/m1", ""] {
                filter.matches(tag);
            }
        }
        Ok(Request::Publish { tgt, tgt_type, .. }) => {
            if let Ok(target) = Target::parse(&tgt, &tgt_type) {
                let grains: Map<String, Value> =
                    serde_json::from_value(json!({"os": "Debian", "roles": ["web"]})).unwrap();
                target.matches("minion1", Some(&grains));
                target.matches("minion1", None);
            }
        }
        _ => {}
    }
}

/// Everything `http::Parser` made of one stream: the requests, then the error that ended it.
fn http_outcome(
    limits: Limits,
    stream: &[u8],
    chunk: usize,
) -> (Vec<web::Request>, Option<HttpError>) {
    let mut parser = Parser::new(limits);
    let mut got = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        parser.push(piece);
        loop {
            match parser.next_request() {
                Ok(Some(request)) => got.push(request),
                Ok(None) => break,
                Err(e) => return (got, Some(e)),
            }
        }
        // Never more than one unfinished request: a head under the limit, a body under its
        // limit, and the piece that brought them.
        let bound = limits.max_head + 4 + limits.max_body + piece.len();
        assert!(parser.buffered() <= bound, "holds {} bytes, bound {bound}", parser.buffered());
    }
    (got, None)
}

/// The first byte picks the limits and the read size; the requests (and the error) must not
/// depend on how the stream was cut, each request must respect the limits and its own
/// `Content-Length`, and nothing refused may have been taken for a request first.
pub(crate) fn http(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else { return };
    let limits = Limits {
        max_head: [64, 256, 1024, 16 * 1024][usize::from(control & 3)],
        max_headers: [2, 8][usize::from(control >> 2 & 1)],
        max_body: [0, 16, 300, 1 << 20][usize::from(control >> 3 & 3)],
    };
    let chunk = 1 + usize::from(control >> 5);
    let whole = http_outcome(limits, stream, stream.len());
    assert_eq!(http_outcome(limits, stream, chunk), whole, "cut into {chunk}-byte reads");
    for request in &whole.0 {
        assert!(request.path.starts_with('/') && !request.path.contains(['?', '#', ' ']));
        assert!(request.headers.len() <= limits.max_headers);
        assert!(request.body.len() <= limits.max_body);
        let declared = request.header("content-length").map_or(Some(0), |v| v.parse().ok());
        assert_eq!(declared, Some(request.body.len()), "body differs from its Content-Length");
        assert!(request.header("transfer-encoding").is_none(), "a chunked request was taken");
        for (name, value) in &request.headers {
            assert!(!name.is_empty() && !name.contains([':', ' ', '\r', '\n']), "{name:?}");
            assert!(!value.contains(['\r', '\n']), "{value:?}");
        }
    }
}
