//! Requisites and execution order, as Salt 3008's `DependencyGraph` does them: every
//! requisite (`require`, `watch`, `onchanges`, `onfail`, their `_any`/`_all` forms and the
//! `_in` forms) is an edge from the required chunk to the dependant; chunks run in
//! topological order, the ready chunk with the smallest `(order, state+name+fun)` first
//! (a chunk is pulled forward to the order of a dependant that comes earlier). A cycle is
//! Salt's "Recursive requisites were found" error. A requisite that names no state does not
//! stop the run: its state fails (see [`Plan::lost`]).

use super::registry::StateModules;
use super::value::{py_repr, py_str};
use halite_common::glob::{fnmatch, has_magic};
use serde_json::{json, Map, Number, Value};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A requisite type. The declaration order is Salt's precedence (its `weight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Req {
    Onfail,
    OnfailAny,
    OnfailAll,
    Require,
    RequireAny,
    Onchanges,
    OnchangesAny,
    Watch,
    WatchAny,
}

impl Req {
    /// In the order Salt's `add_requisites` reads them.
    const READ_ORDER: [Req; 9] = [
        Req::Require,
        Req::RequireAny,
        Req::Watch,
        Req::WatchAny,
        Req::Onfail,
        Req::OnfailAny,
        Req::OnfailAll,
        Req::Onchanges,
        Req::OnchangesAny,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Req::Onfail => "onfail",
            Req::OnfailAny => "onfail_any",
            Req::OnfailAll => "onfail_all",
            Req::Require => "require",
            Req::RequireAny => "require_any",
            Req::Onchanges => "onchanges",
            Req::OnchangesAny => "onchanges_any",
            Req::Watch => "watch",
            Req::WatchAny => "watch_any",
        }
    }

    fn weight(self) -> u8 {
        self as u8
    }

    /// The type without `_any`/`_all`.
    pub(crate) fn base(self) -> Req {
        match self {
            Req::Onfail | Req::OnfailAny | Req::OnfailAll => Req::Onfail,
            Req::Require | Req::RequireAny => Req::Require,
            Req::Onchanges | Req::OnchangesAny => Req::Onchanges,
            Req::Watch | Req::WatchAny => Req::Watch,
        }
    }

    pub(crate) fn is_any(self) -> bool {
        matches!(self, Req::OnfailAny | Req::RequireAny | Req::OnchangesAny | Req::WatchAny)
    }

    pub(crate) fn is_all(self) -> bool {
        self == Req::OnfailAll
    }
}

/// The `_in` forms and the requisite each puts on its targets.
const REQUISITES_IN: [(&str, Req); 4] = [
    ("require_in", Req::Require),
    ("watch_in", Req::Watch),
    ("onchanges_in", Req::Onchanges),
    ("onfail_in", Req::Onfail),
];

/// The compiled, ordered run.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The low chunks, in compile order (indexes below point here).
    pub chunks: Vec<Map<String, Value>>,
    /// Execution order.
    pub order: Vec<usize>,
    /// Per chunk: what it requires, `(type, chunk)`, in the order declared.
    pub deps: Vec<Vec<(Req, usize)>>,
    /// Per chunk: requisites that named no state, `(type, "state: name")`.
    pub lost: Vec<Vec<(Req, String)>>,
}

/// `<state>_|-<id>_|-<name>_|-<fun>`.
pub(crate) fn tag(low: &Map<String, Value>) -> String {
    let get = |k: &str| low.get(k).map(py_str).unwrap_or_default();
    format!("{}_|-{}_|-{}_|-{}", get("state"), get("__id__"), get("name"), get("fun"))
}

fn text<'a>(low: &'a Map<String, Value>, key: &str) -> &'a str {
    low.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Builds the requisite graph and orders the chunks.
