//! Salt's `highstate` outputter (salt/output/highstate.py, Salt 3008) without colours, with the
//! master's defaults: `state_output: full`, `state_verbose: True`, `state_output_profile: True`,
//! `state_output_diff`, `state_output_pct` and `state_compress_ids` off.
//!
//! One block per minion: `<id>:`, then for a map of state returns one `----------` block per
//! state in `__run_num__` order (`ID`, `Function`, `Name` when it differs from the ID, `Result`,
//! `Comment`, `Started`, `Duration`, `Changes` nested 14 columns in, `Warnings`) and the
//! `Summary for <id>` block; for a list (render errors) `Data failed to compile:` and each
//! error after a `----------` line; a string or number is printed indented by 4.
//!
//! Not ported: the colours; the terse/mixed/changes/filter modes; the recursive rendering of a
//! state named `state.orch`/`state.sls` (an orchestration; its changes are shown as any others);
//! `pprint`'s line wrapping of a state that lacks `__run_num__`; textwrap's splitting of
//! hyphenated words when a warning is wrapped. Python `str()` of a map sorts its keys here.

use crate::output::python_splitlines;
use crate::output::{render_value, Format};
use serde_json::{Map, Value};

/// Indent of the nested `Changes:` block and of continued comment lines.
const CHANGES_INDENT: usize = 14;

/// Salt's highstate text for one minion's `state.*` return (`ret` is the map keyed
/// `state_|-id_|-name_|-fun`, or a list of error strings), sorted by `__run_num__`.
///
/// The text is what Salt prints for the minion: right-stripped, ending in one newline.
pub fn render(id: &str, ret: &Value) -> String {
    let (text, _) = format_host(id, ret);
    // What a minion returned cannot drive the terminal (no colours are written here).
    let text = crate::output::strip_esc(&text);
    match text.trim_end() {
        "" => String::new(),
        text => format!("{text}\n"),
    }
}

/// Salt's `_format_host`: the minion's block, and whether any state changed something.
fn format_host(host: &str, data: &Value) -> (String, bool) {
    let mut lines: Vec<String> = Vec::new();
    let mut nchanges = 0usize;
    match data {
        // From `saltmod.function`: always a change.
        Value::Bool(_) | Value::Number(_) => {
            nchanges = 1;
            lines.push(format!("    {}", py_str(data)));
        }
        Value::String(text) => {
            nchanges = 1;
            for line in python_splitlines(text) {
                lines.push(format!("    {line}"));
            }
        }
        Value::Array(errors) => {
            lines.push("    Data failed to compile:".to_string());
            for error in errors {
                lines.push(format!("----------\n    {}", py_str(error).replace('\u{1b}', "?")));
            }
        }
        Value::Object(map) => nchanges = format_states(host, map, &mut lines),
        Value::Null => {}
    }
    lines.insert(0, format!("{host}:"));
    (lines.join("\n"), nchanges > 0)
}

/// How Salt counts a state's `result` (a dict keyed by the value: `1 == True`, `0 == False`).
#[derive(PartialEq)]
enum Outcome {
    Succeeded,
    Failed,
    NotRun,
    Other(String),
}

impl Outcome {
    fn of(result: &Value) -> Outcome {
        match result {
            Value::Bool(true) => Outcome::Succeeded,
            Value::Bool(false) => Outcome::Failed,
            Value::Null => Outcome::NotRun,
            Value::Number(n) if n.as_f64() == Some(1.0) => Outcome::Succeeded,
            Value::Number(n) if n.as_f64() == Some(0.0) => Outcome::Failed,
            other => Outcome::Other(py_str(other)),
        }
    }
}

