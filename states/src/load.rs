//! From SLS names to Salt's high data (`HighState.render_highstate`): `a.b` is `a/b.sls` or
//! else `a/b/init.sls`; each file is rendered, its IDs normalised (`file.managed: [...]` →
//! `file: [..., "managed"]`, `__sls__`, `__env__`), its `include`s rendered first, and every
//! state without an `order` gets the next automatic one (10000, 10001, …) — so included
//! states run before the file that includes them, and files run in the order named.

use super::{Host, Run};
use halite_common::glob::{fnmatch, has_magic};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// Salt's first automatic `order`.
const FIRST_ORDER: i64 = 10000;

pub(crate) struct Loader<'r> {
    run: &'r Run<'r>,
    /// Every SLS name on the file server, fetched once and only for globs.
    avail: Option<Vec<String>>,
    iorder: i64,
    /// SLS names rendered so far (Salt's `mods`).
    rendered: HashSet<String>,
}

/// One rendered file's IDs (its includes merged in) and the errors met.
type Rendered = (Map<String, Value>, Vec<String>);

impl<'r> Loader<'r> {
    pub(crate) fn new(run: &'r Run<'r>) -> Loader<'r> {
        Loader { run, avail: None, iorder: FIRST_ORDER, rendered: HashSet::new() }
    }

    /// Renders `mods` in order into one high data map; errors as Salt words them.
    pub(crate) fn render_highstate(
        &mut self,
        mods: &[String],
    ) -> (Map<String, Value>, Vec<String>) {
        let mut high = Map::new();
        let mut all_errors = Vec::new();
        for sls_match in mods {
            for sls in self.expand(sls_match) {
                if self.rendered.contains(&sls) {
                    continue;
                }
                let (state, mut errors) = self.render_state(&sls);
                merge_included(&mut high, state, &mut errors);
                let this_sls = format!("SLS {sls_match} in saltenv");
                for error in &mut errors {
                    if error.contains("is not available") && error.contains(&this_sls) {
                        *error = format!("No matching sls found for '{sls_match}' in env 'base'");
                    }
                }
                all_errors.extend(errors);
            }
        }
        (high, all_errors)
    }

    /// A glob names the matching SLS files (or itself, when none match, so that the error
    /// names it); a plain name is itself.
    fn expand(&mut self, pattern: &str) -> Vec<String> {
        if !has_magic(pattern) {
            return vec![pattern.to_string()];
        }
        glob_sls(self.avail(), pattern)
    }

    /// Salt's `list_states`, fetched once.
    fn avail(&mut self) -> &[String] {
        let host = self.run.host;
        self.avail.get_or_insert_with(|| list_states(host))
    }

    fn fetch(&self, sls: &str) -> Option<(String, String)> {
        fetch(self.run.host, sls)
    }

    /// Salt's `render_state`: one file, its includes merged in.
    fn render_state(&mut self, sls: &str) -> Rendered {
        let mut errors = Vec::new();
        let Some((path, text)) = self.fetch(sls) else {
            errors.push(format!(
                "Specified SLS {sls} in saltenv base is not available on the salt master or \
                 through a configured fileserver"
            ));
            return (Map::new(), errors);
        };
        let rendered = self.run.renderer.sls(sls, &path, &text);
        self.rendered.insert(sls.to_string());
        let (doc, odd_keys) = match rendered {
            Ok(rendered) => rendered,
            Err(message) => {
                errors.push(format!("Rendering SLS 'base:{sls}' failed: {message}"));
                return (Map::new(), errors);
            }
        };
        let mut state = match doc {
            Value::Object(map) => map,
            Value::Null => return (Map::new(), errors),
            _ => {
                errors.push(format!("SLS {sls} does not render to a dictionary"));
                return (Map::new(), errors);
            }
        };
        for (key, ty) in odd_keys {
            errors.push(format!(
                "ID '{key}' in SLS '{sls}' is not formed as a string, but is type {ty}. It may \
                 need to be quoted."
            ));
        }
        let include = match state.shift_remove("include") {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                errors.push(format!("Include Declaration in SLS {sls} is not formed as a list"));
                Vec::new()
            }
        };
        if state.shift_remove("extend").is_some() {
            errors
                .push(format!("The extend declaration in SLS '{sls}' is not supported by Halite"));
        }
        match state.shift_remove("exclude") {
            None => {}
            Some(Value::Array(items)) => {
                state.insert("__exclude__".into(), Value::Array(items));
            }
            Some(_) => {
                errors.push(format!("Exclude Declaration in SLS {sls} is not formed as a list"))
            }
        }
        handle_state_decls(&mut state, sls, &mut errors);
        let is_init = path.ends_with("/init.sls");
        for inc in include {
            self.include(&mut state, sls, is_init, inc, &mut errors);
        }
        self.handle_iorder(&mut state);
        (state, errors)
    }

    /// One `include:` entry: `name`, `.relative`, a glob, or `{saltenv: name}`.
    fn include(
        &mut self,
        state: &mut Map<String, Value>,
        sls: &str,
        is_init: bool,
        inc: Value,
        errors: &mut Vec<String>,
    ) {
        let (env, inc_sls) = match inc {
            Value::String(s) => ("base".to_string(), s),
            Value::Object(map) if map.len() == 1 => {
                let (env, name) = map.into_iter().next().expect("one entry");
                (env, super::value::py_str(&name))
            }
            other => {
                errors.push(format!(
                    "Badly formatted include {} found in include in SLS 'base:{sls}'",
                    super::value::py_str(&other)
                ));
                return;
            }
        };
        if env != "base" && env != "_xenv" {
            errors.push(format!(
                "Nonexistent saltenv '{env}' found in include of '{inc_sls}' within SLS 'base:{sls}'"
            ));
            return;
        }
        let inc_sls = match relative(sls, is_init, &inc_sls) {
            Ok(name) => name,
            Err(()) => {
                errors.push(format!(
                    "Attempted relative include of '{inc_sls}' within SLS 'base:{sls}' goes \
                     beyond top level package "
                ));
                return;
            }
        };
        for target in self.expand(&inc_sls) {
            if self.rendered.contains(&target) {
                continue;
            }
            let (mut nstate, err) = self.render_state(&target);
            for (id, body) in nstate.iter_mut() {
                if id.starts_with("__") {
                    continue;
                }
                if let Value::Object(body) = body {
                    let from = body.entry("__sls_included_from__").or_insert_with(|| json!([]));
                    if let Value::Array(list) = from {
                        list.push(Value::String(sls.to_string()));
                    }
                }
            }
            merge_included(state, nstate, errors);
            errors.extend(err);
        }
    }

    /// Salt's `_handle_iorder`: each state declaration without an `order` argument gets the
    /// next automatic one.
    fn handle_iorder(&mut self, state: &mut Map<String, Value>) {
        for body in state.values_mut() {
            let Value::Object(body) = body else { continue };
            for (decl, args) in body.iter_mut() {
                if decl.starts_with('_') {
                    continue;
                }
                let Value::Array(args) = args else { continue };
                let found = args.iter().any(|arg| {
                    arg.as_object().and_then(|m| m.keys().next()).is_some_and(|k| k == "order")
                });
                if !found {
                    args.push(json!({ "order": self.iorder }));
                    self.iorder += 1;
                }
            }
        }
    }
}

