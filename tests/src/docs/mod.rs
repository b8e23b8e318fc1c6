//! The shell completions and man pages in `dist/`, generated from each binary's own `--help`
//! (read strictly by [`help`]) plus the tables the binaries run on (the minion's functions,
//! the master's runners), so they cannot drift from the flags: `tests/tests/docs.rs`
//! regenerates them and fails when the committed files differ. `scripts/gen-docs` writes them.
//!
//! What `--help` cannot say (which words an option's value takes, the man pages' exit codes,
//! files and examples) is written once here, per option name rather than per flag list, so a
//! new flag still appears everywhere without touching this file.

pub mod bash;
pub mod conf;
pub mod help;
pub mod man;
pub mod zsh;

use crate::{bin, run};
use help::Help;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The installed binaries, each with a man page and completions.
pub const BINARIES: [&str; 5] =
    ["halite-master", "halite-minion", "halite", "halite-key", "halite-run"];

/// Salt's log level names, as `halite_common::config::parse_log_level` takes them.
pub const LOG_LEVELS: [&str; 10] = [
    "quiet", "critical", "error", "warning", "info", "profile", "debug", "trace", "garbage", "all",
];

/// `--out` of `halite` and `halite-run` (`halite_cli::output::Format::parse`).
pub const OUTPUTTERS: [&str; 4] = ["nested", "json", "yaml", "txt"];

/// `--out` of `halite-key`.
pub const KEY_OUTPUTTERS: [&str; 2] = ["txt", "json"];

/// `halite-key -l` statuses.
pub const KEY_STATUSES: [&str; 6] = ["acc", "pre", "un", "rej", "den", "all"];

/// What an option's value or a positional word completes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values {
    Nothing,
    Dirs,
    Files,
    Words(Vec<String>),
    /// Minion ids as `halite-key -l <status>` lists them (run at completion time, its output
    /// never evaluated).
    Ids(&'static str),
}

/// One binary: its help, its subcommands' help, and what its values complete to.
#[derive(Debug, Clone)]
pub struct Binary {
    pub help: Help,
    pub commands: Vec<Help>,
    /// Per option of `help.options`, in order.
    pub values: Vec<Values>,
    /// The positional words in order: a label and what each completes to (more words
    /// complete to nothing).
    pub positionals: Vec<(&'static str, Values)>,
}

impl Binary {
    /// Runs `name --help` (and `name COMMAND --help`) from the build directory.
    pub fn read(name: &str) -> Result<Binary, String> {
        let help = help_of(name, &[])?;
        if help.name != name {
            return Err(format!("{name} --help names itself {:?}", help.name));
        }
        let mut commands = Vec::new();
        for command in &help.commands {
            commands.push(help_of(name, &[&command.name])?);
        }
        let values = help
            .options
            .iter()
            .map(|opt| values_of(name, &opt.long, opt.value.as_deref()))
            .collect();
        let positionals = positionals_of(name, &help);
        Ok(Binary { help, commands, values, positionals })
    }

    /// `(option, values)` pairs.
    pub fn options(&self) -> impl Iterator<Item = (&help::Opt, &Values)> {
        self.help.options.iter().zip(&self.values)
    }

