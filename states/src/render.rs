//! Salt's renderers for SLS files (the default `jinja|yaml` pipeline, or plain `yaml`/`json`
//! by a `#!` first line) and for `template: jinja` files. Templates see Salt's context —
//! `grains`, `pillar`, `opts`, `salt` (the host's execution functions), `sls`, `saltenv`,
//! `slspath`, `tpldir` … — print values as Python would, and may `{% include %}` or
//! `{% import %}` other files from `salt://`. Errors are worded and located as Salt's
//! `SaltRenderError` (`…; line 3` followed by the lines around it).

use super::value::{from_yaml, non_string_key, py_repr};
use super::{pillar, Functions, Host};
use halite_common::reactor::jinja_guard;
use minijinja::value::{Object, ObjectRepr, Value as JValue, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use serde_json::{json, Map, Value};
use serde_yaml::Value as Yaml;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Instructions one render may execute: far beyond any real SLS, short of a runaway loop.
const FUEL: u64 = 50_000_000;
/// Salt's marker on the offending line of an error's context.
const MARKER: &str = "    <======================";

/// One run's template environment and the context every template sees.
pub struct Renderer {
    env: Environment<'static>,
    globals: Vec<(&'static str, JValue)>,
}

/// A rendered SLS document, and its top-level keys that were not strings (`(key, type)`).
pub type Rendered = (Value, Vec<(String, &'static str)>);

/// Which steps a file's `#!` line asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pipeline {
    JinjaYaml,
    Yaml,
}

impl Renderer {
    pub fn new(host: &Host, pillar: &Map<String, Value>, test: bool) -> Renderer {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_formatter(format_value);
        env.set_fuel(Some(FUEL));
        env.set_debug(false);
        env.add_filter("json", json_filter);
        env.add_filter("tojson", json_filter);
        env.add_filter("yaml_encode", json_filter);
        env.add_filter("yaml_dquote", yaml_dquote);
        // The reactor's guards: a namespace that holds itself, or a chain of thousands of unary
        // operators, overflowed the stack of whoever rendered (the master, for pillar).
        jinja_guard::install(&mut env);
        let fs = host.fs.clone();
        env.set_loader(move |name| match fs.read(name) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                match jinja_guard::template(&text) {
                    Ok(guarded) => Ok(Some(guarded.into_owned())),
                    Err((line, why)) => Err(Error::new(
                        ErrorKind::SyntaxError,
                        format!("{why}; line {line} of {name}"),
                    )),
                }
            }
            Err(why) => {
                log::debug!("template {name}: {why}");
                Ok(None)
            }
        });
        env.set_path_join_callback(join_path);
        let opts = json!({
            "id": host.id,
            "test": test,
            "saltenv": "base",
            "renderer": "jinja|yaml",
            "file_client": "remote",
            "state_top": "salt://top.sls",
        });
        let salt =
            SaltFunctions { functions: host.functions.clone(), pillar: Arc::new(pillar.clone()) };
        let globals = vec![
            ("grains", JValue::from_serialize(&host.grains)),
            ("pillar", JValue::from_serialize(pillar)),
            ("opts", JValue::from_serialize(&opts)),
            ("salt", JValue::from_object(salt)),
            ("saltenv", JValue::from("base")),
        ];
        Renderer { env, globals }
    }

    /// Renders SLS (or top) file `path`, named `sls`, to its data. Non-string top-level keys
    /// come back beside it as `(key, Python type)`. `Err` is Salt's message, without the
    /// "Rendering SLS … failed: " that the caller adds.
    pub fn sls(&self, sls: &str, path: &str, text: &str) -> Result<Rendered, String> {
        let rendered = match pipeline(text)? {
            Pipeline::JinjaYaml => Cow::Owned(self.jinja(path, text, sls_vars(sls, path))?),
            Pipeline::Yaml => Cow::Borrowed(text),
        };
        parse_yaml(&rendered)
    }

    /// Renders a `template: jinja` file with `extra` variables (the state's `defaults` and
    /// `context`, `name`, `source`).
    pub fn template(
        &self,
        path: &str,
        text: &str,
        extra: &Map<String, Value>,
    ) -> Result<String, String> {
        let mut vars = sls_vars("", path);
        vars.extend(extra.iter().map(|(k, v)| (k.clone(), JValue::from_serialize(v))));
        self.jinja(path, text, vars)
    }

    fn jinja(&self, path: &str, text: &str, vars: Vec<(String, JValue)>) -> Result<String, String> {
        let ctx: JValue =
            self.globals.iter().map(|(k, v)| (k.to_string(), v.clone())).chain(vars).collect();
        let guarded = jinja_guard::template(text)
            .map_err(|(line, why)| located(&format!("Jinja syntax error: {why}"), line, text))?;
        self.env.render_named_str(path, &guarded, ctx).map_err(|e| jinja_error(&e, path, text))
    }
}

/// A `template: jinja` file outside a state run (`cp.get_file template=jinja`).
pub fn render_file(host: &Host, path: &str, text: &str) -> Result<String, String> {
    Renderer::new(host, &Map::new(), false).template(path, text, &Map::new())
}

/// The variables Salt sets for the file being rendered.
fn sls_vars(sls: &str, path: &str) -> Vec<(String, JValue)> {
    let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let vars = [
        ("sls", sls.to_string()),
        ("tplfile", path.to_string()),
        ("tpldir", if dir.is_empty() { ".".into() } else { dir.to_string() }),
        ("tpldot", dir.replace('/', ".")),
        ("slspath", dir.to_string()),
        ("sls_path", dir.replace('/', "_")),
        ("slsdotpath", dir.replace('/', ".")),
        ("slscolonpath", dir.replace('/', ":")),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), JValue::from(v))).collect()
}

