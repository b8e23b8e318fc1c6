//! A strict reader of argh's `--help` text: the usage line, the description, and the
//! positional, option and command sections. Anything it does not recognise is an error, so a
//! change in argh's layout stops the generator instead of silently dropping a flag.

/// One binary's (or subcommand's) interface as its `--help` states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Help {
    /// The command as the usage line names it (`halite-key`, `halite-minion call`).
    pub name: String,
    /// The usage line after `Usage: `.
    pub usage: String,
    pub description: String,
    pub positionals: Vec<Entry>,
    /// Every option but `--help`, in the order of the help text.
    pub options: Vec<Opt>,
    pub commands: Vec<Entry>,
}

/// A positional argument or a subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub description: String,
}

/// One option or switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub short: Option<char>,
    /// Without the leading `--`.
    pub long: String,
    /// The value's placeholder in the usage line (`config-dir` of `-c <config-dir>`); `None`
    /// for a switch.
    pub value: Option<String>,
    pub description: String,
}

impl Opt {
    /// `-c`/`--config-dir` as typed, short first.
    pub fn spellings(&self) -> Vec<String> {
        let short = self.short.map(|c| format!("-{c}"));
        short.into_iter().chain([format!("--{}", self.long)]).collect()
    }
}

/// A usage-line item for an option: `(flag as written, placeholder)`.
type UsageOpt = (String, Option<String>);

/// Parses `text`, the whole output of `<binary> --help`.
pub fn parse(text: &str) -> Result<Help, String> {
    let mut lines = text.lines().peekable();
    let first = lines.next().ok_or("empty help")?;
    let usage = first.strip_prefix("Usage: ").ok_or_else(|| format!("no usage line: {first:?}"))?;
    let (name, usage_opts) = parse_usage(usage)?;
    expect_blank(lines.next())?;
    let mut description = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        description.push(line.trim());
    }
    if description.is_empty() {
        return Err("no description".into());
    }
    let mut help = Help {
        name,
        usage: usage.to_string(),
        description: description.join(" "),
        positionals: Vec::new(),
        options: Vec::new(),
        commands: Vec::new(),
    };
    let mut saw_help = false;
    while let Some(header) = lines.next() {
        // argh's free-text sections (`#[argh(example, note, error_code)]`): indented lines,
        // not entries; the generated files do not use them.
        if matches!(header, "Examples:" | "Notes:" | "Error codes:") {
            while let Some(line) = lines.next_if(|l| !l.is_empty()) {
                if !line.starts_with("  ") {
                    return Err(format!("unexpected line {line:?} in {header}"));
                }
            }
            lines.next();
            continue;
        }
        let entries = section_entries(&mut lines)?;
        match header {
            "Positional Arguments:" => help.positionals = entries,
            "Commands:" => help.commands = entries,
            "Options:" => {
                for entry in entries {
                    match parse_flags(&entry.name)? {
                        None => saw_help = true,
                        Some((short, long)) => help.options.push(Opt {
                            short,
                            long,
                            value: None,
                            description: entry.description,
                        }),
                    }
                }
            }
            other => return Err(format!("unknown help section {other:?}")),
        }
    }
    if !saw_help {
        return Err("no --help option".into());
    }
    // The usage line and the Options section must name the same flags.
    if usage_opts.len() != help.options.len() {
        return Err(format!("usage names {usage_opts:?}, Options lists {:?}", help.options));
    }
    for (flag, placeholder) in usage_opts {
        let opt = help
            .options
            .iter_mut()
            .find(|o| o.spellings().contains(&flag))
            .ok_or_else(|| format!("{flag} is in the usage line but not under Options"))?;
        opt.value = placeholder;
    }
    Ok(help)
}

fn expect_blank(line: Option<&str>) -> Result<(), String> {
    match line {
        Some("") => Ok(()),
        other => Err(format!("expected a blank line, got {other:?}")),
    }
}