/// The state blocks and the summary of a map of state returns; the number of changed states.
fn format_states(host: &str, data: &Map<String, Value>, lines: &mut Vec<String>) -> usize {
    // A state return without `__run_num__`: Salt puts the complaint above everything.
    for (tname, info) in data {
        if let Value::Object(fields) = info {
            if tname != "changes" && !fields.is_empty() && !fields.contains_key("__run_num__") {
                lines.insert(0, py_str(info));
                lines.insert(
                    0,
                    "The State execution failed to record the order in which all states were \
                     executed. The state return missing data is:"
                        .to_string(),
                );
            }
        }
    }
    let mut states: Vec<(&String, &Map<String, Value>)> = data
        .iter()
        .filter_map(|(tname, info)| match info {
            Value::Object(fields) if fields.contains_key("result") => Some((tname, fields)),
            _ => None,
        })
        .collect();
    let run_num = |fields: &Map<String, Value>| {
        fields.get("__run_num__").and_then(Value::as_f64).unwrap_or(0.0)
    };
    states.sort_by(|a, b| run_num(a.1).total_cmp(&run_num(b.1)));

    // Result counts in first-seen order, as Salt's dict keeps them.
    let mut rcounts: Vec<(Outcome, usize)> = Vec::new();
    let mut warnings = 0usize;
    let mut durations: Vec<f64> = Vec::new();
    let mut nchanges = 0usize;

    for (tname, ret) in states {
        let result = &ret["result"];
        let outcome = Outcome::of(result);
        match rcounts.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, count)) => *count += 1,
            None => rcounts.push((outcome, 1)),
        }
        if let Some(ms) = duration_ms(ret.get("duration")) {
            durations.push(ms);
        }
        let (changed, ctext) = format_changes(ret.get("changes").unwrap_or(&Value::Null));
        if changed {
            nchanges += 1;
        }

        let comps: Vec<&str> = tname.split("_|-").collect();
        let comp = |i: usize| comps.get(i).copied().unwrap_or("");
        lines.push("----------".to_string());
        lines.push(format!("          ID: {}", comp(1)));
        lines.push(format!("    Function: {}.{}", comp(0), comp(3)));
        if comp(1) != comp(2) {
            lines.push(format!("        Name: {}", comp(2)));
        }
        lines.push(format!("      Result: {}", py_str(result)));
        lines.push(format!("     Comment: {}", comment(ret)));
        if let Some(started) = ret.get("start_time") {
            lines.push(format!("     Started: {}", py_str(started)));
            let duration = match ret.get("duration") {
                None => String::new(),
                Some(Value::String(s)) if s.is_empty() => String::new(),
                Some(d) => format!("{} ms", py_str(d)),
            };
            lines.push(format!("    Duration: {duration}"));
        }
        lines.push(format!("     Changes:   {ctext}"));
        if let Some(list) = ret.get("warnings") {
            warnings += 1;
            let text = match list {
                Value::Array(items) => items.iter().map(py_str).collect::<Vec<_>>().join("\n"),
                Value::String(s) => s.chars().map(String::from).collect::<Vec<_>>().join("\n"),
                other => py_str(other),
            };
            lines.push(format!("    Warnings: {}", fill(&text).trim_start()));
        }
    }

    // The summary.
    let count = |o: Outcome| rcounts.iter().find(|(k, _)| *k == o).map_or(0, |(_, c)| *c);
    let (succeeded, failed, not_run) =
        (count(Outcome::Succeeded), count(Outcome::Failed), count(Outcome::NotRun));
    let count_max_len = rcounts
        .iter()
        .map(|(_, c)| *c)
        .chain((warnings > 0).then_some(warnings))
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(0);
    // The longest label ("Succeeded") and ": ".
    let width = "Succeeded".len() + count_max_len + 2;
    let counts = |label: &str, n: usize| format!("{label}: {n:>0$}", width - (label.len() + 2));
    lines.push(format!("\nSummary for {host}\n{}", "-".repeat(width)));
    let mut changestats = Vec::new();
    if not_run > 0 {
        changestats.push(format!("unchanged={not_run}"));
    }
    if nchanges > 0 {
        changestats.push(format!("changed={nchanges}"));
    }
    let changestats = match changestats.is_empty() {
        true => String::new(),
        false => format!(" ({})", changestats.join(", ")),
    };
    lines.push(format!("{}{changestats}", counts("Succeeded", succeeded + not_run)));
    lines.push(counts("Failed", failed));
    if warnings > 0 {
        lines.push(counts("Warnings", warnings));
    }
    let total: usize = rcounts.iter().map(|(_, c)| c).sum();
    lines.push(format!("{}\nTotal states run: {total:>1$}", "-".repeat(width), width - 7));
    let mut sum: f64 = durations.iter().sum();
    let mut unit = "ms";
    if sum > 999.0 {
        sum /= 1000.0;
        unit = "s";
    }
    let sum = if sum.is_nan() { "nan".to_string() } else { format!("{sum:.3}") };
    lines.push(format!("Total run time: {sum:>0$} {unit}", width - 5));
    nchanges
}

