//! From rendered YAML to ordered reactions: Salt's high data (ID → `client.fun: [args]`),
//! compiled to one chunk per client key, arguments converted per client (SALT-COMPAT §2.3),
//! runner/wheel calls checked against [`functions`], files merged by ID (later file wins) and
//! ordered by [`requisites`] and (`order`, client + name + fun).

use super::config::kind;
use super::functions;
use super::requisites::{self, Requisite};
use super::{Client, Reaction};
use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

/// One file's reactions, by ID in file order.
pub(super) type FileIds = Vec<(String, Vec<Pending>)>;

/// A reaction before ordering.
pub(super) struct Pending {
    pub(super) reaction: Reaction,
    pub(super) order: Order,
    /// The client prefix as written (`cmd` is not yet `local`): Salt's chunk `state`.
    pub(super) state: String,
    pub(super) requisites: Vec<Requisite>,
    /// Why it cannot run (the call does not fit the function). It is still ordered, as Salt
    /// orders it before failing it.
    problem: Option<String>,
}

impl Pending {
    /// Salt's tie-break: `state + name + fun`.
    pub(super) fn key(&self) -> String {
        format!("{}{}{}", self.state, self.reaction.name, self.reaction.fun)
    }
}

/// `order:` as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Order {
    Default,
    First,
    Last,
    Int(i64),
    Float(f64),
}

/// A reaction that will not run, and why.
pub(super) struct Refused {
    pub(super) sls: String,
    pub(super) line: Option<usize>,
    /// `None` when the whole file was dropped.
    pub(super) id: Option<String>,
    pub(super) message: String,
}

/// The merged reactions of all files of one event: Python's `dict.update` by ID.
#[derive(Default)]
pub(super) struct High {
    ids: FileIds,
}

impl High {
    pub(super) fn merge(&mut self, ids: FileIds) {
        for (id, chunks) in ids {
            match self.ids.iter_mut().find(|(known, _)| *known == id) {
                Some(slot) => slot.1 = chunks,
                None => self.ids.push((id, chunks)),
            }
        }
    }

    /// Salt's `compile_high_data` + `order_chunks` (see [`requisites`]): the reactions in
    /// execution order, and those that will not run.
    pub(super) fn into_reactions(self) -> (Vec<Reaction>, Vec<Refused>) {
        let chunks: Vec<Pending> = self.ids.into_iter().flat_map(|(_, chunks)| chunks).collect();
        let (chunks, failures) = requisites::order(chunks);
        let mut refused: Vec<Refused> = failures
            .into_iter()
            .map(|f| Refused { sls: f.sls, line: f.line, id: None, message: f.message })
            .collect();
        let mut reactions = Vec::new();
        for chunk in chunks {
            match chunk.problem {
                None => reactions.push(chunk.reaction),
                Some(message) => refused.push(Refused {
                    sls: chunk.reaction.sls,
                    line: chunk.reaction.line,
                    message: format!("ID '{}': {message}", chunk.reaction.id),
                    id: Some(chunk.reaction.id),
                }),
            }
        }
        (reactions, refused)
    }
}

/// Compiles one file's document (`text` is what it was parsed from, for line numbers). Empty
/// (nothing rendered) is no reactions. `Err` carries the line of the ID at fault.
pub(super) fn compile_file(
    sls: &str,
    doc: Yaml,
    text: &str,
) -> Result<FileIds, (Option<usize>, String)> {
    let map = match doc {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Mapping(map) => map,
        other => return Err((None, format!("expected a map of IDs, got {}", kind(&other)))),
    };
    let mut ids = Vec::new();
    for (key, body) in map {
        let Yaml::String(id) = key else {
            return Err((None, format!("ID {} is not a string (quote it)", show(&key))));
        };
        if id.starts_with("__") {
            continue;
        }
        let line = decl_line(text, &id);
        let chunks =
            compile_id(sls, &id, body, line).map_err(|why| (line, format!("ID '{id}': {why}")))?;
        ids.push((id, chunks));
    }
    Ok(ids)
}

/// The 1-based line where `id:` is declared at the top level of the rendered text.
fn decl_line(text: &str, id: &str) -> Option<usize> {
    let forms = [format!("{id}:"), format!("'{id}':"), format!("\"{id}\":")];
    text.lines().position(|line| forms.iter().any(|f| line.starts_with(f.as_str()))).map(|i| i + 1)
}

