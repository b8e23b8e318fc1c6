//! The reactor's pure part: `reactor:` rules, tag matching, rendering SLS files (Jinja, then
//! YAML) and compiling them into ordered [`Reaction`]s, as Salt does (SALT-COMPAT §2). Running
//! the reactions is the master's business.
//!
//! **Event data is hostile.** A minion chooses most of it (its id, `data['data']`, beacon
//! payloads), and Salt pastes it into YAML unescaped, so an id such as
//! `"x\nevil:\n  wheel.key.accept:\n    - match: '*'"` adds a reaction, and a host such as
//! `web1'}, {match: '*'}] #` ends the author's quotes in `[{match: '{{ … }}'}]`. Halite's rule:
//! **every `{{ }}` value stays inside the scalar it is written in.** The formatter
//! (`render::format_value`) does not write the value: it records a `splice::Slot` (the value as
//! a YAML node, and as Python `str()` text, what Salt writes) and writes a reference made of
//! private-use characters that event data cannot write (`emit` escapes them). After Jinja,
//! `splice` lexes the YAML and writes each value for where its reference sits:
//! - a whole node (`- tgt: {{ x }}`, `[{{ x }}]`): one YAML value, a string plain when
//!   `emit::plain_ok` (unambiguous in any context) else double-quoted, numbers, booleans and
//!   `none` as YAML scalars, lists and maps as one-line JSON;
//! - inside `'…'`: the text with `'` doubled (the scalar rewritten `"…"` when the text has
//!   characters `'…'` cannot carry); inside `"…"`: the text with YAML's escapes;
//! - part of a longer plain scalar (`echo {{ x }}`): the whole scalar becomes one double-quoted
//!   string, its text and the values' texts;
//! - in a block scalar: the text, its line breaks indented like its line (other breaks, control
//!   characters, or a blank start where YAML detects the indentation are refused);
//! - in a comment: double-quoted on one line;
//! - in an anchor, alias, tag or directive, or right after a `\` in `"…"`: refused; on a line
//!   that may continue the line before's plain scalar, only values that are plain text.
//!
//! The serializer filters (`json`/`tojson`/`yaml`/`yaml_encode`/`yaml_dquote`/`yaml_squote`)
//! place their output the same way (as written when a whole node, as text elsewhere); `|e`
//! goes through the formatter. Macros and `{% set %}` blocks return safe text whose references
//! are placed where the block is printed, so template code that inspects such text (`{% filter
//! upper %}`, `|length`, comparing `|json` output) sees references, not values. `|safe` pastes
//! raw text and must never be used on event data. Data is never rendered twice, so `{{`/`{%` inside it are plain text.
//!
//! **Salt's Jinja** (`salt.utils.templates.render_jinja_tmpl`): undefined values are strict
//! (printing, testing, comparing, iterating or filtering `data['missing']` or a misspelt name
//! fails the file; `is defined`, `|default`, `.get()` and `in` ask safely), `{% do %}` with Python's
//! mutating list and dict methods (`append`, `extend`, `insert`, `pop`, `remove`, `update`,
//! `setdefault` … on literals, `dict()` and `|list`; event data itself is read-only), no
//! `trim_blocks`/`lstrip_blocks`, and the file's trailing newline kept.
//!
//! **Salt's YAML** (`SaltYamlSafeLoader`): YAML 1.1 plain scalars (`yes`/`off` are booleans,
//! `0664` is the integer 664 as Salt strips leading zeros, timestamps stay text), a key written
//! twice in one mapping is an error, `<<` merges, only the safe tags.
//!
//! Unlike Salt, a file that fails (missing, render or YAML error, bad reaction) contributes
//! nothing but does not cancel the other files' reactions; every failure is reported.

mod compile;
mod config;
mod emit;
pub mod functions;
mod mutable;
mod render;
mod requisites;
mod rewrite;
mod sources;
mod splice;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_compile;
#[cfg(test)]
mod tests_quoting;
#[cfg(test)]
mod tests_render;
mod widths;
mod yaml;

pub use config::{parse_rules, tag_matches};

