//! The shell completions and man pages in `dist/` against the real binaries: the committed
//! files are what `scripts/gen-docs` makes from today's binaries (so a new flag without a
//! regeneration fails here), every flag `--help` shows is in the bash and zsh completions and
//! the man page, bash and zsh complete for real (hostile minion ids from a running master are
//! offered as literal text, never run), groff finds nothing to warn about, and
//! `halite.conf(5)` documents exactly the keys the config parsers read.

use halite_tests::cluster::{Master, WAIT};
use halite_tests::docs::BINARIES;
use halite_tests::raw::{hello_for, RawConn};
use halite_tests::{bin, run, wait_until, TempDir};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A tool the test needs: found, or the test is skipped with its reason, unless `scripts/test`
/// asked for every tool (`HALITE_DOCS_TOOLS=require`), which makes a missing one a failure.
fn tool(name: &str) -> bool {
    let found = run(Command::new("sh").args(["-c", &format!("command -v {name}")])).success();
    if !found {
        assert!(
            std::env::var("HALITE_DOCS_TOOLS").as_deref() != Ok("require"),
            "{name} is not installed (scripts/test installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed; scripts/test installs it");
    }
    found
}

#[test]
fn the_committed_files_are_what_the_binaries_generate() {
    let stale = halite_tests::docs::stale(&repo()).unwrap();
    assert!(stale.is_empty(), "out of date, run scripts/gen-docs and commit: {stale:?}");
}

/// The flags in the first column of `--help`'s Options, read with a pattern of its own (not
/// the generator's parser, so a parser that drops a flag is caught here).
fn flags_of(help: &str) -> Vec<String> {
    let entry =
        Regex::new(r"^  (-[A-Za-z0-9]|--[a-z0-9-]+)(?:, (--[a-z0-9-]+))?(?:,| |$)").unwrap();
    let options = help.split("\nOptions:\n").nth(1).expect("an Options section");
    let options = options.split("\n\n").next().unwrap();
    options
        .lines()
        .filter_map(|line| entry.captures(line))
        .flat_map(|c| [c.get(1), c.get(2)].into_iter().flatten().map(|m| m.as_str().to_string()))
        .collect()
}

#[test]
fn every_flag_of_every_binary_is_in_both_completions_and_its_man_page() {
    for name in BINARIES {
        let help = run(Command::new(bin(name)).arg("--help")).stdout;
        let flags = flags_of(&help);
        assert!(flags.len() >= 6, "{name}: too few flags found in\n{help}");
        let bash = read(&format!("dist/completions/bash/{name}"));
        let zsh = read(&format!("dist/completions/zsh/_{name}"));
        let man = read(&format!("dist/man/{name}.1"));
        for flag in &flags {
            let word =
                Regex::new(&format!(r"(^|[\s'{{,|()]){}([\s'}},|)\[]|$)", regex::escape(flag)))
                    .unwrap();
            assert!(word.is_match(&bash), "{name}: {flag} missing from the bash completion");
            assert!(word.is_match(&zsh), "{name}: {flag} missing from the zsh completion");
            let roff = format!(r"\fB{}\fR", flag.replace('-', r"\-"));
            assert!(man.contains(&roff), "{name}: {flag} missing from the man page");
        }
    }
}

/// Runs `_<function>` of the bash completion of `name` for the words `line` (the last one
/// being completed) and returns COMPREPLY. `path` leads `PATH` (where `halite-key` is found).
fn bash_complete(name: &str, line: &[&str], cwd: &Path) -> Vec<String> {
    let script = format!(
        "source {file}; COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _{func}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file = repo().join("dist/completions/bash").join(name).display(),
        func = name.replace('-', "_"),
    );
    let bin_dir = bin(name).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = run(Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script, "bash"])
        .args(line)
        .env("PATH", path)
        .current_dir(cwd));
    assert!(out.success() && out.stderr.is_empty(), "{name} {line:?}: {out:?}");
    out.stdout.lines().filter(|l| !l.is_empty()).map(String::from).collect()
}

