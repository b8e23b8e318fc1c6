//! Events as Salt shapes them: a tag and a JSON object stamped with `_stamp`, plus the rules for
//! events that come from minions.

use crate::time::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event on the master's bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub tag: String,
    pub data: Map<String, Value>,
    /// The tags of the events whose reactions led to this one, oldest first; empty for an
    /// external event. Its length is the causal depth the reactor's loop protection reads.
    /// Internal to the master: never logged nor sent.
    #[serde(skip)]
    pub chain: Vec<String>,
    /// The peer address behind the event, where the master budgets by source (`salt/auth`:
    /// the connection that sent the hello). Internal to the master, like `chain`.
    #[serde(skip)]
    pub source: Option<std::net::IpAddr>,
}

impl Event {
    /// An event stamped now; `_stamp` goes last, as Salt appends it.
    pub fn new(tag: impl Into<String>, mut data: Map<String, Value>) -> Event {
        data.remove("_stamp");
        data.insert("_stamp".into(), Value::String(Utc::now().stamp()));
        Event { tag: tag.into(), data, chain: Vec::new(), source: None }
    }

    /// The event-log line: `{"tag": ..., "data": {...}}` without a trailing newline.
    ///
    /// Written into a buffer kept per thread, then copied out at its size: one allocation
    /// per line instead of a buffer grown three or four times (every event on the bus pays
    /// this, and the static builds' allocator is slow).
    pub fn to_json_line(&self) -> String {
        thread_local!(static SCRATCH: std::cell::RefCell<Vec<u8>> = const {
            std::cell::RefCell::new(Vec::new())
        });
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            serde_json::to_writer(&mut *buf, self).expect("events always serialise");
            let line = String::from_utf8(buf.clone()).expect("serde_json writes UTF-8");
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::new(); // one big event does not keep its buffer
            }
            line
        })
    }
}

/// Which tags a subscriber wants, as `state.event`'s `tagmatch`: the exact tag, else a glob,
/// else an anchored regex (an invalid regex matches nothing).
#[derive(Debug, Clone)]
pub enum TagFilter {
    All,
    /// Tags starting with this prefix (job watches: `salt/job/<jid>/ret/`).
    Prefix(String),
    Match {
        exact: String,
        glob: crate::glob::Glob,
        regex: Option<regex::Regex>,
    },
}

impl TagFilter {
    /// Salt's `tagmatch`; `None`, empty or `*` match everything.
    pub fn tagmatch(pattern: Option<&str>) -> TagFilter {
        match pattern {
            None | Some("") | Some("*") => TagFilter::All,
            Some(p) => TagFilter::Match {
                exact: p.to_string(),
                glob: crate::glob::Glob::new(p),
                regex: crate::glob::anchored_regex(p),
            },
        }
    }

    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Prefix(prefix) => tag.starts_with(prefix.as_str()),
            TagFilter::Match { exact, glob, regex } => {
                tag == exact
                    || glob.is_match(tag)
                    || regex.as_ref().is_some_and(|r| r.is_match(tag))
            }
        }
    }
}

/// Builds a JSON object from `(key, value)` pairs, keeping their order.
pub fn object<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Longest event tag a minion may use.
pub const MAX_TAG_BYTES: usize = 1024;

/// What makes `tag` unusable for anyone: empty, too long, or holding control characters (a
/// newline or tab in a tag would forge lines in `state.event`'s tag-TAB-data output).
pub fn tag_problem(tag: &str) -> Option<String> {
    if tag.is_empty() {
        return Some("empty tag".into());
    }
    if tag.len() > MAX_TAG_BYTES {
        return Some(format!("tag is {} bytes, over {MAX_TAG_BYTES}", tag.len()));
    }
    // Shown to the operator (`state.event`, the event log): nothing that breaks a line or
    // changes how the rest reads (a bidi override can make a tag display as another).
    if tag.chars().any(|c| c.is_control() || crate::id::is_invisible(c)) {
        return Some(format!(
            "tag '{}' contains control or invisible characters",
            crate::logging::clip(tag)
        ));
    }
    None
}

/// Nesting event and return data may have: the event-log line, the CLIs' answer frames and
/// the job cache wrap it a few levels deeper, and every reader of them parses with
/// serde_json's limit of 128. A minion's return nested 126 deep was read by the master and
/// made every CLI watching the job fail.
pub const MAX_DATA_NESTING: usize = 100;

/// Why `value` may not be event or return data: nested deeper than [`MAX_DATA_NESTING`].
pub fn nesting_problem(value: &Value) -> Option<String> {
    deeper(value, MAX_DATA_NESTING).then(too_deep)
}

