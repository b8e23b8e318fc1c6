//! Salt's Jinja and YAML semantics in reactor SLS files, through `Reactor::react`: strict
//! undefined values, mutable lists and dicts (`do`), the trailing newline, YAML 1.1 scalars.

use super::render::Renderer;
use super::tests::TempDir;
use super::*;
use serde_json::json;

/// Renders `sls` (written to a fresh file) for one event on tag `t/ag`.
fn react(sls: &str, data: Value) -> Reactions {
    let dir = TempDir::new("render");
    let file = dir.write("r.sls", sls);
    let reactor = Reactor::new(vec![Rule { pattern: "t/*".into(), sls: vec![file] }]);
    let Value::Object(data) = data else { panic!("event data must be a map") };
    reactor.react("t/ag", &data)
}

/// The reactions' JSON, failing on any error.
#[track_caller]
fn reactions(sls: &str, data: Value) -> Value {
    let out = react(sls, data);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    Value::Array(out.reactions.iter().map(Reaction::to_json).collect())
}

/// The one error of the file: (kind, line, message).
#[track_caller]
fn failure(sls: &str, data: Value) -> (&'static str, Option<usize>, String) {
    let out = react(sls, data);
    assert!(out.reactions.is_empty(), "{:?}", out.reactions);
    let [error] = out.errors.as_slice() else { panic!("want one error, got {:?}", out.errors) };
    (error.kind, error.line, error.message.clone())
}

/// The kwarg of the single reaction `r` of `sls`.
#[track_caller]
fn kwarg(sls: &str, data: Value) -> Value {
    let got = reactions(sls, data);
    assert_eq!(got.as_array().map(Vec::len), Some(1), "{got}");
    got[0]["kwarg"].clone()
}

fn event() -> Value {
    json!({"id": "web1", "act": "pend", "data": {"minions": ["web1", "db1", "web2"], "n": 2}})
}

#[test]
fn undefined_values_fail_the_render() {
    let cases = [
        // A missing key printed, two levels down (Salt: "Jinja variable 'dict object' has no
        // attribute 'missing'").
        ("ok:\n  local.test.ping:\n    - tgt: {{ data['data']['missing'] }}\n", 3),
        // Tested for truth: StrictUndefined raises on bool() too.
        ("{% if data['missing'] %}\nx:\n  local.test.ping: []\n{% endif %}\n", 1),
        // Compared (Jinja2's StrictUndefined raises on `==` too).
        ("{% if data['missing'] == 'x' %}\nx:\n  local.test.ping: []\n{% endif %}\n", 1),
        // A misspelt variable.
        ("x:\n  local.test.ping:\n    - tgt: {{ minion_id }}\n", 3),
        // An attribute of an undefined value.
        ("x:\n  local.test.ping:\n    - tgt: {{ data.missing.id }}\n", 3),
        // Iterated.
        ("{% for m in data['nodes'] %}\n{{ m }}:\n  local.test.ping: []\n{% endfor %}\n", 1),
        // Passed to a filter that wants a value, Salt's serializers included.
        ("x:\n  local.test.ping:\n    - tgt: {{ data['missing']|upper }}\n", 3),
        ("x:\n  local.test.arg:\n    - kwarg: {{ data['missing']|json }}\n", 3),
        ("x:\n  local.test.arg:\n    - kwarg: {{ data['missing']|tojson }}\n", 3),
        ("x:\n  local.test.arg:\n    - kwarg: {{ data['missing']|yaml }}\n", 3),
        ("x:\n  local.test.arg:\n    - arg: [{{ data['missing']|yaml_dquote }}]\n", 3),
        ("x:\n  local.test.arg:\n    - arg: [{{ data['missing']|yaml_squote }}]\n", 3),
    ];
    for (sls, line) in cases {
        let (kind, at, message) = failure(sls, event());
        assert_eq!((kind, at), ("render", Some(line)), "{sls}: {message}");
        assert!(message.contains("undefined"), "{sls}: {message}");
    }
}

