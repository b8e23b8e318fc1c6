//! Salt's `Pillar.compile_pillar` for `pillar_roots`: the pillar `top.sls` matched against
//! one minion (its id and grains, as the state top file: [`top`](super::top)), each matched
//! SLS rendered (Jinja then YAML, [`Renderer`](super::Renderer)) with its `include`s, and
//! the results merged in order with Salt's default `smart` strategy (a recursive dict
//! update; lists are replaced). What went wrong is listed under `_errors`, worded as Salt's.
//!
//! The master runs it off its loop, for an authenticated minion only. Pillar is secret: no
//! value is logged, and a render error is reported to the minion as Salt's safe text
//! ("Please see master log for details") while the master's log gets only its first line
//! (the rest quotes the file).

use super::load::{fetch, glob_sls, list_states};
use super::top::{self, TopError};
use super::value::py_str;
use super::{Host, Options, Run};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Deepest nesting a compiled pillar may have: the session's JSON decoder stops at 128
/// levels, and the pillar travels a few levels down in its frame.
pub const MAX_PILLAR_DEPTH: usize = 64;

/// The pillar of the minion `host` describes (`host.fs` serves `pillar_roots`), at most
/// `max_bytes` of JSON: past that, or nested deeper than [`MAX_PILLAR_DEPTH`], the pillar is
/// only its `_errors`. Empty without a top file.
pub fn compile_pillar(host: &Host, max_bytes: usize) -> Map<String, Value> {
    let opts = Options::default();
    let run = Run::new(host, &opts);
    let mut errors = Vec::new();
    let mods = match top::matches(&run) {
        Ok(mods) => mods,
        Err(TopError::Render(message)) => {
            log::error!("pillar for {}: the top file did not render", host.id);
            errors.push(format!("Rendering Primary Top file failed, render error:\n{message}"));
            Vec::new()
        }
        Err(TopError::Invalid(invalid)) => {
            errors.extend(invalid);
            Vec::new()
        }
    };
    let mut compiler = Compiler { run: &run, avail: None, mods: HashMap::new() };
    let mut pillar = Map::new();
    let mut files = Vec::new();
    for sls_match in &mods {
        for sls in compiler.expand(sls_match) {
            if !files.contains(&sls) {
                files.push(sls);
            }
        }
    }
    for sls in files {
        if let Some(state) = compiler.render(&sls, &mut errors) {
            merge(&mut pillar, state);
        }
    }
    if !errors.is_empty() {
        pillar.insert("_errors".into(), errors.into_iter().map(Value::String).collect());
    }
    bounded(pillar, max_bytes)
}

