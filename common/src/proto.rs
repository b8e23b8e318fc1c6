//! Every message that crosses a socket: the clear and sealed handshake messages, one enum per
//! direction for the encrypted session, all JSON.
//!
//! Adding a variant is backwards compatible for peers that ignore what they do not know; the
//! handshake carries [`PROTOCOL_VERSION`] so that incompatible changes are refused up front.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bumped on any change an older peer would misread. Version 2: the hello and its reply are
/// boxed with the key the minion and the master share (X25519 between their static keys), no
/// longer sealed to an anonymous ephemeral key; the minion's public key travels in the clear.
pub const PROTOCOL_VERSION: u32 = 2;

/// The master's first frame on every minion connection, in the clear: who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greeting {
    pub version: u32,
    /// The master's X25519 public key, PEM.
    pub master_pub: String,
}

/// The minion's hello. Version and key are in the clear, so the master can refuse another
/// version by name and find (or compute) the key it shares with this minion; the rest is boxed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// The minion's X25519 public key, PEM; what `minions/<id>` stores.
    pub public: String,
    /// Base64 of a [`HelloBody`] boxed with the key `public` shares with the master (nonce
    /// first): only the holder of `public`'s secret key, or the master, can make it.
    pub boxed: String,
}

/// What a [`Hello`]'s box holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloBody {
    pub id: String,
    /// 32 random bytes, hex, echoed by the reply: a reply to an older hello is refused.
    pub challenge: String,
}

/// The master's verdict on a hello, as Salt's `_auth` results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStatus {
    /// Key accepted: a session key follows.
    Accepted,
    /// Key waiting in `minions_pre/`; the master will send another reply when it is accepted.
    Pending,
    /// Key in `minions_rejected/`.
    Rejected,
    /// The id is known with a different key; the new key went to `minions_denied/`.
    Denied,
    /// The master holds no more minions.
    Full,
}

/// The master's answer to a hello, boxed with the key it shares with the key the hello presented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloReply {
    pub status: AuthStatus,
    /// The hello's challenge, echoed: this reply answers this hello, not an older one.
    pub challenge: String,
    /// Hex secretbox key for the session; present only with `Accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
}

/// Session messages from a minion to the master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToMaster {
    /// First session frame: proves the minion holds the session key; carries its grains.
    Ready {
        #[serde(default)]
        grains: Map<String, Value>,
        /// A one-shot session (`halite-minion call`) beside the daemon's: it must not replace
        /// the daemon's session nor count as presence.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        transient: bool,
    },
    /// Keepalive probe; answered by [`ToMinion::Pong`] with the same `seq`.
    Ping { seq: u64 },
    /// Answer to [`ToMinion::Ping`].
    Pong { seq: u64 },
    /// An event for the master's bus. The master wraps it as Salt's `_minion_event` and stamps
    /// the authenticated id, whatever the data claims.
    Event {
        tag: String,
        /// The user's payload: usually an object, a string for start events.
        data: Value,
        /// Unix seconds when the minion fired it (Salt's `ts`).
        ts: u64,
        /// Ask for [`ToMinion::EventAck`] once the event is on the bus (`halite-minion call`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ack: bool,
        /// The job that fired it (`event.send` in a job), so the event carries that job's
        /// causal chain and the reactor's loop protection sees it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jid: Option<String>,
    },
    /// Beacon events, Salt's `_minion_event` load with `events`: each is fired as it is, not
    /// wrapped, under a `salt/beacon/<this minion>/…` tag, with `id` the authenticated id.
    Beacons { events: Vec<BeaconEvent> },
    /// The result of a published job.
    Return(JobReturn),
    /// A question for the master's file server (`salt://`), answered by
    /// [`ToMinion::FileReply`] with the same `req`.
    FileRequest { req: u64, op: FileOp },
    /// Compile my pillar (Salt's `_pillar`): answered by [`ToMinion::PillarReply`] with the
    /// same `req`. It names no minion: the master compiles for the session's id only.
    PillarRequest {
        req: u64,
        /// The minion's own frame limit (`max_frame_bytes`): the master keeps the pillar
        /// well under it, so a pillar too big for this minion is an error it can read, not
        /// a frame that closes its session every time it asks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_frame: Option<u64>,
    },
}