#[test]
fn undefined_values_can_still_be_asked_about() {
    let sls = "{% if data['missing'] is not defined and 'missing' not in data %}
probe:
  local.test.arg:
    - tgt: {{ data['id'] }}
    - kwarg:
        dflt: {{ data['missing']|default('none given') }}
        get: {{ data.get('missing', 'fallback') }}
        none: {{ data.get('missing') }}
        deep: {{ data['data'].get('missing', {}).get('x', 0) }}
        defined: {{ data['data']['n'] is defined }}
{% endif %}
";
    assert_eq!(
        kwarg(sls, event()),
        json!({"dflt": "none given", "get": "fallback", "none": null, "deep": 0, "defined": true})
    );
}

#[test]
fn lists_and_dicts_mutate_as_in_python() {
    let sls = "{% set webs = [] %}
{% set groups = {} %}
{% for m in data['data']['minions'] %}
{%   if m.startswith('web') %}{% do webs.append(m) %}{% endif %}
{%   do groups.setdefault(m[:2], []).append(m) %}
{% endfor %}
{% set opts = {'env': 'prod'} %}
{% do opts.update({'id': data['id']}) %}
{% do opts.update(level=3, env='staging') %}
{% set extra = dict(a=1) %}
{% do extra.update([('b', 2)]) %}
{% set popped = extra.pop('a') %}
{% set seq = [3, 1] %}
{% do seq.extend([2, 5]) %}
{% do seq.insert(0, 0) %}
{% do seq.remove(5) %}
{% set last = seq.pop() %}
{% do seq.sort() %}
restart_web:
  local.service.restart:
    - tgt: {{ webs|join(',') }}
    - tgt_type: list
    - kwarg:
        webs: {{ webs }}
        count: {{ webs|length }}
        same: {{ webs == ['web1', 'web2'] }}
        groups: {{ groups|json }}
        opts: {{ opts }}
        extra: {{ extra }}
        popped: {{ popped }}
        seq: {{ seq }}
        last: {{ last }}
        first: {{ webs[0] ~ '/' ~ webs[-1] }}
        loop: {% for w in webs %}{{ w }}{% endfor %}
        keys: {{ groups.keys()|list }}
        items: {{ opts.items()|list|length }}
        empty: {{ [] if webs else 'x' }}
";
    let got = reactions(sls, event());
    assert_eq!(got[0]["tgt"], json!("web1,web2"));
    assert_eq!(
        got[0]["kwarg"],
        json!({
            "webs": ["web1", "web2"], "count": 2, "same": true,
            "groups": {"db": ["db1"], "we": ["web1", "web2"]},
            "opts": {"env": "staging", "id": "web1", "level": 3},
            "extra": {"b": 2}, "popped": 1, "seq": [0, 1, 3], "last": 2,
            "first": "web1/web2", "loop": "web1web2", "keys": ["we", "db"], "items": 3,
            "empty": [],
        })
    );
}

#[test]
fn literals_in_text_strings_and_subscripts_are_left_alone() {
    let sls = "{# a [comment] {with} brackets #}
lit:
  local.test.arg:
    - tgt: '[x]'
    - kwarg:
        text: {{ '[1, 2] {a}' }}
        index: {{ data['data']['minions'][1] }}
        slice: {{ data['data']['minions'][1:] }}
        nested: {{ [[1], {'a': [2]}][1]['a'] }}
        raw: {% raw %}'{{ [ }}'{% endraw %}
";
    assert_eq!(
        kwarg(sls, event()),
        json!({"text": "[1, 2] {a}", "index": "db1", "slice": ["db1", "web2"], "nested": [2], "raw": "{{ [ }}"})
    );
}

