//! Event data inside author quotes, text and block scalars (issue #11): every placement of a
//! `{{ }}` gets the value encoded for it, and no value adds keys, items or reactions.

use super::tests::TempDir;
use super::*;
use serde_json::json;

/// Values chosen to end whatever scalar they are put in.
const ATTACKS: &[&str] = &[
    "web1'}, {match: '*'}] #",
    "web1\"}, {match: \"*\"}] #",
    "x' , 'y",
    "x\" , \"y",
    "x\nkey_accept2:\n  wheel.key.accept:\n    - match: '*'",
    "x\n- match: '*'",
    "x\r\n- match: '*'",
    "x\ry",
    "x\u{2028}y: z",
    "x\u{85}y: z",
    "tab\there: v",
    "a: b",
    "a #b",
    "#comment",
    "a]",
    "a}",
    "a, b",
    "*",
    "!!python/object/apply:os.system ['id']",
    "&a x",
    "*a",
    "---",
    "...",
    "--- \nevil: 1",
    "back\\",
    "back\\\"",
    "''",
    "\"",
    "|",
    "> x",
    "{{ 7*7 }}",
    "%TAG ! x",
    "\u{f8f0}0\u{f8f1}",
    "True",
    "null",
    "123",
    "",
];

/// One file, one event (`data['v']` = `v`): its reactions as JSON, or its errors.
fn react(sls: &str, data: serde_json::Value) -> Result<Vec<Value>, Vec<ReactorError>> {
    let dir = TempDir::new("quoting");
    let file = dir.write("q.sls", sls);
    let r = Reactor::new(vec![Rule { pattern: "myco/x".into(), sls: vec![file] }]);
    let Value::Object(data) = data else { panic!("data must be a map") };
    let out = r.react("myco/x", &data);
    match out.errors.is_empty() {
        true => Ok(out.reactions.iter().map(Reaction::to_json).collect()),
        false => Err(out.errors),
    }
}

fn accept(target: Value) -> Vec<Value> {
    vec![
        json!({"id": "accept", "client": "wheel", "fun": "key.accept", "tgt": null, "tgt_type": null, "arg": [target],
               "kwarg": {"include_rejected": false, "include_denied": false}}),
    ]
}

#[track_caller]
fn check(sls: &str, v: Value, want: Value) {
    assert_eq!(react(sls, json!({ "v": v })), Ok(accept(want)), "{sls}\nwith {v:?}");
}

#[track_caller]
fn refused(sls: &str, v: Value, line: usize, message: &str) {
    let errors = react(sls, json!({ "v": v })).expect_err(sls);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].kind, errors[0].line), ("render", Some(line)), "{sls}: {errors:?}");
    assert!(errors[0].message.contains(message), "{sls}: {errors:?}");
}

/// Where the value is all of its scalar, quoted or not, it stays that one string.
#[test]
fn a_whole_value_is_the_value_in_every_quoting_and_flow_context() {
    for template in [
        "accept:\n  wheel.key.accept:\n    - match: {{ data['v'] }}\n",
        "accept:\n  wheel.key.accept:\n    - match: '{{ data['v'] }}'\n",
        "accept:\n  wheel.key.accept:\n    - match: \"{{ data['v'] }}\"\n",
        "accept:\n  wheel.key.accept: [{match: {{ data['v'] }}}]\n",
        "accept:\n  wheel.key.accept: [{match: '{{ data['v'] }}'}]\n",
        "accept:\n  wheel.key.accept: [{match: \"{{ data['v'] }}\"}]\n",
        "accept:\n  wheel.key.accept:\n    - {match: '{{ data['v'] }}'}\n",
        "accept:\n  wheel.key.accept:\n    - match:\n        '{{ data['v'] }}'\n",
        "accept: {wheel.key.accept: [{match: \"{{ data['v'] }}\"}]}\n",
        "accept:\n  wheel.key.accept:\n    - match: {{ data['v'] }} # {{ data['v'] }}\n",
        "# {{ data['v'] }}\naccept:\n  wheel.key.accept:\n    - match: '{{ data['v'] }}' # '{{ data['v'] }}'\n",
    ] {
        for attack in ATTACKS {
            check(template, json!(attack), json!(attack));
        }
    }
}