/// A minion's [`ToMaster::Event`] read with its `data` left as the text it came as: the
/// master's hot path copies that text into the event-log line instead of building a `Value`
/// and writing it again, for the events no reactor rule wants. Unknown fields are refused
/// here (and left to the full parse, which checks even the ones it ignores).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent<'a> {
    #[serde(rename = "type")]
    _kind: EventKind,
    pub tag: String,
    #[serde(borrow)]
    pub data: &'a serde_json::value::RawValue,
    pub ts: u64,
    #[serde(default)]
    pub ack: bool,
    #[serde(default)]
    pub jid: Option<String>,
}

/// The one `type` a [`RawEvent`] may have.
#[derive(Debug, Deserialize)]
enum EventKind {
    #[serde(rename = "event")]
    Event,
}

impl<'a> RawEvent<'a> {
    /// The message as a [`RawEvent`] when it is an event whose data is canonical JSON (what
    /// serde_json writes for it, byte for byte: see [`crate::canonical`]); `None` for any
    /// other message or data, which [`ToMaster`] parsing then reads as before.
    pub fn parse(plain: &'a [u8]) -> Option<RawEvent<'a>> {
        // A minion writes the `type` first: anything else (a return, most of a busy master's
        // frames) is left at once, without a parse that fails and builds its error.
        if !plain.starts_with(br#"{"type":"event","#) {
            return None;
        }
        let event: RawEvent = serde_json::from_slice(plain).ok()?;
        crate::canonical::is_canonical(event.data.get()).then_some(event)
    }
}

/// One beacon's event: Salt's `{"tag": ..., "data": ...}` item of a `_minion_event` load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeaconEvent {
    pub tag: String,
    pub data: Map<String, Value>,
}

/// What a minion asks the file server. Paths are relative to the `file_roots` (no
/// `salt://`); the master refuses any that leaves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FileOp {
    /// Up to [`FILE_CHUNK_BYTES`] of `path` from `offset`.
    Read { path: String, offset: u64 },
    /// The SHA-256 and size of `path`.
    Hash { path: String },
    /// Every file path under the roots.
    List,
}

/// Largest piece of a file in one [`FileReply::Chunk`]: a big file is fetched in many small
/// round trips, so it never fills memory or holds up the master's loop.
pub const FILE_CHUNK_BYTES: usize = 256 * 1024;

/// The file server's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileReply {
    /// Base64 bytes of the file from `offset`; `size` is the whole file's.
    Chunk {
        data: String,
        offset: u64,
        size: u64,
    },
    Hash {
        sha256: String,
        size: u64,
    },
    List {
        paths: Vec<String>,
    },
    Error {
        message: String,
    },
}

/// A job the master publishes to a minion (Salt's publish load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub jid: String,
    pub fun: String,
    /// Positional args, then one `{"__kwarg__": true, ...}` map of keyword args if any.
    pub arg: Vec<Value>,
    pub tgt: Value,
    pub tgt_type: String,
    pub user: String,
}

/// A minion's answer to a [`Publish`] (Salt's `_return` load, minus what the master stamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReturn {
    pub jid: String,
    pub fun: String,
    pub fun_args: Vec<Value>,
    #[serde(rename = "return")]
    pub ret: Value,
    pub retcode: i64,
    pub success: bool,
    /// Outputter hint (`nested`, `highstate`), when the function sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// The publishing user, echoed so a master that restarted still knows it.
    pub user: String,
}

/// Session messages from the master to a minion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToMinion {
    /// Keepalive probe; answered by [`ToMaster::Pong`] with the same `seq`.
    Ping { seq: u64 },
    /// Answer to [`ToMaster::Ping`].
    Pong { seq: u64 },
    /// The master refused an event this minion sent, and says why.
    EventRefused { tag: String, reason: String },
    /// Run a job.
    Publish(Publish),
    /// The event sent with `ack` is on the bus.
    EventAck { tag: String },
    /// The file server's answer to [`ToMaster::FileRequest`] `req`.
    FileReply { req: u64, reply: FileReply },
    /// This minion's compiled pillar, the answer to [`ToMaster::PillarRequest`] `req`; what
    /// went wrong is in its `_errors` list, as Salt's. Sent on this minion's session only.
    PillarReply { req: u64, pillar: Map<String, Value> },
    /// The return for `jid` is stored: the minion may forget it. Until then it is sent again
    /// after every reconnect (the master drops a return it already has).
    ReturnAck { jid: String },
}

