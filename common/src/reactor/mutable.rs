//! Python's mutable lists and dicts for reactor Jinja (`{% do l.append(x) %}`, `d.update()`,
//! `d.setdefault(k, []).append(v)` …), which Salt's Jinja allows and minijinja's values do not.
//!
//! minijinja builds list and dict literals as immutable values, so `rewrite` wraps every
//! `[…]`/`{…}` literal of the template's expressions in the `_mutable` filter before compiling;
//! `dict()` and `|list` make mutable values too.
//! [`List`] and [`Dict`] are objects with a lock inside: they print, iterate, compare and
//! serialize like ordinary lists and maps, and their mutating methods answer through
//! `Object::call_method` (read-only methods such as `get`/`items` fall through to pycompat).
//!
//! Growth is memory an event can make a template spend, so every value added by mutation is
//! weighed (elements and string bytes, deep) against a per-render [`Budget`]; weighing also
//! refuses to put a container inside itself (which would make printing it loop forever).
//!
//! Depth is bounded the same way. Each [`List`] and [`Dict`] keeps its *level*: the deepest it
//! has been put below another value by mutation or namespace assignment. A value stored into
//! a container at level `l` has its root at `l + 1`, and nothing in it may sit deeper than
//! [`MAX_NESTING`]; the walk raises the levels of the containers it passes. Without this, a
//! template that follows hostile data down a tree (`{% do st.cur.setdefault(part, {}) %}{% set
//! st.cur = st.cur[part] %}` for each part of a path) built a value 100,000 levels deep one
//! shallow step at a time, and dropping or printing it overflowed the stack. minijinja's
//! namespaces keep no level of their own (their type is private), so a render keeps the
//! deepest level any namespace has been stored at, and every namespace counts as that deep:
//! sound, but a render that stores namespaces inside other values again and again (a new one
//! into the same attribute per minion) is refused after about 127 of them. A `loop` object,
//! which holds values it does not show, is not stored at all.
//!
//! minijinja's `namespace()` objects are mutable too (`{% set ns.attr = value %}`), and there
//! minijinja itself takes the value: a namespace holding itself (`{% set ns.n = [ns] %}`) made
//! minijinja's own printing, comparing and hashing recurse until the stack overflowed.
//! `rewrite` therefore also passes every value assigned to a namespace attribute through the
//! `_namespace_value` filter, which refuses one that holds that namespace.

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Elements one render may add to lists and dicts by mutation.
pub(super) const MAX_ITEMS: usize = 100_000;
/// String bytes one render may add to lists and dicts by mutation.
pub(super) const MAX_BYTES: usize = 4 << 20;
/// Nesting a value may have: where mutation or namespace assignment puts it, and when it is
/// written out.
pub(super) const MAX_NESTING: usize = 128;
/// The filter `rewrite` wraps literals in.
pub(super) const FILTER: &str = "_mutable";
/// The filter `rewrite` passes values assigned to namespace attributes through.
pub(super) const NAMESPACE_FILTER: &str = "_namespace_value";
/// Values one render's namespace assignments may look through in all (a check that costs
/// native time, which fuel does not count: a few seconds at most). `{% set ns.l = ns.l +
/// [x] %}` looks through the whole list each time (minijinja's lazy concatenation makes that
/// slower than Python's copy: 1,000 steps ~0.15 s, 2,000 ~0.6 s here), so a loop doing it
/// may run about 14,000 times; `{% do ns.l.append(x) %}` costs nothing of it.
const MAX_CHECKED: usize = 100_000_000;
const BUDGET: &str = "halite.mutation_budget";

/// What mutation has added so far in one render (kept in the render's temp objects).
#[derive(Debug, Default)]
struct Budget {
    items: AtomicUsize,
    bytes: AtomicUsize,
    /// Values looked through by [`namespace_filter`].
    checked: AtomicUsize,
    /// The deepest level a namespace has been stored at (see the module doc).
    namespace_level: AtomicUsize,
}

impl Object for Budget {}

/// A Python list.
#[derive(Debug, Default)]
pub(super) struct List {
    items: Mutex<Vec<Value>>,
    /// See the module doc.
    level: AtomicUsize,
}

/// A Python dict (insertion order kept).
#[derive(Debug, Default)]
pub(super) struct Dict {
    items: Mutex<IndexMap<Value, Value>>,
    /// See the module doc.
    level: AtomicUsize,
}