/// A placeholder that is part of a longer plain scalar makes that scalar one string, the text
/// around it included.
#[test]
fn text_around_a_value_makes_one_string() {
    let template =
        "accept:\n  wheel.key.accept:\n    - match: pre {{ data['v'] }}-{{ data['v'] }} post\n";
    let flow = "accept:\n  wheel.key.accept: [{match: pre {{ data['v'] }}-{{ data['v'] }} post}]\n";
    let multi = "accept:\n  wheel.key.accept:\n    - match: 'a{{ data['v'] }}' # x\n";
    for attack in ATTACKS {
        let want = json!(format!("pre {attack}-{attack} post"));
        check(template, json!(attack), want.clone());
        check(flow, json!(attack), want);
        check(multi, json!(attack), json!(format!("a{attack}")));
    }
}

/// In a block scalar the value's lines are indented with the line it sits on; what a block
/// scalar cannot carry is refused.
#[test]
fn block_scalars_keep_the_value_inside() {
    let literal = "accept:\n  wheel.key.accept:\n    - match: |-\n        {{ data['v'] }}\n";
    let inner =
        "accept:\n  wheel.key.accept:\n    - match: |-\n        a {{ data['v'] }}\n        b\n";
    let folded = "accept:\n  wheel.key.accept:\n    - match: >-\n        {{ data['v'] }}\n";
    for attack in ATTACKS {
        let cannot = attack.chars().any(|c| c != '\n' && c != '\t' && emit::needs_escape(c));
        if cannot {
            refused(literal, json!(attack), 4, "cannot be in a block scalar");
            refused(inner, json!(attack), 4, "cannot be in a block scalar");
            continue;
        }
        check(inner, json!(attack), json!(format!("a {attack}\nb")));
        if attack.is_empty() || attack.starts_with(char::is_whitespace) {
            refused(literal, json!(attack), 4, "cannot start a block scalar");
            continue;
        }
        check(literal, json!(attack), json!(attack));
        if !attack.contains('\n') {
            check(folded, json!(attack), json!(attack));
        }
    }
    refused(literal, json!(" x\nevil: 1"), 4, "cannot start a block scalar");
    let explicit = "accept:\n  wheel.key.accept:\n    - match: |2-\n          {{ data['v'] }}\n";
    check(explicit, json!(" x\n- match: '*'"), json!("   x\n  - match: '*'"));
}

/// What Salt's Jinja writes (Python's `str()`) inside quotes and text; YAML values when bare.
#[test]
fn non_strings_are_python_text_when_spliced_and_yaml_when_bare() {
    let bare = "accept:\n  wheel.key.accept:\n    - match: {{ data['v'] }}\n";
    let single = "accept:\n  wheel.key.accept:\n    - match: '{{ data['v'] }}'\n";
    let double = "accept:\n  wheel.key.accept: [{match: \"{{ data['v'] }}\"}]\n";
    let text = "accept:\n  wheel.key.accept:\n    - match: v={{ data['v'] }}\n";
    for (v, as_bare, as_text) in [
        (json!(true), json!(true), "True"),
        (json!(false), json!(false), "False"),
        (json!(null), json!(null), "None"),
        (json!(3), json!(3), "3"),
        (json!(1.5), json!(1.5), "1.5"),
        (json!("web1"), json!("web1"), "web1"),
        (json!([1, "a'b"]), json!([1, "a'b"]), "[1, \"a'b\"]"),
        (json!({"k": "v"}), json!({"k": "v"}), "{'k': 'v'}"),
    ] {
        check(bare, v.clone(), as_bare);
        check(single, v.clone(), json!(as_text));
        check(double, v.clone(), json!(as_text));
        check(text, v, json!(format!("v={as_text}")));
    }
}