pub(crate) fn plan(
    mut chunks: Vec<Map<String, Value>>,
    modules: &dyn StateModules,
) -> Result<Plan, Vec<String>> {
    let n = chunks.len();
    for chunk in &mut chunks {
        reconcile_watch(chunk, modules);
    }
    let mut graph = Graph::new(n);
    let mut lost = vec![Vec::new(); n];
    let mut errors = Vec::new();
    for i in 0..n {
        for req in Req::READ_ORDER {
            let Some(Value::Array(refs)) = chunks[i].get(req.name()) else { continue };
            for r in refs {
                let Some((key, val)) = reference(r) else { continue };
                let val = match val {
                    Value::Null => continue,
                    Value::String(s) => s.clone(),
                    _ => {
                        errors.push(format!(
                            "Requisite [{}: {key}] in state [{}] in SLS [{}] must have a string \
                             as the value",
                            req.name(),
                            text(&chunks[i], "name"),
                            text(&chunks[i], "__sls__")
                        ));
                        continue;
                    }
                };
                let found = find(&chunks, &key, &val);
                if found.is_empty() {
                    lost[i].push((req, format!("{key}: {val}")));
                }
                for from in found {
                    graph.add(from, i, req);
                }
            }
        }
    }
    for i in 0..n {
        for (key, req) in REQUISITES_IN {
            for (state, val) in in_references(chunks[i].get(key)) {
                let targets = find(&chunks, &state, &val);
                if targets.is_empty() && state != "id" {
                    let sls = text(&chunks[i], "__sls__");
                    errors.push(format!(
                        "Cannot extend ID '{val}' in 'base:{sls}'. It is not part of the high \
                         state.\nThis is likely due to a missing include statement or an \
                         incorrectly typed ID.\nEnsure that a state with an ID of '{val}' is \
                         available\nin environment 'base' and to SLS '{sls}'"
                    ));
                }
                for to in targets {
                    let has_watch = modules.has_mod_watch(text(&chunks[to], "state"));
                    let req = if req == Req::Watch && !has_watch { Req::Require } else { req };
                    graph.add(i, to, req);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let orders = normalise_orders(&mut chunks);
    let order = graph.sort(&chunks, &orders).map_err(|cycle| {
        let edges: Vec<String> = cycle
            .iter()
            .map(|&(from, to, req)| {
                format!(
                    "({}, '{}', {})",
                    chunk_str(&chunks[to]),
                    req.name(),
                    chunk_str(&chunks[from])
                )
            })
            .collect();
        vec![format!("Recursive requisites were found: {}", edges.join(", "))]
    })?;
    Ok(Plan { chunks, order, deps: graph.deps, lost })
}

/// Salt's `_reconcile_watch_req`: `watch` is `require` for states without a `mod_watch`.
fn reconcile_watch(chunk: &mut Map<String, Value>, modules: &dyn StateModules) {
    if modules.has_mod_watch(text(chunk, "state")) {
        return;
    }
    for (watch, require) in [("watch", "require"), ("watch_any", "require_any")] {
        if let Some(Value::Array(items)) = chunk.shift_remove(watch) {
            match chunk.entry(require).or_insert_with(|| json!([])) {
                Value::Array(list) => list.extend(items),
                other => *other = Value::Array(items),
            }
        }
    }
}

/// `- id` or `- state: name` (a `state.fun` key is trimmed to the state).
fn reference(r: &Value) -> Option<(String, &Value)> {
    match r {
        Value::String(_) => Some(("id".into(), r)),
        Value::Object(map) if map.len() == 1 => {
            let (key, val) = map.iter().next()?;
            Some((key.split('.').next().unwrap_or("").to_string(), val))
        }
        _ => None,
    }
}

/// The targets of a `*_in` argument: a list of references, or one `{state: name}` map.
fn in_references(value: Option<&Value>) -> Vec<(String, String)> {
    let refs: Vec<(String, &Value)> = match value {
        Some(Value::Array(items)) => items.iter().filter_map(reference).collect(),
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| (k.split('.').next().unwrap_or("").to_string(), v)).collect()
        }
        Some(Value::String(_)) => value.and_then(reference).into_iter().collect(),
        _ => Vec::new(),
    };
    refs.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, py_str(v))).collect()
}

/// Salt's `add_dependency` lookup: `sls` matches a file (or what it included), `id` an ID or
/// name, a state module its chunks by ID or name; globs allowed.
fn find(chunks: &[Map<String, Value>], key: &str, val: &str) -> Vec<usize> {
    let glob = has_magic(val);
    let hit = |s: &str| if glob { fnmatch(s, val) } else { s == val };
    let mut found = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let by_name = || hit(text(c, "__id__")) || hit(text(c, "name"));
        let matched = match key {
            "sls" => {
                hit(text(c, "__sls__"))
                    || c.get("__sls_included_from__")
                        .and_then(Value::as_array)
                        .is_some_and(|from| from.iter().any(|s| s.as_str().is_some_and(hit)))
            }
            "id" => by_name(),
            state => text(c, "state") == state && by_name(),
        };
        if matched {
            found.push(i);
        }
    }
    found
}