/// Salt reads a `#!` first line as the renderer pipeline; Halite has `jinja|yaml` (the
/// default) and plain `yaml` (JSON being YAML).
fn pipeline(text: &str) -> Result<Pipeline, String> {
    let Some(spec) = text.lines().next().and_then(|l| l.strip_prefix("#!")) else {
        return Ok(Pipeline::JinjaYaml);
    };
    let parts: Vec<String> = spec.split('|').map(|p| p.trim().to_ascii_lowercase()).collect();
    match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["jinja", "yaml" | "json"] => Ok(Pipeline::JinjaYaml),
        ["yaml" | "json"] => Ok(Pipeline::Yaml),
        _ => Err(format!(
            "The renderer pipeline '{}' is not supported by Halite (use jinja|yaml or yaml)",
            spec.trim()
        )),
    }
}

/// Parses rendered text; a document that is not a map passes through (the caller words it).
fn parse_yaml(text: &str) -> Result<Rendered, String> {
    let yaml: Yaml = serde_yaml::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
        match e.location() {
            Some(at) => located(message, at.line(), text),
            None => message.to_string(),
        }
    })?;
    let odd_keys = match &yaml {
        Yaml::Mapping(map) => map
            .keys()
            .filter_map(|k| non_string_key(k).map(|ty| (super::value::key_text(k), ty)))
            .collect(),
        _ => Vec::new(),
    };
    Ok((from_yaml(yaml), odd_keys))
}

/// Salt's wording of Jinja's exceptions.
fn jinja_error(e: &Error, path: &str, text: &str) -> String {
    let detail = e.detail().map(str::to_string);
    let message = match e.kind() {
        ErrorKind::SyntaxError => {
            format!("Jinja syntax error: {}", detail.as_deref().unwrap_or("invalid syntax"))
        }
        ErrorKind::UndefinedError => match detail {
            Some(d) => format!("Jinja variable {d}"),
            None => "Jinja variable is undefined".to_string(),
        },
        ErrorKind::OutOfFuel => {
            format!("Jinja error: the template ran more than {FUEL} instructions")
        }
        kind => match detail {
            Some(d) => format!("Jinja error: {kind}: {d}"),
            None => format!("Jinja error: {kind}"),
        },
    };
    match (e.line(), e.name()) {
        (Some(line), None) if line > 0 => located(&message, line, text),
        (Some(line), Some(name)) if line > 0 && name == path => located(&message, line, text),
        // The error is in an included or imported file.
        (Some(line), Some(name)) if line > 0 => format!("{message}; line {line} of {name}"),
        _ => message,
    }
}

/// `message; line N` and Salt's context: up to five lines either side, the bad one marked.
fn located(message: &str, line: usize, text: &str) -> String {
    format!("{message}; line {line}\n\n{}", context(text, line))
}