/// [`nesting_problem`] for an object's entries (the object is one level).
pub fn object_nesting_problem(map: &Map<String, Value>) -> Option<String> {
    map.values().any(|v| deeper(v, MAX_DATA_NESTING - 1)).then(too_deep)
}

/// Whether `value` has containers nested deeper than `left` more levels.
fn deeper(value: &Value, left: usize) -> bool {
    match value {
        Value::Array(items) => left == 0 || items.iter().any(|v| deeper(v, left - 1)),
        Value::Object(map) => left == 0 || map.values().any(|v| deeper(v, left - 1)),
        _ => false,
    }
}

fn too_deep() -> String {
    format!("data nested deeper than {MAX_DATA_NESTING} levels")
}

/// Why a minion may not fire an event under `tag`, or `None` when it may.
///
/// Stock Salt let minions forge master tags (CVE-2025-22239); Halite keeps `salt/auth`,
/// `salt/key`, `salt/job/…`, `salt/run/…`, `salt/wheel/…`, `salt/reactor…`, `salt/presence/…`,
/// `salt/netapi/…` (webhooks: a reactor trusts them as authenticated by their token) and other
/// minions' `salt/minion/<id>/…` for the master; `salt/beacon/<id>/…` must name the sending
/// minion.
pub fn minion_tag_refusal(tag: &str, minion_id: &str) -> Option<String> {
    if let Some(problem) = tag_problem(tag) {
        return Some(problem);
    }
    const RESERVED: [&str; 9] = [
        "salt/auth",
        "salt/key",
        "salt/job/",
        "salt/run/",
        "salt/wheel/",
        "salt/reactor",
        "salt/presence/",
        "salt/master/",
        "salt/netapi/",
    ];
    if RESERVED.iter().any(|r| tag == r.trim_end_matches('/') || tag.starts_with(r)) {
        return Some(format!("tag '{tag}' is reserved for the master"));
    }
    if let Some(rest) = tag.strip_prefix("salt/minion/") {
        let owner = rest.split('/').next().unwrap_or_default();
        if owner != minion_id {
            return Some(format!("tag '{tag}' belongs to another minion"));
        }
        if rest.ends_with("/disconnected") {
            return Some(format!("tag '{tag}' is the master's word on a lost minion"));
        }
    }
    // Salt's beacon tags name the minion that watched: `salt/beacon/<id>/<beacon>/...`.
    if tag == "salt/beacon" || tag.starts_with("salt/beacon/") {
        let rest = tag.strip_prefix("salt/beacon/").unwrap_or_default();
        let owner = rest.split('/').next().unwrap_or_default();
        if owner != minion_id {
            return Some(format!("tag '{tag}' names another minion's beacon"));
        }
    }
    // Bare jids are the master's first job event.
    if tag.len() >= 20 && tag.bytes().take(20).all(|b| b.is_ascii_digit()) {
        return Some(format!("tag '{tag}' looks like a job id"));
    }
    None
}

/// The data the master fires for a minion's beacon event (Salt's `events` form: the payload
/// as it is), or why it may not: the tag must be a beacon tag of `minion_id` (and pass
/// [`minion_tag_refusal`]); `id` is always the authenticated id, whatever the payload says.
pub fn beacon_event_data(
    minion_id: &str,
    tag: &str,
    mut data: Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    if let Some(refusal) = minion_tag_refusal(tag, minion_id) {
        return Err(refusal);
    }
    if !tag.starts_with(&format!("salt/beacon/{minion_id}/")) {
        return Err(format!("tag '{tag}' is not a beacon tag of {minion_id}"));
    }
    data.insert("id".into(), minion_id.into());
    Ok(data)
}

/// The data the master fires for a minion's event, as Salt's `_minion_event` load: the user's
/// payload sits under `data`, and `id` is the authenticated id, never one the minion chose.
pub fn wrap_minion_event(minion_id: &str, tag: &str, data: Value, ts: u64) -> Map<String, Value> {
    // Room for the `_stamp` the bus adds, so the map is not grown for it.
    let mut map = Map::with_capacity(7);
    map.insert("cmd".into(), "_minion_event".into());
    map.insert("data".into(), data);
    map.insert("id".into(), minion_id.into());
    map.insert("pretag".into(), Value::Null);
    map.insert("tag".into(), tag.into());
    map.insert("ts".into(), ts.into());
    map
}

