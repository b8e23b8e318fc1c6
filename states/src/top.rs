//! The top file (`salt://top.sls`): which SLS files a highstate applies to this minion.
//! `base: {target: [sls, ..., {match: type}]}`; the default matcher is compound (so a bare
//! word is a glob), others are `glob`, `pcre`, `list`, `grain`, `grain_pcre`, `compound`,
//! judged by `halite_common::target` on the minion id and grains.

use super::value::{py_str, truthy};
use super::Run;
use halite_common::target::Target;
use serde_json::Value;

/// Salt's comment when nothing in the top file is for this minion.
pub const NO_MATCHES: &str =
    "No Top file or master_tops data matches found. Please see master log for details.";

#[derive(Debug)]
pub(crate) enum TopError {
    /// The top file did not render.
    Render(String),
    /// Salt's `verify_tops` errors.
    Invalid(Vec<String>),
}

/// The SLS names assigned to this minion, in top file order (empty without a top file).
pub(crate) fn matches(run: &Run) -> Result<Vec<String>, TopError> {
    let text = match run.host.fs.read("top.sls") {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(why) => {
            log::info!("{}: no top file: {why}", run.host.id);
            return Ok(Vec::new());
        }
    };
    let (top, _) = run.renderer.sls("top", "top.sls", &text).map_err(TopError::Render)?;
    let errors = verify(&top);
    if !errors.is_empty() {
        return Err(TopError::Invalid(errors));
    }
    Ok(select(&top, &run.host.id, &run.host.grains))
}

/// Salt's `verify_tops`.
fn verify(top: &Value) -> Vec<String> {
    let top = match top {
        Value::Null => return Vec::new(),
        Value::Object(top) => top,
        _ => return vec!["Top data was not formed as a dict".into()],
    };
    let mut errors = Vec::new();
    for (env, matches) in top {
        if env == "include" {
            continue;
        }
        if env.is_empty() {
            errors.push("Empty saltenv statement in top file".into());
        }
        let Value::Object(matches) = matches else {
            errors.push(format!(
                "The top file matches for saltenv {env} are not formatted as a dict"
            ));
            continue;
        };
        for slsmods in matches.values() {
            let Value::Array(slsmods) = slsmods else {
                errors.push("Malformed topfile (state declarations not formed as a list)".into());
                continue;
            };
            for slsmod in slsmods {
                match slsmod {
                    Value::Object(option) => {
                        for val in option.values().filter(|v| !truthy(v)) {
                            errors.push(format!(
                                "Improperly formatted top file matcher in saltenv {}: {} file",
                                py_str(slsmod),
                                py_str(val)
                            ));
                        }
                    }
                    Value::String(s) if s.is_empty() => {
                        errors.push(format!("Environment {env} contains an empty sls index"))
                    }
                    _ => {}
                }
            }
        }
    }
    errors
}

/// Salt's `top_matches` for the `base` environment (the only one Halite serves).
fn select(top: &Value, id: &str, grains: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut mods: Vec<String> = Vec::new();
    let Some(top) = top.as_object() else { return mods };
    for (env, targets) in top {
        if env == "include" {
            continue;
        }
        if env != "base" {
            log::warn!("{id}: top file environment '{env}' ignored: Halite serves only 'base'");
            continue;
        }
        for (tgt, data) in targets.as_object().into_iter().flatten() {
            let items: Vec<&Value> = match data {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let matcher = items
                .iter()
                .rev()
                .find_map(|item| item.get("match").and_then(Value::as_str))
                .unwrap_or("compound");
            let target = match Target::parse(&Value::String(tgt.clone()), matcher) {
                Ok(target) => target,
                Err(why) => {
                    log::warn!("{id}: top file target '{tgt}' ({matcher}) ignored: {why}");
                    continue;
                }
            };
            if !target.matches(id, Some(grains)) {
                continue;
            }
            mods.extend(items.iter().filter_map(|item| item.as_str()).map(str::to_string));
        }
    }
    mods
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn top_targets_match_like_salt() {
        let grains = json!({"os": "Debian", "roles": ["web"]}).as_object().cloned().unwrap();
        let top = json!({"base": {
            "*": ["common"],
            "minion1": ["single"],
            "other*": ["not-me"],
            "os:Debian": [{"match": "grain"}, "debian"],
            "roles:db": [{"match": "grain"}, "db"],
            "^min.*1$": ["regex", {"match": "pcre"}],
            "a,minion1,b": [{"match": "list"}, "listed"],
            "G@roles:web and minion*": [{"match": "compound"}, "compound"],
            "x": [{"match": "nodegroup"}, "never"],
        }, "dev": {"*": ["elsewhere"]}});
        assert_eq!(
            select(&top, "minion1", &grains),
            ["common", "single", "debian", "regex", "listed", "compound"]
        );
        assert_eq!(verify(&top), Vec::<String>::new());
        assert_eq!(
            verify(&json!({"base": {"*": "x"}})),
            ["Malformed topfile (state declarations not formed as a list)"]
        );
    }
}
