//! What the `halite` CLIs print, as Salt prints it: the nested, json, yaml and txt outputters,
//! one block per minion or one `--static` block, the texts for minions that did not return, and
//! the `salt` command's exit codes.
//!
//! Every outputter follows Salt's `display_output`: the text is right-stripped and printed with
//! one newline, and nothing at all is printed when it is empty.

use crate::args::plain_is_string;
use crate::pyjson::{self, Layout};
use halite_common::pyrepr::{self, python_number};
use serde_json::{Map, Number, Value};

/// One minion's result as the CLI collected it.
#[derive(Debug, Clone, PartialEq)]
pub enum MinionResult {
    /// The minion's `return`, its `retcode`, and the outputter it asked for (`out`).
    Returned { ret: Value, retcode: i64, out: Option<String> },
    /// Connected but silent until the timeout.
    NoResponse,
    /// Expected (accepted key) but no session.
    NotConnected,
}

/// An outputter (`--out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Nested,
    Json,
    Yaml,
    Txt,
}

impl Format {
    /// `nested`, `json`, `yaml`, `txt` (Salt also says `text`); `highstate` is shown nested
    /// until Halite has that outputter.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "nested" | "highstate" => Some(Format::Nested),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            "txt" | "text" => Some(Format::Txt),
            _ => None,
        }
    }

    /// Salt's choice for one return: `--out` when given, else the outputter the minion named in
    /// its return (`out`), else nested.
    pub fn choose(cli: Option<Format>, minion_out: Option<&str>) -> Format {
        cli.or_else(|| minion_out.and_then(Format::parse)).unwrap_or(Format::Nested)
    }
}

/// The text Salt shows for a silent minion (with the jid for `jobs.lookup_jid`).
pub fn no_response_text(jid: &str) -> String {
    format!(
        "Minion did not return. [No response]\nThe minions may not have all finished running and \
         any remaining minions will return upon completion. To look up the return data for this \
         job later, run the following command:\n\nhalite-run jobs.lookup_jid {jid}"
    )
}

/// The text Salt shows for an expected minion that is not connected.
pub fn not_connected_text() -> &'static str {
    "Minion did not return. [Not connected]"
}

/// The value printed for a result: the return, or the text for a minion that did not return.
fn result_value(result: &MinionResult, jid: &str) -> Value {
    match result {
        MinionResult::Returned { ret, .. } => ret.clone(),
        MinionResult::NoResponse => Value::String(no_response_text(jid)),
        MinionResult::NotConnected => Value::String(not_connected_text().to_string()),
    }
}

/// One minion's block, as Salt prints each return as it arrives (without `--static`):
/// nested `"<id>:\n    True\n"`, json `{"<id>": value}` with a 4-space indent, yaml
/// `"<id>: value\n"`, txt `"<id>: <line>"` per line.
pub fn render_one(id: &str, result: &MinionResult, jid: &str, format: Format) -> String {
    let value = result_value(result, jid);
    render_entries(&[(id, &value)], format)
}