/// Salt's order numbers: `first` 0, none (or an odd value) the cap (the largest positive
/// integer order + 100, or 1), `last` and negative orders after everything, `names` spread
/// within their state's order. Written back into the chunks, as Salt does.
fn normalise_orders(chunks: &mut [Map<String, Value>]) -> Vec<f64> {
    let mut cap: i64 = 1;
    for chunk in chunks.iter() {
        if let Some(order) = chunk.get("order").and_then(Value::as_i64) {
            if order > cap - 1 && order > 0 {
                cap = order + 100;
            }
        }
    }
    let cap = cap as f64;
    let mut orders = Vec::with_capacity(chunks.len());
    for chunk in chunks.iter_mut() {
        let mut order = match chunk.get("order") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(cap),
            Some(Value::String(s)) if s == "last" => cap + 1_000_000.0,
            Some(Value::String(s)) if s == "first" => 0.0,
            _ => cap,
        };
        if let Some(name_order) = chunk.shift_remove("name_order").and_then(|v| v.as_f64()) {
            order += name_order / 10000.0;
        }
        if order < 0.0 {
            order += cap + 1_000_000.0;
        }
        let number = match order.fract() == 0.0 && order.abs() < 1e15 {
            true => Number::from(order as i64),
            false => Number::from_f64(order).unwrap_or_else(|| Number::from(0)),
        };
        chunk.insert("order".into(), Value::Number(number));
        orders.push(order);
    }
    orders
}

/// How Salt names a chunk in a cycle: `{'SLS': 's', 'ID': 'a'}` (+ `'NAME'` when it differs).
fn chunk_str(chunk: &Map<String, Value>) -> String {
    let mut map = Map::new();
    map.insert("SLS".into(), Value::String(text(chunk, "__sls__").into()));
    map.insert("ID".into(), Value::String(text(chunk, "__id__").into()));
    if text(chunk, "__id__") != text(chunk, "name") {
        map.insert("NAME".into(), Value::String(text(chunk, "name").into()));
    }
    py_repr(&Value::Object(map))
}

/// The requisite edges: required chunk → dependant.
struct Graph {
    /// Per chunk: `(type, required chunk)`.
    deps: Vec<Vec<(Req, usize)>>,
    /// Per chunk: `(dependant, type)`.
    out: Vec<Vec<(usize, Req)>>,
}

/// A ready chunk's sort key: (effective order, own order, state+name+fun, index).
struct Key(f64, f64, String, usize);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then(self.1.total_cmp(&other.1))
            .then_with(|| self.2.cmp(&other.2))
            .then(self.3.cmp(&other.3))
    }
}

impl Graph {
    fn new(n: usize) -> Graph {
        Graph { deps: vec![Vec::new(); n], out: vec![Vec::new(); n] }
    }

    fn add(&mut self, from: usize, to: usize, req: Req) {
        self.deps[to].push((req, from));
        self.out[from].push((to, req));
    }

