//! Salt's `test` states, for trying requisites and outputters: `nop`,
//! `succeed_without_changes`, `succeed_with_changes`, `fail_without_changes`,
//! `fail_with_changes`, `show_notification`, and their `mod_watch`. Shared: the minion and
//! the orchestrator both have them.

use super::registry::{Call, StateFn, StateRet, Table};
use serde_json::{json, Value};

pub const STATES: &[StateFn] = &[
    StateFn { name: "test.nop", required: &[], run: succeed_without_changes },
    StateFn { name: "test.succeed_without_changes", required: &[], run: succeed_without_changes },
    StateFn { name: "test.succeed_with_changes", required: &[], run: succeed_with_changes },
    StateFn { name: "test.fail_without_changes", required: &[], run: fail_without_changes },
    StateFn { name: "test.fail_with_changes", required: &[], run: fail_with_changes },
    StateFn { name: "test.show_notification", required: &[], run: show_notification },
];

/// The `test` states alone, as a [`StateModules`](super::StateModules).
pub const TABLE: Table = Table { states: &[STATES], watches: &[("test", mod_watch)] };

/// The `comment` argument, or Salt's default.
fn comment(c: &Call, default: &str) -> String {
    c.text("comment").unwrap_or_else(|| default.to_string())
}

fn pretend_changes() -> Value {
    json!({"testing": {"old": "Unchanged", "new": "Something pretended to change"}})
}

fn succeed_without_changes(c: &Call) -> StateRet {
    StateRet::new(&c.name, true).with(Some(true), comment(c, "Success!"))
}

fn fail_without_changes(c: &Call) -> StateRet {
    let ret = StateRet::new(&c.name, false);
    match c.test() {
        true => {
            ret.with(Some(false), comment(c, "If we weren't testing, this would be a failure!"))
        }
        false => ret.with(Some(false), comment(c, "Failure!")),
    }
}

fn succeed_with_changes(c: &Call) -> StateRet {
    let mut ret = match c.test() {
        true => StateRet::new(&c.name, true)
            .with(None, comment(c, "If we weren't testing, this would be successful with changes")),
        false => StateRet::new(&c.name, true).with(Some(true), comment(c, "Success!")),
    };
    ret.changes = pretend_changes().as_object().cloned().unwrap_or_default();
    ret
}

fn fail_with_changes(c: &Call) -> StateRet {
    let mut ret = match c.test() {
        true => StateRet::new(&c.name, false)
            .with(None, comment(c, "If we weren't testing, this would be failed with changes")),
        false => StateRet::new(&c.name, false).with(Some(false), comment(c, "Failure!")),
    };
    ret.changes = pretend_changes().as_object().cloned().unwrap_or_default();
    ret
}

fn show_notification(c: &Call) -> StateRet {
    match c.text("text") {
        Some(text) => StateRet::new(&c.name, true).with(Some(true), text),
        None => StateRet::new(&c.name, false).error("Missing required argument text."),
    }
}

/// Salt's `test.mod_watch`: fired, listing the watched states that changed.
pub fn mod_watch(c: &Call, changed: &[String]) -> StateRet {
    let result = c.arg("result").and_then(Value::as_bool).unwrap_or(true);
    let mut ret =
        StateRet::new(&c.name, result).with(Some(result), comment(c, "Watch statement fired."));
    ret.changes = match c.arg("changes") {
        Some(Value::Object(changes)) => changes.clone(),
        _ => json!({"Requisites with changes": changed}).as_object().cloned().unwrap_or_default(),
    };
    ret
}
