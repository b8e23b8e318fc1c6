//! The runner and wheel functions Halite has, with Salt 3008's Python signatures, and how a
//! reaction's arguments bind to them: Salt's `format_call` for the legacy form, Python's own
//! binding for `args:` and `arg`+`kwarg` (SALT-COMPAT §2.3). Shared by the master (which runs
//! them) and `reactor.test` (which shows the same errors).

use super::Client;
use serde_json::{Map, Value};

/// One function: its parameters in Python order, required first, then those with defaults
/// (default as JSON text). None of them takes `*args` or `**kwargs`.
pub struct Signature {
    pub client: Client,
    /// Without the client prefix: `key.accept`.
    pub fun: &'static str,
    /// Python's own name, for messages (`reactor.list` is `list_`).
    pub python: &'static str,
    pub required: &'static [&'static str],
    pub defaults: &'static [(&'static str, &'static str)],
}

const GATHER: [(&str, &str); 2] = [("timeout", "null"), ("gather_job_timeout", "null")];

/// `state.orchestrate` (and its alias `state.orch`) after `mods`.
const ORCHESTRATE: &[(&str, &str)] = &[
    ("saltenv", "\"base\""),
    ("test", "null"),
    ("exclude", "null"),
    ("pillar", "null"),
    ("pillarenv", "null"),
    ("pillar_enc", "null"),
    ("orchestration_jid", "null"),
];

/// Every runner and wheel function a reaction may call.
pub const FUNCTIONS: &[Signature] = &[
    runner("event.send", "send", &["tag"], &[("data", "null")]),
    runner(
        "jobs.list_jobs",
        "list_jobs",
        &[],
        &[
            ("ext_source", "null"),
            ("outputter", "null"),
            ("search_metadata", "null"),
            ("search_function", "null"),
            ("search_target", "null"),
            ("start_time", "null"),
            ("end_time", "null"),
            ("display_progress", "false"),
        ],
    ),
    runner(
        "jobs.lookup_jid",
        "lookup_jid",
        &["jid"],
        &[
            ("ext_source", "null"),
            ("returned", "true"),
            ("missing", "false"),
            ("display_progress", "false"),
        ],
    ),
    runner(
        "manage.down",
        "down",
        &[],
        &[
            ("removekeys", "false"),
            ("tgt", "\"*\""),
            ("tgt_type", "\"glob\""),
            GATHER[0],
            GATHER[1],
        ],
    ),
    runner(
        "manage.status",
        "status",
        &[],
        &[("output", "true"), ("tgt", "\"*\""), ("tgt_type", "\"glob\""), GATHER[0], GATHER[1]],
    ),
    runner(
        "manage.up",
        "up",
        &[],
        &[("tgt", "\"*\""), ("tgt_type", "\"glob\""), GATHER[0], GATHER[1]],
    ),
    runner("manage.versions", "versions", &[], &[]),
    runner("reactor.list", "list_", &[], &[("saltenv", "\"base\""), ("test", "null")]),
    runner("state.orch", "orch", &["mods"], ORCHESTRATE),
    runner("state.orchestrate", "orchestrate", &["mods"], ORCHESTRATE),
    // Halite's own runners.
    runner("event_return.status", "status", &[], &[]),
    runner("reactor.reload", "reload", &[], &[]),
    runner("reactor.stats", "stats", &[], &[]),
    wheel(
        "key.accept",
        "accept",
        &["match"],
        &[("include_rejected", "false"), ("include_denied", "false")],
    ),
    wheel("key.delete", "delete", &["match"], &[]),
    wheel(
        "key.reject",
        "reject",
        &["match"],
        &[("include_accepted", "false"), ("include_denied", "false")],
    ),
];

const fn runner(
    fun: &'static str,
    python: &'static str,
    required: &'static [&'static str],
    defaults: &'static [(&'static str, &'static str)],
) -> Signature {
    Signature { client: Client::Runner, fun, python, required, defaults }
}

const fn wheel(
    fun: &'static str,
    python: &'static str,
    required: &'static [&'static str],
    defaults: &'static [(&'static str, &'static str)],
) -> Signature {
    Signature { client: Client::Wheel, fun, python, required, defaults }
}