#[test]
fn mutation_is_bounded() {
    // Doubling a list 40 times would be 2^40 elements.
    let (kind, line, message) = failure(
        "{% set l = [data['id']] %}\n{% for i in range(40) %}{% do l.extend(l) %}{% endfor %}\n",
        event(),
    );
    assert_eq!((kind, line), ("render", Some(2)));
    assert!(message.contains("mutation budget exceeded"), "{message}");
    // Big strings kept by appending count by their bytes.
    let (_, _, message) = failure(
        "{% set l = [] %}{% for i in range(100) %}{% do l.append('x' * 100000) %}{% endfor %}",
        event(),
    );
    assert!(message.contains("mutation budget exceeded"), "{message}");
    // A list inside itself would print forever.
    for sls in [
        "{% set l = [] %}{% do l.append(l) %}",
        "{% set d = {} %}{% set l = [d] %}{% do d.update(k=l) %}",
        "{% set d = {} %}{% do d.setdefault('k', [d]) %}",
        // Through a lazy concatenation (an iterable, not a list).
        "{% set l = [] %}{% do l.append([l] + [1]) %}",
    ] {
        let (_, _, message) = failure(sls, event());
        assert!(message.contains("cannot put a list or dict inside itself"), "{sls}: {message}");
    }
    // Salt's sandbox refuses underscore attributes, so `__setitem__` is no way around it.
    let (_, _, message) = failure("{% set d = {} %}{% do d.__setitem__('k', 1) %}", event());
    assert!(message.contains("unknown method"), "{message}");
    // Event data stays read-only (Salt's `data` is a fresh dict per event; ours is shared).
    let (_, _, message) = failure("{% do data['data']['minions'].append('x') %}", event());
    assert!(message.contains("unknown method"), "{message}");
}

#[test]
fn the_trailing_newline_is_kept() {
    let sls = "motd:
  local.file.write:
    - tgt: {{ data['id'] }}
    - kwarg:
        path: /etc/motd
        contents: |
          managed by halite
";
    assert_eq!(kwarg(sls, event())["contents"], json!("managed by halite\n"));
    // Neither trim_blocks nor lstrip_blocks (Salt's defaults are off): the block's line and
    // its indentation stay.
    let render = |source: &str| Renderer::new().render("t.sls", source, "t", &Map::new());
    assert_eq!(
        render("a:\n  {% if true %}\n  b: 1\n  {% endif %}\n"),
        Ok("a:\n  \n  b: 1\n  \n".into())
    );
    assert_eq!(render("a: 1"), Ok("a: 1".into()));
}

#[test]
fn yaml_scalars_read_as_salts_loader_reads_them() {
    let sls = "fix_perms:
  local.file.set_mode:
    - tgt: {{ data['id'] }}
    - arg:
      - /etc/app.conf
      - 0664
    - kwarg:
        recurse: yes
        follow: off
        force: On
        quoted: 'yes'
        quoted_mode: \"0664\"
        none: ~
        empty:
        zeros: 000
        negative_octal: -012
        hex: 0x1F
        bin: 0b101
        sexagesimal: 1:30
        underscores: 1_000
        float: 1.5e+3
        no_dot: 1e5
        date: 2026-12-02
        stamp: 2026-12-02 10:00:00
        octal_2: 0o17
        block: |
          text
        tagged_str: !!str 0664
        tagged_int: !!int \"12\"
        plain_tag: ! yes
";
    assert_eq!(
        reactions(sls, event())[0]["arg"],
        json!(["/etc/app.conf", 664]),
        "Salt's loader strips leading zeros: 0664 is decimal 664"
    );
    assert_eq!(
        kwarg(sls, event()),
        json!({
            "recurse": true, "follow": false, "force": true, "quoted": "yes", "quoted_mode": "0664",
            "none": null, "empty": null, "zeros": 0, "negative_octal": -10, "hex": 31, "bin": 5,
            "sexagesimal": 90, "underscores": 1000, "float": 1500.0, "no_dot": "1e5",
            "date": "2026-12-02", "stamp": "2026-12-02 10:00:00", "octal_2": "0o17",
            "block": "text\n", "tagged_str": "0664", "tagged_int": 12, "plain_tag": "yes",
        })
    );
}