/// With `--static`: all minions at once (json: ONE object with every id; nested: the blocks
/// one after the other), ids in the given order. A repeated id keeps its first place and its
/// last result, as a Python dict update does.
pub fn render_static(results: &[(String, MinionResult)], jid: &str, format: Format) -> String {
    let mut merged = Map::new();
    for (id, result) in results {
        merged.insert(id.clone(), result_value(result, jid));
    }
    let mut entries: Vec<(&str, &Value)> = merged.iter().map(|(k, v)| (k.as_str(), v)).collect();
    // Salt's nested outputter and PyYAML sort the ids; json and txt keep arrival order.
    if matches!(format, Format::Nested | Format::Yaml) {
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    render_entries(&entries, format)
}

/// A bare value (a runner's return) in `format`, as `salt-run` prints it: nested at indent 0
/// (`manage.up` → `"- minion1\n"`), json indented by 4, yaml, or txt (`key: line` for a map,
/// the text itself for a string, Python's repr otherwise).
pub fn render_value(value: &Value, format: Format) -> String {
    let text = match format {
        Format::Nested => {
            let mut lines = Vec::new();
            nested(value, 0, "", &mut lines);
            lines.join("\n")
        }
        Format::Json => json_pretty(value),
        Format::Yaml => {
            let mut emitter = YamlEmitter::new();
            emitter.document(|e| e.node(value, Ctx::default()));
            emitter.out
        }
        Format::Txt => strip_esc(&match value {
            Value::Object(map) => {
                let entries: Vec<(&str, &Value)> =
                    map.iter().map(|(k, v)| (k.as_str(), v)).collect();
                txt(&entries)
            }
            Value::String(s) => format!("{s}\n"),
            // Salt uses `pprint.pformat`: Python's repr with sorted keys (not wrapped here).
            other => format!("{}\n", python_repr_sorted(other)),
        }),
    };
    display(&text)
}

/// `{id: value, ...}` in `format`, keys in the order given.
fn render_entries(entries: &[(&str, &Value)], format: Format) -> String {
    let text = match format {
        Format::Nested => {
            let mut lines = Vec::new();
            for (id, value) in entries {
                lines.push(format!("{}:", strip_esc(id)));
                nested(value, 4, "", &mut lines);
            }
            lines.join("\n")
        }
        Format::Json => pyjson::dumps_entries(entries.iter().copied(), INDENT),
        Format::Yaml => {
            let mut emitter = YamlEmitter::new();
            emitter.document(|e| e.mapping(entries));
            emitter.out
        }
        Format::Txt => strip_esc(&txt(entries)),
    };
    display(&text)
}

/// Salt's `display_output`: the outputter's text right-stripped, printed with a newline;
/// nothing at all when empty.
fn display(text: &str) -> String {
    match text.trim_end() {
        "" => String::new(),
        text => format!("{text}\n"),
    }
}

// ---------------------------------------------------------------------------------------------
// Exit codes.

/// Salt's exit code for the `halite` CLI: 0 when every minion returned with retcode 0; 1 when
/// one returned non-zero or did not return; 2 when nothing returned at all (no results, or
/// none of the minions returned). With `retcode_passthrough`, the highest non-zero retcode a
/// minion returned (1 when it does not fit an exit status, 1..=255), else as above.
pub fn exit_code(results: &[(String, MinionResult)], retcode_passthrough: bool) -> i32 {
    if !any_returned(results) {
        return 2;
    }
    if retcode_passthrough {
        let highest = results
            .iter()
            .filter_map(|(_, r)| match r {
                MinionResult::Returned { retcode, .. } if *retcode != 0 => Some(*retcode),
                _ => None,
            })
            .max();
        if let Some(code) = highest {
            return i32::try_from(code).ok().filter(|c| (1..=255).contains(c)).unwrap_or(1);
        }
    }
    let all_ok =
        results.iter().all(|(_, r)| matches!(r, MinionResult::Returned { retcode: 0, .. }));
    if all_ok {
        0
    } else {
        1
    }
}

/// The stderr line Salt prints with a non-zero exit code, None for 0.
pub fn exit_message(code: i32, results: &[(String, MinionResult)]) -> Option<&'static str> {
    match code {
        0 => None,
        _ if !any_returned(results) => Some("ERROR: No return received"),
        _ => Some("ERROR: Minions returned with non-zero exit code"),
    }
}

fn any_returned(results: &[(String, MinionResult)]) -> bool {
    results.iter().any(|(_, r)| matches!(r, MinionResult::Returned { .. }))
}

// ---------------------------------------------------------------------------------------------
// nested: Salt's default outputter (salt/output/nested.py), without colours.

/// Salt's `NestDisplay.display`: scalars on their own line at `indent` (None, True, False,
/// Python's repr of numbers), strings one line per line, lists as `- item` (`|_` then the
/// nested block for a list or map item), maps as `key:` then the value 4 further in, preceded
/// by `----------` below the top level; map keys sorted, as Salt sorts a plain dict.
fn nested(value: &Value, indent: usize, prefix: &str, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match value {
        Value::Null => out.push(format!("{pad}{prefix}None")),
        Value::Bool(b) => out.push(format!("{pad}{prefix}{}", if *b { "True" } else { "False" })),
        Value::Number(n) => out.push(format!("{pad}{prefix}{}", python_number(n))),
        Value::String(s) => {
            let continuation = " ".repeat(prefix.chars().count());
            for (i, line) in python_splitlines(s).into_iter().enumerate() {
                let lead = if i == 0 { prefix } else { continuation.as_str() };
                out.push(format!("{pad}{lead}{}", strip_esc(line)));
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Array(_) | Value::Object(_) => {
                        out.push(format!("{pad}|_"));
                        let inner = if item.is_object() { "" } else { "- " };
                        nested(item, indent + 2, inner, out);
                    }
                    scalar => nested(scalar, indent, "- ", out),
                }
            }
        }
        Value::Object(map) => {
            if indent > 0 {
                out.push(format!("{pad}----------"));
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                out.push(format!("{pad}{prefix}{}:", strip_esc(key)));
                nested(&map[key], indent + 4, "", out);
            }
        }
    }
}

/// Salt's `strip_esc_sequence`: ESC becomes `?`, so minion text cannot drive the terminal.
/// (Salt applies it to string values; Halite also to keys, to the C1 controls, which some
/// terminals obey as well — U+009B is CSI, U+009D OSC — and to the txt and highstate
/// outputters' text.)
pub(crate) fn strip_esc(text: &str) -> String {
    text.replace(|c: char| c == '\u{1b}' || ('\u{80}'..='\u{9f}').contains(&c), "?")
}