/// Serializer filters, `|e`, macros and `{% set %}` blocks put their value where they are
/// printed like any `{{ }}`; only `|safe` pastes raw text.
#[test]
fn filters_macros_and_blocks_are_placed_too() {
    let attack = "web1'}, {match: '*'}] #";
    let head = "accept:\n  wheel.key.accept:\n    - match: ";
    for (body, want) in [
        ("{{ data['v']|json }}", json!(attack)),
        ("'{{ data['v']|json }}'", json!(format!("\"{attack}\""))),
        ("{{ data['v']|yaml }}", json!(attack)),
        ("'{{ data['v']|yaml_dquote }}'", json!(format!("\"{attack}\""))),
        ("{{ data['v']|e }}", json!(attack)),
        ("'{{ data['v']|e }}'", json!(attack)),
        ("{% macro m(x) %}'{{ x }}'{% endmacro %}{{ m(data['v']) }}", json!(attack)),
        ("{% set b %}'{{ data['v'] }}'{% endset %}{{ b }}", json!(attack)),
        ("{% set b %}x{{ data['v'] }}{% endset %}\"{{ b }}\"", json!(format!("x{attack}"))),
    ] {
        check(&format!("{head}{body}\n"), json!(attack), want);
    }
}

/// A line after a plain scalar may continue it (`a\n  b` is `a b`): a value there must be
/// plain text, whichever way YAML reads the line.
#[test]
fn a_possible_plain_continuation_takes_plain_text_only() {
    let sls = "accept:\n  wheel.key.accept: [{match: pre\n    {{ data['v'] }}}]\n";
    check(sls, json!("web1"), json!("pre web1"));
    refused(sls, json!("a, b"), 3, "may continue");
    refused(sls, json!("a}, {match: '*'"), 3, "may continue");
    // A line that starts an item of the parent is no continuation.
    let next = "run:\n  local.cmd.run:\n    - tgt: web\n    - arg: [{{ data['v'] }}]\n";
    let run = json!({"id": "run", "client": "local", "fun": "cmd.run", "tgt": "web", "tgt_type": "glob", "arg": ["a: b"], "kwarg": {}});
    assert_eq!(react(next, json!({"v": "a: b"})), Ok(vec![run]));
}

/// Places a value cannot go: anchors, tags, aliases, directives, after a backslash.
#[test]
fn values_in_yaml_syntax_are_refused() {
    refused("a: &{{ data['v'] }} x\n", json!("x"), 1, "anchor, alias or tag");
    refused("a: !{{ data['v'] }} x\n", json!("x"), 1, "anchor, alias or tag");
    refused("a: *{{ data['v'] }}\n", json!("x"), 1, "anchor, alias or tag");
    refused("%YAML {{ data['v'] }}\n---\na: 1\n", json!("1.1"), 1, "directive");
    refused("a:\n  b: \"\\{{ data['v'] }}\"\n", json!("n"), 2, "backslash");
    refused("a: '{{ data['v'] }}\n", json!("x"), 1, "unterminated");
}

/// Strings YAML 1.1 (what the loader reads) types as something else when plain: booleans,
/// integers (octal, underscores, sexagesimal), floats, null, the merge key and the value key.
const YAML11_TYPED: &[&str] = &[
    "yes",
    "Yes",
    "NO",
    "on",
    "On",
    "OFF",
    "off",
    "no",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "010",
    "0664",
    "1_0",
    "-1_000",
    "+12",
    "0x1f",
    "0b101",
    "1:30",
    "190:20:30",
    "1_0.5",
    ".5",
    "1e3",
    "6.8523015e+5",
    ".inf",
    "-.Inf",
    ".NaN",
    "<<",
    "=",
    "...",
    "... x",
];

/// `data['v']` rendered and spliced into `template`, then read by the loader Salt's is.
fn load_rendered(template: &str, v: &str) -> Result<serde_yaml::Value, String> {
    let data = json!({ "v": v });
    let Value::Object(data) = data else { unreachable!() };
    let text = render::Renderer::new()
        .render("t.sls", template, "my/tag", &data)
        .map_err(|(_, why)| format!("render: {why}"))?;
    yaml::load(&text).map_err(|(_, why)| format!("yaml: {why}\n{text}"))
}