#[test]
fn yaml_duplicate_keys_merges_tags_and_documents() {
    // Salt's loader refuses a key written twice, at any level.
    let twice = "restart:\n  local.service.restart:\n    - tgt: a\nrestart:\n  local.cmd.run:\n    - tgt: b\n";
    assert_eq!(failure(twice, event()), ("yaml", Some(4), "found conflicting ID 'restart'".into()));
    let (kind, line, message) =
        failure("x:\n  local.test.arg:\n    - kwarg: {a: 1, a: 2}\n", event());
    assert_eq!((kind, line, message.as_str()), ("yaml", Some(3), "found conflicting ID 'a'"));
    // `<<` merges (the ID starting with `__` is no reaction); written keys win.
    let merge = "__defaults: &defaults
  timeout: 30
  env: prod
deploy:
  local.state.apply:
    - tgt: {{ data['id'] }}
    - kwarg:
        <<: *defaults
        env: staging
        both: {<<: [{a: 1}, {b: 2}], c: 3}
";
    assert_eq!(
        kwarg(merge, event()),
        json!({"timeout": 30, "env": "staging", "both": {"b": 2, "a": 1, "c": 3}})
    );
    // Merged maps that share a key conflict, as in Salt.
    let (_, _, message) =
        failure("x:\n  local.test.arg:\n    - kwarg: {<<: [{a: 1}, {a: 2}]}\n", event());
    assert_eq!(message, "found conflicting ID 'a'");
    // Only the safe tags; one document.
    for (sls, want) in [
        ("x: !!python/object:os.system {}\n", "could not determine a constructor for the tag"),
        ("x: !custom 1\n", "could not determine a constructor for the tag '!custom'"),
        ("x: !!int abc\n", "is not a valid int"),
        ("a: 1\n---\nb: 2\n", "expected a single document in the stream"),
        ("x: *nowhere\n", "unknown"),
        ("x: [unclosed\n", ""),
    ] {
        let (kind, line, message) = failure(sls, event());
        assert_eq!(kind, "yaml", "{sls}: {message}");
        assert!(line.is_some(), "{sls}: {message}");
        assert!(message.contains(want), "{sls}: {message}");
    }
}

