//! The Jinja step: a minijinja environment set up as Salt's (`StrictUndefined`, `do`, mutable
//! lists and dicts, the trailing newline kept, no `trim_blocks`/`lstrip_blocks`) with Python
//! string/dict methods, Salt's serializer filters, a formatter that leaves each `{{ }}` value as
//! a reference for the splice pass (see the module doc of `reactor`), and bounds on work,
//! recursion and output size.

use super::splice::{self, Slot};
use super::{emit, mutable, rewrite};
use crate::pyrepr;
use minijinja::value::{Kwargs, Object, Value, ValueKind};
use minijinja::{
    context, AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior,
};
use serde_json::Map;
use std::sync::Mutex;

/// Instructions one render may execute: plenty for a reactor file, a fraction of a second.
pub(super) const FUEL: u64 = 2_000_000;
/// Rendered text (and any single `{{ }}` value) larger than this is an error.
pub(super) const MAX_OUTPUT: usize = 1 << 20;
const RECURSION_LIMIT: usize = 100;

/// The shared environment; templates are compiled per render and never stored in it.
pub(super) struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    pub(super) fn new() -> Renderer {
        let mut env = Environment::new();
        // pycompat's Python methods, `str.format`'s widths bounded.
        env.set_unknown_method_callback(super::widths::unknown_method);
        env.add_filter("format", super::widths::format_filter);
        env.add_filter("indent", super::widths::indent_filter);
        // Salt renders with `StrictUndefined`: printing, testing or iterating an undefined value
        // (`data['missing']`, a misspelt variable) fails the render instead of yielding "".
        // `is defined`, `|default`, `.get()` and `in` still work.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Jinja2 drops a template's final newline and Salt appends it again: the same as
        // keeping it (a `contents: |` block on the last line ends in "\n" as under Salt).
        env.set_keep_trailing_newline(true);
        env.add_filter(mutable::FILTER, mutable::mutable_filter);
        env.add_filter(mutable::NAMESPACE_FILTER, mutable::namespace_filter);
        env.add_filter("list", mutable::list_filter);
        env.add_function("dict", mutable::dict_function);
        // A custom escape mode makes macros and `{% set %}` blocks return safe text (their own
        // `{{ }}` are already formatted) and `|e` escape through our formatter.
        env.set_auto_escape_callback(|_| AutoEscape::Custom("yaml"));
        env.set_formatter(format_value);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_debug(false);
        env.add_filter("json", json_filter);
        env.add_filter("tojson", tojson_filter);
        env.add_filter("yaml", yaml_filter);
        env.add_filter("yaml_encode", yaml_filter);
        env.add_filter("yaml_dquote", yaml_dquote);
        env.add_filter("yaml_squote", yaml_squote);
        Renderer { env }
    }

    /// Renders `source` (an SLS file named `name`) with `tag` and `data` in its context.
    /// `Err` carries the SLS line when known.
    pub(super) fn render(
        &self,
        name: &str,
        source: &str,
        tag: &str,
        data: &Map<String, serde_json::Value>,
    ) -> Result<String, (Option<usize>, String)> {
        if !jinja_first(source).map_err(|why| (Some(1), why))? {
            return Ok(source.to_string());
        }
        let ctx = context! { data => Value::from_serialize(data), tag => tag };
        let source = rewrite::rewrite(source, true).map_err(|(line, why)| (Some(line), why))?;
        let rendered = self
            .env
            .template_from_named_str(name, &source)
            .and_then(|template| template.render_captured(ctx))
            .map_err(|e| {
                let mut message = e.to_string();
                if e.kind() == ErrorKind::OutOfFuel {
                    message.push_str(&format!(" (a render may run {FUEL} instructions)"));
                }
                (e.line(), message)
            })?;
        let text = rendered.output();
        if text.len() > MAX_OUTPUT {
            return Err((None, format!("rendered text is larger than {MAX_OUTPUT} bytes")));
        }
        let slots = rendered
            .state()
            .get_temp(SLOTS)
            .and_then(|v| v.downcast_object::<Slots>())
            .map(|slots| std::mem::take(&mut *slots.lock()).slots)
            .unwrap_or_default();
        splice::splice(text, &slots, MAX_OUTPUT).map_err(|e| (Some(e.line), e.message))
    }
}

