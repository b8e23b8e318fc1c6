//! Requisites in a reactor SLS, as Salt 3008 treats them: its reactor compiles the SLS with the
//! state compiler, whose dependency graph (`salt.utils.requisite.DependencyGraph`) orders the
//! chunks by `require`, `watch`, `onchanges`, `onfail`, `prereq` (and their `_any`/`_all`
//! forms) and by `order`; nothing evaluates them at run time, so every reaction runs whatever
//! happened to the others. The `_in` forms, `listen` and `use` need the state runtime, which
//! the reactor never reaches: they do nothing.

use super::compile::{Order, Pending};
use crate::glob::fnmatch;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The requisites that order chunks, with their weight in Salt's `RequisiteType` (declaration
/// order): a chunk required by several is pulled ahead by the heaviest kind.
const ORDERING: [(&str, u8); 10] = [
    ("onfail", 0),
    ("onfail_any", 1),
    ("onfail_all", 2),
    ("require", 3),
    ("require_any", 4),
    ("onchanges", 5),
    ("onchanges_any", 6),
    ("watch", 7),
    ("watch_any", 8),
    ("prereq", 9),
];
const PREREQ: u8 = 9;
const REQUIRE: u8 = 3;

/// The rest of Salt's requisite keywords: accepted, and without effect in a reactor.
const INERT: [&str; 11] = [
    "require_in",
    "watch_in",
    "onchanges_in",
    "onfail_in",
    "prereq_in",
    "listen",
    "listen_in",
    "use",
    "use_in",
    "onfail_stop",
    "prerequired",
];

/// One `- require: - local: foo` reference.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Requisite {
    kind: &'static str,
    weight: u8,
    /// The client prefix (`local`, `cmd`, `wheel` …), `id` or `sls`.
    key: String,
    value: String,
}