/// A state's comment: `str()` of it, stripped, continuation lines indented by 14, then any
/// `data` the state returned.
fn comment(ret: &Map<String, Value>) -> String {
    let text = ret.get("comment").map(py_str).unwrap_or_default();
    let mut comment = python_strip(&text).replace('\n', &format!("\n{}", " ".repeat(14)));
    match ret.get("data") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                comment = format!("{comment} {}", py_str(item));
            }
        }
        Some(Value::Object(map)) => {
            for (key, value) in map {
                comment = format!("{comment}\n\t\t{key}: {}", py_str(value));
            }
        }
        Some(other) => comment = format!("{comment} {}", py_str(other)),
    }
    comment
}

/// Salt's `_format_changes`: whether the state changed something, and the text after
/// `Changes:   ` (a newline then the nested block, or the nested highstates of an
/// orchestration's `{"out": "highstate", "ret": {...}}`).
fn format_changes(changes: &Value) -> (bool, String) {
    if !truthy(changes) {
        return (false, String::new());
    }
    let Value::Object(map) = changes else {
        return (true, format!("Invalid Changes data: {}", py_str(changes)));
    };
    if let (Some(Value::Object(hosts)), Some(Value::String(out))) = (map.get("ret"), map.get("out"))
    {
        if out == "highstate" {
            let pad = " ".repeat(CHANGES_INDENT);
            let mut ctext = String::new();
            let mut changed = false;
            for (host, hostdata) in hosts {
                let (text, host_changed) = format_host(host, hostdata);
                ctext.push('\n');
                let indented: Vec<String> =
                    python_splitlines(&text).iter().map(|l| format!("{pad}{l}")).collect();
                ctext.push_str(&indented.join("\n"));
                changed |= host_changed;
            }
            return (changed, ctext);
        }
    }
    (true, format!("\n{}", nested_changes(changes)))
}

/// The nested outputter at indent 14, right-stripped as Salt's `out_format` does: the map's
/// `----------` line (Salt draws it below the top level), then Halite's nested text of the
/// value shifted right. (`render_value` right-strips too, so the shift changes nothing else.)
fn nested_changes(changes: &Value) -> String {
    let pad = " ".repeat(CHANGES_INDENT);
    let text = render_value(changes, Format::Nested);
    let mut lines = Vec::new();
    if changes.is_object() {
        lines.push(format!("{pad}----------"));
    }
    if !text.is_empty() {
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
            lines.push(format!("{pad}{line}"));
        }
    }
    lines.join("\n")
}

/// Python's truth value of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Python's `str()`: a string as is, anything else as its repr (None, True, `3.83`, `['a']`).
fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        // The txt outputter prints a map as `key: value` lines; the repr of a one-item list
        // holds the map's repr.
        Value::Object(_) => {
            let text = render_value(&Value::Array(vec![value.clone()]), Format::Txt);
            let repr = text.trim_end_matches('\n');
            repr.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(repr).to_string()
        }
        other => render_value(other, Format::Txt).trim_end_matches('\n').to_string(),
    }
}

/// A state's duration in ms as Salt adds it up: `float(duration)`, else the part before
/// `" ms"`; a missing duration counts 0, one that is not a number is left out.
fn duration_ms(duration: Option<&Value>) -> Option<f64> {
    let parse = |s: &str| python_strip(s).replace('_', "").parse::<f64>().ok();
    match duration {
        None => Some(0.0),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
        Some(Value::String(s)) => {
            parse(s).or_else(|| parse(s.split(" ms").next().unwrap_or_default()))
        }
        Some(_) => None,
    }
}