/// The guards of the reactor's Jinja for another minijinja environment (the state and pillar
/// renderer's): `template` checks and rewrites a template's text before it is compiled (a
/// namespace may not come to hold itself; expressions minijinja's parser would recurse on
/// without a limit are refused, `Err((line, why))`), and `install` adds the filter the
/// rewritten text calls, and `format`/`str.format` with their widths bounded (it replaces
/// pycompat's method callback, which it calls).
pub mod jinja_guard {
    use std::borrow::Cow;

    pub fn template(source: &str) -> Result<Cow<'_, str>, (usize, String)> {
        super::rewrite::rewrite(source, false)
    }

    /// A value as JSON for writing out, refused when it nests deeper than the reactor allows
    /// or has more elements than a render's output could hold (a lazily repeated sequence).
    pub fn to_json(value: &minijinja::Value) -> Result<serde_json::Value, minijinja::Error> {
        super::render::to_json(value)
    }

    pub fn install(env: &mut minijinja::Environment<'_>) {
        env.add_filter(super::mutable::NAMESPACE_FILTER, super::mutable::namespace_filter);
        env.add_filter("format", super::widths::format_filter);
        env.add_filter("indent", super::widths::indent_filter);
        env.set_unknown_method_callback(super::widths::unknown_method);
    }
}

use regex::RegexSet;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One `reactor:` entry: a tag pattern and its SLS files, in config order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub pattern: String,
    pub sls: Vec<String>,
}

/// What a client prefix runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// `local.` (or Salt's old alias `cmd.`): a job published to minions.
    Local,
    /// `runner.`: a runner on the master.
    Runner,
    /// `wheel.`: a wheel function on the master (`key.accept` …).
    Wheel,
    /// `caller.`: a function on the minion running the reactor (masterless).
    Caller,
}

impl Client {
    /// The client for an SLS key prefix; `cmd` is Salt's alias of `local`.
    pub fn from_prefix(prefix: &str) -> Option<Client> {
        match prefix {
            "local" | "cmd" => Some(Client::Local),
            "runner" => Some(Client::Runner),
            "wheel" => Some(Client::Wheel),
            "caller" => Some(Client::Caller),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Client::Local => "local",
            Client::Runner => "runner",
            Client::Wheel => "wheel",
            Client::Caller => "caller",
        }
    }
}

/// One reaction to run, in execution order. (Serde: the master's render worker sends it back
/// over its socket; `to_json` is the user-facing shape.)
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reaction {
    /// The SLS ID (Salt's `__id__`).
    pub id: String,
    /// Salt's chunk name: the ID unless a `name` item sets it. It orders and can be named by
    /// requisites; it is not passed to the function.
    pub name: String,
    /// The file it came from.
    pub sls: String,
    pub client: Client,
    /// Without the client prefix: `key.accept`, `state.sls`, `cmd.run`.
    pub fun: String,
    /// Local only.
    pub tgt: Option<Value>,
    /// Local only: `glob` unless `tgt_type` is given (Salt's old `expr_form` is ignored).
    pub tgt_type: String,
    /// As Salt passes them: for runner/wheel, the legacy form bound to the function's
    /// signature (required parameters positional, defaults filled in).
    pub arg: Vec<Value>,
    pub kwarg: Map<String, Value>,
    /// Local only: the returner(s) named by `ret`.
    pub ret: Option<String>,
    /// The line of its ID in the rendered file (for `salt/reactor/error`).
    pub line: Option<usize>,
    /// What of the SLS it does not do (keys ignored as Salt ignores them, requisites that
    /// only order), for `reactor.test` and the master's log.
    pub warnings: Vec<String>,
}

impl Reaction {
    /// The `arg` list a job or runner gets, as Salt sends it: the positional args, then the
    /// keyword args as one `{"__kwarg__": true, ...}` map (none when there are none).
    pub fn salt_arg(&self) -> Vec<Value> {
        let mut arg = self.arg.clone();
        if !self.kwarg.is_empty() {
            let mut kwarg = Map::with_capacity(self.kwarg.len() + 1);
            kwarg.insert("__kwarg__".into(), true.into());
            kwarg.extend(self.kwarg.iter().map(|(k, v)| (k.clone(), v.clone())));
            arg.push(Value::Object(kwarg));
        }
        arg
    }

