//! The state functions Halite has (`file.*`, `cmd.*`, `test.*`), what one is given
//! ([`Call`]: its low chunk and the run) and what it answers ([`StateRet`], printed in the
//! key order Salt's module builds its `ret` dict in).

use super::value::{py_str, truthy};
use super::{cmd, file, testing, Run};
use serde_json::{Map, Value};

/// One state function: `state.fun`, the arguments it cannot do without, its body.
pub(crate) struct StateFn {
    pub name: &'static str,
    pub required: &'static [&'static str],
    pub run: fn(&Call) -> StateRet,
}

/// A module's `mod_watch`: runs when a watched state changed and the state itself did not;
/// gets the watched states that changed (`"file: /etc/x"`).
pub(crate) type ModWatch = fn(&Call, &[String]) -> StateRet;

/// The state function called `full` (`file.managed`).
pub(crate) fn find(full: &str) -> Option<&'static StateFn> {
    file::STATES.iter().chain(cmd::STATES).chain(testing::STATES).find(|f| f.name == full)
}

/// The module's `mod_watch`, if it has one (states without one treat `watch` as `require`).
pub(crate) fn mod_watch(state: &str) -> Option<ModWatch> {
    match state {
        "cmd" => Some(cmd::mod_watch),
        "test" => Some(testing::mod_watch),
        _ => None,
    }
}

/// What a state function is called with.
pub(crate) struct Call<'a> {
    pub run: &'a Run<'a>,
    /// The low chunk: every argument as written, plus `state`, `fun`, `__id__`, `__sls__` ….
    pub low: &'a Map<String, Value>,
    pub name: String,
}

impl Call<'_> {
    pub fn test(&self) -> bool {
        self.run.opts.test
    }

    /// Argument `key`, unless missing or null (Salt's `None` default).
    pub fn arg(&self, key: &str) -> Option<&Value> {
        self.low.get(key).filter(|v| !v.is_null())
    }

    /// A boolean argument by Python truthiness.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        self.arg(key).map_or(default, truthy)
    }

    /// A text argument (`str()` of whatever was given).
    pub fn text(&self, key: &str) -> Option<String> {
        self.arg(key).map(py_str)
    }
}

/// The key order of a state's `ret` dict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Layout {
    /// `{"name", "changes", "result", "comment"}` (most states).
    Plain,
    /// `{"changes", "comment", "name", "result"}` (`file.managed`).
    File,
}

/// A state function's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StateRet {
    pub name: String,
    pub changes: Map<String, Value>,
    /// `None` in test mode when something would change.
    pub result: Option<bool>,
    pub comment: String,
    pub layout: Layout,
}

impl StateRet {
    pub fn new(name: &str, result: bool) -> StateRet {
        StateRet {
            name: name.to_string(),
            changes: Map::new(),
            result: Some(result),
            comment: String::new(),
            layout: Layout::Plain,
        }
    }

    /// Salt's `_error(ret, msg)`: failed, with `comment`.
    pub fn error(mut self, comment: impl Into<String>) -> StateRet {
        self.result = Some(false);
        self.comment = comment.into();
        self
    }

    pub fn with(mut self, result: Option<bool>, comment: impl Into<String>) -> StateRet {
        self.result = result;
        self.comment = comment.into();
        self
    }

    pub fn change(&mut self, key: &str, value: impl Into<Value>) {
        self.changes.insert(key.to_string(), value.into());
    }

    pub fn into_map(self) -> Map<String, Value> {
        let result = self.result.map_or(Value::Null, Value::Bool);
        let mut map = Map::new();
        match self.layout {
            Layout::Plain => {
                map.insert("name".into(), Value::String(self.name));
                map.insert("changes".into(), Value::Object(self.changes));
                map.insert("result".into(), result);
                map.insert("comment".into(), Value::String(self.comment));
            }
            Layout::File => {
                map.insert("changes".into(), Value::Object(self.changes));
                map.insert("comment".into(), Value::String(self.comment));
                map.insert("name".into(), Value::String(self.name));
                map.insert("result".into(), result);
            }
        }
        map
    }
}