    /// `lexicographical_topological_sort`, keyed as Salt's `_get_chunk_order`; `Err` is one
    /// cycle as `(required, dependant, type)` edges.
    fn sort(
        &self,
        chunks: &[Map<String, Value>],
        orders: &[f64],
    ) -> Result<Vec<usize>, Vec<(usize, usize, Req)>> {
        let n = chunks.len();
        let key = |i: usize| {
            let mut req_order: i16 = -1;
            let mut child_min = f64::INFINITY;
            for &(child, req) in &self.out[i] {
                if req_order <= i16::from(req.weight()) {
                    req_order = i16::from(req.weight());
                    child_min = child_min.min(orders[child]);
                }
            }
            let label = format!(
                "{}{}{}",
                text(&chunks[i], "state"),
                text(&chunks[i], "name"),
                text(&chunks[i], "fun")
            );
            Key(orders[i].min(child_min), orders[i], label, i)
        };
        let mut indegree: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<Reverse<Key>> =
            (0..n).filter(|&i| indegree[i] == 0).map(|i| Reverse(key(i))).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(Key(_, _, _, i))) = ready.pop() {
            order.push(i);
            for &(child, _) in &self.out[i] {
                indegree[child] -= 1;
                if indegree[child] == 0 {
                    ready.push(Reverse(key(child)));
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        Err(self.find_cycle(&indegree))
    }

    /// A cycle among the chunks the sort could not place, by depth-first search.
    fn find_cycle(&self, indegree: &[usize]) -> Vec<(usize, usize, Req)> {
        let n = indegree.len();
        let mut state = vec![0u8; n]; // 0 new, 1 on the path, 2 done
        for start in (0..n).filter(|&i| indegree[i] > 0) {
            if state[start] != 0 {
                continue;
            }
            // (node, next out-edge to try); `path` holds the edges taken.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut path: Vec<(usize, usize, Req)> = Vec::new();
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let Some(&(child, req)) = self.out[node].get(*next) else {
                    state[node] = 2;
                    stack.pop();
                    path.pop();
                    continue;
                };
                *next += 1;
                match state[child] {
                    1 => {
                        let at = path.iter().position(|&(from, _, _)| from == child);
                        let mut cycle = at.map_or_else(Vec::new, |at| path[at..].to_vec());
                        cycle.push((node, child, req));
                        return cycle;
                    }
                    0 => {
                        state[child] = 1;
                        path.push((node, child, req));
                        stack.push((child, 0));
                    }
                    _ => {}
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TABLE;

    fn plan(chunks: Vec<Map<String, Value>>) -> Result<Plan, Vec<String>> {
        super::plan(chunks, &TABLE)
    }

    fn chunk(state: &str, id: &str, fun: &str, extra: Value) -> Map<String, Value> {
        let mut c =
            json!({"state": state, "name": id, "__sls__": "s", "__env__": "base", "__id__": id})
                .as_object()
                .cloned()
                .unwrap();
        c.extend(extra.as_object().cloned().unwrap_or_default());
        c.insert("fun".into(), json!(fun));
        c
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.order.iter().map(|&i| text(&plan.chunks[i], "__id__")).collect()
    }

    #[test]
    fn orders_by_order_then_requisites() {
        let chunks = vec![
            chunk("test", "a", "nop", json!({"order": 10000, "require": [{"test": "c"}]})),
            chunk("test", "b", "nop", json!({"order": 10001})),
            chunk("test", "c", "nop", json!({"order": 10002})),
            chunk("test", "d", "nop", json!({"order": "first"})),
            chunk("test", "e", "nop", json!({"order": "last"})),
            chunk("test", "f", "nop", json!({"order": 1})),
        ];
        let plan = plan(chunks).unwrap();
        // c is pulled forward to its dependant's order, so it runs before b.
        assert_eq!(ids(&plan), ["d", "f", "c", "a", "b", "e"]);
        assert_eq!(plan.deps[0], [(Req::Require, 2)]);
        assert_eq!(plan.chunks[4]["order"], json!(1_010_100));
    }

    #[test]
    fn lookups_by_id_name_sls_and_glob() {
        let chunks = vec![
            chunk("file", "/tmp/x", "managed", json!({"order": 1})),
            chunk("cmd", "run-it", "run", json!({"name": "echo", "order": 2})),
            chunk(
                "test",
                "t",
                "nop",
                json!({"__sls__": "t", "order": 3, "require": ["run-it", {"file": "/tmp/*"}, {"sls": "s"}, {"cmd": "echo"}, {"file": "/nope"}]}),
            ),
        ];
        let plan = plan(chunks).unwrap();
        let deps: Vec<usize> = plan.deps[2].iter().map(|&(_, i)| i).collect();
        assert_eq!(deps, [1, 0, 0, 1, 1]);
        assert_eq!(plan.lost[2], [(Req::Require, "file: /nope".to_string())]);
    }

    #[test]
    fn watch_is_require_without_mod_watch_and_in_forms_add_edges() {
        let chunks = vec![
            chunk("file", "f", "managed", json!({"order": 1, "watch": [{"file": "g"}]})),
            chunk(
                "file",
                "g",
                "managed",
                json!({"order": 2, "require_in": [{"cmd": "c"}], "watch_in": [{"test": "t"}]}),
            ),
            chunk("cmd", "c", "run", json!({"order": 3})),
            chunk("test", "t", "nop", json!({"order": 4})),
        ];
        let plan = plan(chunks).unwrap();
        assert_eq!(plan.chunks[0].get("watch"), None);
        assert_eq!(plan.chunks[0]["require"], json!([{"file": "g"}]));
        assert_eq!(plan.deps[2], [(Req::Require, 1)]);
        assert_eq!(plan.deps[3], [(Req::Watch, 1)]);
        assert_eq!(ids(&plan), ["g", "f", "c", "t"]);
    }

    #[test]
    fn cycles_and_bad_references_are_errors() {
        let chunks = vec![
            chunk("test", "a", "nop", json!({"order": 1, "require": [{"test": "b"}]})),
            chunk("test", "b", "nop", json!({"order": 2, "require": [{"test": "a"}]})),
        ];
        let errors = plan(chunks).unwrap_err();
        assert_eq!(
            errors,
            ["Recursive requisites were found: ({'SLS': 's', 'ID': 'b'}, 'require', {'SLS': 's', 'ID': 'a'}), ({'SLS': 's', 'ID': 'a'}, 'require', {'SLS': 's', 'ID': 'b'})"]
        );
        let chunks = vec![chunk(
            "test",
            "a",
            "nop",
            json!({"require": [{"test": ["x"]}], "require_in": [{"cmd": "nothing"}]}),
        )];
        let errors = plan(chunks).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("must have a string as the value"), "{errors:?}");
        assert!(errors[1].starts_with("Cannot extend ID 'nothing' in 'base:s'"), "{errors:?}");
    }
}