    /// `{"id", "client", "fun", "tgt", "tgt_type", "arg", "kwarg"}` (+ `"ret"`, `"name"` when
    /// not the ID, `"warnings"` when any) — the `reactor.test --out json` shape. `tgt` and
    /// `tgt_type` are null but for local reactions.
    pub fn to_json(&self) -> Value {
        let local = self.client == Client::Local;
        let mut out = Map::new();
        out.insert("id".into(), self.id.clone().into());
        if self.name != self.id {
            out.insert("name".into(), self.name.clone().into());
        }
        out.insert("client".into(), self.client.as_str().into());
        out.insert("fun".into(), self.fun.clone().into());
        out.insert("tgt".into(), self.tgt.clone().filter(|_| local).unwrap_or(Value::Null));
        let tgt_type = if local { self.tgt_type.clone().into() } else { Value::Null };
        out.insert("tgt_type".into(), tgt_type);
        out.insert("arg".into(), Value::Array(self.arg.clone()));
        out.insert("kwarg".into(), Value::Object(self.kwarg.clone()));
        if let Some(ret) = &self.ret {
            out.insert("ret".into(), ret.clone().into());
        }
        if !self.warnings.is_empty() {
            out.insert("warnings".into(), self.warnings.clone().into());
        }
        Value::Object(out)
    }
}

/// A file that produced no reactions, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactorError {
    pub sls: String,
    pub tag: String,
    /// `missing`, `render`, `yaml` or `reaction`.
    pub kind: &'static str,
    /// For `render`: the SLS line; for `yaml`: the line of the rendered text (Jinja keeps the
    /// line structure, so usually the same).
    pub line: Option<usize>,
    pub message: String,
    /// For a `reaction` refused on its own (the rest of its file runs): its ID. (Boxed: the
    /// error stays small enough to return by value.)
    pub id: Option<Box<str>>,
}

impl ReactorError {
    /// `{"sls","tag","kind","line","message"}` (+ `"id"` for one reaction) — also the data of
    /// the `salt/reactor/error` event.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("sls".into(), self.sls.clone().into());
        out.insert("tag".into(), self.tag.clone().into());
        out.insert("kind".into(), self.kind.into());
        out.insert("line".into(), self.line.map_or(Value::Null, Value::from));
        if let Some(id) = &self.id {
            out.insert("id".into(), id.to_string().into());
        }
        out.insert("message".into(), self.message.clone().into());
        Value::Object(out)
    }
}

/// Everything one event leads to.
#[derive(Debug, Default)]
pub struct Reactions {
    pub reactions: Vec<Reaction>,
    pub errors: Vec<ReactorError>,
    /// The SLS files considered, in order (a glob entry expanded to its files; an entry that
    /// names no file appears as written, with a `missing` error).
    pub matched: Vec<String>,
}

/// The compiled reactor: rules plus a minijinja environment.
pub struct Reactor {
    rules: Vec<Rule>,
    matchers: Vec<config::Matcher>,
    /// Every rule's regexes in one set, so an event's tag is scanned once for all rules
    /// (`owners[i]` is the rule of the set's pattern `i`); `None` if the set would not build.
    set: Option<(RegexSet, Vec<usize>)>,
    renderer: render::Renderer,
    file_roots: Vec<PathBuf>,
}

impl Reactor {
    pub fn new(rules: Vec<Rule>) -> Reactor {
        let matchers: Vec<config::Matcher> =
            rules.iter().map(|r| config::Matcher::new(&r.pattern)).collect();
        let (mut sources, mut owners) = (Vec::new(), Vec::new());
        for (i, matcher) in matchers.iter().enumerate() {
            for regex in matcher.regexes() {
                sources.push(regex.into_owned());
                owners.push(i);
            }
        }
        let set = RegexSet::new(&sources).ok().map(|set| (set, owners));
        Reactor { rules, matchers, set, renderer: render::Renderer::new(), file_roots: Vec::new() }
    }

