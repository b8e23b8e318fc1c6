//! The bash completion of one binary (`dist/completions/bash/<binary>`, the name
//! bash-completion loads it by): options, their values, positional words. Every candidate is
//! matched and quoted in plain bash (`printf %q`), never through `compgen -W`, which expands
//! `$(...)` in its word list: minion ids come from a running master and may hold anything
//! `validate_id` allows, `$` and backquotes included.

use super::{Binary, Values};
use std::fmt::Write;

/// Helpers shared by every file, identical in each (bash-completion sources one file per
/// command, so each stands alone).
const HELPERS: &str = r#"# __halite_words CUR WORD...: the words that start with CUR, quoted for the command line.
__halite_words() {
    local cur=$1 word quoted
    shift
    for word in "$@"; do
        if [[ $word == "$cur"* ]]; then
            printf -v quoted '%q' "$word"
            COMPREPLY+=("$quoted")
        fi
    done
}

# __halite_paths CUR -d|-f: directories or files, quoted by bash itself.
__halite_paths() {
    local path
    while IFS= read -r path; do
        COMPREPLY+=("$path")
    done < <(compgen "$2" -- "$1")
    compopt -o filenames 2>/dev/null
}

# __halite_ids CUR STATUS: the minion ids `halite-key -l STATUS` lists (with the line's
# -c/--config-dir), read line by line as data: never evaluated.
__halite_ids() {
    local cur=$1 status=$2 line i
    local -a cfg=() ids=()
    for ((i = 1; i < COMP_CWORD - 1; i++)); do
        case ${COMP_WORDS[i]} in
            -c | --config-dir) cfg=(-c "${COMP_WORDS[i + 1]}") ;;
        esac
    done
    while IFS= read -r line; do
        case $line in
            '' | 'Accepted Keys:' | 'Denied Keys:' | 'Unaccepted Keys:' | 'Rejected Keys:') ;;
            *) ids+=("$line") ;;
        esac
    done < <(timeout 5 halite-key "${cfg[@]}" -l "$status" 2>/dev/null)
    __halite_words "$cur" "${ids[@]}"
}
"#;

/// A `case` branch body completing `values` for the word in `$cur`.
fn complete(values: &Values) -> String {
    match values {
        Values::Nothing => ":".into(),
        Values::Dirs => r#"__halite_paths "$cur" -d"#.into(),
        Values::Files => r#"__halite_paths "$cur" -f"#.into(),
        Values::Words(words) => format!(r#"__halite_words "$cur" {}"#, shell_words(words)),
        Values::Ids(status) => format!(r#"__halite_ids "$cur" {status}"#),
    }
}

/// Words written into the script unquoted: only characters no shell treats specially.
pub fn shell_words(words: &[String]) -> String {
    for word in words {
        assert!(
            !word.is_empty()
                && word.chars().all(|c| c.is_ascii_alphanumeric() || "._-:+/".contains(c)),
            "not a plain word for a completion script: {word:?}"
        );
    }
    words.join(" ")
}

pub fn render(binary: &Binary) -> String {
    let name = &binary.help.name;
    let ident = binary.ident();
    let mut out = String::new();
    super::completion_head(&mut out, "bash", name, HELPERS);
    let _ = writeln!(out, "_{ident}() {{");
    out.push_str("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}\n");
    out.push_str("    COMPREPLY=()\n");
    out.push_str("    # `--out=json` reaches us as `--out`, `=`, `json`.\n");
    out.push_str("    [[ $cur == = ]] && cur=\n");
    out.push_str(
        "    [[ $prev == = && COMP_CWORD -ge 2 ]] && prev=${COMP_WORDS[COMP_CWORD - 2]}\n",
    );
    let valued: Vec<_> = binary.options().filter(|(opt, _)| opt.value.is_some()).collect();
    if !valued.is_empty() {
        out.push_str("    case $prev in\n");
        for (opt, values) in &valued {
            let _ = writeln!(out, "        {})", opt.spellings().join(" | "));
            let _ = writeln!(out, "            {}", complete(values));
            out.push_str("            return\n            ;;\n");
        }
        out.push_str("    esac\n");
    }
    let mut flags: Vec<String> = binary.help.options.iter().flat_map(|o| o.spellings()).collect();
    flags.push("--help".into());
    out.push_str("    if [[ $cur == -* ]]; then\n");
    let _ = writeln!(out, "        __halite_words \"$cur\" {}", shell_words(&flags));
    out.push_str("        return\n    fi\n");
    if binary.positionals.is_empty() {
        out.push_str("}\n");
    } else {
        out.push_str(
            "    # Which positional word is this? Options and their values do not count.\n",
        );
        out.push_str("    local i n=0 word end=\n");
        out.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n");
        out.push_str("        word=${COMP_WORDS[i]}\n");
        out.push_str(
            "        if [[ $end ]]; then\n            ((n++))\n            continue\n        fi\n",
        );
        out.push_str("        case $word in\n");
        if !valued.is_empty() {
            let spellings: Vec<String> = valued.iter().flat_map(|(o, _)| o.spellings()).collect();
            let _ = writeln!(out, "            {})", spellings.join(" | "));
            out.push_str("                ((i++))\n");
            out.push_str("                [[ ${COMP_WORDS[i]} == = ]] && ((i++))\n");
            out.push_str("                ;;\n");
        }
        out.push_str("            --) end=1 ;;\n");
        out.push_str("            -*) ;;\n");
        out.push_str("            *) ((n++)) ;;\n");
        out.push_str("        esac\n");
        out.push_str("    done\n");
        out.push_str("    case $n in\n");
        for (at, (_, values)) in binary.positionals.iter().enumerate() {
            let _ = writeln!(out, "        {at}) {} ;;", complete(values));
        }
        out.push_str("    esac\n");
        out.push_str("}\n");
    }
    let _ = writeln!(out, "complete -F _{ident} {name}");
    out
}
