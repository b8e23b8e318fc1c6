//! The YAML step as Salt's `SaltYamlSafeLoader` reads a rendered SLS: PyYAML's YAML 1.1 types
//! for plain scalars (`yes`/`off` booleans, `0664` the integer 664 since Salt strips leading
//! zeros, `1:30` sexagesimal, timestamps kept as text; shared with `saltargs`), quoted scalars
//! always strings, an error on a duplicate key ("found conflicting ID"), `<<` merge keys as
//! Salt flattens them, and only the safe tags. serde_yaml reads YAML 1.2 and cannot tell a plain
//! `yes` from a quoted one, so this builds its `Value` from saphyr-parser's events, which carry
//! each scalar's style.

use crate::saltargs::{plain_type, Plain};
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_yaml::{Mapping, Value as Yaml};
use std::collections::HashMap;

/// Nesting deeper than this is refused (each level is a stack frame here and in compile).
const MAX_DEPTH: usize = 128;
/// Nodes one document may produce, aliases expanded (a "billion laughs" stops here).
const MAX_NODES: usize = 1_000_000;

/// An error and the 1-based line of the rendered text it is on.
type Failure = (Option<usize>, String);

/// Parses rendered text into one document (`Null` when there is none).
pub(super) fn load(text: &str) -> Result<Yaml, Failure> {
    let mut loader =
        Loader { parser: Parser::new_from_str(text), anchors: HashMap::new(), nodes: 0 };
    loader.document()
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored values and their node counts.
    anchors: HashMap<usize, (Yaml, usize)>,
    nodes: usize,
}

fn line(span: &Span) -> Option<usize> {
    Some(span.start.line())
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), Failure> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => {
                let at = e.marker();
                Err((
                    Some(at.line()),
                    format!("{} at line {} column {}", e.info(), at.line(), at.col() + 1),
                ))
            }
            None => Err((None, "unexpected end of the YAML stream".into())),
        }
    }

    /// PyYAML's `get_single_data`: no document is `None`, two are an error.
    fn document(&mut self) -> Result<Yaml, Failure> {
        let mut doc = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(doc.unwrap_or(Yaml::Null)),
                Event::DocumentStart(_) if doc.is_some() => {
                    return Err((line(&span), "expected a single document in the stream".into()))
                }
                Event::DocumentStart(_) => {
                    let (event, span) = self.next()?;
                    doc = Some(self.node(event, span, 0)?.0);
                    match self.next()? {
                        (Event::DocumentEnd, _) => {}
                        (_, span) => return Err((line(&span), "expected the document end".into())),
                    }
                }
                _ => return Err((line(&span), "expected a document".into())),
            }
        }
    }

    /// The value starting at `event`, and the nodes it holds.
    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        depth: usize,
    ) -> Result<(Yaml, usize), Failure> {
        if depth > MAX_DEPTH {
            return Err((line(&span), format!("YAML nested deeper than {MAX_DEPTH} levels")));
        }
        let (value, anchor, size) = match event {
            Event::Alias(id) => {
                let (value, size) = self.anchors.get(&id).cloned().ok_or_else(|| {
                    (line(&span), "found an alias to an unknown or unfinished anchor".to_string())
                })?;
                self.count(size, &span)?;
                return Ok((value, size));
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, &span)?;
                (scalar(&text, style, tag.as_deref()).map_err(|why| (line(&span), why))?, anchor, 1)
            }
            Event::SequenceStart(anchor, tag) => {
                check_tag(tag.as_deref(), "seq").map_err(|why| (line(&span), why))?;
                self.count(1, &span)?;
                let (mut items, mut size) = (Vec::new(), 1);
                loop {
                    let (event, span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break;
                    }
                    let (item, n) = self.node(event, span, depth + 1)?;
                    items.push(item);
                    size += n;
                }
                (Yaml::Sequence(items), anchor, size)
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(tag.as_deref(), "map").map_err(|why| (line(&span), why))?;
                self.count(1, &span)?;
                let (map, size) = self.mapping(&span, depth)?;
                (Yaml::Mapping(map), anchor, size)
            }
            _ => return Err((line(&span), "expected a YAML node".into())),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        Ok((value, size))
    }

    /// A mapping's entries up to its end, merged and checked as Salt's `construct_mapping`.
    fn mapping(&mut self, start: &Span, depth: usize) -> Result<(Mapping, usize), Failure> {
        let (mut entries, mut merged, mut size) = (Vec::new(), Vec::new(), 1);
        loop {
            let (event, span) = self.next()?;
            if let Event::MappingEnd = event {
                break;
            }
            let merge = matches!(&event, Event::Scalar(text, ScalarStyle::Plain, _, None) if text.as_ref() == "<<");
            let key_line = line(&span);
            let (key, n) = self.node(event, span, depth + 1)?;
            let (event, span) = self.next()?;
            let value_line = line(&span);
            let (value, m) = self.node(event, span, depth + 1)?;
            size += n + m;
            if merge {
                merged.extend(merge_entries(value).map_err(|why| (value_line, why))?);
            } else {
                entries.push((key, key_line, value));
            }
        }
        // Salt's `flatten_mapping`: merged entries whose key is not written here come first;
        // then every key must be unique, merged ones included.
        merged.retain(|(key, _, _)| !entries.iter().any(|(k, _, _)| k == key));
        let merged_line = line(start);
        let mut map = Mapping::new();
        for (key, key_line, value) in
            merged.into_iter().map(|(k, _, v)| (k, merged_line, v)).chain(entries)
        {
            if matches!(key, Yaml::Sequence(_) | Yaml::Mapping(_)) {
                return Err((key_line, "found unacceptable key (a list or a map)".into()));
            }
            if map.contains_key(&key) {
                return Err((key_line, format!("found conflicting ID '{}'", show_key(&key))));
            }
            map.insert(key, value);
        }
        Ok((map, size))
    }

    fn count(&mut self, nodes: usize, span: &Span) -> Result<(), Failure> {
        self.nodes += nodes;
        match self.nodes > MAX_NODES {
            true => Err((line(span), format!("YAML holds more than {MAX_NODES} nodes"))),
            false => Ok(()),
        }
    }
}