/// An event string the loader would type (a minion id `yes`, `010`, `1:30`, `<<`) stays that
/// string as a whole value and as a key, in block and flow context.
#[test]
fn yaml_1_1_typed_strings_stay_strings() {
    for template in [
        "a: {{ data['v'] }}\n",
        "{{ data['v'] }}: x\n",
        "a: [{{ data['v'] }}]\n",
        "a: { {{ data['v'] }}: x}\n",
        "a: {{ data['v']|yaml }}\n",
        "a: {{ [data['v']]|yaml }}\n",
    ] {
        for v in YAML11_TYPED {
            // What the author would get by quoting the value themselves.
            let quoted = template
                .replace("{{ data['v'] }}", &serde_json::to_string(v).unwrap())
                .replace("{{ data['v']|yaml }}", &serde_json::to_string(v).unwrap())
                .replace(
                    "{{ [data['v']]|yaml }}",
                    &format!("[{}]", serde_json::to_string(v).unwrap()),
                );
            let want = yaml::load(&quoted).unwrap();
            assert_eq!(load_rendered(template, v), Ok(want), "{template} with {v:?}");
        }
    }
}

/// Whatever the splice pass writes, the loader reads each value as part of exactly the one
/// scalar it was placed in: the document is the one a harmless value gives, with that value
/// replaced. Flow context is where the splicer and saphyr-parser could disagree (`[:{{ v }}]`
/// starts a plain scalar at `:`; `:?` does not end one).
#[test]
fn the_loader_reads_each_spliced_value_as_one_scalar() {
    const SENTINEL: &str = "sentinelvalue";
    let templates = [
        "a: {{ data['v'] }}\n",
        "{{ data['v'] }}: x\n",
        "a: [{{ data['v'] }}]\n",
        "a: { {{ data['v'] }}: x}\n",
        "a: [:{{ data['v'] }}]\n",
        "a: [ :{{ data['v'] }}, b]\n",
        "a: [x:?{{ data['v'] }}]\n",
        "a: [?{{ data['v'] }}]\n",
        "a: [x?{{ data['v'] }}]\n",
        "a: [x:{{ data['v'] }}]\n",
        "a: [{{ data['v'] }}:x]\n",
        "a: [{{ data['v'] }}:?x]\n",
        "a: {k: :{{ data['v'] }}}\n",
        "a: {:{{ data['v'] }}: x}\n",
        "a: [\"k\":{{ data['v'] }}]\n",
        "a: {\"k\":{{ data['v'] }}}\n",
        "a: {'k':{{ data['v'] }}}\n",
        "a: [\"k\" :{{ data['v'] }}]\n",
        "a: [x, \"k\", :{{ data['v'] }}]\n",
        "a: [x,\n    :{{ data['v'] }}]\n",
        "a: [x #{{ data['v'] }}\n  ]\n",
        "a: x:{{ data['v'] }}\n",
        "a: :{{ data['v'] }}\n",
        "a: pre {{ data['v'] }}-{{ data['v'] }} post\n",
        "a: [{match: pre {{ data['v'] }}-{{ data['v'] }} post}]\n",
        "a: '{{ data['v'] }}'\n",
        "a: [\"{{ data['v'] }}\"]\n",
    ];
    let replace = |doc: &serde_yaml::Value, v: &str| -> serde_yaml::Value {
        fn walk(doc: &serde_yaml::Value, v: &str) -> serde_yaml::Value {
            use serde_yaml::Value as Y;
            match doc {
                Y::String(s) => Y::String(s.replace(SENTINEL, v)),
                Y::Sequence(items) => Y::Sequence(items.iter().map(|i| walk(i, v)).collect()),
                Y::Mapping(map) => {
                    Y::Mapping(map.iter().map(|(k, i)| (walk(k, v), walk(i, v))).collect())
                }
                other => other.clone(),
            }
        }
        walk(doc, v)
    };
    for template in templates {
        let base = load_rendered(template, SENTINEL).unwrap_or_else(|e| panic!("{template}: {e}"));
        for v in ATTACKS.iter().chain(YAML11_TYPED) {
            // None of these placements needs a refusal: each value is spliced and read back.
            let got = load_rendered(template, v).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(got, replace(&base, v), "{template} with {v:?}");
        }
    }
}