/// Locks a list or dict; a poisoned lock (a panic elsewhere mid-update) still holds valid values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Charges `values`, about to be added to the container `into` (at `level`), to the render's
/// budget.
fn charge(state: &State, into: *const (), level: usize, values: &[&Value]) -> Result<(), Error> {
    let budget = state.get_or_set_temp_object(BUDGET, Budget::default);
    let mut weight =
        Weight { limit: MAX_ITEMS, max_bytes: MAX_BYTES, base: level + 1, ..Weight::default() };
    let walked = values.iter().try_for_each(|value| weight.walk(value, Into::Container(into), 0));
    budget.namespace_level.fetch_max(weight.namespace_level, Ordering::Relaxed);
    walked?;
    let items = budget.items.fetch_add(weight.items, Ordering::Relaxed) + weight.items;
    let bytes = budget.bytes.fetch_add(weight.bytes, Ordering::Relaxed) + weight.bytes;
    if items > MAX_ITEMS || bytes > MAX_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "mutation budget exceeded: a render may add {MAX_ITEMS} elements and \
                 {MAX_BYTES} bytes of text to lists and dicts"
            ),
        ));
    }
    Ok(())
}

/// What a value being stored must not hold.
#[derive(Clone, Copy)]
enum Into<'a> {
    /// The [`List`] or [`Dict`] at this address.
    Container(*const ()),
    /// These namespaces. minijinja does not say whether two values are the same object; a
    /// namespace compares equal to itself at once, and to another only by contents (so one
    /// with exactly the same contents is refused too: a small price, nesting is rare).
    Namespaces(&'a [Value]),
}

impl Into<'_> {
    fn is(self, value: &Value) -> bool {
        match self {
            Into::Container(at) => {
                value
                    .downcast_object_ref::<List>()
                    .is_some_and(|l| std::ptr::eq(l as *const List as *const (), at))
                    || value
                        .downcast_object_ref::<Dict>()
                        .is_some_and(|d| std::ptr::eq(d as *const Dict as *const (), at))
            }
            Into::Namespaces(targets) => {
                is_namespace(value) && targets.iter().any(|ns| value == ns)
            }
        }
    }
}

/// Whether `value` is one of minijinja's `namespace()` objects (a private type).
fn is_namespace(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.type_name().ends_with("::Namespace"))
}

#[derive(Default)]
struct Weight {
    items: usize,
    bytes: usize,
    /// Past this many items or bytes the walk stops (the caller reports it).
    limit: usize,
    max_bytes: usize,
    /// The level of the value walked (one more than the level of where it is stored).
    base: usize,
    /// The deepest level a namespace was found at.
    namespace_level: usize,
    /// Said after "nested deeper than …" (why the value's level starts where it does).
    why_deep: &'static str,
}

/// [`Weight::why_deep`] for a namespace assignment that namespaces stored earlier made deep.
const NAMESPACES_DEEP: &str = " (each namespace stored inside another value counts one level \
    deeper than the last one stored: Halite cannot tell namespaces apart)";

