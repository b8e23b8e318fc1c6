//! The zsh completion of one binary (`dist/completions/zsh/_<binary>`, for a directory on
//! `$fpath`): an `_arguments` spec with each option's description, its values and the
//! positional words. Minion ids are read from `halite-key -l` as lines and handed to
//! `compadd` as data (no `_call_program`, which `eval`s its command line).

use super::bash::shell_words;
use super::{Binary, Values};
use std::fmt::Write;

const HELPERS: &str = r#"# __halite_ids STATUS: the minion ids `halite-key -l STATUS` lists (with the line's
# -c/--config-dir), added as literal strings.
(( $+functions[__halite_ids] )) ||
__halite_ids() {
    local -a cfg ids
    local i
    for (( i = 2; i < CURRENT; i++ )); do
        case $words[i] in
            (-c|--config-dir) cfg=(-c "${(Q)words[i+1]}") ;;
        esac
    done
    ids=( ${(f)"$(timeout 5 halite-key "${cfg[@]}" -l "$1" 2>/dev/null)"} )
    ids=( ${ids:#(Accepted|Denied|Unaccepted|Rejected) Keys:} )
    compadd -a ids
}
"#;

/// An `_arguments` action for `values`.
fn action(values: &Values) -> String {
    match values {
        Values::Nothing => " ".into(),
        Values::Dirs => "_files -/".into(),
        Values::Files => "_files".into(),
        Values::Words(words) => format!("({})", shell_words(words)),
        Values::Ids(status) => format!("{{__halite_ids {status}}}"),
    }
}

/// Text for inside `[...]` of a spec, itself inside single quotes.
fn describe(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '[' | ']' | ':' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn render(binary: &Binary) -> String {
    let name = &binary.help.name;
    let mut out = String::new();
    let _ = writeln!(out, "#compdef {name}");
    super::completion_head(&mut out, "zsh", name, HELPERS);
    let _ = writeln!(out, "_{}() {{", binary.ident());
    out.push_str("    _arguments -s -S \\\n");
    for (opt, values) in binary.options() {
        let desc = describe(&opt.description);
        let value = match &opt.value {
            Some(placeholder) => format!(":{}:{}", describe(placeholder), action(values)),
            None => String::new(),
        };
        match opt.short {
            Some(short) => {
                let long = &opt.long;
                let _ = writeln!(
                    out,
                    "        '(-{short} --{long})'{{-{short},--{long}}}'[{desc}]{value}' \\"
                );
            }
            None => {
                let _ = writeln!(out, "        '--{}[{desc}]{value}' \\", opt.long);
            }
        }
    }
    out.push_str("        '(- *)--help[display usage information]'");
    for (at, (label, values)) in binary.positionals.iter().enumerate() {
        let _ = write!(out, " \\\n        '{}:{label}:{}'", at + 1, action(values));
    }
    if !binary.positionals.is_empty() {
        out.push_str(" \\\n        '*:: :'");
    }
    out.push_str("\n}\n\n");
    let _ = writeln!(out, "_{} \"$@\"", binary.ident());
    out
}