#[test]
fn bash_completes_flags_values_runners_and_functions() {
    if !tool("bash") {
        return;
    }
    let dir = TempDir::new();
    let here = dir.path();
    assert_eq!(
        bash_complete("halite-key", &["halite-key", "--acc"], here),
        ["--accept", "--accept-all"]
    );
    assert_eq!(bash_complete("halite-key", &["halite-key", "-l", "r"], here), ["rej"]);
    // `--out=j` reaches a completion as three words.
    assert_eq!(bash_complete("halite-key", &["halite-key", "--out", "=", "j"], here), ["json"]);
    assert_eq!(bash_complete("halite-master", &["halite-master", "-l", "de"], here), ["debug"]);
    assert_eq!(bash_complete("halite-minion", &["halite-minion", "c"], here), ["call"]);
    let runners = bash_complete("halite-run", &["halite-run", "manage."], here);
    assert!(runners.contains(&"manage.up".to_string()), "{runners:?}");
    assert_eq!(bash_complete("halite-run", &["halite-run", "manage.v"], here), ["manage.versions"]);
    assert_eq!(
        bash_complete("halite-run", &["halite-run", "jobs.l"], here),
        ["jobs.list_jobs", "jobs.lookup_jid"]
    );
    // The function is the second word, whatever options come before and between.
    assert_eq!(
        bash_complete("halite", &["halite", "-t", "5", "web*", "--out", "json", "test.pi"], here),
        ["test.ping"]
    );
    assert_eq!(bash_complete("halite", &["halite", "--", "-x", "test.pi"], here), ["test.ping"]);
    // Every flag completes to itself on every binary.
    for name in BINARIES {
        for flag in flags_of(&run(Command::new(bin(name)).arg("--help")).stdout) {
            let got = bash_complete(name, &[name, &flag], here);
            assert!(got.contains(&flag), "{name} {flag}: {got:?}");
        }
    }
    // Directories for -c.
    std::fs::create_dir(here.join("conf.d")).unwrap();
    assert_eq!(bash_complete("halite", &["halite", "-c", "con"], here), ["conf.d"]);
}