/// The name and options of a usage line: `NAME [-c <config-dir>] [-L] [--] [<words...>]`.
/// Positional and command items are checked for shape only (their sections describe them).
fn parse_usage(usage: &str) -> Result<(String, Vec<UsageOpt>), String> {
    let mut name = Vec::new();
    let mut rest = usage;
    // The name runs up to the first item (`[`, `<`, `-`): `halite-minion call [<words...>]`.
    while let Some(word) = rest.split(' ').next().filter(|w| !w.is_empty()) {
        if word.starts_with(['[', '<', '-']) {
            break;
        }
        name.push(word);
        rest = rest[word.len()..].trim_start();
    }
    if name.is_empty() {
        return Err(format!("usage line names no command: {usage:?}"));
    }
    let mut opts = Vec::new();
    while !rest.is_empty() {
        let (item, after) = if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').ok_or_else(|| format!("unclosed [ in {usage:?}"))?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = rest.find(" [").unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        rest = after.trim_start();
        // An option's placeholder (its `arg_name`) may hold spaces: split at the first.
        match item.split_once(' ') {
            None if item == "--" || is_placeholder(item) => {}
            None if is_flag(item) => opts.push((item.to_string(), None)),
            Some((flag, value)) if is_flag(flag) && is_placeholder(value) => {
                // `<tag...>` for a repeatable option.
                let value = value[1..value.len() - 1].trim_end_matches("...").to_string();
                opts.push((flag.to_string(), Some(value)));
            }
            _ => return Err(format!("unknown usage item {item:?} in {usage:?}")),
        }
    }
    Ok((name.join(" "), opts))
}

fn is_placeholder(word: &str) -> bool {
    word.len() > 2 && word.starts_with('<') && word.ends_with('>')
}

/// `-c` or `--config-dir`: a dash, then letters, digits and inner dashes.
fn is_flag(word: &str) -> bool {
    let body = word.strip_prefix("--").or_else(|| word.strip_prefix('-')).unwrap_or("");
    let short_ok = !word.starts_with("--") && body.chars().count() == 1;
    let long_ok = word.starts_with("--") && body.len() > 1;
    (short_ok || long_ok)
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !body.starts_with('-')
        && !body.ends_with('-')
}

/// `-c, --config-dir` → `(Some('c'), "config-dir")`; `--help, help` → `None`.
fn parse_flags(flags: &str) -> Result<Option<(Option<char>, String)>, String> {
    let parts: Vec<&str> = flags.split(", ").collect();
    match parts.as_slice() {
        ["--help", "help"] => Ok(None),
        [long] if long.starts_with("--") && is_flag(long) => Ok(Some((None, long[2..].into()))),
        [short, long]
            if is_flag(short)
                && !short.starts_with("--")
                && long.starts_with("--")
                && is_flag(long) =>
        {
            Ok(Some((short.chars().nth(1), long[2..].into())))
        }
        _ => Err(format!("unknown flag spelling {flags:?}")),
    }
}

/// The width of the name column after the two-space indent (argh's description column is 20).
const NAME_WIDTH: usize = 18;