/// Python's whitespace (`str.isspace`), which includes the separators U+001C..U+001F.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
fn python_strip(text: &str) -> &str {
    text.trim_matches(python_space)
}

/// Python's `textwrap.fill(text, width=80)` with both indents 14 spaces, as Salt wraps a
/// state's warnings: tabs expanded, whitespace made spaces, greedy filling, overlong words
/// broken (after a hyphen when one fits). Hyphenated words are not split otherwise.
fn fill(text: &str) -> String {
    const WIDTH: usize = 80;
    let indent = " ".repeat(CHANGES_INDENT);
    // expandtabs(8), then every ASCII whitespace character becomes a space.
    let mut expanded = String::new();
    let mut column = 0;
    for c in text.chars() {
        match c {
            '\t' => {
                let spaces = 8 - column % 8;
                expanded.push_str(&" ".repeat(spaces));
                column += spaces;
            }
            '\n' | '\r' => {
                expanded.push(' ');
                column = 0;
            }
            '\u{b}' | '\u{c}' => {
                expanded.push(' ');
                column += 1;
            }
            c => {
                expanded.push(c);
                column += 1;
            }
        }
    }
    // Chunks: runs of whitespace and runs of anything else.
    let mut chunks: Vec<String> = Vec::new();
    for c in expanded.chars() {
        match chunks.last_mut() {
            Some(last) if last.chars().next().map(python_space) == Some(python_space(c)) => {
                last.push(c)
            }
            _ => chunks.push(c.to_string()),
        }
    }
    let blank = |chunk: &str| python_strip(chunk).is_empty();
    let len = |chunk: &str| chunk.chars().count();
    chunks.reverse();
    let width = WIDTH - indent.len();
    let mut lines: Vec<String> = Vec::new();
    while !chunks.is_empty() {
        let mut line: Vec<String> = Vec::new();
        let mut line_len = 0;
        if !lines.is_empty() && chunks.last().is_some_and(|c| blank(c)) {
            chunks.pop();
        }
        while let Some(chunk) = chunks.last() {
            if line_len + len(chunk) > width {
                break;
            }
            line_len += len(chunk);
            line.extend(chunks.pop());
        }
        if let Some(chunk) = chunks.last_mut() {
            if len(chunk) > width {
                // Break the long word to fill the line.
                let space_left = width.saturating_sub(line_len).max(1);
                let chars: Vec<char> = chunk.chars().collect();
                let mut end = space_left;
                if let Some(hyphen) = chars[..space_left].iter().rposition(|c| *c == '-') {
                    if hyphen > 0 && chars[..hyphen].iter().any(|c| *c != '-') {
                        end = hyphen + 1;
                    }
                }
                line.push(chars[..end].iter().collect());
                *chunk = chars[end..].iter().collect();
            }
        }
        if line.last().is_some_and(|c| blank(c)) {
            line.pop();
        }
        if !line.is_empty() {
            lines.push(format!("{indent}{}", line.concat()));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// salt-samples/state.sls_test_highstate_changes.txt
    #[test]
    fn changes() {
        let ret = json!({
            "file_|-/tmp/example_|-/tmp/example_|-managed": {
                "changes": {"diff": "New file", "mode": "0644"},
                "comment": "File /tmp/example updated",
                "name": "/tmp/example",
                "result": true,
                "__sls__": "test",
                "__run_num__": 0,
                "start_time": "19:21:01.070768",
                "duration": 15.066,
                "__id__": "/tmp/example"
            }
        });
        let expected = "\
minion1:
----------
          ID: /tmp/example
    Function: file.managed
      Result: True
     Comment: File /tmp/example updated
     Started: 19:21:01.070768
    Duration: 15.066 ms
     Changes:   
              ----------
              diff:
                  New file
              mode:
                  0644

Summary for minion1
------------
Succeeded: 1 (changed=1)
Failed:    0
------------
Total states run:     1
Total run time:  15.066 ms
";
        assert_eq!(render("minion1", &ret), expected);
    }

    /// salt-samples/state.sls_test_highstate_nochanges.txt
    #[test]
    fn no_changes() {
        let ret = json!({
            "file_|-/tmp/example_|-/tmp/example_|-managed": {
                "changes": {},
                "comment": "File /tmp/example is in the correct state",
                "name": "/tmp/example",
                "result": true,
                "__sls__": "test",
                "__run_num__": 0,
                "start_time": "19:21:01.797964",
                "duration": 9.105,
                "__id__": "/tmp/example"
            }
        });
        let expected = "\
minion1:
----------
          ID: /tmp/example
    Function: file.managed
      Result: True
     Comment: File /tmp/example is in the correct state
     Started: 19:21:01.797964
    Duration: 9.105 ms
     Changes:   

Summary for minion1
------------
Succeeded: 1
Failed:    0
------------
Total states run:     1
Total run time:   9.105 ms
";
        assert_eq!(render("minion1", &ret), expected);
    }

    /// salt-samples/state.sls_fail_highstate.txt (keys out of run order on purpose).
    #[test]
    fn failure() {
        let ret = json!({
            "cmd_|-echo_ok_|-echo hi_|-run": {
                "name": "echo hi",
                "changes": {"pid": 9566, "retcode": 0, "stdout": "hi", "stderr": ""},
                "result": true,
                "comment": "Command \"echo hi\" run",
                "__sls__": "fail",
                "__run_num__": 1,
                "start_time": "19:21:04.910198",
                "duration": 3.83,
                "__id__": "echo_ok"
            },
            "test_|-always_fails_|-this state fails on purpose_|-fail_without_changes": {
                "name": "this state fails on purpose",
                "changes": {},
                "result": false,
                "comment": "Failure!",
                "__sls__": "fail",
                "__run_num__": 0,
                "start_time": "19:21:04.908818",
                "duration": 0.499,
                "__id__": "always_fails"
            }
        });
        let expected = "\
minion1:
----------
          ID: always_fails
    Function: test.fail_without_changes
        Name: this state fails on purpose
      Result: False
     Comment: Failure!
     Started: 19:21:04.908818
    Duration: 0.499 ms
     Changes:   
----------
          ID: echo_ok
    Function: cmd.run
        Name: echo hi
      Result: True
     Comment: Command \"echo hi\" run
     Started: 19:21:04.910198
    Duration: 3.83 ms
     Changes:   
              ----------
              pid:
                  9566
              retcode:
                  0
              stderr:
              stdout:
                  hi

Summary for minion1
------------
Succeeded: 1 (changed=1)
Failed:    1
------------
Total states run:     2
Total run time:   4.329 ms
";
        assert_eq!(render("minion1", &ret), expected);
    }

    /// salt-samples/state.sls_test_fail_testmode_highstate.txt
    #[test]
    fn test_mode() {
        let ret = json!({
            "file_|-/tmp/example_|-/tmp/example_|-managed": {
                "changes": {},
                "comment": "The file /tmp/example is in the correct state",
                "name": "/tmp/example",
                "result": true,
                "__sls__": "test",
                "__run_num__": 0,
                "start_time": "19:21:06.393414",
                "duration": 6.834,
                "__id__": "/tmp/example"
            },
            "test_|-always_fails_|-this state fails on purpose_|-fail_without_changes": {
                "name": "this state fails on purpose",
                "changes": {},
                "result": false,
                "comment": "If we weren't testing, this would be a failure!",
                "__sls__": "fail",
                "__run_num__": 1,
                "start_time": "19:21:06.401019",
                "duration": 0.339,
                "__id__": "always_fails"
            },
            "cmd_|-echo_ok_|-echo hi_|-run": {
                "name": "echo hi",
                "changes": {"cmd": "echo hi"},
                "result": null,
                "comment": "Command \"echo hi\" would have been executed",
                "__sls__": "fail",
                "__run_num__": 2,
                "start_time": "19:21:06.402120",
                "duration": 0.421,
                "__id__": "echo_ok"
            }
        });
        let expected = "\
minion1:
----------
          ID: /tmp/example
    Function: file.managed
      Result: True
     Comment: The file /tmp/example is in the correct state
     Started: 19:21:06.393414
    Duration: 6.834 ms
     Changes:   
----------
          ID: always_fails
    Function: test.fail_without_changes
        Name: this state fails on purpose
      Result: False
     Comment: If we weren't testing, this would be a failure!
     Started: 19:21:06.401019
    Duration: 0.339 ms
     Changes:   
----------
          ID: echo_ok
    Function: cmd.run
        Name: echo hi
      Result: None
     Comment: Command \"echo hi\" would have been executed
     Started: 19:21:06.402120
    Duration: 0.421 ms
     Changes:   
              ----------
              cmd:
                  echo hi

Summary for minion1
------------
Succeeded: 2 (unchanged=1, changed=1)
Failed:    1
------------
Total states run:     3
Total run time:   7.594 ms
";
        assert_eq!(render("minion1", &ret), expected);
    }

    /// salt-samples/state.sls_nonexistent.txt
    #[test]
    fn render_errors() {
        let ret = json!(["No matching sls found for 'nonexistent' in env 'base'"]);
        let expected = "\
minion1:
    Data failed to compile:
----------
    No matching sls found for 'nonexistent' in env 'base'
";
        assert_eq!(render("minion1", &ret), expected);
    }

    /// Two-digit counts widen the summary; a second or more is shown in seconds; comments
    /// continue 14 columns in; warnings are wrapped at 80; bad changes are named.
    #[test]
    fn wide_summary_comments_warnings() {
        let mut ret = Map::new();
        for i in 0..10 {
            ret.insert(
                format!("test_|-s{i}_|-s{i}_|-succeed_without_changes"),
                json!({"result": true, "comment": "ok", "changes": {}, "__run_num__": i,
                       "start_time": "10:00:00.000000", "duration": 100.25}),
            );
        }
        ret.insert(
            "test_|-odd_|-odd_|-nop".into(),
            json!({"result": true, "comment": " line one\nline two\n", "changes": ["x"],
                   "__run_num__": 10, "warnings": ["word ".repeat(20).trim_end()]}),
        );
        let text = render("m", &Value::Object(ret));
        let expected_tail = "\
----------
          ID: odd
    Function: test.nop
      Result: True
     Comment: line one
              line two
     Changes:   Invalid Changes data: ['x']
    Warnings: word word word word word word word word word word word word word
              word word word word word word word

Summary for m
-------------
Succeeded: 11 (changed=1)
Failed:     0
Warnings:   1
-------------
Total states run:     11
Total run time:    1.002 s
";
        assert!(text.ends_with(expected_tail), "{text}");
        assert!(text.starts_with("m:\n----------\n          ID: s0\n"), "{text}");
        assert!(text.contains("    Duration: 100.25 ms\n"), "{text}");
    }

    /// An orchestration's `{"out": "highstate", "ret": ...}` changes are minion blocks shifted
    /// 14 columns; a string return is printed line by line.
    #[test]
    fn nested_highstate_and_string_returns() {
        let ret = json!({
            "salt_|-run_|-cmd.run_|-function": {
                "__run_num__": 0, "result": true, "comment": "Function ran successfully.",
                "changes": {"out": "highstate", "ret": {"minion": "file1\nfile2"}}
            }
        });
        let expected = "\
master:
----------
          ID: run
    Function: salt.function
        Name: cmd.run
      Result: True
     Comment: Function ran successfully.
     Changes:   
              minion:
                  file1
                  file2

Summary for master
------------
Succeeded: 1 (changed=1)
Failed:    0
------------
Total states run:     1
Total run time:   0.000 ms
";
        assert_eq!(render("master", &ret), expected);
        assert_eq!(render("m", &json!("a\nb")), "m:\n    a\n    b\n");
    }
}