impl Weight {
    /// Adds up `value` deeply and raises the levels of the containers in it; refuses `into`
    /// inside it, and anything in it deeper than [`MAX_NESTING`].
    fn walk(&mut self, value: &Value, into: Into, depth: usize) -> Result<(), Error> {
        let level = self.base + depth;
        if level > MAX_NESTING {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("value nested deeper than {MAX_NESTING} levels{}", self.why_deep),
            ));
        }
        // A `loop` holds its item, its iterator and what `changed()` saw, none of which it
        // shows: a chain of loops stored one in the next was one level deep to this walk.
        if value.as_object().is_some_and(|o| o.type_name().ends_with("::Loop")) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a loop object cannot be stored in a list, dict or namespace",
            ));
        }
        if let Some(list) = value.downcast_object_ref::<List>() {
            list.level.fetch_max(level, Ordering::Relaxed);
        } else if let Some(dict) = value.downcast_object_ref::<Dict>() {
            dict.level.fetch_max(level, Ordering::Relaxed);
        } else if is_namespace(value) {
            self.namespace_level = self.namespace_level.max(level);
        }
        self.items += 1;
        if self.items > self.limit || self.bytes > self.max_bytes {
            return Ok(());
        }
        if into.is(value) {
            return Err(match into {
                Into::Container(_) => Error::new(
                    ErrorKind::InvalidOperation,
                    "cannot put a list or dict inside itself",
                ),
                Into::Namespaces(_) => {
                    Error::new(ErrorKind::InvalidOperation, "cannot put a namespace inside itself")
                }
            });
        }
        match value.kind() {
            ValueKind::String => self.bytes += value.as_str().map_or(0, str::len),
            ValueKind::Bytes => self.bytes += value.as_bytes().map_or(0, <[u8]>::len),
            ValueKind::Map => {
                for (k, v) in pairs(value)? {
                    self.walk(&k, into, depth + 1)?;
                    self.walk(&v, into, depth + 1)?;
                }
            }
            // Iterables too: `[l] + [x]` is a lazy concatenation that holds `l`.
            ValueKind::Seq | ValueKind::Iterable => {
                for item in value.try_iter()? {
                    self.walk(&item, into, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The `_namespace_value(ns, …)` filter: `value`, unless it holds one of the namespaces it is
/// being assigned into or nests too deep (see the module doc). Looking costs each render's
/// [`MAX_CHECKED`].
pub(super) fn namespace_filter(
    state: &State,
    value: Value,
    targets: Rest<Value>,
) -> Result<Value, Error> {
    let budget = state.get_or_set_temp_object(BUDGET, Budget::default);
    let left = MAX_CHECKED.saturating_sub(budget.checked.load(Ordering::Relaxed));
    let namespace_level = budget.namespace_level.load(Ordering::Relaxed);
    let mut weight = Weight {
        limit: left,
        max_bytes: usize::MAX,
        base: namespace_level + 1,
        why_deep: if namespace_level > 0 { NAMESPACES_DEEP } else { "" },
        ..Weight::default()
    };
    let walked = weight.walk(&value, Into::Namespaces(&targets), 0);
    budget.checked.fetch_add(weight.items, Ordering::Relaxed);
    budget.namespace_level.fetch_max(weight.namespace_level, Ordering::Relaxed);
    walked?;
    if weight.items > left {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("namespace assignments may look through {MAX_CHECKED} values in a render"),
        ));
    }
    Ok(value)
}

/// The pairs of any map value (a `Dict`, event data, a builtin map, keyword arguments).
fn pairs(map: &Value) -> Result<Vec<(Value, Value)>, Error> {
    map.try_iter()?.map(|k| Ok((k.clone(), map.get_item(&k)?))).collect()
}

fn bad_args(method: &str, want: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{method}() takes {want}"))
}

fn none() -> Value {
    Value::from(())
}

/// A Python index: negative counts from the end; `Err` when out of range.
fn position(index: &Value, len: usize, method: &str) -> Result<usize, Error> {
    let i = i64::try_from(index.clone())
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "list indices must be integers"))?;
    let at = if i < 0 { len as i64 + i } else { i };
    if at < 0 || at >= len as i64 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{method} index out of range"),
        ));
    }
    Ok(at as usize)
}

impl List {
    fn value(items: Vec<Value>) -> Value {
        Value::from_object(List { items: Mutex::new(items), level: AtomicUsize::new(0) })
    }

    /// Charges `values`, about to be added to this list.
    fn charge(self: &Arc<Self>, state: &State, values: &[&Value]) -> Result<(), Error> {
        let level = self.level.load(Ordering::Relaxed);
        charge(state, Arc::as_ptr(self) as *const (), level, values)
    }
}

impl Object for List {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        lock(&self.items).get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        // A snapshot: the lock is never held while the engine runs other code.
        Enumerator::Values(lock(&self.items).clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.items).len())
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (method, args) {
            ("append", [x]) => {
                self.charge(state, &[x])?;
                lock(&self.items).push(x.clone());
                Ok(none())
            }
            ("extend", [items]) => {
                let items: Vec<Value> = items.try_iter()?.collect();
                self.charge(state, &items.iter().collect::<Vec<_>>())?;
                lock(&self.items).extend(items);
                Ok(none())
            }
            ("insert", [index, x]) => {
                self.charge(state, &[x])?;
                let i = i64::try_from(index.clone()).map_err(|_| bad_args(method, "an integer"))?;
                let mut items = lock(&self.items);
                let len = items.len() as i64;
                let at = if i < 0 { (len + i).max(0) } else { i.min(len) };
                items.insert(at as usize, x.clone());
                Ok(none())
            }
            ("pop", []) => lock(&self.items)
                .pop()
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "pop from empty list")),
            ("pop", [index]) => {
                let mut items = lock(&self.items);
                let at = position(index, items.len(), "pop")?;
                Ok(items.remove(at))
            }
            ("remove", [x]) => {
                let mut items = lock(&self.items);
                let at = items.iter().position(|item| item == x).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "list.remove(x): x not in list")
                })?;
                items.remove(at);
                Ok(none())
            }
            ("index", [x]) => lock(&self.items)
                .iter()
                .position(|item| item == x)
                .map(Value::from)
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "x is not in list")),
            ("clear", []) => {
                lock(&self.items).clear();
                Ok(none())
            }
            ("reverse", []) => {
                lock(&self.items).reverse();
                Ok(none())
            }
            ("sort", []) => {
                lock(&self.items).sort();
                Ok(none())
            }
            ("copy", []) => Ok(List::value(lock(&self.items).clone())),
            (
                "append" | "extend" | "insert" | "pop" | "remove" | "index" | "clear" | "reverse"
                | "sort" | "copy",
                _,
            ) => Err(bad_args(method, "other arguments")),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