/// Python's `str.splitlines()`: no trailing empty line, every Unicode line boundary.
pub(crate) fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        ) {
            lines.push(&text[start..i]);
            start = i + c.len_utf8();
            if c == '\r' && matches!(chars.peek(), Some((_, '\n'))) {
                chars.next();
                start += 1;
            }
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// json

/// Salt's `json` outputter: `json.dumps(value, indent=4)`, key order kept.
pub fn json_pretty(value: &Value) -> String {
    pyjson::dumps(value, INDENT)
}

const INDENT: Layout = Layout::Indent { sort_keys: false };

// ---------------------------------------------------------------------------------------------
// txt

/// Salt's txt outputter: `<key>: <line>` for each line of a string value, else
/// `<key>: <Python str() of the value>`.
fn txt(entries: &[(&str, &Value)]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        match value {
            Value::String(s) => {
                for line in python_splitlines(s) {
                    out.push_str(&format!("{key}: {line}\n"));
                }
            }
            other => {
                let mut text = String::new();
                pyrepr::repr(other, false, &mut text);
                out.push_str(&format!("{key}: {text}\n"));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Python value formatting (the rest is in `halite_common::pyrepr`).

/// `pprint.pformat(value)` unwrapped: Python's `repr` with dict keys sorted.
fn python_repr_sorted(value: &Value) -> String {
    let mut out = String::new();
    pyrepr::repr(value, true, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// yaml: what Salt's yaml outputter prints — `safe_dump(data, default_flow_style=False,
// allow_unicode=True)` through PyYAML's C emitter (libyaml): maps with sorted keys, 2-space
// indent, lists flush with their parent key, `[]`/`{}` for empty collections, strings plain when
// they read back as strings, else single-quoted, double-quoted with escapes when they hold
// special characters; long lines folded at 80 columns.

const YAML_INDENT: usize = 2;
const YAML_WIDTH: usize = 80;

/// libyaml's `IS_BREAK`.
fn yaml_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `IS_BLANKZ` (None: the end of the text).
fn yaml_blankz(c: Option<char>) -> bool {
    c.is_none_or(|c| matches!(c, '\0' | ' ' | '\t') || yaml_break(c))
}

/// libyaml's `IS_PRINTABLE`.
fn yaml_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

/// Where a node sits (libyaml's emitter contexts).
#[derive(Clone, Copy, Default)]
struct Ctx {
    mapping: bool,
    simple_key: bool,
}

/// libyaml's scalar analysis, reduced to what block-style emitting reads.
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
}

/// A port of the parts of libyaml's emitter that a block-style safe_dump uses.
struct YamlEmitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
}

impl YamlEmitter {
    fn new() -> YamlEmitter {
        YamlEmitter {
            out: String::new(),
            column: 0,
            whitespace: true,
            indention: true,
            indent: None,
            indents: Vec::new(),
        }
    }

    /// One document: the root node, then the final line break.
    fn document(&mut self, root: impl FnOnce(&mut YamlEmitter)) {
        root(self);
        self.write_indent();
    }

    fn node(&mut self, value: &Value, ctx: Ctx) {
        match value {
            Value::Array(items) if items.is_empty() => self.empty_flow('[', ']'),
            Value::Object(map) if map.is_empty() => self.empty_flow('{', '}'),
            Value::Array(items) => self.sequence(items, ctx),
            Value::Object(map) => {
                let mut entries: Vec<(&str, &Value)> =
                    map.iter().map(|(k, v)| (k.as_str(), v)).collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                self.mapping(&entries);
            }
            Value::String(s) => self.scalar(s, plain_is_string(s), ctx),
            Value::Null => self.scalar("null", true, ctx),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, true, ctx),
            Value::Number(n) => self.scalar(&yaml_number(n), true, ctx),
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None => Some(if flow { YAML_INDENT } else { 0 }),
            Some(i) if !indentless => Some(i + YAML_INDENT),
            same => same,
        };
    }

    fn decrease_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    fn empty_flow(&mut self, open: char, close: char) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    fn sequence(&mut self, items: &[Value], ctx: Ctx) {
        let indentless = ctx.mapping && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator('-', true, false, true);
            self.node(item, Ctx::default());
        }
        self.decrease_indent();
    }

    fn mapping(&mut self, entries: &[(&str, &Value)]) {
        if entries.is_empty() {
            return self.empty_flow('{', '}');
        }
        let in_mapping = Ctx { mapping: true, simple_key: false };
        self.increase_indent(false, false);
        for (key, value) in entries {
            self.write_indent();
            if key.len() <= 128 && !analyze(key).multiline {
                self.scalar(key, plain_is_string(key), Ctx { mapping: true, simple_key: true });
                self.write_indicator(':', false, false, false);
            } else {
                self.write_indicator('?', true, false, true);
                self.scalar(key, plain_is_string(key), in_mapping);
                self.write_indent();
                self.write_indicator(':', true, false, true);
            }
            self.node(value, in_mapping);
        }
        self.decrease_indent();
    }

    /// `plain_implicit`: whether the text written plain reads back as this scalar's type.
    fn scalar(&mut self, text: &str, plain_implicit: bool, ctx: Ctx) {
        let analysis = analyze(text);
        // libyaml's `yaml_emitter_select_scalar_style`.
        let mut style = 'p';
        if ctx.simple_key && analysis.multiline {
            style = '"';
        }
        if style == 'p'
            && (!analysis.block_plain_allowed
                || (text.is_empty() && ctx.simple_key)
                || !plain_implicit)
        {
            style = '\'';
        }
        if style == '\'' && !analysis.single_quoted_allowed {
            style = '"';
        }
        self.increase_indent(true, false);
        let allow_breaks = !ctx.simple_key;
        match style {
            'p' => self.write_plain(text, allow_breaks),
            '\'' => self.write_single_quoted(text, allow_breaks),
            _ => self.write_double_quoted(text, allow_breaks),
        }
        self.decrease_indent();
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indicator(
        &mut self,
        indicator: char,
        need_whitespace: bool,
        whitespace: bool,
        indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        self.put(indicator);
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    /// A line break inside a quoted scalar, kept as it is (`\n` as the output's line break).
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    /// Plain scalars never hold line breaks (the analysis forbids them).
    fn write_plain(&mut self, text: &str, allow_breaks: bool) {
        let chars: Vec<char> = text.chars().collect();
        if !self.whitespace && !chars.is_empty() {
            self.put(' ');
        }
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > YAML_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, text: &str, allow_breaks: bool) {
        self.write_indicator('\'', true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > YAML_WIDTH
                    && i != 0
                    && i + 1 != chars.len()
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if yaml_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        if breaks {
            self.write_indent();
        }
        self.write_indicator('\'', false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, text: &str, allow_breaks: bool) {
        self.write_indicator('"', true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !yaml_printable(c) || yaml_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let letter = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match letter {
                    Some(letter) => self.put(letter),
                    None => {
                        let code = c as u32;
                        let escaped = match code {
                            0..=0xff => format!("x{code:02X}"),
                            0x100..=0xffff => format!("u{code:04X}"),
                            _ => format!("U{code:08X}"),
                        };
                        escaped.chars().for_each(|e| self.put(e));
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > YAML_WIDTH
                    && i != 0
                    && i + 1 != chars.len()
                {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator('"', false, false, false);
        self.whitespace = false;
        self.indention = false;
    }
}

/// A number as PyYAML's SafeRepresenter writes it (floats: lower-case repr, `1e+16` →
/// `1.0e+16` so it reads back as a float).
fn yaml_number(n: &Number) -> String {
    let text = python_number(n).to_lowercase();
    if n.is_f64() && !text.contains('.') && text.contains('e') {
        return text.replacen('e', ".0e", 1);
    }
    text
}

/// libyaml's `yaml_emitter_analyze_scalar`, reduced to what block-style emitting reads.
fn analyze(text: &str) -> Analysis {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
        };
    }
    let mut block_indicators = text.starts_with("---") || text.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = yaml_blankz(chars.get(1).copied());
    let last = chars.len() - 1;
    for (index, &c) in chars.iter().enumerate() {
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) || (c == '-' && followed_by_whitespace) {
                block_indicators = true;
            }
            if (c == '?' || c == ':') && followed_by_whitespace {
                block_indicators = true;
            }
        } else if (c == ':' && followed_by_whitespace) || (c == '#' && preceded_by_whitespace) {
            block_indicators = true;
        }
        if !yaml_printable(c) {
            special = true;
        }
        if yaml_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            leading_space |= index == 0;
            trailing_space |= index == last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if yaml_break(c) {
            leading_break |= index == 0;
            trailing_break |= index == last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
        preceded_by_whitespace = yaml_blankz(Some(c));
        if index < last {
            followed_by_whitespace = yaml_blankz(chars.get(index + 2).copied());
        }
    }
    let mut block_plain_allowed = true;
    let mut single_quoted_allowed = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        block_plain_allowed = false;
    }
    if break_space || space_break || special {
        block_plain_allowed = false;
        single_quoted_allowed = false;
    }
    if line_breaks || block_indicators {
        block_plain_allowed = false;
    }
    Analysis { multiline: line_breaks, block_plain_allowed, single_quoted_allowed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minion's return cannot drive the operator's terminal in any outputter: ESC (and the
    /// C1 controls CSI and OSC) become `?` in text, here an OSC 52 clipboard write and a
    /// screen clear; JSON and YAML escape them.
    #[test]
    fn no_outputter_passes_terminal_controls_through() {
        let hostile = "a\u{1b}]52;c;eA==\u{7}b\u{1b}[2J\u{9b}2Jc\u{9d}x";
        let result = MinionResult::Returned { ret: json!(hostile), retcode: 0, out: None };
        for format in [Format::Nested, Format::Txt, Format::Json, Format::Yaml] {
            let text = render_one("m1\u{1b}[1m", &result, "20260101000000000000", format);
            let raw: Vec<char> = text
                .chars()
                .filter(|&c| c == '\u{1b}' || ('\u{80}'..='\u{9f}').contains(&c))
                .collect();
            assert!(raw.is_empty(), "{format:?}: {text:?}");
        }
        let text = render_value(&json!({"k\u{1b}": hostile}), Format::Txt);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{9b}'), "{text:?}");
        let state = json!({"cmd_|-x\u{1b}[2J_|-x_|-run": {
            "result": true, "comment": hostile, "changes": {}, "__run_num__": 0,
            "name": "x", "duration": 1.0, "start_time": "00:00:00.000000"
        }});
        let text = crate::highstate::render("m1", &state);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{9d}'), "{text:?}");
    }

    const JID: &str = "20261125192046007212";

    fn ret(value: Value, retcode: i64) -> MinionResult {
        MinionResult::Returned { ret: value, retcode, out: None }
    }

    fn results(list: Vec<(&str, MinionResult)>) -> Vec<(String, MinionResult)> {
        list.into_iter().map(|(id, r)| (id.to_string(), r)).collect()
    }

    #[track_caller]
    fn check(id: &str, result: MinionResult, format: Format, expected: &str) {
        assert_eq!(render_one(id, &result, JID, format), expected);
    }

    /// The texts of `salt-samples/` (real Salt 3008 output), byte for byte.
    #[test]
    fn salt_samples() {
        // test.ping_minion1_default.txt, test.ping_star_default.txt, test.sleep12_default_timeout.txt
        check("minion1", ret(json!(true), 0), Format::Nested, "minion1:\n    True\n");
        // test.ping_minion1_out-json.txt
        check("minion1", ret(json!(true), 0), Format::Json, "{\n    \"minion1\": true\n}\n");
        // test.ping_static_out-json.txt
        let all = results(vec![("minion1", ret(json!(true), 0))]);
        assert_eq!(render_static(&all, JID, Format::Json), "{\n    \"minion1\": true\n}\n");
        // cmd.run_default.txt
        check(
            "minion1",
            ret(json!("hello\nerr"), 0),
            Format::Nested,
            "minion1:\n    hello\n    err\n",
        );
        // cmd.run_exit3.txt (and its exit code 1)
        check("minion1", ret(json!(""), 3), Format::Nested, "minion1:\n");
        let exit3 = results(vec![("minion1", ret(json!(""), 3))]);
        assert_eq!(exit_code(&exit3, false), 1);
        // cmd.run_out-json.txt
        check(
            "minion1",
            ret(json!("hello"), 0),
            Format::Json,
            "{\n    \"minion1\": \"hello\"\n}\n",
        );
        // no.such_function.txt (exit code 1)
        let missing = ret(json!("'no.such_function' is not available."), 1);
        check(
            "minion1",
            missing.clone(),
            Format::Nested,
            "minion1:\n    'no.such_function' is not available.\n",
        );
        assert_eq!(exit_code(&results(vec![("minion1", missing)]), false), 1);
        // salt-run_manage.up.txt
        assert_eq!(render_value(&json!(["minion1"]), Format::Nested), "- minion1\n");
    }

    #[test]
    fn silent_minions() {
        assert_eq!(
            no_response_text(JID),
            format!(
                "Minion did not return. [No response]\nThe minions may not have all finished \
                 running and any remaining minions will return upon completion. To look up the \
                 return data for this job later, run the following command:\n\nhalite-run \
                 jobs.lookup_jid {JID}"
            )
        );
        check(
            "minion2",
            MinionResult::NoResponse,
            Format::Nested,
            &format!(
                "minion2:\n    Minion did not return. [No response]\n    The minions may not have all \
                 finished running and any remaining minions will return upon completion. To look up \
                 the return data for this job later, run the following command:\n    \n    \
                 halite-run jobs.lookup_jid {JID}\n"
            ),
        );
        check(
            "minion2",
            MinionResult::NotConnected,
            Format::Nested,
            "minion2:\n    Minion did not return. [Not connected]\n",
        );
        check(
            "minion2",
            MinionResult::NotConnected,
            Format::Json,
            "{\n    \"minion2\": \"Minion did not return. [Not connected]\"\n}\n",
        );
        check(
            "minion2",
            MinionResult::NotConnected,
            Format::Txt,
            "minion2: Minion did not return. [Not connected]\n",
        );
        check(
            "minion2",
            MinionResult::NotConnected,
            Format::Yaml,
            "minion2: Minion did not return. [Not connected]\n",
        );
        check(
            "minion2",
            MinionResult::NoResponse,
            Format::Txt,
            &format!(
                "minion2: Minion did not return. [No response]\nminion2: The minions may not have \
                 all finished running and any remaining minions will return upon completion. To look \
                 up the return data for this job later, run the following command:\nminion2: \n\
                 minion2: halite-run jobs.lookup_jid {JID}\n"
            ),
        );
    }

    #[test]
    fn nested_shapes() {
        let value = json!({
            "pid": 4242,
            "retcode": 0,
            "stdout": "a\nb",
            "stderr": "",
            "ratio": 0.5,
            "none": null,
            "flag": false,
            "list": ["x", 1, ["y", "z"], {"k": "v", "a": [1]}, [], {}],
            "empty_list": [],
            "empty_map": {},
            "nested": {"b": {"c": true}},
            "esc": "\u{1b}[31mred"
        });
        let expected = "\
minion1:
    ----------
    empty_list:
    empty_map:
        ----------
    esc:
        ?[31mred
    flag:
        False
    list:
        - x
        - 1
        |_
          - y
          - z
        |_
          ----------
          a:
              - 1
          k:
              v
        |_
        |_
          ----------
    nested:
        ----------
        b:
            ----------
            c:
                True
    none:
        None
    pid:
        4242
    ratio:
        0.5
    retcode:
        0
    stderr:
    stdout:
        a
        b
";
        check("minion1", ret(value, 0), Format::Nested, expected);
        // Multi-line strings in a list keep the `- ` width on the following lines.
        check(
            "m",
            ret(json!(["one\ntwo", "three"]), 0),
            Format::Nested,
            "m:\n    - one\n      two\n    - three\n",
        );
        // Trailing blank lines are stripped, as Salt's display_output does.
        check("m", ret(json!("x\n\n\n"), 0), Format::Nested, "m:\n    x\n");
        check(
            "m",
            ret(json!("a\r\nb\rc\u{2028}d"), 0),
            Format::Nested,
            "m:\n    a\n    b\n    c\n    d\n",
        );
        check("m", ret(json!(1e20), 0), Format::Nested, "m:\n    1e+20\n");
        check("m", ret(json!(-7), 0), Format::Nested, "m:\n    -7\n");
        // A bare value at indent 0: no `----------` for the top map, keys sorted.
        assert_eq!(
            render_value(&json!({"b": 1, "a": [true]}), Format::Nested),
            "a:\n    - True\nb:\n    1\n"
        );
        assert_eq!(render_value(&json!(""), Format::Nested), "");
        assert_eq!(render_value(&json!([]), Format::Nested), "");
    }

    /// `--static` merges the returns into one dict: Salt's nested outputter and PyYAML print
    /// it sorted, json and txt in arrival order.
    #[test]
    fn static_output() {
        let all = results(vec![
            ("web2", ret(json!(true), 0)),
            ("web1", ret(json!({"b": 1, "a": 2}), 0)),
            ("web3", MinionResult::NotConnected),
        ]);
        assert_eq!(
            render_static(&all, JID, Format::Json),
            "{\n    \"web2\": true,\n    \"web1\": {\n        \"b\": 1,\n        \"a\": 2\n    },\n    \
             \"web3\": \"Minion did not return. [Not connected]\"\n}\n"
        );
        assert_eq!(
            render_static(&all, JID, Format::Nested),
            "web1:\n    ----------\n    a:\n        2\n    b:\n        1\nweb2:\n    True\nweb3:\n    \
             Minion did not return. [Not connected]\n"
        );
        assert_eq!(
            render_static(&all, JID, Format::Txt),
            "web2: True\nweb1: {'b': 1, 'a': 2}\nweb3: Minion did not return. [Not connected]\n"
        );
        assert_eq!(
            render_static(&all, JID, Format::Yaml),
            "web1:\n  a: 2\n  b: 1\nweb2: true\nweb3: Minion did not return. [Not connected]\n"
        );
        // A repeated id: first place, last value.
        let twice = results(vec![
            ("a", ret(json!(1), 0)),
            ("b", ret(json!(2), 0)),
            ("a", ret(json!(3), 0)),
        ]);
        assert_eq!(render_static(&twice, JID, Format::Json), "{\n    \"a\": 3,\n    \"b\": 2\n}\n");
        assert_eq!(render_static(&[], JID, Format::Json), "{}\n");
        assert_eq!(render_static(&[], JID, Format::Nested), "");
        assert_eq!(render_static(&[], JID, Format::Yaml), "{}\n");
        assert_eq!(render_static(&[], JID, Format::Txt), "");
    }

    #[test]
    fn json() {
        let value = json!({
            "s": "é \"q\" \\ \n\t\u{1}\u{7f}\u{2028}",
            "f": [1.0, 0.1, 1e16, 1e-5, -0.0, 12345.678],
            "i": [0, -1, 18446744073709551615u64],
            "e": [[], {}],
            "n": null,
            "b": [true, false]
        });
        let expected = r#"{
    "s": "é \"q\" \\ \n\t\u0001\u007f ",
    "f": [
        1.0,
        0.1,
        1e+16,
        1e-05,
        -0.0,
        12345.678
    ],
    "i": [
        0,
        -1,
        18446744073709551615
    ],
    "e": [
        [],
        {}
    ],
    "n": null,
    "b": [
        true,
        false
    ]
}"#
        .replace("\\u007f", "\u{7f}")
        .replace("\\n\\t\\u0001\u{7f} ", "\\n\\t\\u0001\u{7f}\u{2028}");
        assert_eq!(json_pretty(&value), expected);
        assert_eq!(json_pretty(&json!([])), "[]");
        assert_eq!(json_pretty(&json!("x")), "\"x\"");
        assert_eq!(render_value(&json!({"a": 1}), Format::Json), "{\n    \"a\": 1\n}\n");
    }

    #[test]
    fn txt_output() {
        check("m", ret(json!("line1\nline2\n"), 0), Format::Txt, "m: line1\nm: line2\n");
        check("m", ret(json!(""), 0), Format::Txt, "");
        check("m", ret(json!(true), 0), Format::Txt, "m: True\n");
        check("m", ret(json!(null), 0), Format::Txt, "m: None\n");
        check("m", ret(json!(2.5), 0), Format::Txt, "m: 2.5\n");
        check(
            "m",
            ret(json!({"a": [1, "x", null, "it's", "q\"'", "t\tab\u{0}"], "b": {}}), 0),
            Format::Txt,
            "m: {'a': [1, 'x', None, \"it's\", 'q\"\\'', 't\\tab\\x00'], 'b': {}}\n",
        );
        assert_eq!(render_value(&json!("a\nb"), Format::Txt), "a\nb\n");
        assert_eq!(render_value(&json!({"b": "x\ny", "a": 1}), Format::Txt), "b: x\nb: y\na: 1\n");
        assert_eq!(render_value(&json!([{"b": 1, "a": 2}]), Format::Txt), "[{'a': 2, 'b': 1}]\n");
    }

    /// Expected texts produced by PyYAML 6.0 with libyaml 0.2.5 (`yaml.dump(data,
    /// Dumper=CSafeDumper, default_flow_style=False, allow_unicode=True)`, what Salt runs).
    #[test]
    fn yaml_matches_pyyaml() {
        let yaml = |v: Value| render_value(&v, Format::Yaml);
        for (value, expected) in [
            (json!({"m": true}), "m: true\n"),
            (json!({"m": null}), "m: null\n"),
            (json!({"m": [1, 2]}), "m:\n- 1\n- 2\n"),
            (json!([1, [2, 3], {"a": 1, "b": [4]}]), "- 1\n- - 2\n  - 3\n- a: 1\n  b:\n  - 4\n"),
            (json!({"m": {"b": {}, "a": []}}), "m:\n  a: []\n  b: {}\n"),
            (json!({"m": ""}), "m: ''\n"),
            (json!({"m": "true"}), "m: 'true'\n"),
            (json!({"m": "12"}), "m: '12'\n"),
            (json!({"m": "1.5"}), "m: '1.5'\n"),
            (json!({"m": "null"}), "m: 'null'\n"),
            (json!({"m": "2024-05-01"}), "m: '2024-05-01'\n"),
            (json!({"m": "it's"}), "m: it's\n"),
            (json!({"m": "'q'"}), "m: '''q'''\n"),
            (json!({"m": "a: b"}), "m: 'a: b'\n"),
            (json!({"m": "- x"}), "m: '- x'\n"),
            (json!({"m": " lead"}), "m: ' lead'\n"),
            (json!({"m": "a\tb"}), "m: \"a\\tb\"\n"),
            (json!({"m": "é ü"}), "m: é ü\n"),
            (json!({"m": "esc\u{1b}"}), "m: \"esc\\e\"\n"),
            (json!({"m": "hello\nerr"}), "m: 'hello\n\n  err'\n"),
            (json!({"m": "trail\n"}), "m: 'trail\n\n  '\n"),
            (json!({"m": "a \nb"}), "m: \"a \\nb\"\n"),
            (json!({"m": 1.5, "n": 1e20, "o": -3}), "m: 1.5\nn: 1.0e+20\no: -3\n"),
            (json!({"": 1}), "'': 1\n"),
            (json!({"a\nb": 1}), "? 'a\n\n  b'\n: 1\n"),
            (json!({"k".repeat(129): 1}), &format!("? {}\n: 1\n", "k".repeat(129))),
            (json!({"k".repeat(128): 1}), &format!("{}: 1\n", "k".repeat(128))),
            (json!({"true": 1, "x y": 2}), "'true': 1\nx y: 2\n"),
            (json!("top"), "top\n"),
            (json!(""), "''\n"),
            (json!([]), "[]\n"),
            (json!({}), "{}\n"),
            (json!(7), "7\n"),
            (
                json!({"m": "tab\there", "n": "\u{85}", "o": "😀", "p": "a😀\u{1}"}),
                "m: \"tab\\there\"\nn: \"\\N\"\no: \"\\U0001F600\"\np: \"a\\U0001F600\\x01\"\n",
            ),
        ] {
            assert_eq!(yaml(value.clone()), expected, "{value}");
        }
    }

    #[test]
    fn yaml_folds_long_lines_as_libyaml() {
        let long = "word ".repeat(30);
        let value = json!({"m": long.trim_end(), "d": format!("{}\ttab", "x ".repeat(45))});
        let expected = "\
d: \"x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x
  x x x x x x \\ttab\"
m: word word word word word word word word word word word word word word word word
  word word word word word word word word word word word word word word
";
        assert_eq!(render_value(&value, Format::Yaml), expected);
        let expected = "\
minion2: 'Minion did not return. [No response]

  The minions may not have all finished running and any remaining minions will return
  upon completion. To look up the return data for this job later, run the following
  command:


  halite-run jobs.lookup_jid 20261125192046007212'
";
        check("minion2", MinionResult::NoResponse, Format::Yaml, expected);
    }

    #[test]
    fn exit_codes() {
        let ok = || ret(json!(true), 0);
        let failed = |code| ret(json!("x"), code);
        for (list, passthrough, code, message) in [
            (vec![("a", ok())], false, 0, None),
            (vec![("a", ok()), ("b", ok())], false, 0, None),
            (vec![("a", ok()), ("b", failed(3))], false, 1, Some("non-zero")),
            (vec![("a", ok()), ("b", MinionResult::NoResponse)], false, 1, Some("non-zero")),
            (vec![("a", ok()), ("b", MinionResult::NotConnected)], false, 1, Some("non-zero")),
            (vec![("a", MinionResult::NoResponse)], false, 2, Some("No return")),
            (
                vec![("a", MinionResult::NotConnected), ("b", MinionResult::NoResponse)],
                false,
                2,
                Some("No return"),
            ),
            (vec![], false, 2, Some("No return")),
            (vec![], true, 2, Some("No return")),
            (vec![("a", ok())], true, 0, None),
            (vec![("a", failed(2)), ("b", failed(5)), ("c", ok())], true, 5, Some("non-zero")),
            (vec![("a", failed(-1))], true, 1, Some("non-zero")),
            (vec![("a", failed(256))], true, 1, Some("non-zero")),
            (vec![("a", failed(255))], true, 255, Some("non-zero")),
            (vec![("a", ok()), ("b", MinionResult::NoResponse)], true, 1, Some("non-zero")),
            (vec![("a", failed(2)), ("b", MinionResult::NoResponse)], true, 2, Some("non-zero")),
            (vec![("a", MinionResult::NoResponse)], true, 2, Some("No return")),
        ] {
            let list = results(list);
            assert_eq!(exit_code(&list, passthrough), code, "{list:?} passthrough={passthrough}");
            let got = exit_message(code, &list);
            match message {
                None => assert_eq!(got, None),
                Some(part) => assert!(got.is_some_and(|m| m.contains(part)), "{list:?}: {got:?}"),
            }
        }
        assert_eq!(
            exit_message(1, &results(vec![("a", failed(1))])),
            Some("ERROR: Minions returned with non-zero exit code")
        );
        assert_eq!(exit_message(2, &[]), Some("ERROR: No return received"));
    }

    #[test]
    fn formats() {
        for (name, format) in [
            ("nested", Some(Format::Nested)),
            ("highstate", Some(Format::Nested)),
            ("json", Some(Format::Json)),
            ("yaml", Some(Format::Yaml)),
            ("txt", Some(Format::Txt)),
            ("text", Some(Format::Txt)),
            ("JSON", None),
            ("raw", None),
            ("", None),
        ] {
            assert_eq!(Format::parse(name), format, "{name}");
        }
        assert_eq!(Format::choose(Some(Format::Json), Some("txt")), Format::Json);
        assert_eq!(Format::choose(None, Some("txt")), Format::Txt);
        assert_eq!(Format::choose(None, Some("no_return")), Format::Nested);
        assert_eq!(Format::choose(None, None), Format::Nested);
    }

    #[test]
    fn python_helpers() {
        assert_eq!(python_splitlines(""), Vec::<&str>::new());
        assert_eq!(python_splitlines("\n"), vec![""]);
        assert_eq!(python_splitlines("a\r\n\nb\u{c}c"), vec!["a", "", "b", "c"]);
    }
}