fn compile_id(
    sls: &str,
    id: &str,
    body: Yaml,
    line: Option<usize>,
) -> Result<Vec<Pending>, String> {
    let entries = match body {
        Yaml::Mapping(map) => map.into_iter().collect::<Vec<_>>(),
        // Salt's short form `id: wheel.key.list_all`.
        Yaml::String(s) if s.contains('.') => vec![(Yaml::String(s), Yaml::Sequence(Vec::new()))],
        other => {
            return Err(format!(
                "expected a map of `client.module.function: [args]`, got {}",
                kind(&other)
            ))
        }
    };
    let mut chunks = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for (key, args) in entries {
        let Yaml::String(key) = key else {
            return Err(format!("{} is not a `client.module.function` key", show(&key)));
        };
        if key.starts_with("__") {
            continue;
        }
        let Some((prefix, fun)) = key.split_once('.') else {
            return Err(format!(
                "'{key}' names no function: write client.module.function, e.g. local.cmd.run"
            ));
        };
        let client = Client::from_prefix(prefix).ok_or_else(|| {
            format!("unknown client '{prefix}' in '{key}' (local, runner, wheel or caller)")
        })?;
        if fun.is_empty() || fun.contains(char::is_whitespace) {
            return Err(format!("'{key}': '{fun}' is not a function name"));
        }
        if prefixes.iter().any(|p| p == prefix) {
            return Err(format!("'{key}': a second {prefix} reaction under one ID (Salt silently runs only one); give it its own ID"));
        }
        prefixes.push(prefix.to_string());
        let merged = merge_args(args).map_err(|why| format!("'{key}': {why}"))?;
        chunks.push(
            chunk(sls, line, id, prefix, client, fun, merged)
                .map_err(|why| format!("'{key}': {why}"))?,
        );
    }
    Ok(chunks)
}

/// The `- key: value` items merged into one map (a later key wins, as in Salt).
fn merge_args(args: Yaml) -> Result<Map<String, Value>, String> {
    let items = match args {
        Yaml::Sequence(items) => items,
        other => {
            return Err(format!(
                "expected a list of `- key: value` arguments, got {}",
                kind(&other)
            ))
        }
    };
    let mut merged = Map::new();
    for item in items {
        match item {
            Yaml::Mapping(map) if map.len() == 1 => {
                let (key, value) = map.into_iter().next().expect("one entry");
                merged.insert(key_text(&key)?, to_json(&value)?);
            }
            Yaml::Mapping(map) => {
                return Err(format!(
                    "an argument has {} keys; write each as its own `- key: value`",
                    map.len()
                ))
            }
            Yaml::String(s) => {
                return Err(format!(
                    "bare argument '{s}' (state syntax naming the function) is not supported: \
                     name the function in the key, client.module.function"
                ))
            }
            other => {
                return Err(format!("an argument must be `- key: value`, got {}", kind(&other)))
            }
        }
    }
    Ok(merged)
}

