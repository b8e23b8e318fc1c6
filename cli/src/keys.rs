//! `halite-key`'s logic without I/O: which keys a glob selects for an action, and Salt's
//! texts for listings, confirmations and fingerprints.

pub use halite_common::control::{select, source_statuses};
use halite_common::control::{KeyAction, KeyEntry, KeyStatus};
use serde_json::{Map, Value};

/// The words of Salt's texts for an action.
pub fn verbs(action: KeyAction) -> (&'static str, &'static str) {
    match action {
        KeyAction::Accept => ("accepted", "Proceed? [n/Y] "),
        KeyAction::Reject => ("rejected", "Proceed? [n/Y] "),
        KeyAction::Delete => ("deleted", "Proceed? [N/y] "),
    }
}

/// "does not match any unaccepted keys." and its variants with include flags.
pub fn no_match(glob: &str, from: &[KeyStatus]) -> String {
    let names: Vec<&str> = from
        .iter()
        .map(|s| match s {
            KeyStatus::Pending => "unaccepted",
            KeyStatus::Accepted => "accepted",
            KeyStatus::Rejected => "rejected",
            KeyStatus::Denied => "denied",
        })
        .collect();
    let names = match from.len() {
        4 => "keys".to_string(),
        _ => format!("{} keys", names.join(" or ")),
    };
    format!("The key glob '{glob}' does not match any {names}.")
}

/// Whether an answer to the prompt means yes, given the default.
pub fn confirmed(answer: Option<&str>, default_yes: bool) -> bool {
    match answer.map(|a| a.trim().to_lowercase()) {
        Some(a) if a == "y" || a == "yes" => true,
        Some(a) if a == "n" || a == "no" => false,
        _ => default_yes,
    }
}

/// Keys grouped under Salt's headings; `all_headings` prints empty statuses too (`-L`).
/// `line` renders one key.
pub fn grouped(
    keys: &[&KeyEntry],
    statuses: &[KeyStatus],
    all_headings: bool,
    line: impl Fn(&KeyEntry) -> String,
) -> String {
    let mut out = String::new();
    for &status in statuses {
        let mut ids: Vec<&&KeyEntry> = keys.iter().filter(|k| k.status == status).collect();
        if ids.is_empty() && !all_headings {
            continue;
        }
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        out.push_str(status.heading());
        out.push('\n');
        for key in ids {
            out.push_str(&line(key));
            out.push('\n');
        }
    }
    out
}

/// `salt-key -L --out json`: ids per status directory, in Salt 3008's key order.
pub fn list_json(keys: &[KeyEntry], statuses: &[KeyStatus]) -> Value {
    let order = [KeyStatus::Pending, KeyStatus::Rejected, KeyStatus::Accepted, KeyStatus::Denied];
    let mut map = Map::new();
    for status in order.into_iter().filter(|s| statuses.contains(s)) {
        let mut ids: Vec<&str> =
            keys.iter().filter(|k| k.status == status).map(|k| k.id.as_str()).collect();
        ids.sort();
        map.insert(status.dir().into(), ids.into());
    }
    Value::Object(map)
}

/// `-l` argument to statuses, as Salt spells them.
pub fn parse_list_arg(arg: &str) -> Option<Vec<KeyStatus>> {
    Some(match arg {
        "acc" | "accepted" => vec![KeyStatus::Accepted],
        "pre" | "un" | "unaccepted" | "pending" => vec![KeyStatus::Pending],
        "rej" | "rejected" => vec![KeyStatus::Rejected],
        "den" | "denied" => vec![KeyStatus::Denied],
        "all" => KeyStatus::ALL.to_vec(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, status: KeyStatus) -> KeyEntry {
        KeyEntry { id: id.into(), status, public: String::new(), finger: format!("f-{id}") }
    }

    #[test]
    fn selection_respects_globs_lists_and_statuses() {
        let keys = vec![
            key("minion1", KeyStatus::Accepted),
            key("Minion2", KeyStatus::Pending),
            key("other1", KeyStatus::Pending),
            key("bad", KeyStatus::Rejected),
        ];
        let pending = source_statuses(KeyAction::Accept, false, false, false);
        let ids = |v: Vec<&KeyEntry>| v.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(select(&keys, "*", &pending)), ["Minion2", "other1"]);
        assert_eq!(ids(select(&keys, "Min*", &pending)), ["Minion2"]);
        assert_eq!(ids(select(&keys, "other1,bad", &pending)), ["other1"]);
        let with_rejected = source_statuses(KeyAction::Accept, false, true, false);
        assert_eq!(ids(select(&keys, "other1,bad", &with_rejected)), ["other1", "bad"]);
        let all = source_statuses(KeyAction::Delete, false, false, false);
        assert_eq!(ids(select(&keys, "*1", &all)), ["minion1", "other1"]);
        assert_eq!(no_match("x", &pending), "The key glob 'x' does not match any unaccepted keys.");
        assert_eq!(
            no_match("x", &source_statuses(KeyAction::Reject, true, false, false)),
            "The key glob 'x' does not match any unaccepted or accepted keys."
        );
    }

    #[test]
    fn listing_texts_match_salt() {
        let keys = [
            key("minion1", KeyStatus::Accepted),
            key("Minion2", KeyStatus::Accepted),
            key("other1", KeyStatus::Pending),
        ];
        let refs: Vec<&KeyEntry> = keys.iter().collect();
        assert_eq!(
            grouped(&refs, &KeyStatus::ALL, true, |k| k.id.clone()),
            "Accepted Keys:\nMinion2\nminion1\nDenied Keys:\nUnaccepted Keys:\nother1\nRejected Keys:\n"
        );
        assert_eq!(
            serde_json::to_string(&list_json(&keys, &KeyStatus::ALL)).unwrap(),
            r#"{"minions_pre":["other1"],"minions_rejected":[],"minions":["Minion2","minion1"],"minions_denied":[]}"#
        );
        assert!(confirmed(None, true));
        assert!(!confirmed(None, false));
        assert!(!confirmed(Some("n\n"), true));
        assert!(confirmed(Some("Y"), false));
    }
}