#[test]
fn minion_ids_from_a_master_are_completed_as_text_and_never_run() {
    if !tool("bash") {
        return;
    }
    let master = Master::start("");
    let hostile = ["$(touch pwned1)", "`touch pwned2`", "x; touch pwned3", "a b", "web1"];
    let mut conns = Vec::new();
    for id in hostile {
        let (mut conn, key) = RawConn::connect(master.addr);
        conn.send_frame(&hello_for(id, &key));
        conns.push(conn);
    }
    wait_until(WAIT, "every hostile id pends", || {
        let listed = master.key(&["-l", "pre"]).stdout;
        hostile.iter().all(|id| listed.lines().any(|l| l == *id))
    });
    assert!(master.key(&["-a", "web1", "-y"]).success());
    let cwd = TempDir::new();
    let conf = master.conf_dir().to_str().unwrap();
    let pending = bash_complete("halite-key", &["halite-key", "-c", conf, "-a", ""], cwd.path());
    // `halite-key` ran; none of the ids ran anything.
    let nothing_ran = || {
        let made: Vec<_> =
            std::fs::read_dir(cwd.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(made.is_empty(), "a minion id was executed: {made:?}");
    };
    nothing_ran();
    let quoted = |id: &str| {
        let out = run(Command::new("bash").args(["-c", "printf '%q' \"$1\"", "bash", id]));
        out.stdout
    };
    let mut expected: Vec<String> = hostile[..4].iter().map(|id| quoted(id)).collect();
    expected.sort();
    let mut got = pending.clone();
    got.sort();
    assert_eq!(got, expected);
    // A prefix filters the literal ids.
    assert_eq!(
        bash_complete(
            "halite-key",
            &["halite-key", "--config-dir", conf, "--reject", "$"],
            cwd.path()
        ),
        [quoted("$(touch pwned1)")]
    );
    // `halite`'s target is an accepted id.
    assert_eq!(bash_complete("halite", &["halite", "-c", conf, "w"], cwd.path()), ["web1"]);
    // zsh: the same ids, as literal matches.
    if tool("zsh") {
        let mut got = zsh_complete(&format!("halite-key -c {conf} -a "), cwd.path());
        got.sort();
        // compadd quotes each for the command line, as bash's `%q` does.
        assert_eq!(got, expected);
        assert_eq!(zsh_complete(&format!("halite --config-dir {conf} w"), cwd.path()), ["web1"]);
        nothing_ran();
    }
    // No master: no ids, no error, no wait past halite-key's own failure.
    let none =
        bash_complete("halite-key", &["halite-key", "-c", "/nonexistent", "-a", ""], cwd.path());
    assert!(none.is_empty(), "{none:?}");
    nothing_ran();
    drop(conns);
}

/// The matches the zsh completion of `dist/` offers when `line` and a tab are typed into an
/// interactive zsh (`support/zsh-complete.zsh`), with the build directory leading `PATH`.
fn zsh_complete(line: &str, cwd: &Path) -> Vec<String> {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/zsh-complete.zsh");
    let bin_dir = bin("halite").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = run(Command::new("zsh")
        .arg("-f")
        .arg(&driver)
        .arg(repo().join("dist/completions/zsh"))
        .arg(line)
        .env("PATH", path)
        .current_dir(cwd));
    assert!(out.success() && out.stderr.is_empty(), "{line:?}: {out:?}");
    // `_files` may hand a match to compadd twice (as a directory, then as a file).
    let mut matches: Vec<String> = Vec::new();
    for line in out.stdout.lines() {
        if !matches.iter().any(|m| m == line) {
            matches.push(line.to_string());
        }
    }
    matches
}

#[test]
fn zsh_completes_flags_values_runners_and_functions() {
    if !tool("zsh") {
        return;
    }
    for name in BINARIES {
        let file = repo().join(format!("dist/completions/zsh/_{name}"));
        let out = run(Command::new("zsh").args(["-n", "-f"]).arg(&file));
        assert!(out.success() && out.stderr.is_empty(), "{}: {out:?}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with(&format!("#compdef {name}\n")), "{name}");
        // Every flag of --help is offered after a dash.
        let offered = zsh_complete(&format!("{name} -"), &repo());
        for flag in flags_of(&run(Command::new(bin(name)).arg("--help")).stdout) {
            assert!(offered.contains(&flag), "{name}: zsh does not offer {flag}: {offered:?}");
        }
    }
    let dir = TempDir::new();
    let here = dir.path();
    assert_eq!(zsh_complete("halite-key --acc", here), ["--accept", "--accept-all"]);
    assert_eq!(zsh_complete("halite-key -l ", here), ["acc", "pre", "un", "rej", "den", "all"]);
    assert_eq!(zsh_complete("halite-master --log-level de", here), ["debug"]);
    assert_eq!(zsh_complete("halite-minion ", here), ["call"]);
    assert_eq!(zsh_complete("halite-run manage.v", here), ["manage.versions"]);
    assert_eq!(zsh_complete("halite -t 5 'web*' --out json test.pi", here), ["test.ping"]);
    std::fs::create_dir(here.join("conf.d")).unwrap();
    assert_eq!(zsh_complete("halite -c con", here), ["conf.d"]);
}

/// Every generated page: `(its name, path under the repository)`.
fn pages() -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> =
        BINARIES.iter().map(|name| (name.to_string(), format!("dist/man/{name}.1"))).collect();
    pages.push(("halite.conf".into(), "dist/man/halite.conf.5".into()));
    pages
}

#[test]
fn groff_and_man_find_nothing_to_warn_about_in_the_man_pages() {
    if !tool("groff") {
        return;
    }
    for (name, rel) in pages() {
        let page = repo().join(&rel);
        let out = run(Command::new("groff").args(["-man", "-z", "-ww"]).arg(&page));
        assert!(out.success() && out.stderr.is_empty(), "{name}: {out:?}");
        let text = run(Command::new("groff").args(["-man", "-Tascii", "-P-cbou"]).arg(&page));
        assert!(text.stdout.contains("NAME") && text.stdout.contains("DESCRIPTION"), "{name}");
        if rel.ends_with(".1") {
            assert!(text.stdout.contains("EXIT STATUS"), "{name}");
        }
        let words: Vec<&str> = text.stdout.split_whitespace().collect();
        assert!(words.windows(2).any(|w| w == [name.as_str(), "-"]), "{name}: {}", text.stdout);
    }
    if tool("man") {
        for (name, rel) in pages() {
            let page = repo().join(&rel);
            let out = run(Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&page)
                .env("MANPAGER", "cat"));
            assert!(out.success() && out.stderr.is_empty(), "{name}: {out:?}");
        }
    }
}

#[test]
fn the_configuration_page_documents_every_key_the_parsers_read_and_no_other() {
    use halite_common::config::{parse_master, parse_minion};
    use std::collections::BTreeSet;
    let readme = halite_tests::docs::readme().unwrap();
    let documented = halite_tests::docs::conf::documented(&readme).unwrap();
    let page = read("dist/man/halite.conf.5");
    let root = Path::new("/");
    // Some keys are read only when another asks for them (the Redis forwarder's).
    let master = parse_master("", root).unwrap().keys;
    let redis = parse_master("event_return: redis", root).unwrap().keys;
    let parsers = [
        ("Master key", master.into_iter().chain(redis).collect::<BTreeSet<String>>()),
        ("Minion key", parse_minion("", root, "m").unwrap().keys),
    ];
    assert_eq!(documented.len(), parsers.len(), "{documented:?}");
    for ((header, known), (table, listed)) in parsers.iter().zip(&documented) {
        assert_eq!(header, table);
        let known: BTreeSet<&str> = known.iter().map(String::as_str).collect();
        let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        let undocumented: Vec<_> = known.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&known).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "README.md's {header} table: undocumented {undocumented:?}, not read by the parser {unknown:?}"
        );
        for key in known {
            assert!(page.contains(&format!(r"\fB{}\fR", key.replace('-', r"\-"))), "{key}");
        }
    }
}