/// The event-log line of a minion's event whose `data` is canonical JSON text (see
/// [`crate::canonical`]), written without building the data: byte for byte the line of
/// `Event::new(tag, wrap_minion_event(id, tag, data, ts))` stamped `stamp`. Also the span of
/// the line that holds the event's data object (`{"cmd":…,"_stamp":…}`), for a reader that
/// wants it after all.
pub fn minion_event_line(
    tag: &str,
    id: &str,
    data: &str,
    ts: u64,
    stamp: &str,
) -> (String, std::ops::Range<usize>) {
    let (mut line, start) = open_line(tag, data.len() + tag.len() + id.len() + 128);
    line.extend_from_slice(b"{\"cmd\":\"_minion_event\",\"data\":");
    line.extend_from_slice(data.as_bytes());
    line.extend_from_slice(b",\"id\":");
    json_string(&mut line, id);
    line.extend_from_slice(b",\"pretag\":null,\"tag\":");
    json_string(&mut line, tag);
    line.extend_from_slice(b",\"ts\":");
    serde_json::to_writer(&mut line, &ts).expect("an integer always serialises");
    line.push(b',');
    close_line(line, start, stamp)
}

/// The event-log line of an event whose `data` is already the JSON text of an object without
/// `_stamp` (as `serde_json` writes a map): byte for byte the line of `Event::new(tag, map)`
/// stamped `stamp`, written without building the map. Also the span of the data object.
/// The master's job returns take this path: their text is written once, for the job cache
/// and for the event both.
pub fn stamped_event_line(tag: &str, data: &str, stamp: &str) -> (String, std::ops::Range<usize>) {
    let body = data.strip_suffix('}').unwrap_or(data);
    let (mut line, start) = open_line(tag, data.len() + stamp.len() + 40);
    line.extend_from_slice(body.as_bytes());
    if body.len() > 1 {
        line.push(b',');
    }
    close_line(line, start, stamp)
}

/// An event line's start, `{"tag":…,"data":`, with `room` more bytes reserved; and where the
/// data begins.
fn open_line(tag: &str, room: usize) -> (Vec<u8>, usize) {
    let mut line = Vec::with_capacity(tag.len() + 20 + room);
    line.extend_from_slice(b"{\"tag\":");
    json_string(&mut line, tag);
    line.extend_from_slice(b",\"data\":");
    let start = line.len();
    (line, start)
}

/// An event line's end: the data's last key `_stamp`, its closing brace and the line's; the
/// line as text and the span of its data object.
fn close_line(mut line: Vec<u8>, start: usize, stamp: &str) -> (String, std::ops::Range<usize>) {
    line.extend_from_slice(b"\"_stamp\":");
    json_string(&mut line, stamp);
    line.push(b'}');
    let end = line.len();
    line.push(b'}');
    let line = String::from_utf8(line).expect("UTF-8 pieces and serde_json's UTF-8");
    (line, start..end)
}