/// Salt's `#!` first line picks the renderer pipeline; we have `jinja|yaml` (the default) and
/// plain `yaml` (JSON being YAML). Returns whether to run Jinja.
fn jinja_first(source: &str) -> Result<bool, String> {
    let Some(spec) = source.lines().next().and_then(|l| l.strip_prefix("#!")) else {
        return Ok(true);
    };
    let parts: Vec<String> = spec.split('|').map(|p| p.trim().to_ascii_lowercase()).collect();
    match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["jinja", "yaml" | "json"] => Ok(true),
        ["yaml" | "json"] => Ok(false),
        _ => Err(format!(
            "renderer pipeline '{}' is not supported (use jinja|yaml or yaml)",
            spec.trim()
        )),
    }
}

/// The `{{ }}` values of one render, in the order printed (a render's temp object).
#[derive(Debug, Default)]
struct Slots(Mutex<SlotList>);

#[derive(Debug, Default)]
struct SlotList {
    slots: Vec<Slot>,
    bytes: usize,
}

impl Object for Slots {}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotList> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

const SLOTS: &str = "halite.reactor.slots";

/// Records a value for the splice pass and returns its reference. The values of one render
/// may hold [`MAX_OUTPUT`] bytes in all, as the text they end up in.
fn place(state: &State, slot: Slot) -> Result<String, Error> {
    let slots = state.get_or_set_temp_object(SLOTS, Slots::default);
    let mut list = slots.lock();
    list.bytes += slot.node.len().max(slot.text.len());
    if list.bytes > MAX_OUTPUT {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("values larger than {MAX_OUTPUT} bytes"),
        ));
    }
    list.slots.push(slot);
    Ok(splice::reference(list.slots.len() - 1))
}

/// The same text as a whole node and inside a string (serializer filters' output).
fn placed_text(state: &State, text: String) -> Result<Value, Error> {
    Ok(Value::from_safe_string(place(state, Slot { node: text.clone(), text })?))
}

/// Every `{{ }}` is a reference that the splice pass replaces with the value encoded for
/// where it sits; safe text (macros, blocks, filters that placed their own value) as it is.
fn format_value(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return out.write_str(value.as_str().unwrap_or_default()).map_err(Error::from);
    }
    let slot = match value.kind() {
        ValueKind::Undefined => return Ok(()),
        ValueKind::None => Slot { node: "null".into(), text: "None".into() },
        // Jinja's spelling (so `echo {{ flag }}` reads as in Salt); YAML takes it as a bool.
        ValueKind::Bool => {
            let text = if value.is_true() { "True" } else { "False" };
            Slot { node: text.into(), text: text.into() }
        }
        ValueKind::Number => {
            let (node, text) = match value.to_string().as_str() {
                "NaN" => (".nan".to_string(), "nan".to_string()),
                "inf" => (".inf".to_string(), "inf".to_string()),
                "-inf" => ("-.inf".to_string(), "-inf".to_string()),
                other => (other.to_string(), other.to_string()),
            };
            Slot { node, text }
        }
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            Slot { node: emit::scalar(text), text: text.to_string() }
        }
        ValueKind::Bytes => {
            let text = String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned();
            Slot { node: emit::quoted(&text), text }
        }
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let json = to_json(value)?;
            Slot { node: emit::json(&json, false), text: pyrepr::python_str(&json) }
        }
        _ => {
            let text = value.to_string();
            Slot { node: emit::quoted(&text), text }
        }
    };
    if slot.node.len().max(slot.text.len()) > MAX_OUTPUT {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("value larger than {MAX_OUTPUT} bytes"),
        ));
    }
    out.write_str(&place(state, slot)?).map_err(Error::from)
}