    /// The C identifier-ish form of the name (`halite_key`), for shell function names.
    pub fn ident(&self) -> String {
        self.help.name.replace('-', "_")
    }
}

fn help_of(name: &str, words: &[&str]) -> Result<Help, String> {
    let out = run(Command::new(bin(name)).args(words).arg("--help"));
    if !out.success() || !out.stderr.is_empty() {
        return Err(format!("{name} {} --help failed: {out:?}", words.join(" ")));
    }
    help::parse(&out.stdout).map_err(|e| format!("{name} {} --help: {e}", words.join(" ")))
}

fn words(list: &[&str]) -> Values {
    Values::Words(list.iter().map(|w| w.to_string()).collect())
}

/// What the value of `--long` of `binary` completes to; options nobody described here
/// complete by their placeholder's name (a `file`, a `dir`) or to nothing.
fn values_of(binary: &str, long: &str, placeholder: Option<&str>) -> Values {
    let Some(placeholder) = placeholder else { return Values::Nothing };
    match (binary, long) {
        (_, "config-dir") => Values::Dirs,
        (_, "log-level") => words(&LOG_LEVELS),
        ("halite-key", "out") => words(&KEY_OUTPUTTERS),
        (_, "out") => words(&OUTPUTTERS),
        ("halite-key", "list") => words(&KEY_STATUSES),
        ("halite-key", "accept" | "reject") => Values::Ids("pre"),
        ("halite-key", "delete" | "finger" | "print") => Values::Ids("all"),
        _ if placeholder.contains("file") => Values::Files,
        _ if placeholder.contains("dir") => Values::Dirs,
        _ => Values::Nothing,
    }
}

/// Every runner `halite-run` knows: the master's, the ones it runs itself.
pub fn runners() -> Vec<String> {
    let mut names: Vec<String> = halite_master::core::RUNNERS
        .iter()
        .chain(halite_cli::reactor_tools::LOCAL_RUNNERS.iter())
        .chain(["state.event"].iter())
        .map(|s| s.to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn positionals_of(binary: &str, help: &Help) -> Vec<(&'static str, Values)> {
    let functions = || {
        Values::Words(
            halite_minion::functions::list_functions().iter().map(|f| f.to_string()).collect(),
        )
    };
    match binary {
        "halite" => vec![("target", Values::Ids("acc")), ("function", functions())],
        "halite-run" => vec![("runner", Values::Words(runners()))],
        _ if !help.commands.is_empty() => {
            vec![("command", Values::Words(help.commands.iter().map(|c| c.name.clone()).collect()))]
        }
        _ => Vec::new(),
    }
}

/// The repository's README.md (the configuration page is made from it).
/// The head both shells' completion scripts share: what the file is, that it is generated,
/// then the shell's helper functions.
fn completion_head(out: &mut String, shell: &str, name: &str, helpers: &str) {
    use std::fmt::Write;
    let _ = writeln!(out, "# {shell} completion for {name}(1).");
    let _ = writeln!(
        out,
        "# Generated by scripts/gen-docs from `{name} --help`: do not edit (tests/tests/docs.rs"
    );
    let _ = writeln!(out, "# fails when this file and the binary disagree).");
    out.push('\n');
    out.push_str(helpers);
    out.push('\n');
}

pub fn readme() -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every generated file, by its path under the repository root.
pub fn generate() -> Result<Vec<(PathBuf, String)>, String> {
    let mut files = Vec::new();
    for name in BINARIES {
        let binary = Binary::read(name)?;
        files.push((PathBuf::from(format!("dist/completions/bash/{name}")), bash::render(&binary)));
        files.push((PathBuf::from(format!("dist/completions/zsh/_{name}")), zsh::render(&binary)));
        files.push((PathBuf::from(format!("dist/man/{name}.1")), man::render(&binary)));
    }
    files.push((PathBuf::from("dist/man/halite.conf.5"), conf::render(&readme()?)?));
    Ok(files)
}

/// The files under `root` that differ from what [`generate`] makes (missing ones included).
pub fn stale(root: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(generate()?
        .into_iter()
        .filter(|(path, text)| {
            std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(path, _)| path)
        .collect())
}

/// Writes every generated file under `root`; the paths written.
pub fn write(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (path, text) in generate()? {
        let full = root.join(&path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&full, text).map_err(|e| format!("{}: {e}", full.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_words_are_what_the_binaries_accept() {
        for level in LOG_LEVELS {
            assert!(halite_common::config::parse_log_level(level).is_some(), "{level}");
        }
        for name in OUTPUTTERS {
            assert!(halite_cli::output::Format::parse(name).is_some(), "{name}");
        }
        for status in KEY_STATUSES {
            assert!(halite_cli::keys::parse_list_arg(status).is_some(), "{status}");
        }
    }
}