/// Takes the requisite keys out of a chunk's arguments, so they are never arguments of the
/// call, and says in `warnings` what the reactor does not do with them.
pub(super) fn take(
    args: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Requisite>, String> {
    let mut out = Vec::new();
    for (kind, weight) in ORDERING {
        let Some(refs) = args.shift_remove(kind) else { continue };
        if weight != REQUIRE && kind != "require_any" {
            warnings.push(format!(
                "'{kind}' only orders the reactions: the reactor runs every reaction whatever \
                 happened to the others, as Salt does"
            ));
        }
        if weight == PREREQ {
            warnings.push(
                "'prereq': Salt would also run the required reaction once more, in test \
                 mode, before this one; Halite runs it once"
                    .into(),
            );
        }
        let items = match refs {
            Value::Null => continue,
            Value::Array(items) => items,
            _ => return Err(format!("the {kind} statement needs to be formed as a list")),
        };
        for item in items {
            let (key, value) = match item {
                Value::String(id) => ("id".to_string(), Value::String(id)),
                Value::Object(map) if map.len() == 1 => {
                    let (key, value) = map.into_iter().next().expect("one entry");
                    // Salt's `trim_req`: `local.cmd.run: x` names the client `local`.
                    let key = key.split('.').next().unwrap_or_default().to_string();
                    (key, value)
                }
                other => {
                    return Err(format!(
                        "a {kind} item must be an ID or one `client: ID` pair, got {other}"
                    ))
                }
            };
            match value {
                Value::Null => {}
                Value::String(value) => out.push(Requisite { kind, weight, key, value }),
                _ => {
                    return Err(format!(
                        "requisite [{kind}: {key}] must have a string as the value"
                    ))
                }
            }
        }
    }
    for kind in INERT {
        if args.shift_remove(kind).is_some() {
            warnings.push(format!(
                "'{kind}' has no effect in a reactor SLS (Salt's reactor only orders chunks): \
                 ignored"
            ));
        }
    }
    Ok(out)
}

/// A chunk that could not be ordered: its file is dropped.
pub(super) struct Failure {
    pub(super) sls: String,
    pub(super) line: Option<usize>,
    pub(super) message: String,
}

/// Salt's `order_chunks`: the chunks in execution order. A requisite that names no reaction,
/// or a cycle, drops the files at fault (Salt drops every reaction of the event) and the rest
/// is ordered again without them.
pub(super) fn order(mut chunks: Vec<Pending>) -> (Vec<Pending>, Vec<Failure>) {
    let mut failures = Vec::new();
    loop {
        match sort(&chunks) {
            Ok(order) => {
                let mut slots: Vec<Option<Pending>> = chunks.into_iter().map(Some).collect();
                let sorted = order.into_iter().filter_map(|i| slots[i].take()).collect();
                return (sorted, failures);
            }
            Err(bad) => {
                let files: Vec<String> = bad.iter().map(|f| f.sls.clone()).collect();
                chunks.retain(|c| !files.contains(&c.reaction.sls));
                failures.extend(bad);
            }
        }
    }
}

/// One entry of the ready heap: Salt sorts by (order pulled ahead by dependents, own order,
/// client + name + fun, position).
struct Ready {
    key: (f64, f64, String),
    index: usize,
}

impl Ready {
    fn cmp_key(&self, other: &Ready) -> Ordering {
        self.key
            .0
            .total_cmp(&other.key.0)
            .then(self.key.1.total_cmp(&other.key.1))
            .then_with(|| self.key.2.cmp(&other.key.2))
            .then(self.index.cmp(&other.index))
    }
}

impl PartialEq for Ready {
    fn eq(&self, other: &Ready) -> bool {
        self.cmp_key(other) == Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Ready) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    /// Reversed: `BinaryHeap` pops the largest.
    fn cmp(&self, other: &Ready) -> Ordering {
        other.cmp_key(self)
    }
}

/// The DAG's lexicographical topological sort (networkx), as `DependencyGraph` runs it.
fn sort(chunks: &[Pending]) -> Result<Vec<usize>, Vec<Failure>> {
    let cap = chunks
        .iter()
        .filter_map(|c| match c.order {
            Order::Int(n) if n > 0 => Some(n),
            _ => None,
        })
        .max()
        .map_or(1.0, |n| n as f64 + 100.0);
    // out[i]: (dependent, weight), an edge once per (dependency, dependent, kind) as in a
    // networkx MultiDiGraph keyed by kind.
    let mut out: Vec<Vec<(usize, u8)>> = vec![Vec::new(); chunks.len()];
    let mut failures = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        for req in &chunk.requisites {
            let targets = resolve(chunks, req);
            if targets.is_empty() {
                failures.push(failure(
                    chunk,
                    format!(
                        "Referenced reaction does not exist for requisite [{}: ({}: {})] in \
                         reaction [{}]",
                        req.kind, req.key, req.value, chunk.reaction.name
                    ),
                ));
                break;
            }
            for t in targets {
                // prereq: Salt runs the declaring chunk before the one it names.
                let (from, to, weight) =
                    if req.weight == PREREQ { (i, t, REQUIRE) } else { (t, i, req.weight) };
                if !out[from].contains(&(to, weight)) {
                    out[from].push((to, weight));
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    let mut indegree = vec![0usize; chunks.len()];
    for edges in &out {
        for (to, _) in edges {
            indegree[*to] += 1;
        }
    }
    let key = |i: usize| -> (f64, f64, String) {
        let own = rank(chunks[i].order, cap);
        // Salt's `_get_chunk_order`: the dependents' orders as written (unset counts as
        // infinity), the heaviest requisite kind seen so far deciding.
        let (mut child_min, mut heaviest) = (f64::INFINITY, None);
        for (child, weight) in &out[i] {
            if heaviest.is_none_or(|h| h <= *weight) {
                heaviest = Some(*weight);
                let child_order = match chunks[*child].order {
                    Order::Default => f64::INFINITY,
                    Order::First => 0.0,
                    Order::Last => cap + 1_000_000.0,
                    Order::Int(n) => n as f64,
                    Order::Float(f) => f,
                };
                child_min = child_min.min(child_order);
            }
        }
        (own.min(child_min), own, chunks[i].key())
    };
    let mut ready: BinaryHeap<Ready> = (0..chunks.len())
        .filter(|i| indegree[*i] == 0)
        .map(|index| Ready { key: key(index), index })
        .collect();
    let mut sorted = Vec::with_capacity(chunks.len());
    while let Some(Ready { index, .. }) = ready.pop() {
        sorted.push(index);
        for (child, _) in &out[index] {
            indegree[*child] -= 1;
            if indegree[*child] == 0 {
                ready.push(Ready { key: key(*child), index: *child });
            }
        }
    }
    if sorted.len() < chunks.len() {
        let stuck: Vec<&str> = (0..chunks.len())
            .filter(|i| indegree[*i] > 0)
            .map(|i| chunks[i].reaction.id.as_str())
            .collect();
        return Err((0..chunks.len())
            .filter(|i| indegree[*i] > 0)
            .map(|i| {
                failure(
                    &chunks[i],
                    format!("Recursive requisites were found among: {}", stuck.join(", ")),
                )
            })
            .collect());
    }
    Ok(sorted)
}

/// Salt's final order: `first` 0, unset the cap, `last` and negative orders after everything.
pub(super) fn rank(order: Order, cap: f64) -> f64 {
    match order {
        Order::Default => cap,
        Order::First => 0.0,
        Order::Last => cap + 1_000_000.0,
        Order::Int(n) if n < 0 => cap + 1_000_000.0 + n as f64,
        Order::Int(n) => n as f64,
        Order::Float(f) if f < 0.0 => cap + 1_000_000.0 + f,
        Order::Float(f) => f,
    }
}

/// The chunks a reference names: by client prefix and name or ID, by `id`, or by `sls`
/// (the file's path); globs as `fnmatch`.
fn resolve(chunks: &[Pending], req: &Requisite) -> Vec<usize> {
    let hit = |text: &str| fnmatch(text, &req.value);
    chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| match req.key.as_str() {
            "sls" => hit(&c.reaction.sls),
            "id" => hit(&c.reaction.id) || hit(&c.reaction.name),
            state => c.state == state && (hit(&c.reaction.id) || hit(&c.reaction.name)),
        })
        .map(|(i, _)| i)
        .collect()
}

fn failure(chunk: &Pending, message: String) -> Failure {
    Failure { sls: chunk.reaction.sls.clone(), line: chunk.reaction.line, message }
}