/// How deep a value may nest when it is written out: far more than any real data, and a value
/// that contains itself (`{% set ns.n = [ns] %}`) stops here instead of overflowing the stack.
const MAX_DEPTH: usize = mutable::MAX_NESTING;

/// Elements a value written out may have: each takes at least two bytes of JSON, so more
/// could never fit in [`MAX_OUTPUT`]. (`[1] * 3000000000` is three billion, made lazily.)
const MAX_ITEMS: usize = MAX_OUTPUT / 2;

pub(super) fn to_json(value: &Value) -> Result<serde_json::Value, Error> {
    check_size(value, MAX_DEPTH, &mut MAX_ITEMS.clone())?;
    serde_json::to_value(value).map_err(|e| {
        Error::new(ErrorKind::BadSerialization, "cannot convert the value to JSON").with_source(e)
    })
}

/// Fails when `value` nests deeper than `left` levels (or contains itself), or holds more
/// than `items` elements in all.
fn check_size(value: &Value, left: usize, items: &mut usize) -> Result<(), Error> {
    if !matches!(value.kind(), ValueKind::Seq | ValueKind::Map | ValueKind::Iterable) {
        return Ok(());
    }
    let Some(left) = left.checked_sub(1) else {
        let why = format!("the value nests deeper than {MAX_DEPTH} levels (or contains itself)");
        return Err(Error::new(ErrorKind::InvalidOperation, why));
    };
    let is_map = value.kind() == ValueKind::Map;
    for item in value.try_iter()? {
        let Some(more) = items.checked_sub(1) else {
            let why = format!("the value has more than {MAX_ITEMS} elements");
            return Err(Error::new(ErrorKind::InvalidOperation, why));
        };
        *items = more;
        check_size(&item, left, items)?;
        if is_map {
            check_size(&value.get_item(&item)?, left, items)?;
        }
    }
    Ok(())
}

/// Salt's `json`: `json.dumps(value, sort_keys=True)` on one line. `indent` is accepted and
/// ignored: a multi-line value would break the YAML around it.
fn json_filter(state: &State, value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    defined(value)?;
    let sort: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    placed_text(state, emit::json(&to_json(value)?, sort.unwrap_or(true)))
}

/// Jinja's `tojson` (keys sorted), on one line like `json`.
fn tojson_filter(
    state: &State,
    value: &Value,
    _indent: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    defined(value)?;
    let _: Option<Value> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    placed_text(state, emit::json(&to_json(value)?, true))
}

/// Salt's `yaml`/`yaml_encode`: YAML flow style, always on one line (`flow_style` is accepted,
/// block style is not offered).
fn yaml_filter(state: &State, value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    defined(value)?;
    let _: Option<bool> = kwargs.get("flow_style")?;
    kwargs.assert_all_used()?;
    placed_text(state, emit::yaml_flow(&to_json(value)?))
}

/// Salt's serializers fail on `StrictUndefined` (it is not JSON, `str()` of it raises); these
/// filters take `&Value`, which minijinja lets through undefined, so they check themselves.
fn defined(value: &Value) -> Result<(), Error> {
    match value.is_undefined() {
        true => Err(Error::from(ErrorKind::UndefinedError)),
        false => Ok(()),
    }
}

/// Python's `str()` of a value: lists and maps through [`to_json`], which stops at what an
/// output could hold (minijinja's own text of `[1] * 3000000000` walked it for minutes).
fn text_of(value: &Value) -> Result<String, Error> {
    Ok(match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            pyrepr::python_str(&to_json(value)?)
        }
        _ => value.to_string(),
    })
}

/// Salt's `yaml_dquote`: the text as a double-quoted YAML string.
fn yaml_dquote(state: &State, value: &Value) -> Result<Value, Error> {
    defined(value)?;
    placed_text(state, emit::quoted(&text_of(value)?))
}