#[test]
fn yaml_expansion_and_nesting_are_bounded() {
    // A "billion laughs": each level doubles the last.
    let mut sls = String::from("__a0: &a0 [x, x]\n");
    for i in 1..30 {
        sls.push_str(&format!("__a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
    }
    let (kind, _, message) = failure(&sls, event());
    assert_eq!(kind, "yaml");
    assert!(message.contains("more than 1000000 nodes"), "{message}");
    // Deep nesting stops at saphyr's own limit or at ours, before the stack does.
    for depth in [200, 100_000] {
        let deep = format!("x: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let (kind, _, message) = failure(&deep, event());
        assert_eq!(kind, "yaml");
        assert!(
            message.contains("nested deeper than 128") || message.contains("recursion limit"),
            "{message}"
        );
    }
    // Salt's ordinary anchors still work.
    let sls = "__t: &t web*\nping:\n  local.test.ping:\n    - tgt: *t\n";
    assert_eq!(reactions(sls, event())[0]["tgt"], json!("web*"));
}

/// Found by fuzzing (`reactor_sls`): a namespace holding itself made minijinja's own printing,
/// comparing and hashing recurse until the stack overflowed (the render worker aborted).
/// Such an assignment is refused where it happens, with its line.
#[test]
fn a_namespace_cannot_hold_itself() {
    let ns = "{% set ns = namespace(n=0) %}\n";
    for set in [
        "{% set ns.n = ns %}",
        "{% set ns.n = [ns] %}",
        "{%set ns.n=[ns]+[ns]%}",
        "{%- set ns.n = {'k': [1, ns]} -%}",
        "{% set ns.n = [1]|map('string')|list + [ns] %}",
        "{% set other = namespace(x=[]) %}{% do other.x.append(ns) %}{% set ns.n = [other] %}",
        "{% set ns.a, b = [ns], 1 %}",
        // Into a namespace inside the namespace (minijinja takes `ns.a.b`).
        "{% set ns.a = namespace(b=0) %}{% set ns.a.b = [ns.a] %}",
        "{% set ns.a = namespace(b=0) %}{% set ns.a.b = [ns] %}",
        // The block form's filters make the value.
        "{% set ns.n | default([ns], true) %}{% endset %}",
    ] {
        for print in ["", "x: {{ ns }}", "x: {{ ns|string }}", "x: {{ ns == ns.n }}"] {
            let sls = format!("{ns}{set}\n{print}\n");
            let (kind, line, message) = failure(&sls, event());
            assert_eq!((kind, line), ("render", Some(2)), "{sls}");
            assert!(message.contains("cannot put a namespace inside itself"), "{sls}: {message}");
        }
    }
}

/// Found by review: each step of these stores a shallow value into the deepest one so far,
/// so no single step nested deep, yet the value ended 100,000 levels deep and dropping or
/// printing it overflowed the stack. The first is an ordinary template (a tree from a path)
/// fed a hostile path. Each is refused at the step that passes 128 levels, with its line.
#[test]
fn values_built_deep_one_step_at_a_time_are_refused() {
    let path = "a/".repeat(100_000);
    let data = json!({"id": "web1", "path": path});
    let head = "{% set root, lhead, nshead = {}, [], namespace() %}\
                {% set st = namespace(cur=root, l=lhead, ns=nshead) %}\n";
    for step in [
        // A dict per part of the path.
        "{% do st.cur.setdefault(part, {}) %}{% set st.cur = st.cur[part] %}",
        "{% set n = {} %}{% do st.cur.update({part: n}) %}{% set st.cur = n %}",
        // A list in a list.
        "{% set n = [] %}{% do st.l.append(n) %}{% set st.l = n %}",
        "{% set n = [] %}{% do st.l.insert(0, [n]) %}{% set st.l = n %}",
        "{% set n = [] %}{% do st.l.extend([n]) %}{% set st.l = n %}",
        // Namespaces, which keep no level of their own, alone or between lists.
        "{% set n = namespace(i=loop.index) %}{% set st.ns.next = n %}{% set st.ns = n %}",
        "{% set n = namespace(i=loop.index) %}{% set st.ns.next = [n] %}{% set st.ns = n %}",
        "{% set n = namespace(i=loop.index) %}{% do st.cur.setdefault('l', []).append(n) %}\
         {% set n.d = {} %}{% set st.cur = n.d %}",
    ] {
        let sls = format!(
            "{head}{{% for part in data['path'].split('/') %}}{step}{{% endfor %}}\n\
             r:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        n: {{{{ root|length }}}}\n"
        );
        let (kind, line, message) = failure(&sls, data.clone());
        assert_eq!((kind, line), ("render", Some(2)), "{step}: {message}");
        assert!(message.contains("value nested deeper than 128 levels"), "{step}: {message}");
    }
    // A real tree is left alone: 120 levels are fine, printed or as JSON.
    let sls = format!(
        "{head}{{% for part in data['path'].split('/') %}}\
         {{% do st.cur.setdefault(part, {{}}) %}}{{% set st.cur = st.cur[part] %}}{{% endfor %}}\n\
         r:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        s: {{{{ root|string|length > 0 }}}}\n        \
         j: {{{{ root|tojson }}}}\n"
    );
    let got = kwarg(&sls, json!({"path": "a/".repeat(119) + "a"}));
    assert_eq!(got["s"], json!(true));
    let (mut depth, mut at) = (0, &got["j"]);
    while let Some(next) = at.get("a") {
        (depth, at) = (depth + 1, next);
    }
    assert_eq!((depth, at), (120, &json!({})));
}

/// Found by an attacking review: a `loop` holds its item, its iterator and what
/// `loop.changed()` saw without showing them, so a chain of loops (each iterating over a list
/// that holds the previous one), one per part of a hostile path, was one level deep to the
/// check and overflowed the stack when freed. A loop object is not stored at all.
#[test]
fn a_loop_object_cannot_be_stored() {
    let data = json!({"id": "web1", "path": "a/".repeat(100_000)});
    for step in [
        "{% for _ in [st.cur] %}{% set st.cur = loop %}{% endfor %}",
        "{% for _ in [1] %}{% if loop.changed(st.cur) %}{% endif %}{% set st.cur = loop %}{% endfor %}",
        "{% for _ in [st.cur] %}{% do st.l.append([loop]) %}{% endfor %}",
    ] {
        let sls = format!(
            "{{% set st = namespace(cur=none, l=[]) %}}\n\
             {{% for part in data['path'].split('/') %}}{step}{{% endfor %}}\nr: {{}}\n"
        );
        let (kind, line, message) = failure(&sls, data.clone());
        assert_eq!((kind, line), ("render", Some(2)), "{step}: {message}");
        assert!(message.contains("a loop object cannot be stored"), "{step}: {message}");
    }
    // The outer loop is still there to read, as Jinja's idiom has it.
    let sls = "{% for a in [1, 2] %}{% set outer = loop %}{% for b in [3] %}\
               {% if outer.last %}\nr:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        \
               i: {{ outer.index }}\n{% endif %}{% endfor %}{% endfor %}\n";
    assert_eq!(kwarg(sls, event()), json!({"i": 2}));
}

/// Found by an attacking review: Halite cannot tell minijinja's namespaces apart, so each
/// namespace stored inside another value counts one level deeper than the last one stored
/// (sound: a chain of them is refused). A template that stores a new namespace into the same
/// attribute per item is refused past about 127 items, with a message that says why.
#[test]
fn namespaces_stored_again_and_again_are_refused_past_the_depth_they_could_have() {
    let sls = "{% set best = namespace(item=none, n=0) %}\
        {% for m in data['minions'] %}{% set cand = namespace(name=m) %}\
        {% set best.item = cand %}{% set best.n = best.n + 1 %}{% endfor %}\n\
        r:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        n: {{ best.n }}\n        \
        last: {{ best.item.name }}\n";
    let minions = |n: usize| (0..n).map(|i| format!("web{i}")).collect::<Vec<_>>();
    let got = kwarg(sls, json!({"id": "web1", "minions": minions(100)}));
    assert_eq!(got, json!({"n": 100, "last": "web99"}));
    let (kind, line, message) = failure(sls, json!({"id": "web1", "minions": minions(200)}));
    assert_eq!((kind, line), ("render", Some(1)));
    assert!(message.contains("Halite cannot tell namespaces apart"), "{message}");
}

#[test]
fn looking_through_namespace_values_is_bounded() {
    // Each assignment looks through 100,001 values; fuel alone would allow far more of them.
    let sls = "{% set ns = namespace() %}{% set big = range(100000)|list %}
{% for i in range(1100) %}{% set ns.x = big %}{% endfor %}";
    let (kind, line, message) = failure(sls, event());
    assert_eq!((kind, line), ("render", Some(2)));
    assert!(message.contains("may look through 100000000 values"), "{message}");
}

/// Found by review: the check was given the names before each `.` rather than what is
/// assigned into, so `ns.a.b = v` checked a variable `a` (refusing an unrelated namespace
/// of that name) and never `ns.a`.
#[test]
fn nested_namespace_targets_check_the_object_assigned_into() {
    let sls = "{% set a = namespace(b=5) %}{% set ns = namespace(a=namespace(b=0)) %}
{% set ns.a.b = a %}{% set ns.a.c, ns.d = a.b, [a] %}
r:
  local.test.arg:
    - tgt: x
    - kwarg:
        b: {{ ns.a.b.b }}
        c: {{ ns.a.c }}
        d: {{ ns.d|length }}
";
    assert_eq!(kwarg(sls, event()), json!({"b": 5, "c": 5, "d": 1}));
    // The accumulation idiom looks through the list at each step: quadratic, as in Python.
    let sls = "{% set ns = namespace(l=[]) %}{% for i in range(3000) %}{% set ns.l = ns.l + [i] %}\
               {% endfor %}\nr:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        n: {{ ns.l|length }}\n";
    assert_eq!(kwarg(sls, event()), json!({"n": 3000}));
}

#[test]
fn namespaces_still_work_as_in_salt() {
    let sls = "{% set ns = namespace(found=false, names=[], n=0) %}
{% set inner = namespace(v=1) %}
{% for m in data['data']['minions'] %}
{%- if m.startswith('web') %}{% set ns.found = true %}{% set ns.names = ns.names + [m] %}{% endif %}
{%- set ns.n = ns.n + 1 %}
{%- endfor %}
{% set ns.inner = inner %}{% set ns.again = ns.names %}
{% set ns.block %}text {{ ns.n }}{% endset %}
{%- macro bump() %}{% set ns.n = ns.n + 1 %}{% endmacro %}{{ bump() }}
r:
  local.test.arg:
    - tgt: x
    - kwarg:
        found: {{ ns.found }}
        names: {{ ns.names }}
        again: {{ ns.again }}
        n: {{ ns.n }}
        inner: {{ ns.inner.v }}
        block: {{ ns.block }}
";
    assert_eq!(
        kwarg(sls, event()),
        json!({"found": true, "names": ["web1", "web2"], "again": ["web1", "web2"], "n": 4, "inner": 1, "block": "text 3"})
    );
}

/// Found by fuzzing (`reactor_sls`): minijinja's parser recurses once per unary operator and
/// per inline `else` with no limit of its own; 30,000 of them overflowed the stack.
#[test]
fn expressions_nested_past_what_the_parser_bounds_are_refused_with_their_line() {
    for (expr, why) in [
        (format!("0{}1", "-".repeat(60_000)), "unary operators in a row"),
        (format!("{}1", "not ".repeat(60_000)), "unary operators in a row"),
        (format!("{}1", "1 if 1 else ".repeat(60_000)), "inline 'else's"),
        (format!("1 + {}1", "- ".repeat(17)), "unary operators in a row"),
    ] {
        let sls = format!("a: 1\nx: {{{{ {expr} }}}}\n");
        let (kind, line, message) = failure(&sls, event());
        assert_eq!((kind, line), ("render", Some(2)), "{message}");
        assert!(message.contains("expression nested too deeply"), "{message}");
        assert!(message.contains(why), "{message}");
    }
    let sls = "{% set ns = namespace(n=0------------------------------------------3) %}x: 1\n";
    let (_, line, message) = failure(sls, event());
    assert_eq!(line, Some(1), "{message}");
    // What real templates write still renders.
    let sls = format!(
        "r:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        n: {{{{ - -2 }}}}\n        \
         t: {{{{ not not data['id'] }}}}\n        i: {{{{ {}0 }}}}\n        m: {{{{ 1 - 1 - 1 }}}}\n        \
         not_in: {{{{ 'x' not in data['id'] and data['id'] is not none }}}}\n",
        "1 if false else ".repeat(60)
    );
    assert_eq!(kwarg(&sls, event()), json!({"n": 2, "t": true, "i": 0, "m": -1, "not_in": true}));
}

/// Found by `reactor_sls` (session 15): a format field wider than memory —
/// `'%18446744068613951616s' | format(x)` — panicked in minijinja ("capacity overflow"), and
/// one of three billion (`%3000000000s`, `'{:>3000000000}'.format(x)`) aborted on the failed
/// allocation. Such a field is refused; ordinary widths still format.
#[test]
fn a_format_field_wider_than_a_render_is_refused() {
    for expr in [
        "'%18446744068613951616s' | format('x')",
        "'%3000000000s' | format('x')",
        "'{:>3000000000}'.format('x')",
        "'%(k)3000000000s' | format(k='x')",
        "'a\\nb' | indent(3000000000, true)",
        "'a' | indent(width=3000000000)",
        "('x\\n' * 1000000) | indent(1000000)",
        "('{:>1000000}' * 8).format(1, 2, 3, 4, 5, 6, 7, 8)",
        "'{0[}]:>3000000000}'.format({'}': 1})",
    ] {
        let sls = format!("r:\n  local.test.arg:\n    - tgt: x\n    - arg: [{{{{ {expr} }}}}]\n");
        let (kind, _, message) = failure(&sls, event());
        assert_eq!(kind, "render", "{expr}: {message}");
        assert!(
            message.contains("format fields may be at most 1048576 characters wide in all"),
            "{message}"
        );
    }
    let sls = "r:\n  local.test.arg:\n    - tgt: x\n    - kwarg:\n        a: {{ '%-5s|%03d' | format('ab', 7) }}\n        b: {{ '{:>4}{:.1f}'.format('x', 2.25) }}\n        c: {{ 'a\\nb' | indent(2) }}\n";
    assert_eq!(kwarg(sls, event()), json!({"a": "ab   |007", "b": "   x2.2", "c": "a\n  b"}));
}

/// Found with the format fields: a sequence repeated three billion times is made lazily, and
/// writing it out (`{{ [1] * 3000000000 }}`, `| json`) walked it for minutes. The walk stops
/// past what could fit in a render's output.
#[test]
fn a_value_too_big_to_write_is_refused_before_it_is_walked() {
    for expr in [
        "[1] * 3000000000",
        "([1] * 3000000000) | json",
        "{'k': [[1] * 3000000000]}",
        "([1] * 3000000000) | yaml_dquote",
        "([1] * 3000000000) | yaml_squote",
    ] {
        let sls = format!("r:\n  local.test.arg:\n    - tgt: x\n    - arg: [{{{{ {expr} }}}}]\n");
        let (kind, _, message) = failure(&sls, event());
        assert_eq!(kind, "render", "{expr}: {message}");
        assert!(message.contains("the value has more than 524288 elements"), "{message}");
    }
}