/// The entries a `<<` value merges: a map, or a list of maps (later ones first, as PyYAML).
fn merge_entries(value: Yaml) -> Result<Vec<(Yaml, Option<usize>, Yaml)>, String> {
    let pairs = |map: Mapping| map.into_iter().map(|(k, v)| (k, None, v)).collect::<Vec<_>>();
    match value {
        Yaml::Mapping(map) => Ok(pairs(map)),
        Yaml::Sequence(maps) => {
            let mut out = Vec::new();
            for map in maps.into_iter().rev() {
                let Yaml::Mapping(map) = map else {
                    return Err("expected a mapping for merging".into());
                };
                out.extend(pairs(map));
            }
            Ok(out)
        }
        _ => Err("expected a mapping or list of mappings for merging".into()),
    }
}

fn show_key(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        Yaml::Null => "None".into(),
        Yaml::Bool(b) => if *b { "True" } else { "False" }.into(),
        Yaml::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// `!!suffix` (or its long form) → `suffix`.
fn core_suffix(tag: &Tag) -> Option<&str> {
    matches!(tag.handle.as_str(), "!!" | "tag:yaml.org,2002:").then_some(tag.suffix.as_str())
}

/// A collection's tag: none, `!`, or its own core tag (`!!map`, `!!seq`).
fn check_tag(tag: Option<&Tag>, own: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if non_specific(t) => Ok(()),
        Some(t)
            if core_suffix(t) == Some(own) || (own == "map" && core_suffix(t) == Some("omap")) =>
        {
            Ok(())
        }
        Some(t) => Err(unknown_tag(t)),
    }
}

/// The non-specific tag `!`: a scalar written with it is a string.
fn non_specific(tag: &Tag) -> bool {
    tag.handle.is_empty() && tag.suffix == "!"
}

fn unknown_tag(tag: &Tag) -> String {
    format!("could not determine a constructor for the tag '{tag}'")
}

/// One scalar: plain ones typed as PyYAML + Salt do, quoted and block ones are strings, and
/// the safe core tags convert.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Yaml, String> {
    let typed = |plain: Plain| match plain {
        Plain::Null => Yaml::Null,
        Plain::Bool(b) => Yaml::Bool(b),
        Plain::Int(n) => n.as_i64().map_or_else(
            || n.as_u64().map_or_else(|| Yaml::String(text.into()), |u| Yaml::Number(u.into())),
            |i| Yaml::Number(i.into()),
        ),
        Plain::Float(f) => Yaml::Number(f.into()),
        Plain::Str => Yaml::String(text.into()),
    };
    let Some(tag) = tag else {
        return Ok(match style {
            ScalarStyle::Plain => typed(plain_type(text)),
            _ => Yaml::String(text.into()),
        });
    };
    if non_specific(tag) {
        return Ok(Yaml::String(text.into()));
    }
    let wrong = |kind: &str| format!("'{text}' is not a valid {kind} for the tag '{tag}'");
    match (core_suffix(tag), plain_type(text)) {
        // Salt's loader keeps timestamps as text.
        (Some("str" | "timestamp"), _) => Ok(Yaml::String(text.into())),
        (Some("null"), _) => Ok(Yaml::Null),
        (Some("bool"), plain @ Plain::Bool(_)) => Ok(typed(plain)),
        (Some("int"), plain @ Plain::Int(_)) => Ok(typed(plain)),
        (Some("float"), Plain::Float(f)) => Ok(Yaml::Number(f.into())),
        (Some("float"), Plain::Int(n)) => Ok(Yaml::Number(n.as_f64().unwrap_or(f64::NAN).into())),
        (Some(kind @ ("bool" | "int" | "float")), _) => Err(wrong(kind)),
        _ => Err(unknown_tag(tag)),
    }
}