fn json_string(line: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(line, text).expect("a string always serialises");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_nests_at_most_max_data_nesting_levels() {
        let nested = |n: usize| (0..n).fold(json!(1), |v, _| json!([v]));
        assert_eq!(nesting_problem(&nested(MAX_DATA_NESTING)), None);
        let deep = nesting_problem(&nested(MAX_DATA_NESTING + 1));
        assert_eq!(deep.as_deref(), Some("data nested deeper than 100 levels"));
        let object = json!({"a": nested(MAX_DATA_NESTING)});
        assert!(nesting_problem(&object).is_some());
        assert!(object_nesting_problem(object.as_object().unwrap()).is_some());
        assert_eq!(object_nesting_problem(&Map::new()), None);
        assert_eq!(nesting_problem(&json!("flat")), None);
    }

    #[test]
    fn tags_that_break_or_disguise_a_line_are_refused() {
        for tag in ["a\nb", "a\tb", "x\u{202e}y", "a\u{200b}b", "a\u{2028}b", "\u{feff}t"] {
            let why = minion_tag_refusal(tag, "m").expect(tag);
            assert!(why.contains("control or invisible characters"), "{why}");
            assert!(
                !why.contains(|c: char| c.is_control() || crate::id::is_invisible(c)),
                "{why:?}"
            );
        }
        assert_eq!(tag_problem("myco/é/✓"), None);
    }

    /// A line stamped onto an object's text is the line of the event built from the object.
    #[test]
    fn a_stamped_line_is_the_events_line() {
        for data in
            [json!({}), json!({"a": [1, "\n"], "b": {"c": null}}), json!({"é\u{202e}": "x"})]
        {
            let Value::Object(map) = data else { unreachable!() };
            let text = serde_json::to_string(&map).unwrap();
            let event = Event::new("salt/job/1/ret/m\"1", map);
            let stamp = event.data["_stamp"].as_str().unwrap();
            let (line, span) = stamped_event_line(&event.tag, &text, stamp);
            assert_eq!(line, event.to_json_line());
            assert_eq!(serde_json::from_str::<Value>(&line[span]).unwrap(), json!(event.data));
        }
    }

    /// The line written from the data's text is the line of the event built from its value.
    #[test]
    fn a_minion_event_line_is_the_wrapped_events_line() {
        for data in [r#"{"a":[1,"\n"],"_stamp":"x","id":"forged"}"#, r#""started""#, "null", "{}"] {
            for (tag, id) in [("myco/x", "m1"), ("t\"\u{1}é", "id\u{202e}")] {
                let value: Value = serde_json::from_str(data).unwrap();
                let mut event = Event::new(tag, wrap_minion_event(id, tag, value, 17));
                let stamp = event.data["_stamp"].as_str().unwrap().to_string();
                let (line, span) = minion_event_line(tag, id, data, 17, &stamp);
                assert_eq!(line, event.to_json_line());
                let wrapped: Map<String, Value> = serde_json::from_str(&line[span]).unwrap();
                assert_eq!(wrapped, std::mem::take(&mut event.data));
            }
        }
    }

    #[test]
    fn stamp_is_last_and_replaced() {
        let e = Event::new("t", object([("_stamp", "forged".into()), ("a", 1.into())]));
        let keys: Vec<&String> = e.data.keys().collect();
        assert_eq!(keys, ["a", "_stamp"]);
        assert_ne!(e.data["_stamp"], "forged");
        assert!(e.to_json_line().starts_with("{\"tag\":\"t\",\"data\":{\"a\":1,\"_stamp\":\"20"));
    }

    #[test]
    fn tag_filters_match_exact_glob_then_regex() {
        let f = TagFilter::tagmatch(Some("salt/job/*/ret/*"));
        assert!(f.matches("salt/job/1/ret/m1"));
        assert!(!f.matches("salt/job/1/new"));
        let f = TagFilter::tagmatch(Some(r"salt/minion/Min\w+/start"));
        assert!(f.matches("salt/minion/Minion2/start"));
        assert!(!f.matches("salt/minion/Minion2/start/x"));
        let f = TagFilter::tagmatch(Some("a[("));
        assert!(f.matches("a[("));
        assert!(!f.matches("a"));
        assert!(TagFilter::tagmatch(None).matches("anything"));
        assert!(TagFilter::Prefix("salt/job/1/".into()).matches("salt/job/1/ret/x"));
    }

    #[test]
    fn beacon_events_keep_their_payload_under_the_authenticated_id() {
        let data = object([("path", "/tmp/x".into()), ("id", "forged".into())]);
        let got = beacon_event_data("m1", "salt/beacon/m1/inotify//tmp/x", data.clone());
        let want = object([("path", "/tmp/x".into()), ("id", "m1".into())]);
        assert_eq!(got, Ok(want));
        for tag in ["salt/beacon/m2/inotify//tmp/x", "myco/x", "salt/beacon/m1", "salt/auth"] {
            assert!(beacon_event_data("m1", tag, data.clone()).is_err(), "{tag}");
        }
    }

    #[test]
    fn reserved_tags_are_refused_for_minions() {
        for tag in [
            "salt/auth",
            "salt/key",
            "salt/job/20261125192040104958/ret/m1",
            "salt/run/1/new",
            "salt/wheel/1/new",
            "salt/reactor/error",
            "salt/reactors/manage/add",
            "salt/presence/change",
            "salt/minion/other/start",
            "salt/minion/m1/disconnected",
            "salt/netapi/hook/deploy",
            "salt/beacon/other/inotify//etc/important_file",
            "salt/beacon/m10/log/error",
            "salt/beacon/",
            "salt/beacon",
            "20261125192040104958",
            "",
            "myco/x\nsalt/auth\t{}",
            "myco/\u{7f}",
            "myco/\u{85}next-line",
        ] {
            assert!(minion_tag_refusal(tag, "m1").is_some(), "{tag}");
        }
        for tag in [
            "salt/minion/m1/start",
            "minion_start",
            "myco/app/deployed",
            "salt/beacon/m1/inotify//etc/important_file",
            "salt/beacon/m1/diskusage/",
            "salt/beaconx",
        ] {
            assert_eq!(minion_tag_refusal(tag, "m1"), None, "{tag}");
        }
    }
}