/// The entries of a section: each starts two spaces in (`  name  description`, or the name
/// alone with its description on the next lines), continuation lines further in; a blank
/// line or the end closes the section.
fn section_entries<'a>(
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    while let Some(line) = lines.next_if(|l| !l.is_empty()) {
        if let Some(entry) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            // argh writes a description from column 20, or on the next lines when the name
            // reaches it.
            let split = entry.get(..NAME_WIDTH).filter(|n| n.ends_with(' '));
            let (name, description) = match split {
                Some(name) if !entry[NAME_WIDTH..].starts_with(' ') => {
                    (name.trim_end(), &entry[NAME_WIDTH..])
                }
                Some(_) => return Err(format!("misaligned description in {line:?}")),
                None => (entry, ""),
            };
            entries.push(Entry { name: name.to_string(), description: description.to_string() });
        } else if line.starts_with("   ") {
            let last = entries.last_mut().ok_or_else(|| format!("stray line {line:?}"))?;
            if !last.description.is_empty() {
                last.description.push(' ');
            }
            last.description.push_str(line.trim());
        } else {
            return Err(format!("unexpected line {line:?}"));
        }
    }
    lines.next();
    if entries.is_empty() || entries.iter().any(|e| e.description.is_empty()) {
        return Err(format!("a section with an undescribed entry: {entries:?}"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Usage: halite-key [-c <config-dir>] [-L] [--include-rejected] [--out <out>]

Manage minion keys on the running Halite master (Salt's salt-key).

Options:
  -c, --config-dir  configuration directory of the master (default
                    /etc/halite)
  -L, --list-all    list all keys
  --include-rejected
                    with -a/-A: also accept rejected keys
  --out             output format: txt (default) or json
  --help, help      display usage information
";

    #[test]
    fn reads_options_switches_and_wrapped_descriptions() {
        let help = parse(KEY).unwrap();
        assert_eq!(help.name, "halite-key");
        assert_eq!(
            help.description,
            "Manage minion keys on the running Halite master (Salt's salt-key)."
        );
        let opts: Vec<(Option<char>, &str, Option<&str>, &str)> = help
            .options
            .iter()
            .map(|o| (o.short, o.long.as_str(), o.value.as_deref(), o.description.as_str()))
            .collect();
        assert_eq!(
            opts,
            [
                (
                    Some('c'),
                    "config-dir",
                    Some("config-dir"),
                    "configuration directory of the master (default /etc/halite)"
                ),
                (Some('L'), "list-all", None, "list all keys"),
                (None, "include-rejected", None, "with -a/-A: also accept rejected keys"),
                (None, "out", Some("out"), "output format: txt (default) or json"),
            ]
        );
    }

    #[test]
    fn reads_positionals_and_commands() {
        let text = "Usage: halite-minion [-l <log-level>] [--] [<words...>] [<command>] [<args>]

The Halite minion daemon.

Positional Arguments:
  words             target, function, then its arguments

Options:
  -l, --log-level   log level
  --help, help      display usage information

Commands:
  call              Run a function as this minion
";
        let help = parse(text).unwrap();
        assert_eq!(help.positionals[0].name, "words");
        assert_eq!(
            help.commands[0],
            Entry { name: "call".into(), description: "Run a function as this minion".into() }
        );
        assert_eq!(help.options[0].value.as_deref(), Some("log-level"));
        let sub = "Usage: halite-minion call [<words...>]\n\nRun a function.\n\nPositional Arguments:\n  words             the function\n\nOptions:\n  --help, help      display usage information\n";
        assert_eq!(parse(sub).unwrap().name, "halite-minion call");
    }

    #[test]
    fn reads_argh_placeholders_and_free_text_sections() {
        let text = "Usage: halite [-b <N or N%>] [--tag <tag...>] [<words...>]

Run.

Options:
  -b, --batch-size  rolling batches
  --tag             a tag, repeatable
  --help, help      display usage information

Examples:
  halite -b 10% '*' test.ping

Notes:
  Batches are Salt's.

Error codes:
  2 nothing returned
";
        let help = parse(text).unwrap();
        let values: Vec<_> = help.options.iter().map(|o| o.value.as_deref()).collect();
        assert_eq!(values, [Some("N or N%"), Some("tag")]);
    }

    #[test]
    fn anything_unknown_is_an_error() {
        let e = |name: &str, desc: &str| format!("  {name:<18}{desc}\n");
        let help = e("--help, help", "h");
        let broken = [
            (String::new(), "empty"),
            // An option in the usage line but not described, or the other way round.
            (format!("Usage: x [-q]\n\ny\n\nOptions:\n{help}"), "usage names"),
            (format!("Usage: x\n\ny\n\nOptions:\n{}{help}", e("-q, --quiet", "q")), "usage names"),
            (
                format!("Usage: x [-q]\n\ny\n\nOptions:\n{}{help}", e("-z, --zzz", "q")),
                "not under Options",
            ),
            (format!("Usage: x [+q]\n\ny\n\nOptions:\n{help}"), "unknown usage item"),
            (format!("Usage: x\n\ny\n\nSee also:\n{}", e("x", "y")), "unknown help section"),
            ("Usage: x\n\ny\n\nNotes:\nnot indented\n".into(), "unexpected line"),
            (format!("Usage: x\n\ny\n\nOptions:\n{}{help}", e("/q", "q")), "unknown flag spelling"),
            (format!("Usage: x\n\ny\n\nOptions:\n  --quiet\n{help}"), "undescribed"),
            (format!("Usage: x\n\ny\n\nOptions:\n{}", e("-q", "q")), "unknown flag spelling"),
            (format!("Usage: x [--quiet]\n\ny\n\nOptions:\n{}", e("--quiet", "q")), "no --help"),
            ("Usage: x\n\ny\n\nOptions:\n --help, help\n".into(), "unexpected line"),
            (format!("Usage: x\n\ny\n\nOptions:\n   stray\n{help}"), "stray line"),
            ("Usage: x\n\ny\n\nOptions:\n  --help, help       h\n".into(), "misaligned"),
        ];
        for (text, wanted) in broken {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }
}