/// The SLS names in `avail` that glob `pattern` matches, or the pattern itself when none
/// does (so that the error names it).
pub(crate) fn glob_sls(avail: &[String], pattern: &str) -> Vec<String> {
    if !has_magic(pattern) {
        return vec![pattern.to_string()];
    }
    let found: Vec<String> = avail.iter().filter(|sls| fnmatch(sls, pattern)).cloned().collect();
    if found.is_empty() {
        vec![pattern.to_string()]
    } else {
        found
    }
}

/// Salt's `list_states`: every SLS name on the host's file server (`a/b.sls` is `a.b`,
/// `a/init.sls` is `a`), sorted.
pub(crate) fn list_states(host: &Host) -> Vec<String> {
    let files = host.fs.list().unwrap_or_else(|why| {
        log::warn!("{}: listing the file server: {why}", host.id);
        Vec::new()
    });
    let mut states: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let path = path.strip_suffix(".sls")?;
            let path = path.strip_suffix("/init").unwrap_or(path);
            Some(path.replace('/', "."))
        })
        .collect();
    states.sort();
    states.dedup();
    states
}

/// The file for `sls` and its text: `a/b.sls`, else `a/b/init.sls`.
pub(crate) fn fetch(host: &Host, sls: &str) -> Option<(String, String)> {
    let base = sls.replace('.', "/");
    for path in [format!("{base}.sls"), format!("{base}/init.sls")] {
        match host.fs.read(&path) {
            Ok(bytes) => return Some((path, String::from_utf8_lossy(&bytes).into_owned())),
            Err(why) => log::debug!("{}: salt://{path}: {why}", host.id),
        }
    }
    None
}