/// Salt's `merge_recurse` (the `smart` strategy for YAML): maps merge key by key, anything
/// else in `more` replaces what `into` had.
pub fn merge(into: &mut Map<String, Value>, more: Map<String, Value>) {
    for (key, value) in more {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// The pillar, or only an error when it is too big or too deep to send.
fn bounded(pillar: Map<String, Value>, max_bytes: usize) -> Map<String, Value> {
    let problem = if depth(&pillar) > MAX_PILLAR_DEPTH {
        Some(format!("Pillar data is nested more than {MAX_PILLAR_DEPTH} levels deep"))
    } else {
        let len = serde_json::to_vec(&pillar).map_or(usize::MAX, |v| v.len());
        (len > max_bytes).then(|| {
            format!("Pillar data is {len} bytes of JSON, more than the {max_bytes} allowed")
        })
    };
    match problem {
        None => pillar,
        Some(message) => {
            let mut only = Map::new();
            only.insert("_errors".into(), Value::Array(vec![Value::String(message)]));
            only
        }
    }
}

/// Levels of maps and lists (an empty map is 1), without recursion.
fn depth(pillar: &Map<String, Value>) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&Value, usize)> = pillar.values().map(|v| (v, 2)).collect();
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Object(map) => {
                deepest = deepest.max(level);
                stack.extend(map.values().map(|v| (v, level + 1)));
            }
            Value::Array(items) => {
                deepest = deepest.max(level);
                stack.extend(items.iter().map(|v| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

struct Compiler<'r> {
    run: &'r Run<'r>,
    /// Every SLS name in `pillar_roots`, listed once and only for globs.
    avail: Option<Vec<String>>,
    /// Salt's `mods`: what each SLS rendered to (None: nothing usable), so an include
    /// rendered before (or an include cycle) costs nothing.
    mods: HashMap<String, Option<Map<String, Value>>>,
}

impl Compiler<'_> {
    /// A glob names the matching SLS files (or itself when none match); a name is itself.
    fn expand(&mut self, pattern: &str) -> Vec<String> {
        if !halite_common::glob::has_magic(pattern) {
            return vec![pattern.to_string()];
        }
        let host = self.run.host;
        let avail = self.avail.get_or_insert_with(|| list_states(host));
        glob_sls(avail, pattern)
    }

    /// Salt's `render_pstate`: one SLS file, its includes merged under it.
    fn render(&mut self, sls: &str, errors: &mut Vec<String>) -> Option<Map<String, Value>> {
        if let Some(done) = self.mods.get(sls) {
            return done.clone();
        }
        self.mods.insert(sls.to_string(), None);
        let id = &self.run.host.id;
        let Some((path, text)) = fetch(self.run.host, sls) else {
            log::error!("pillar for {id}: SLS '{sls}' is not available in pillar_roots");
            errors.push(format!(
                "Specified SLS '{sls}' in environment 'base' is not available on the salt master"
            ));
            return None;
        };
        let mut state = match self.run.renderer.sls(sls, &path, &text) {
            Ok((Value::Object(state), _)) => state,
            Ok((Value::Null, _)) => return None,
            Ok(_) => {
                errors.push(format!("SLS '{sls}' does not render to a dictionary"));
                return None;
            }
            Err(message) => {
                let first = message.lines().next().unwrap_or("");
                log::error!("pillar for {id}: Rendering SLS '{sls}' failed, render error: {first}");
                errors.push(format!(
                    "Rendering SLS '{sls}' failed. Please see master log for details."
                ));
                return None;
            }
        };
        let include = match state.shift_remove("include") {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                errors.push(format!("Include Declaration in SLS '{sls}' is not formed as a list"));
                Vec::new()
            }
        };
        self.mods.insert(sls.to_string(), Some(state.clone()));
        if include.is_empty() {
            return Some(state);
        }
        let is_init = path.ends_with("/init.sls");
        let mut merged = Map::new();
        for item in include {
            let (name, key) = match &item {
                Value::Object(map) if map.len() == 1 => {
                    let (name, options) = map.iter().next().expect("one entry");
                    (name.clone(), options.get("key").map(py_str))
                }
                other => (py_str(other), None),
            };
            for sub in self.expand(&relative(sls, is_init, &name)) {
                let Some(mut nstate) = self.render(&sub, errors) else { continue };
                if let Some(key) = &key {
                    for fragment in key.rsplit(':') {
                        let mut outer = Map::new();
                        outer.insert(fragment.to_string(), Value::Object(nstate));
                        nstate = outer;
                    }
                }
                merge(&mut merged, nstate);
            }
        }
        // The including file's own values win.
        merge(&mut merged, state);
        Some(merged)
    }
}

/// Salt's pillar includes: `.x` is beside `sls` (inside it for an `init.sls`).
fn relative(sls: &str, is_init: bool, name: &str) -> String {
    let Some(rest) = name.strip_prefix('.') else { return name.to_string() };
    let mut parts: Vec<&str> = sls.split('.').collect();
    if !is_init {
        parts.pop();
    }
    parts.push(rest);
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::MemFs;
    use crate::{testing, Called, Functions};
    use serde_json::json;
    use std::sync::Arc;

    struct NoFunctions;

    impl Functions for NoFunctions {
        fn call(&self, fun: &str, _arg: &[Value]) -> Result<Called, String> {
            Err(format!("'{fun}' is not available"))
        }
    }

    fn compile(id: &str, files: &[(&str, &str)]) -> Value {
        compile_max(id, files, 1 << 20)
    }

    fn compile_max(id: &str, files: &[(&str, &str)], max: usize) -> Value {
        let host = Host {
            id: id.into(),
            grains: json!({"os": "Debian", "roles": ["web"]}).as_object().cloned().unwrap(),
            fs: MemFs::new(files),
            functions: Arc::new(NoFunctions),
            modules: Arc::new(testing::TABLE),
        };
        Value::Object(compile_pillar(&host, max))
    }

    const TOP: &str = "base:\n  '*':\n    - common\n  minion1:\n    - web\n  \
                       'os:Debian':\n    - match: grain\n    - debian\n";

    #[test]
    fn top_assigns_files_per_minion_merged_in_order() {
        let files = [
            ("top.sls", TOP),
            ("common.sls", "role: none\nusers: {alice: 1}\nlist: [1, 2]\n"),
            ("web.sls", "role: web\nusers: {bob: 2}\nlist: [3]\nid: {{ grains['os'] }}\n"),
            ("debian.sls", "pkgs: {{ ['a', 'b'] }}\n"),
        ];
        assert_eq!(
            compile("minion1", &files),
            json!({"role": "web", "users": {"alice": 1, "bob": 2}, "list": [3],
                   "id": "Debian", "pkgs": ["a", "b"]})
        );
        assert_eq!(
            compile("minion2", &files),
            json!({"role": "none", "users": {"alice": 1}, "list": [1, 2], "pkgs": ["a", "b"]})
        );
        assert_eq!(compile("minion1", &[("web.sls", "x: 1\n")]), json!({}));
    }

    #[test]
    fn includes_merge_under_the_including_file() {
        let files = [
            ("top.sls", "base:\n  '*':\n    - app\n"),
            ("app/init.sls", "include:\n  - .db\n  - {other: {key: 'nested:here'}}\napp: 1\n"),
            ("app/db.sls", "app: 0\ndb: {password: x}\n"),
            ("other.sls", "include: [app]\ny: 2\n"),
        ];
        assert_eq!(
            compile("m", &files),
            // `other` includes `app` back: as in Salt, it gets what `app` itself rendered.
            json!({"app": 1, "db": {"password": "x"}, "nested": {"here": {"app": 1, "y": 2}}})
        );
    }

    #[test]
    fn errors_are_listed_like_salt_and_keep_the_rest() {
        let files = [
            ("top.sls", "base:\n  '*':\n    - good\n    - missing\n    - broken\n    - list\n"),
            ("good.sls", "ok: true\n"),
            ("broken.sls", "secret: {{ nope }}\n"),
            ("list.sls", "- 1\n"),
        ];
        assert_eq!(
            compile("m", &files),
            json!({"ok": true, "_errors": [
                "Specified SLS 'missing' in environment 'base' is not available on the salt master",
                "Rendering SLS 'broken' failed. Please see master log for details.",
                "SLS 'list' does not render to a dictionary",
            ]})
        );
        let top = compile("m", &[("top.sls", "base: {{ x }}\n")]);
        let errors = top["_errors"][0].as_str().unwrap();
        assert!(errors.starts_with("Rendering Primary Top file failed, render error:\n"), "{top}");
    }

    #[test]
    fn hostile_names_never_leave_the_file_server() {
        // The names become `//////etc/shadow.sls` and `/etc/passwd.sls`: the file server
        // (the master's confines to pillar_roots) is asked, and answers nothing.
        let files = [("top.sls", "base:\n  '*':\n    - ../../etc/shadow\n    - /etc/passwd\n")];
        let got = compile("m", &files);
        assert_eq!(got["_errors"].as_array().map(Vec::len), Some(2), "{got}");
    }

    #[test]
    fn too_big_or_too_deep_is_only_an_error() {
        let files = [("top.sls", "base:\n  '*':\n    - big\n"), ("big.sls", "x: abcdefghij\n")];
        assert_eq!(compile_max("m", &files, 1000), json!({"x": "abcdefghij"}));
        assert_eq!(
            compile_max("m", &files, 5),
            json!({"_errors": ["Pillar data is 18 bytes of JSON, more than the 5 allowed"]})
        );
        let deep = format!("x: {}1{}\n", "[".repeat(70), "]".repeat(70));
        let files = [("top.sls", "base:\n  '*':\n    - deep\n"), ("deep.sls", deep.as_str())];
        assert_eq!(
            compile("m", &files),
            json!({"_errors": ["Pillar data is nested more than 64 levels deep"]})
        );
    }

    #[test]
    fn merge_is_salts_recursive_update() {
        let mut into = json!({"a": {"b": 1, "c": [1]}, "d": 1}).as_object().cloned().unwrap();
        merge(
            &mut into,
            json!({"a": {"c": [2], "e": 3}, "d": {"f": 1}}).as_object().cloned().unwrap(),
        );
        assert_eq!(Value::Object(into), json!({"a": {"b": 1, "c": [2], "e": 3}, "d": {"f": 1}}));
    }
}