/// What stands in for an inline `pillar=` value wherever a job's arguments are shown or
/// stored (job events, the job cache's load, `fun_args` of returns and runner events).
pub const HIDDEN_PILLAR: &str = "<pillar hidden>";

/// `arg` with the value of every `pillar` keyword replaced by [`HIDDEN_PILLAR`]: pillar is
/// secret, so only the minion that runs the job gets it.
pub fn hide_pillar(arg: &[Value]) -> Vec<Value> {
    arg.iter()
        .map(|value| match value {
            Value::Object(map)
                if map.get("__kwarg__") == Some(&Value::Bool(true))
                    && map.contains_key("pillar") =>
            {
                let mut map = map.clone();
                map.insert("pillar".into(), Value::String(HIDDEN_PILLAR.into()));
                Value::Object(map)
            }
            other => other.clone(),
        })
        .collect()
}

/// Splits Salt's `arg` list into positional values and keyword arguments: maps marked
/// `"__kwarg__": true` are merged into the keyword arguments (the marker removed).
pub fn split_args(arg: &[Value]) -> (Vec<Value>, Map<String, Value>) {
    let mut positional = Vec::new();
    let mut kwargs = Map::new();
    for value in arg {
        match value {
            Value::Object(map) if map.get("__kwarg__") == Some(&Value::Bool(true)) => {
                kwargs.extend(
                    map.iter()
                        .filter(|(k, _)| *k != "__kwarg__")
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            other => positional.push(other.clone()),
        }
    }
    (positional, kwargs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a minion sends for an event takes the master's hot path, data kept as written;
    /// a ping does not.
    #[test]
    fn a_minions_event_is_read_raw_and_a_ping_is_not() {
        let data = json!({"a": [1, "x"], "n": null});
        let event = ToMaster::Event { tag: "myco/x".into(), data, ts: 5, ack: true, jid: None };
        let sent = crate::handshake::encode_message(&event);
        let raw = RawEvent::parse(&sent).expect("the hot path");
        assert_eq!(
            (raw.tag.as_str(), raw.data.get(), raw.ts),
            ("myco/x", r#"{"a":[1,"x"],"n":null}"#, 5)
        );
        assert!(raw.ack && raw.jid.is_none());
        let ret = crate::handshake::encode_message(&ToMaster::Ping { seq: 1 });
        assert!(RawEvent::parse(&ret).is_none());
    }

    #[test]
    fn pillar_messages_round_trip_and_name_no_minion() {
        let ask = ToMaster::PillarRequest { req: 7, max_frame: Some(65536) };
        let text = serde_json::to_string(&ask).unwrap();
        assert_eq!(text, r#"{"type":"pillar_request","req":7,"max_frame":65536}"#);
        assert_eq!(serde_json::from_str::<ToMaster>(&text).unwrap(), ask);
        // A peer naming another minion is not a different request: the id is ignored.
        let claimed: ToMaster =
            serde_json::from_str(r#"{"type":"pillar_request","req":1,"id":"minion2"}"#).unwrap();
        assert_eq!(claimed, ToMaster::PillarRequest { req: 1, max_frame: None });
        let pillar = json!({"role": "web", "_errors": ["x"]}).as_object().cloned().unwrap();
        let reply = ToMinion::PillarReply { req: 7, pillar };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<ToMinion>(&text).unwrap(), reply);
        assert!(serde_json::from_str::<ToMinion>(r#"{"type":"pillar_reply","req":1}"#).is_err());
    }

    #[test]
    fn hide_pillar_hides_only_the_pillar_keyword() {
        let arg = vec![
            json!("web"),
            json!({"pillar": "positional dicts are not keywords"}),
            json!({"__kwarg__": true, "pillar": {"secret": "s3cr3t"}, "test": true}),
        ];
        assert_eq!(
            hide_pillar(&arg),
            vec![
                json!("web"),
                json!({"pillar": "positional dicts are not keywords"}),
                json!({"__kwarg__": true, "pillar": HIDDEN_PILLAR, "test": true}),
            ]
        );
        assert_eq!(hide_pillar(&[json!("a")]), vec![json!("a")]);
    }
}