/// `.x` is a sibling of `sls`, `..x` a sibling of its package …; `init.sls` counts as a level.
fn relative(sls: &str, is_init: bool, inc: &str) -> Result<String, ()> {
    let rest = inc.trim_start_matches('.');
    let levels = inc.len() - rest.len();
    if levels == 0 {
        return Ok(inc.to_string());
    }
    let mut comps: Vec<&str> = sls.split('.').collect();
    if is_init {
        comps.push("init");
    }
    if levels > comps.len() {
        return Err(());
    }
    comps.truncate(comps.len() - levels);
    comps.push(rest);
    Ok(comps.join("."))
}

/// Salt's `_handle_state_decls`: short forms padded, `state.fun` keys split into the state
/// and a function argument, `__sls__`/`__env__` added.
fn handle_state_decls(state: &mut Map<String, Value>, sls: &str, errors: &mut Vec<String>) {
    for (name, body) in state.iter_mut() {
        if name == "__exclude__" {
            continue;
        }
        let map = match body {
            Value::Object(map) => map,
            Value::String(short) if short.contains('.') => {
                let mut comps = short.split('.');
                let (module, fun) = (comps.next().unwrap_or(""), comps.next().unwrap_or(""));
                *body = json!({ "__sls__": sls, "__env__": "base", module: [fun] });
                continue;
            }
            _ => {
                errors.push(format!("ID {name} in SLS {sls} is not a dictionary"));
                continue;
            }
        };
        let mut seen: Vec<String> = Vec::new();
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if key.starts_with('_') || !map[&key].is_array() {
                continue;
            }
            let Some((module, rest)) = key.split_once('.') else {
                seen.push(key);
                continue;
            };
            let fun = rest.split('.').next().unwrap_or("").to_string();
            if seen.iter().any(|s| s == module) || map.contains_key(module) {
                errors.push(format!(
                    "ID '{name}' in SLS '{sls}' contains multiple state declarations of the same \
                     type"
                ));
                continue;
            }
            let mut args = map.shift_remove(&key).unwrap_or_default();
            if let Value::Array(list) = &mut args {
                list.push(Value::String(fun));
            }
            map.insert(module.to_string(), args);
            seen.push(module.to_string());
        }
        map.entry("__sls__").or_insert_with(|| Value::String(sls.to_string()));
        map.entry("__env__").or_insert_with(|| Value::String("base".into()));
    }
}

/// Salt's `merge_included_states`: IDs must be unique across files; `__exclude__` lists add up.
fn merge_included(
    high: &mut Map<String, Value>,
    mut state: Map<String, Value>,
    errors: &mut Vec<String>,
) {
    if let Some(Value::Array(more)) = state.shift_remove("__exclude__") {
        match high.entry("__exclude__").or_insert_with(|| json!([])) {
            Value::Array(list) => list.extend(more),
            other => *other = Value::Array(more),
        }
    }
    for (id, body) in state {
        if let Some(existing) = high.get(&id) {
            if existing != &body {
                let where_ = |b: &Value| {
                    format!(
                        "'{}:{}'",
                        b.get("__env__").and_then(Value::as_str).unwrap_or("base"),
                        b.get("__sls__").and_then(Value::as_str).unwrap_or("")
                    )
                };
                errors.push(format!(
                    "Detected conflicting IDs, SLS IDs need to be globally unique.\n    The \
                     conflicting ID is '{id}' and is found in SLS {} and SLS {}",
                    where_(existing),
                    where_(&body)
                ));
            }
        }
        high.insert(id, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_includes() {
        for (sls, init, inc, want) in [
            ("web.app", false, ".db", Ok("web.db")),
            ("web.app", false, "..top", Ok("top")),
            ("web", true, ".db", Ok("web.db")),
            ("web", false, "..db", Err(())),
            ("web", false, "plain.name", Ok("plain.name")),
        ] {
            assert_eq!(relative(sls, init, inc), want.map(str::to_string), "{sls} {inc}");
        }
    }

    #[test]
    fn state_declarations_are_normalised() {
        let mut state = json!({
            "/tmp/a": {"file.managed": [{"source": "salt://a"}]},
            "short": "test.nop",
            "bad": 3,
            "twice": {"file.managed": [], "file.absent": []},
        });
        let mut errors = Vec::new();
        handle_state_decls(state.as_object_mut().unwrap(), "s", &mut errors);
        assert_eq!(
            state["/tmp/a"],
            json!({"file": [{"source": "salt://a"}, "managed"], "__sls__": "s", "__env__": "base"})
        );
        assert_eq!(state["short"], json!({"__sls__": "s", "__env__": "base", "test": ["nop"]}));
        assert_eq!(
            errors,
            [
                "ID bad in SLS s is not a dictionary",
                "ID 'twice' in SLS 's' contains multiple state declarations of the same type"
            ]
        );
    }
}