/// Salt's `yaml_squote`: single-quoted, or double-quoted when the text has characters a
/// single-quoted scalar cannot carry (line breaks, control characters).
fn yaml_squote(state: &State, value: &Value) -> Result<Value, Error> {
    defined(value)?;
    let text = text_of(value)?;
    if text.chars().any(emit::needs_escape) {
        return placed_text(state, emit::quoted(&text));
    }
    placed_text(state, format!("'{}'", text.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(source: &str, data: serde_json::Value, expected: Result<&str, &str>) {
        let serde_json::Value::Object(data) = data else { panic!("data must be a map") };
        let got = Renderer::new().render("t.sls", source, "my/tag", &data);
        match (got, expected) {
            (Ok(text), Ok(want)) => assert_eq!(text, want, "{source}"),
            (Err((_, message)), Err(want)) => {
                assert!(message.contains(want), "{source}: {message}")
            }
            (got, want) => panic!("{source}: got {got:?}, want {want:?}"),
        }
    }

    /// Values nested deeper than [`MAX_DEPTH`] are an error when written out (a namespace can no
    /// longer hold itself, see `mutable`, but a value may still be built very deep).
    #[test]
    fn values_nested_too_deep_are_an_error_not_a_stack_overflow() {
        let d = json!({});
        let deep = "{% set l = namespace(v=1) %}{% for i in range(200) %}{% set l.v = [l.v] %}{% endfor %}";
        check(&format!("{deep}x: {{{{ l.v }}}}\n"), d.clone(), Err("nested deeper than 128"));
        let deep = "{% set l = namespace(v=1) %}{% for i in range(120) %}{% set l.v = [l.v] %}{% endfor %}";
        let v = "[[[[[[[[[[l.v]]]]]]]]]]";
        for out in ["x: {{ V }}", "x: {{ V|json }}", "x: {{ V|tojson }}", "x: {{ V|yaml }}"] {
            let out = out.replace('V', v);
            check(&format!("{deep}{out}\n"), d.clone(), Err("nests deeper than 128"));
        }
        let fine = "{% set l = namespace(v=1) %}{% for i in range(100) %}{% set l.v = [l.v] %}{% endfor %}";
        let text =
            Renderer::new().render("t.sls", &format!("{fine}x: {{{{ l.v }}}}\n"), "t", &Map::new());
        assert!(text.is_ok_and(|t| t.contains("[[[[1]]]]")), "100 levels still render");
    }

    #[test]
    fn salt_habits() {
        let d = json!({"id": "Minion2", "act": "pend", "n": 3, "ok": true, "none": null, "l": [1, "a b"], "m": {"k": "v"}});
        check("{{ tag }}", d.clone(), Ok("my/tag"));
        // Text around a value makes the whole plain scalar one string (see `splice`).
        check("{{ data['id'] }} {{ data.id }}", d.clone(), Ok("\"Minion2 Minion2\""));
        check("{{ data['id'].startswith('Min') }}", d.clone(), Ok("True"));
        check(
            "{% if 'act' in data and data['act'] == 'pend' %}yes{% endif %}",
            d.clone(),
            Ok("yes"),
        );
        check(
            "{{ data.get('x', 'dflt') }}|{{ data.get('id') }}",
            d.clone(),
            Ok("\"dflt|Minion2\""),
        );
        check("{% if data['missing'] %}x{% endif %}", d.clone(), Err("undefined value"));
        check("{{ data['missing']|default('d') }}", d.clone(), Ok("d"));
        check("{% for k in data['l'] %}{{ k }};{% endfor %}", d.clone(), Ok("\"1;a b;\""));
        check(
            "{% for i in range(5) %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}",
            d.clone(),
            Ok("\"01\""),
        );
        check(
            "{{ data['n'] }} {{ data['n'] / 2 }} {{ data['ok'] }} {{ data['none'] }}",
            d.clone(),
            Ok("\"3 1.5 True None\""),
        );
        check("[{{ data['l'] }}, {{ data['m'] }}]", d.clone(), Ok(r#"[[1, "a b"], {"k": "v"}]"#));
        check("{{ data['l'] }} {{ data['m'] }}", d.clone(), Ok(r#""[1, 'a b'] {'k': 'v'}""#));
        check("{{ 'echo ' ~ data['id'] }}", d.clone(), Ok("echo Minion2"));
        check("{{ data['id'] | lower }}", d.clone(), Ok("minion2"));
    }

    #[test]
    fn serializer_filters() {
        let d = json!({"id": "a: b", "data": {"z": 1, "a": [true, null, "x"]}});
        check("{{ data['data']|json }}", d.clone(), Ok(r#"{"a": [true, null, "x"], "z": 1}"#));
        check(
            "{{ data['data']|json(sort_keys=False) }}",
            d.clone(),
            Ok(r#"{"z": 1, "a": [true, null, "x"]}"#),
        );
        check(
            "[{{ data['data']|tojson }}, {{ data['data']|tojson(2) }}]",
            d.clone(),
            Ok(r#"[{"a": [true, null, "x"], "z": 1}, {"a": [true, null, "x"], "z": 1}]"#),
        );
        check("{{ data['data']|yaml }}", d.clone(), Ok("{a: [true, null, x], z: 1}"));
        check(
            "[{{ data['id']|yaml }}, {{ data['id']|yaml_encode }}]",
            d.clone(),
            Ok(r#"["a: b", "a: b"]"#),
        );
        check(
            "[{{ data['id']|yaml_dquote }}, {{ \"it's\"|yaml_squote }}]",
            d.clone(),
            Ok(r#"["a: b", 'it''s']"#),
        );
        check("{{ data['id']|json }}", d.clone(), Ok(r#""a: b""#));
        check("{{ data['id']|e }}", d.clone(), Ok(r#""a: b""#));
        check("{{ data['id']|safe }}", d.clone(), Ok("a: b"));
    }

    #[test]
    fn macros_and_blocks_stay_text() {
        let d = json!({"id": "x: y"});
        check(
            "{% macro accept(id) %}k:\n  - match: {{ id }}{% endmacro %}{{ accept(data['id']) }}",
            d.clone(),
            Ok("k:\n  - match: \"x: y\""),
        );
        check("{% set block %}a: {{ data['id'] }}{% endset %}{{ block }}", d, Ok("a: \"x: y\""));
    }

    #[test]
    fn data_is_never_evaluated() {
        let d = json!({"id": "{{ 7*7 }}", "t": "{% for %}"});
        check("[{{ data['id'] }}, {{ data['t'] }}]", d, Ok(r#"["{{ 7*7 }}", "{% for %}"]"#));
    }

    #[test]
    fn errors_and_limits() {
        let d = json!({});
        let line =
            |source: &str| Renderer::new().render("t.sls", source, "t", &Map::new()).unwrap_err().0;
        assert_eq!(line("a\nb\n{% if %}\n"), Some(3));
        assert_eq!(line("a\n{{ data['x'].startswith('y') }}\n"), Some(2));
        check(
            "{% for i in range(100000000) %}{% endfor %}",
            d.clone(),
            Err("range has too many elements"),
        );
        check(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            d.clone(),
            Err("fuel"),
        );
        check(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            d.clone(),
            Err("recursion"),
        );
        check(
            "{% for i in range(3000) %}{{ 'x' * 1000 }}{% endfor %}",
            d.clone(),
            Err("larger than"),
        );
        check("{{ salt['cmd.run']('id') }}", d.clone(), Err("undefined"));
        check("#!yaml\na: {{ not rendered }}\n", d.clone(), Ok("#!yaml\na: {{ not rendered }}\n"));
        check("#!jinja|yaml\na: {{ 1 + 1 }}", d.clone(), Ok("#!jinja|yaml\na: 2"));
        check("#!py\ndef run(): pass\n", d, Err("renderer pipeline 'py' is not supported"));
    }
}