/// The signature of `client.fun`, or why there is none (with the list of what there is).
pub fn lookup(client: Client, fun: &str) -> Result<&'static Signature, String> {
    FUNCTIONS.iter().find(|s| s.client == client && s.fun == fun).ok_or_else(|| {
        let known: Vec<&str> =
            FUNCTIONS.iter().filter(|s| s.client == client).map(|s| s.fun).collect();
        format!(
            "{} function '{fun}' is not available; Halite has: {}",
            client.as_str(),
            known.join(", ")
        )
    })
}

impl Signature {
    /// `runner.jobs.lookup_jid(jid, ext_source=None, returned=True, ...)`.
    pub fn display(&self) -> String {
        let defaults =
            self.defaults.iter().map(|(name, value)| format!("{name}={}", python(value)));
        let params: Vec<String> =
            self.required.iter().map(|p| p.to_string()).chain(defaults).collect();
        format!("{}.{}({})", self.client.as_str(), self.fun, params.join(", "))
    }

    fn full(&self) -> String {
        format!("{}.{}", self.client.as_str(), self.fun)
    }

    fn default(&self, name: &str) -> Option<Value> {
        self.defaults
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| serde_json::from_str(text).expect("defaults are JSON"))
    }

    /// Salt's `format_call(fun, data)`: every required parameter taken from `data` (in
    /// order, positional), every parameter with a default filled in (from `data` when given),
    /// and any other key of `data` an error.
    pub fn format_call(
        &self,
        mut data: Map<String, Value>,
    ) -> Result<(Vec<Value>, Map<String, Value>), String> {
        let mut kwarg = Map::new();
        for (name, _) in self.defaults {
            let value = data.shift_remove(*name).or_else(|| self.default(name));
            kwarg.insert(name.to_string(), value.unwrap_or(Value::Null));
        }
        let mut arg = Vec::new();
        let mut missing = Vec::new();
        for name in self.required {
            match data.shift_remove(*name) {
                Some(value) => arg.push(value),
                None => missing.push(*name),
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "{} takes at least {} argument{} ({} given): missing {}; signature {}",
                self.python,
                self.required.len(),
                if self.required.len() > 1 { "s" } else { "" },
                arg.len(),
                quoted(&missing),
                self.display()
            ));
        }
        self.no_extra(data.keys().map(String::as_str).collect())?;
        Ok((arg, kwarg))
    }

    /// Python's binding of `fun(*arg, **kwarg)`: too many positional arguments, a keyword
    /// that names no parameter or one already given, or a required parameter left out.
    pub fn check_call(&self, arg: &[Value], kwarg: &Map<String, Value>) -> Result<(), String> {
        let params: Vec<&str> =
            self.required.iter().copied().chain(self.defaults.iter().map(|(n, _)| *n)).collect();
        if arg.len() > params.len() {
            return Err(format!(
                "{} takes {} positional argument{} but {} were given; signature {}",
                self.python,
                params.len(),
                if params.len() == 1 { "" } else { "s" },
                arg.len(),
                self.display()
            ));
        }
        self.no_extra(kwarg.keys().map(String::as_str).filter(|k| !params.contains(k)).collect())?;
        if let Some(twice) = params[..arg.len()].iter().find(|p| kwarg.contains_key(**p)) {
            return Err(format!(
                "{} got multiple values for argument '{twice}'; signature {}",
                self.python,
                self.display()
            ));
        }
        let missing: Vec<&str> = self.required[arg.len().min(self.required.len())..]
            .iter()
            .copied()
            .filter(|p| !kwarg.contains_key(*p))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} missing {} required argument{}: {}; signature {}",
                self.python,
                missing.len(),
                if missing.len() > 1 { "s" } else { "" },
                quoted(&missing),
                self.display()
            ));
        }
        Ok(())
    }

    /// Salt's wording for keys that name no parameter.
    fn no_extra(&self, extra: Vec<&str>) -> Result<(), String> {
        match extra.as_slice() {
            [] => Ok(()),
            [one] => Err(format!(
                "'{one}' is an invalid keyword argument for '{}'; signature {}",
                self.full(),
                self.display()
            )),
            [init @ .., last] => Err(format!(
                "{} and '{last}' are invalid keyword arguments for '{}'; signature {}",
                quoted(init),
                self.full(),
                self.display()
            )),
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

/// A JSON default as Python writes it.
fn python(json: &str) -> String {
    match json {
        "null" => "None".into(),
        "true" => "True".into(),
        "false" => "False".into(),
        s => s.replace('"', "'"),
    }
}