/// `salt.utils.stringutils.get_context`.
pub fn context(text: &str, line: usize) -> String {
    const AROUND: usize = 5;
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line > lines.len() {
        return text.to_string();
    }
    let start = line.saturating_sub(AROUND + 1);
    let end = lines.len().min(line + AROUND);
    let mut at = line - start - 1;
    let mut buf: Vec<String> = Vec::new();
    if start > 0 {
        buf.push("[...]".into());
        at += 1;
    }
    buf.extend(lines[start..end].iter().map(|l| l.to_string()));
    if end < lines.len() {
        buf.push("[...]".into());
    }
    buf[at].push_str(MARKER);
    format!("---\n{}\n---", buf.join("\n"))
}

/// `./x` and `../x` are relative to the including file; other names to the root.
fn join_path<'s>(name: &'s str, parent: &'s str) -> Cow<'s, str> {
    if !(name.starts_with("./") || name.starts_with("../")) {
        return Cow::Borrowed(name);
    }
    let mut parts: Vec<&str> = parent.split('/').collect();
    parts.pop();
    for segment in name.split('/') {
        match segment {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Cow::Owned(parts.join("/"))
}

/// Prints values as Python's `str()` would (`True`, `None`, `['a', 1]`).
fn format_value(out: &mut Output, state: &State, value: &JValue) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::None => "None".to_string(),
        ValueKind::Bool if value.is_true() => "True".to_string(),
        ValueKind::Bool => "False".to_string(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable if !value.is_safe() => {
            py_repr(&to_json(value)?)
        }
        _ => return minijinja::escape_formatter(out, state, value),
    };
    out.write_str(&text).map_err(Error::from)
}

/// The reactor's: refused past its depth, or past what an output could hold.
fn to_json(value: &JValue) -> Result<Value, Error> {
    halite_common::reactor::jinja_guard::to_json(value)
}

/// Salt's `json`/`tojson`/`yaml_encode`: the value as JSON on one line (valid YAML too).
fn json_filter(value: &JValue) -> Result<JValue, Error> {
    Ok(JValue::from_safe_string(to_json(value)?.to_string()))
}

/// Salt's `yaml_dquote`: the text as a double-quoted scalar.
fn yaml_dquote(value: &JValue) -> JValue {
    let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
    JValue::from_safe_string(Value::String(text).to_string())
}

/// Salt's `salt` dunder in templates: `salt['cmd.run']('ls')` or `salt.cmd.run('ls')` calls
/// the host's execution function of that name; `pillar.get` reads the run's pillar.
struct SaltFunctions {
    functions: Arc<dyn Functions>,
    pillar: Arc<Map<String, Value>>,
}

impl fmt::Debug for SaltFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<salt functions>")
    }
}

impl Object for SaltFunctions {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?.to_string();
        Some(JValue::from_object(SaltFunction {
            name,
            functions: self.functions.clone(),
            pillar: self.pillar.clone(),
        }))
    }
}

/// `salt['mod.fun']` (callable), or `salt.mod` (whose attributes are functions).
struct SaltFunction {
    name: String,
    functions: Arc<dyn Functions>,
    pillar: Arc<Map<String, Value>>,
}

impl fmt::Debug for SaltFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<salt function {}>", self.name)
    }
}

impl Object for SaltFunction {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let fun = key.as_str()?;
        let name = format!("{}.{fun}", self.name);
        Some(JValue::from_object(SaltFunction {
            name,
            functions: self.functions.clone(),
            pillar: self.pillar.clone(),
        }))
    }

    fn call(self: &Arc<Self>, _state: &State<'_, '_>, args: &[JValue]) -> Result<JValue, Error> {
        if self.name.starts_with("state.") {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{} cannot be called while rendering a state", self.name),
            ));
        }
        let mut arg = Vec::with_capacity(args.len());
        for value in args {
            let mut json = to_json(value)?;
            if value.is_kwargs() {
                if let Value::Object(map) = &mut json {
                    map.insert("__kwarg__".into(), Value::Bool(true));
                }
            }
            arg.push(json);
        }
        if self.name == "pillar.get" {
            return Ok(JValue::from_serialize(pillar::get(&self.pillar, &arg)));
        }
        match self.functions.call(&self.name, &arg) {
            Ok(called) => Ok(JValue::from_serialize(&called.value)),
            Err(message) => Err(Error::new(ErrorKind::InvalidOperation, message)),
        }
    }
}
