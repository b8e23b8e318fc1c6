//! What a state function is ([`StateFn`]), what it is given ([`Call`]: its low chunk and
//! the run) and what it answers ([`StateRet`], printed in the key order Salt's module builds
//! its `ret` dict in); [`StateModules`] is the set of state functions a run can call, which
//! the host supplies (the minion's `file.*` and `cmd.*`, the orchestrator's `salt.*`).

use super::value::{py_str, truthy};
use super::Run;
use serde_json::{Map, Value};

/// One state function: `state.fun`, the arguments it cannot do without, its body.
pub struct StateFn {
    pub name: &'static str,
    pub required: &'static [&'static str],
    pub run: fn(&Call) -> StateRet,
}

/// A module's `mod_watch`: runs when a watched state changed and the state itself did not;
/// gets the watched states that changed (`"file: /etc/x"`).
pub type ModWatch = fn(&Call, &[String]) -> StateRet;

/// The state functions a run can call. The engine asks `required` before it calls (an
/// unknown function fails its state with Salt's "not available" comment), and
/// `has_mod_watch` to know whether `watch` is more than `require`.
pub trait StateModules: Send + Sync {
    /// The arguments state function `full` (`file.managed`) requires; `None`: no such
    /// function.
    fn required(&self, full: &str) -> Option<&'static [&'static str]>;
    /// Whether module `state` has a `mod_watch`.
    fn has_mod_watch(&self, state: &str) -> bool;
    /// Runs the chunk's function, or, given the watched states that changed, its module's
    /// `mod_watch`. Only called for a function `required` knows.
    fn call(&self, call: &Call, changed: Option<&[String]>) -> StateRet;
}

/// [`StateModules`] from static tables of functions and `mod_watch`es.
pub struct Table {
    pub states: &'static [&'static [StateFn]],
    pub watches: &'static [(&'static str, ModWatch)],
}

impl Table {
    fn find(&self, full: &str) -> Option<&'static StateFn> {
        self.states.iter().flat_map(|fns| fns.iter()).find(|f| f.name == full)
    }
}

impl StateModules for Table {
    fn required(&self, full: &str) -> Option<&'static [&'static str]> {
        self.find(full).map(|f| f.required)
    }

    fn has_mod_watch(&self, state: &str) -> bool {
        self.watches.iter().any(|(name, _)| *name == state)
    }

    fn call(&self, call: &Call, changed: Option<&[String]>) -> StateRet {
        let watch = self.watches.iter().find(|(name, _)| *name == call.state());
        match (changed, watch, self.find(&call.full())) {
            (Some(changed), Some((_, watch)), _) => watch(call, changed),
            (_, _, Some(f)) => (f.run)(call),
            (_, _, None) => StateRet::new(&call.name, false)
                .error(format!("'{}' is not available.", call.full())),
        }
    }
}

/// What a state function is called with.
pub struct Call<'a> {
    pub run: &'a Run<'a>,
    /// The low chunk: every argument as written, plus `state`, `fun`, `__id__`, `__sls__` ….
    pub low: &'a Map<String, Value>,
    pub name: String,
}

impl Call<'_> {
    pub fn test(&self) -> bool {
        self.run.opts.test
    }

    /// The state module (`file`).
    pub fn state(&self) -> &str {
        self.low.get("state").and_then(Value::as_str).unwrap_or("")
    }

    /// `state.fun` (`file.managed`).
    pub fn full(&self) -> String {
        let fun = self.low.get("fun").and_then(Value::as_str).unwrap_or("");
        format!("{}.{fun}", self.state())
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
pub enum Layout {
    /// `{"name", "changes", "result", "comment"}` (most states).
    Plain,
    /// `{"changes", "comment", "name", "result"}` (`file.managed`).
    File,
}

/// A state function's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRet {
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