    /// Where `salt://` SLS paths are looked up (the master's `file_roots`, base first).
    /// Without it a `salt://` path is reported missing.
    pub fn with_file_roots(mut self, roots: Vec<PathBuf>) -> Reactor {
        self.file_roots = roots;
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Start-up/reload problems: SLS entries that name no file, patterns that look like
    /// regexes but are not valid ones (they still match as globs).
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (rule, matcher) in self.rules.iter().zip(&self.matchers) {
            if let Some(problem) = matcher.problem() {
                problems.push(problem);
            }
            for sls in &rule.sls {
                if let Err(why) = sources::resolve(sls, &self.file_roots) {
                    problems.push(format!("pattern '{}': {why}", rule.pattern));
                }
            }
        }
        problems
    }

    /// Whether any rule matches `tag` (cheap; called for every event).
    pub fn wants(&self, tag: &str) -> bool {
        match &self.set {
            Some((set, _)) => set.is_match(tag),
            None => self.matchers.iter().any(|m| m.matches(tag)),
        }
    }

    /// The rules whose pattern matches `tag`, in config order (patterns compiled once).
    pub fn matching_rules(&self, tag: &str) -> Vec<&Rule> {
        match &self.set {
            Some((set, owners)) => {
                let mut hits: Vec<usize> =
                    set.matches(tag).into_iter().map(|i| owners[i]).collect();
                hits.dedup(); // a rule's two regexes are adjacent in the set
                hits.into_iter().map(|i| &self.rules[i]).collect()
            }
            None => self
                .rules
                .iter()
                .zip(&self.matchers)
                .filter(|(_, m)| m.matches(tag))
                .map(|(r, _)| r)
                .collect(),
        }
    }

    /// For `reactor.test verbose=True`: one line per rule saying whether and how it matched.
    pub fn explain(&self, tag: &str) -> Vec<String> {
        self.rules.iter().zip(&self.matchers).map(|(rule, m)| m.explain(tag, &rule.sls)).collect()
    }

    /// Renders every SLS of every matching rule (config order), each read fresh from disk,
    /// and compiles the result into reactions in Salt's execution order.
    pub fn react(&self, tag: &str, data: &Map<String, Value>) -> Reactions {
        let mut out = Reactions::default();
        let mut high = compile::High::default();
        for rule in self.matching_rules(tag) {
            for sls in &rule.sls {
                let files = match sources::resolve(sls, &self.file_roots) {
                    Ok(files) => files,
                    Err(why) => {
                        out.matched.push(sls.clone());
                        out.errors.push(error(sls, tag, "missing", None, why));
                        continue;
                    }
                };
                for file in files {
                    let name = file.to_string_lossy().into_owned();
                    out.matched.push(name.clone());
                    match self.file(&name, &file, tag, data) {
                        Ok(ids) => high.merge(ids),
                        Err(e) => out.errors.push(e),
                    }
                }
            }
        }
        let (reactions, refused) = high.into_reactions();
        out.reactions = reactions;
        out.errors.extend(refused.into_iter().map(|r| ReactorError {
            id: r.id.map(String::into_boxed_str),
            ..error(&r.sls, tag, "reaction", r.line, r.message)
        }));
        out
    }

    /// One file: read, render, parse, compile. Any failure is the whole file's.
    fn file(
        &self,
        name: &str,
        path: &std::path::Path,
        tag: &str,
        data: &Map<String, Value>,
    ) -> Result<compile::FileIds, ReactorError> {
        let source =
            sources::read(path).map_err(|(kind, why)| error(name, tag, kind, None, why))?;
        let text = self
            .renderer
            .render(name, &source, tag, data)
            .map_err(|(line, why)| error(name, tag, "render", line, why))?;
        let doc = yaml::load(&text).map_err(|(line, why)| error(name, tag, "yaml", line, why))?;
        compile::compile_file(name, doc, &text)
            .map_err(|(line, why)| error(name, tag, "reaction", line, why))
    }
}

fn error(
    sls: &str,
    tag: &str,
    kind: &'static str,
    line: Option<usize>,
    message: String,
) -> ReactorError {
    ReactorError { sls: sls.to_string(), tag: tag.to_string(), kind, line, message, id: None }
}
