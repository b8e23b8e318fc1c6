//! The master's local control protocol: what the CLIs (`halite`, `halite-key`, `halite-run`)
//! ask over the Unix socket in `sock_dir`, and what they get back. Framed with
//! [`crate::wire`], JSON payloads: one response per request, then, for job watches and
//! subscriptions, a stream of `Response::Event`s. Also the key selection `halite-key` and the
//! reactor's `wheel.key.*` share.

use serde::{Deserialize, Serialize};

/// Name of the control socket inside `sock_dir`.
pub const SOCKET_NAME: &str = "master.sock";

/// The key directories, in Salt's status order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// `minions/`
    Accepted,
    /// `minions_denied/`
    Denied,
    /// `minions_pre/`
    Pending,
    /// `minions_rejected/`
    Rejected,
}

impl KeyStatus {
    /// In the order `salt-key -L` prints them.
    pub const ALL: [KeyStatus; 4] =
        [KeyStatus::Accepted, KeyStatus::Denied, KeyStatus::Pending, KeyStatus::Rejected];

    /// The pki sub-directory, which is also the `--out json` key.
    pub fn dir(self) -> &'static str {
        match self {
            KeyStatus::Accepted => "minions",
            KeyStatus::Denied => "minions_denied",
            KeyStatus::Pending => "minions_pre",
            KeyStatus::Rejected => "minions_rejected",
        }
    }

    /// The heading `salt-key -L` prints.
    pub fn heading(self) -> &'static str {
        match self {
            KeyStatus::Accepted => "Accepted Keys:",
            KeyStatus::Denied => "Denied Keys:",
            KeyStatus::Pending => "Unaccepted Keys:",
            KeyStatus::Rejected => "Rejected Keys:",
        }
    }
}

/// One key the master knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub id: String,
    pub status: KeyStatus,
    /// The public key, PEM.
    pub public: String,
    /// Salt-style fingerprint of `public`.
    pub finger: String,
}

/// What to do with keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    Accept,
    Reject,
    Delete,
}

/// A request from a CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// All keys in every status, with fingerprints.
    KeyList,
    /// Apply `action` to exactly these `(id, status)` keys (the CLI chose and confirmed them).
    /// A key no longer in that status is skipped and not reported as done.
    KeyApply { action: KeyAction, keys: Vec<(String, KeyStatus)> },
    /// The master's own public key fingerprint.
    MasterFinger,
    /// Which minions hold a live session now.
    Presence,
    /// Publish a job. With `watch`, this connection then receives the job's return events
    /// (`Response::Event`) until the CLI closes it.
    Publish {
        tgt: serde_json::Value,
        tgt_type: String,
        fun: String,
        arg: Vec<serde_json::Value>,
        user: String,
        watch: bool,
    },
    /// Stream every event whose tag matches `tagmatch` (exact, glob or anchored regex; all
    /// when absent) on this connection.
    Subscribe { tagmatch: Option<String> },
    /// Run a master-side function (`jobs.lookup_jid`, `manage.up`, `event.send`, ...).
    Runner { fun: String, arg: Vec<serde_json::Value>, user: String },
    /// `request` on behalf of a reaction whose causal chain is `cause` (the master's own
    /// orchestration threads): the events, jobs and returns it sets off carry the chain, so
    /// the reactor's depth limit sees through an orchestration. Not nested.
    Caused { cause: Vec<String>, request: Box<Request> },
}

/// The master's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Keys {
        keys: Vec<KeyEntry>,
    },
    /// The ids the action was applied to.
    Applied {
        ids: Vec<String>,
    },
    Finger {
        finger: String,
    },
    /// Ids of the minions with a live session, sorted.
    Presence {
        up: Vec<String>,
    },
    /// A job went out.
    Published {
        jid: String,
        /// Expected minions: accepted keys matching the target.
        minions: Vec<String>,
        /// Listed (`-L`) ids without an accepted key.
        missing: Vec<String>,
        /// The expected minions that had a live session when the job was published.
        connected: Vec<String>,
    },
    /// The subscription is in place; events follow.
    Subscribed,
    /// One event on a watch or subscription.
    Event {
        tag: String,
        data: serde_json::Map<String, serde_json::Value>,
    },
    /// A runner's result.
    Value {
        value: serde_json::Value,
    },
    /// The request could not be served; the text says why.
    Error {
        message: String,
    },
}