/// One chunk: `name`, `order` and the requisites taken out, the rest converted for the client.
fn chunk(
    sls: &str,
    line: Option<usize>,
    id: &str,
    prefix: &str,
    client: Client,
    fun: &str,
    mut args: Map<String, Value>,
) -> Result<Pending, String> {
    // Salt's chunk `name`: the ID unless an item sets it; it orders and can be required,
    // but the reaction keeps its ID.
    let name = match args.shift_remove("name") {
        None => id.to_string(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    let order = match args.shift_remove("order") {
        Some(Value::Number(n)) => {
            n.as_i64().map_or_else(|| Order::Float(n.as_f64().unwrap_or(0.0)), Order::Int)
        }
        Some(Value::String(s)) if s == "first" => Order::First,
        Some(Value::String(s)) if s == "last" => Order::Last,
        _ => Order::Default,
    };
    args.shift_remove("state");
    args.retain(|k, _| !k.starts_with("__"));
    let mut warnings = Vec::new();
    let requisites = requisites::take(&mut args, &mut warnings)?;
    let mut reaction = Reaction {
        id: id.to_string(),
        name,
        sls: sls.to_string(),
        client,
        fun: fun.to_string(),
        tgt: None,
        tgt_type: "glob".into(),
        arg: Vec::new(),
        kwarg: Map::new(),
        ret: None,
        line,
        warnings,
    };
    let problem = match client {
        Client::Local | Client::Caller => {
            targeted(&mut reaction, args)?;
            None
        }
        Client::Runner | Client::Wheel => master_side(&mut reaction, args)?,
    };
    Ok(Pending { reaction, order, state: prefix.to_string(), requisites, problem })
}

/// local/caller: `tgt`, `tgt_type`, `ret`, and either `args` (keyword arguments of the target
/// function; `arg`/`kwarg` beside it are ignored, as Salt does) or `arg`/`kwarg`. A legacy
/// caller `args` that is a plain list is positional. Every other key is what Salt's
/// `cmd_async` takes and the master drops: ignored, with a warning.
fn targeted(r: &mut Reaction, args: Map<String, Value>) -> Result<(), String> {
    let local = r.client == Client::Local;
    let (mut tgt_type, mut new_form, mut arg, mut kwarg) = (None, None, None, None);
    for (key, value) in args {
        match key.as_str() {
            "tgt" if local => r.tgt = Some(target(value)?),
            "tgt_type" if local => tgt_type = Some(string(&key, value)?),
            "ret" if local => r.ret = Some(string(&key, value)?),
            "args" => new_form = Some(value),
            "arg" => arg = Some(value),
            "kwarg" => kwarg = Some(value),
            _ => {
                let why = if local { ignored_job_option(&key) } else { CALLER_IGNORES };
                r.warnings.push(format!("'{key}' is ignored: {why}"));
            }
        }
    }
    r.tgt_type = tgt_type.unwrap_or_else(|| "glob".into());
    if local && r.tgt.is_none() {
        return Err("a local reaction needs tgt".into());
    }
    if new_form.is_some() {
        ignored_beside_args(r, arg.is_some(), kwarg.is_some());
    }
    match new_form {
        Some(Value::Array(items)) if r.client == Client::Caller && !is_dictlist(&items) => {
            r.arg = items
        }
        Some(value) => r.kwarg = repack_dictlist(value)?,
        None => {
            r.arg = positional(arg);
            r.kwarg = kwarg_map(kwarg)?;
        }
    }
    Ok(())
}

const CALLER_IGNORES: &str = "a caller reaction passes only its arguments to the function";

/// Why Salt's `LocalClient.cmd_async` (or the master after it) drops `key`.
fn ignored_job_option(key: &str) -> &'static str {
    match key {
        "expr_form" => {
            "Salt renamed it tgt_type in 2017.7 and has ignored it since 2019.2, so the \
             target is matched as tgt_type says (glob unless given)"
        }
        "timeout" => "a reaction publishes its job and does not wait for returns",
        "batch" => "Salt's reactor publishes with cmd_async, which does not batch",
        "jid" => "the master allocates every job id",
        "metadata" => "Halite's jobs carry no metadata",
        _ => {
            "it is not an option of a local reaction (Salt passes it to the master, which drops \
             it); put the function's keyword arguments under args"
        }
    }
}

fn ignored_beside_args(r: &mut Reaction, arg: bool, kwarg: bool) {
    for (given, key) in [(arg, "arg"), (kwarg, "kwarg")] {
        if given {
            r.warnings.push(format!("'{key}' is ignored beside 'args', as Salt does"));
        }
    }
}

/// runner/wheel, checked against the function's signature (the `Ok(Some(_))` problem):
/// `args` → keyword arguments; `arg` with `kwarg` → passed as they are; otherwise Salt's
/// `format_call` binds every key by name (`wheel.key.accept: [{match: x}]` →
/// `accept('x', include_rejected=False, include_denied=False)`).
fn master_side(r: &mut Reaction, mut args: Map<String, Value>) -> Result<Option<String>, String> {
    // Salt's REACTOR_INTERNAL_KEYWORDS: never arguments of the function.
    for key in ["fun", "key"] {
        if args.shift_remove(key).is_some() {
            r.warnings.push(format!("'{key}' is ignored, as Salt does"));
        }
    }
    let signature = functions::lookup(r.client, &r.fun);
    if let Some(value) = args.shift_remove("args") {
        let (arg, kwarg) = (args.shift_remove("arg"), args.shift_remove("kwarg"));
        ignored_beside_args(r, arg.is_some(), kwarg.is_some());
        for key in args.keys() {
            r.warnings.push(format!("'{key}' is ignored beside 'args', as Salt does"));
        }
        r.kwarg = repack_dictlist(value)?;
        return Ok(signature.and_then(|s| s.check_call(&[], &r.kwarg)).err());
    }
    if args.contains_key("arg") && args.contains_key("kwarg") {
        r.arg = positional(args.shift_remove("arg"));
        r.kwarg = kwarg_map(args.shift_remove("kwarg"))?;
        for key in args.keys() {
            r.warnings.push(format!("'{key}' is ignored beside 'arg' and 'kwarg', as Salt does"));
        }
        return Ok(signature.and_then(|s| s.check_call(&r.arg, &r.kwarg)).err());
    }
    let lone = ["arg", "kwarg"].into_iter().find(|k| args.contains_key(*k));
    let signature = match signature {
        Ok(signature) => signature,
        Err(why) => {
            r.kwarg = args;
            return Ok(Some(why));
        }
    };
    match signature.format_call(args.clone()) {
        Ok((arg, kwarg)) => {
            (r.arg, r.kwarg) = (arg, kwarg);
            Ok(None)
        }
        Err(why) => {
            r.kwarg = args;
            Ok(Some(match lone {
                Some(key) => format!(
                    "{why} (Salt passes '{key}' through only beside the other of arg/kwarg; \
                     otherwise it binds every key by name)"
                ),
                None => why,
            }))
        }
    }
}

/// `kwarg`: a map (or nothing).
fn kwarg_map(value: Option<Value>) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(format!("kwarg must be a map, got {}", json_kind(&other))),
    }
}

