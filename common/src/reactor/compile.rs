//! From rendered YAML to ordered reactions: Salt's high data (ID → `client.fun: [args]`),
//! compiled to one chunk per client key, arguments converted per client (SALT-COMPAT §2.3),
//! files merged by ID (later file wins) and sorted by (`order`, client + name + fun).

use super::config::kind;
use super::{Client, Reaction};
use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

/// One file's reactions, by ID in file order.
pub(super) type FileIds = Vec<(String, Vec<Pending>)>;

/// A reaction before ordering.
pub(super) struct Pending {
    reaction: Reaction,
    order: Order,
    /// Salt's tie-break: the client prefix as written (`cmd` sorts before `local`), name, fun.
    key: String,
}

/// `order:` as written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    Default,
    First,
    Last,
    Int(i64),
    Float(f64),
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

    /// Salt's `order_chunks`: default order 1, or the largest positive explicit order + 100;
    /// `first` 0; `last` and negative orders after everything; ties by client + name + fun.
    pub(super) fn into_reactions(self) -> Vec<Reaction> {
        let mut chunks: Vec<Pending> =
            self.ids.into_iter().flat_map(|(_, chunks)| chunks).collect();
        let cap = chunks
            .iter()
            .filter_map(|c| match c.order {
                Order::Int(n) if n > 0 => Some(n),
                _ => None,
            })
            .max()
            .map_or(1.0, |n| n as f64 + 100.0);
        let rank = |order: Order| match order {
            Order::Default => cap,
            Order::First => 0.0,
            Order::Last => cap + 1_000_000.0,
            Order::Int(n) if n < 0 => cap + 1_000_000.0 + n as f64,
            Order::Int(n) => n as f64,
            Order::Float(f) if f < 0.0 => cap + 1_000_000.0 + f,
            Order::Float(f) => f,
        };
        chunks.sort_by(|a, b| {
            rank(a.order).total_cmp(&rank(b.order)).then_with(|| a.key.cmp(&b.key))
        });
        chunks.into_iter().map(|c| c.reaction).collect()
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

/// One chunk: `name`/`order` taken out, the rest converted for the client.
fn chunk(
    sls: &str,
    line: Option<usize>,
    id: &str,
    prefix: &str,
    client: Client,
    fun: &str,
    mut args: Map<String, Value>,
) -> Result<Pending, String> {
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
    let mut reaction = Reaction {
        id: name,
        sls: sls.to_string(),
        client,
        fun: fun.to_string(),
        tgt: None,
        tgt_type: "glob".into(),
        arg: Vec::new(),
        kwarg: Map::new(),
        ret: None,
        line,
    };
    match client {
        Client::Local | Client::Caller => targeted(&mut reaction, args)?,
        Client::Runner | Client::Wheel => master_side(&mut reaction, args)?,
    }
    let key = format!("{prefix}{}{fun}", reaction.id);
    Ok(Pending { reaction, order, key })
}

/// local/caller: `tgt`, `tgt_type` (`expr_form`), `ret`, and either `args` (keyword arguments
/// of the target function; `arg`/`kwarg` beside it are ignored, as Salt does) or `arg`/`kwarg`.
/// A legacy caller `args` that is a plain list is positional.
fn targeted(r: &mut Reaction, args: Map<String, Value>) -> Result<(), String> {
    let (mut tgt_type, mut expr_form, mut new_form, mut arg, mut kwarg) =
        (None, None, None, None, None);
    for (key, value) in args {
        match key.as_str() {
            "tgt" => r.tgt = Some(target(value)?),
            "tgt_type" => tgt_type = Some(string(&key, value)?),
            "expr_form" => expr_form = Some(string(&key, value)?),
            "ret" => r.ret = Some(string(&key, value)?),
            // Accepted and ignored by Salt's cmd_async too.
            "timeout" => {}
            "args" => new_form = Some(value),
            "arg" => arg = Some(value),
            "kwarg" => kwarg = Some(value),
            _ => {
                return Err(format!(
                "unknown argument '{key}' for a {} reaction (tgt, tgt_type, arg, kwarg, args, ret)",
                r.client.as_str()
            ))
            }
        }
    }
    r.tgt_type = tgt_type.or(expr_form).unwrap_or_else(|| "glob".into());
    if r.client == Client::Local && r.tgt.is_none() {
        return Err("a local reaction needs tgt".into());
    }
    if new_form.is_some() && (arg.is_some() || kwarg.is_some()) {
        log::warn!(
            "reaction {} ({}): 'arg'/'kwarg' beside 'args' are ignored, as Salt does",
            r.id,
            r.sls
        );
    }
    match new_form {
        Some(Value::Array(items))
            if r.client == Client::Caller && !items.iter().all(Value::is_object) =>
        {
            r.arg = items
        }
        Some(value) => r.kwarg = keywords(value)?,
        None => {
            r.arg = positional(arg);
            r.kwarg = match kwarg {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(map)) => map,
                Some(other) => {
                    return Err(format!("kwarg must be a map, got {}", json_kind(&other)))
                }
            };
        }
    }
    Ok(())
}

/// runner/wheel: `args` → keyword arguments; legacy: `arg` positional, `kwarg` and every other
/// key keyword (`wheel.key.accept: [{match: x}]` → `match=x`).
fn master_side(r: &mut Reaction, mut args: Map<String, Value>) -> Result<(), String> {
    args.shift_remove("fun");
    if let Some(value) = args.shift_remove("args") {
        r.kwarg = keywords(value)?;
        return Ok(());
    }
    for (key, value) in args {
        match key.as_str() {
            "arg" => r.arg = positional(Some(value)),
            "kwarg" => match value {
                Value::Object(map) => r.kwarg.extend(map),
                Value::Null => {}
                other => return Err(format!("kwarg must be a map, got {}", json_kind(&other))),
            },
            _ => {
                r.kwarg.insert(key, value);
            }
        }
    }
    Ok(())
}

/// Salt's `args:` form: a list of single-key maps (or a map) → keyword arguments.
fn keywords(value: Value) -> Result<Map<String, Value>, String> {
    const FORMAT: &str = "Incorrect argument format: `args` must be a list of `- key: value` items";
    match value {
        Value::Object(map) => Ok(map),
        Value::Array(items) if !items.is_empty() => {
            let mut out = Map::new();
            for item in items {
                match item {
                    Value::Object(map) if map.len() == 1 => out.extend(map),
                    _ => return Err(FORMAT.into()),
                }
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