/// [`Response::Event`] made from the event's log line (`Event::to_json_line`,
/// `{"tag":…,"data":…}`): the same bytes, without serialising the event's data again (the
/// master logs every event, then sends subscribers the line it logged).
pub fn event_response(line: &str) -> Vec<u8> {
    const HEAD: &[u8] = EVENT_HEAD;
    debug_assert!(line.starts_with(r#"{"tag":"#), "not an event line: {line}");
    let body = &line.as_bytes()[1..];
    let mut out = Vec::with_capacity(HEAD.len() + body.len());
    out.extend_from_slice(HEAD);
    out.extend_from_slice(body);
    out
}

/// How the master's event frames begin ([`event_response`]).
const EVENT_HEAD: &[u8] = br#"{"result":"event","#;

/// Parses one of the master's answers. An event frame (nearly every frame of a watch) is
/// read straight into its two fields: serde's internally tagged enum first buffers the
/// whole frame as generic content, then builds the answer from that (a `halite` reading
/// 10,000 returns parsed each twice).
pub fn decode_response(payload: &[u8]) -> serde_json::Result<Response> {
    #[derive(Deserialize)]
    struct EventFrame {
        tag: String,
        data: serde_json::Map<String, serde_json::Value>,
    }
    if payload.starts_with(EVENT_HEAD) {
        let EventFrame { tag, data } = serde_json::from_slice(payload)?;
        return Ok(Response::Event { tag, data });
    }
    serde_json::from_slice(payload)
}

/// Which statuses an action may take keys from, given the `--include-*` flags.
pub fn source_statuses(
    action: KeyAction,
    include_accepted: bool,
    include_rejected: bool,
    include_denied: bool,
) -> Vec<KeyStatus> {
    let mut from = Vec::new();
    match action {
        KeyAction::Accept => {
            from.push(KeyStatus::Pending);
            if include_rejected {
                from.push(KeyStatus::Rejected);
            }
            if include_denied {
                from.push(KeyStatus::Denied);
            }
        }
        KeyAction::Reject => {
            from.push(KeyStatus::Pending);
            if include_accepted {
                from.push(KeyStatus::Accepted);
            }
            if include_denied {
                from.push(KeyStatus::Denied);
            }
        }
        KeyAction::Delete => from.extend(KeyStatus::ALL),
    }
    from
}

/// The comma-separated globs of a key selection (`halite-key -a 'web*,db1'`, a wheel `match`),
/// each compiled once: matched against every key of a status, a `[class]` glob compiled per
/// key cost the master's loop a regex compile per key.
pub struct KeyGlobs<'a> {
    patterns: Vec<(&'a str, Option<crate::glob::Glob>)>,
}

impl<'a> KeyGlobs<'a> {
    pub fn new(globs: &'a str) -> KeyGlobs<'a> {
        let patterns = globs.split(',').map(str::trim).filter(|g| !g.is_empty());
        let compile = |p: &str| crate::glob::has_magic(p).then(|| crate::glob::Glob::new(p));
        KeyGlobs { patterns: patterns.map(|p| (p, compile(p))).collect() }
    }

    /// The ids named, when no pattern is a glob: they can be looked up.
    pub fn exact(&self) -> Option<Vec<&'a str>> {
        self.patterns.iter().map(|(p, glob)| glob.is_none().then_some(*p)).collect()
    }

    /// Whether `id` matches any of the patterns (Python's `fnmatch`).
    pub fn matches(&self, id: &str) -> bool {
        self.patterns.iter().any(|(p, glob)| match glob {
            Some(glob) => glob.is_match(id),
            None => *p == id,
        })
    }
}

/// Keys in `from` whose id matches any comma-separated glob of `globs`.
pub fn select<'a>(keys: &'a [KeyEntry], globs: &str, from: &[KeyStatus]) -> Vec<&'a KeyEntry> {
    let globs = KeyGlobs::new(globs);
    keys.iter().filter(|k| from.contains(&k.status)).filter(|k| globs.matches(&k.id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_response_from_the_log_line_is_the_same_bytes_as_the_owned_one() {
        let data = serde_json::json!({"id": "m1", "return": {"nested": [1, "two"]}, "_stamp": "x"});
        let serde_json::Value::Object(data) = data else { unreachable!() };
        let event = crate::event::Event::new("salt/job/1/ret/m1", data);
        let owned = Response::Event { tag: "salt/job/1/ret/m1".into(), data: event.data.clone() };
        let bytes = event_response(&event.to_json_line());
        assert_eq!(bytes, serde_json::to_vec(&owned).unwrap());
        assert_eq!(serde_json::from_slice::<Response>(&bytes).unwrap(), owned);
        assert_eq!(decode_response(&bytes).unwrap(), owned);
        // Other answers, and a broken event, as serde reads them.
        let published = Response::Published {
            jid: "1".into(),
            minions: vec!["m1".into()],
            missing: vec![],
            connected: vec!["m1".into()],
        };
        assert_eq!(decode_response(&serde_json::to_vec(&published).unwrap()).unwrap(), published);
        assert!(decode_response(br#"{"result":"event","tag":1}"#).is_err());
        assert!(decode_response(br#"{"result":"event","tag":"t"}"#).is_err());
    }
}