/// Salt's `is_dictlist`: every item a one-key map.
fn is_dictlist(items: &[Value]) -> bool {
    items.iter().all(|v| v.as_object().is_some_and(|m| m.len() == 1))
}

/// Salt's `repack_dictlist` of `args:`: a list of one-key maps, and bare strings or numbers
/// (each a key whose value is nothing) → keyword arguments; a map is taken as it is.
fn repack_dictlist(value: Value) -> Result<Map<String, Value>, String> {
    const FORMAT: &str = "Incorrect argument format: `args` must be a list of `- key: value` items";
    match value {
        Value::Object(map) => Ok(map),
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                match item {
                    Value::Object(map) if map.len() == 1 => out.extend(map),
                    Value::String(key) => {
                        out.insert(key, Value::Null);
                    }
                    Value::Number(n) => {
                        out.insert(n.to_string(), Value::Null);
                    }
                    _ => return Err(FORMAT.into()),
                }
            }
            if out.is_empty() {
                return Err(FORMAT.into());
            }
            Ok(out)
        }
        _ => Err(FORMAT.into()),
    }
}

/// `arg`: a list, or one value as a one-item list.
fn positional(value: Option<Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(one) => vec![one],
    }
}

/// `tgt`: a non-empty string, or a list of strings (list targeting).
fn target(value: Value) -> Result<Value, String> {
    match &value {
        Value::String(s) if !s.is_empty() => Ok(value),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(value),
        other => Err(format!(
            "tgt must be a non-empty string or a list of strings, got {}",
            json_kind(other)
        )),
    }
}

fn string(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(format!("{key} must be a string, got {}", json_kind(&other))),
    }
}

fn to_json(value: &Yaml) -> Result<Value, String> {
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into(),
            (None, Some(u), _) => u.into(),
            (None, None, Some(f)) => {
                Number::from_f64(f).map(Value::Number).ok_or("a number must be finite")?
            }
            _ => return Err("unreadable number".into()),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((key_text(k)?, to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Yaml::Tagged(tagged) => return Err(format!("YAML tag {} is not supported", tagged.tag)),
    })
}

/// A map key as JSON needs it: scalars as their text.
fn key_text(key: &Yaml) -> Result<String, String> {
    match key {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Null => Ok("null".into()),
        other => Err(format!("a map key must be a scalar, got {}", kind(other))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn show(value: &Yaml) -> String {
    serde_yaml::to_string(value).map_or_else(|_| kind(value).to_string(), |s| s.trim().to_string())
}