impl Dict {
    fn value(pairs: impl IntoIterator<Item = (Value, Value)>) -> Value {
        let items = Mutex::new(pairs.into_iter().collect());
        Value::from_object(Dict { items, level: AtomicUsize::new(0) })
    }

    /// Charges `values`, about to be added to this dict.
    fn charge(self: &Arc<Self>, state: &State, values: &[&Value]) -> Result<(), Error> {
        let level = self.level.load(Ordering::Relaxed);
        charge(state, Arc::as_ptr(self) as *const (), level, values)
    }
}

impl Object for Dict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        lock(&self.items).get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.items).keys().cloned().collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.items).len())
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (method, args) {
            ("update", _) => {
                // `d.update(other)`, `d.update([(k, v), …])`, `d.update(k=v)` (keyword
                // arguments arrive as a last map argument).
                let mut new = Vec::new();
                for arg in args {
                    if arg.kind() == ValueKind::Map {
                        new.extend(pairs(arg)?);
                        continue;
                    }
                    for pair in arg.try_iter()? {
                        if pair.len() != Some(2) {
                            return Err(bad_args(method, "a dict or (key, value) pairs"));
                        }
                        new.push((pair.get_item_by_index(0)?, pair.get_item_by_index(1)?));
                    }
                }
                let flat: Vec<&Value> = new.iter().flat_map(|(k, v)| [k, v]).collect();
                self.charge(state, &flat)?;
                lock(&self.items).extend(new);
                Ok(none())
            }
            ("setdefault", [key, rest @ ..]) if rest.len() <= 1 => {
                if let Some(found) = lock(&self.items).get(key) {
                    return Ok(found.clone());
                }
                let value = rest.first().cloned().unwrap_or_else(none);
                self.charge(state, &[key, &value])?;
                Ok(lock(&self.items).entry(key.clone()).or_insert(value).clone())
            }
            ("pop", [key, rest @ ..]) if rest.len() <= 1 => {
                match (lock(&self.items).shift_remove(key), rest.first()) {
                    (Some(value), _) => Ok(value),
                    (None, Some(default)) => Ok(default.clone()),
                    (None, None) => {
                        Err(Error::new(ErrorKind::InvalidOperation, format!("KeyError: {key}")))
                    }
                }
            }
            ("popitem", []) => lock(&self.items)
                .pop()
                .map(|(k, v)| Value::from(vec![k, v]))
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "dictionary is empty")),
            ("clear", []) => {
                lock(&self.items).clear();
                Ok(none())
            }
            ("copy", []) => Ok(Dict::value(lock(&self.items).clone())),
            ("setdefault" | "pop" | "popitem" | "clear" | "copy", _) => {
                Err(bad_args(method, "other arguments"))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// The `_mutable` filter: a list or map value as a [`List`]/[`Dict`] (shallow).
pub(super) fn mutable_filter(value: Value) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::Seq => Ok(List::value(value.try_iter()?.collect())),
        ValueKind::Map => Ok(Dict::value(pairs(&value)?)),
        _ => Ok(value),
    }
}

/// Jinja's `dict(...)` global, as a [`Dict`].
pub(super) fn dict_function(value: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    mutable_filter(minijinja::functions::dict(value, kwargs)?)
}

/// Jinja's `|list` filter, as a [`List`].
pub(super) fn list_filter(state: &State, value: Value) -> Result<Value, Error> {
    mutable_filter(minijinja::filters::list(state, value)?)
}
