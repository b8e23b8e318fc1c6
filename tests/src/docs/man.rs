//! The man page of one binary (`dist/man/<binary>.1`, roff with the `man` macros): NAME,
//! SYNOPSIS, DESCRIPTION and OPTIONS from its `--help`, the runner or function names from the
//! tables the binaries run on, and what `--help` cannot say (exit status, files, examples),
//! written once below. `groff -man -z -ww` must accept every page without a warning.

use super::Binary;
use std::fmt::Write;

/// The pages' revision date (`.TH`'s third field): change it with the hand-written text below.
pub const DATE: &str = "2026-12-03";

/// What a page says beyond `--help`.
struct Extra {
    /// The operands after the options in SYNOPSIS, as roff.
    operands: &'static str,
    /// DESCRIPTION's paragraphs after the help's own sentence (plain text).
    description: &'static [&'static str],
    exit_status: &'static [(&'static str, &'static str)],
    files: &'static [(&'static str, &'static str)],
    examples: &'static [(&'static str, &'static str)],
    see_also: &'static [&'static str],
}

const COMMON_FILES: &[(&str, &str)] = &[(
    "/etc/halite/master, /etc/halite/master.d/*.conf",
    "the master's configuration (YAML, Salt's key names); -c DIR reads DIR/master instead",
)];

fn extra(name: &str) -> Extra {
    match name {
        "halite-master" => Extra {
            operands: "",
            description: &[
                "The master accepts minion connections on ret_port (4506), keeps their keys, publishes jobs, keeps the job cache, writes every event to the event log and runs the reactor. The command-line tools talk to it over a Unix socket in sock_dir.",
                "SIGHUP reopens the event log and the log file and re-reads the reactor rules; SIGTERM and SIGINT stop it. Under systemd it reports READY=1, RELOADING=1 and STOPPING=1 itself (Type=notify).",
            ],
            exit_status: &[
                ("0", "stopped on SIGTERM or SIGINT"),
                ("1", "start-up failure: cannot bind, key or directory error, another master on the same socket"),
                ("64", "usage error, including an unknown -l level"),
                ("78", "bad configuration (every bad key is named on standard error)"),
            ],
            files: &[
                ("/etc/halite/master, /etc/halite/master.d/*.conf", "configuration; -c DIR reads DIR/master and DIR/master.d/*.conf"),
                ("/etc/halite/pki/master", "the master's key pair and the minions' keys (minions, minions_pre, minions_rejected, minions_denied)"),
                ("/var/cache/halite/master", "the job cache and the minions' grains"),
                ("/var/log/halite/events.log", "the event log, one JSON object per line"),
                ("/var/run/halite/master/master.sock", "the control socket the command-line tools use"),
            ],
            examples: &[
                ("Run in the foreground with debug logging and a private configuration directory:", "halite-master -c ./etc -l debug"),
                ("Under systemd:", "systemctl enable --now halite-master"),
            ],
            see_also: &["halite-minion(1)", "halite(1)", "halite-key(1)", "halite-run(1)"],
        },
        "halite-minion" => Extra {
            operands: "",
            description: &[
                "The minion connects to its master, authenticates with its key (pending until the key is accepted on the master), then runs the jobs the master publishes, each on a thread of its own, and sends their returns. It reconnects with backoff when the master goes away.",
                "SIGHUP reopens the log file; SIGTERM and SIGINT stop it. Running jobs are not killed by a restart under systemd (KillMode=process).",
            ],
            exit_status: &[
                ("0", "stopped on SIGTERM or SIGINT; for call: the master took the event"),
                ("1", "start-up failure; for call: unknown function, key not accepted, event refused, no master"),
                ("64", "usage error, including an unknown -l level"),
                ("77", "its key was rejected or denied on the master (unless rejected_retry)"),
                ("78", "bad configuration (every bad key is named on standard error)"),
            ],
            files: &[
                ("/etc/halite/minion, /etc/halite/minion.d/*.conf", "configuration; -c DIR reads DIR/minion and DIR/minion.d/*.conf"),
                ("/etc/halite/pki/minion", "minion.key, minion.pub and minion_master.pub (the master's key, cached on first use unless master_finger pins it)"),
                ("/var/cache/halite/minion", "salt:// files fetched by jobs"),
            ],
            examples: &[
                ("Fire an event at the master from this minion:", "halite-minion call event.send myco/deploy/done '{\"version\": 42}'"),
            ],
            see_also: &["halite-master(1)", "halite(1)", "halite-key(1)"],
        },
        "halite" => Extra {
            operands: r"\fItarget\fR \fIfunction\fR [\fIarg\fR ...] [\fIkey\fR=\fIvalue\fR ...]",
            description: &[
                "Salt's salt command: the target is a glob of minion ids unless -L, -E, -G, -I or -C says otherwise. Arguments are read as Salt reads them (YAML scalars; key=value words are keyword arguments). Returns are printed as they arrive, in Salt's formats; minions that do not return within the timeout are asked whether they still run the job, as Salt does, and are reported as not returning.",
            ],
            exit_status: &[
                ("0", "every targeted minion returned with retcode 0 (also --async once published)"),
                ("1", "a minion returned a non-zero retcode or did not return"),
                ("2", "no minion returned, the target matched no accepted key, the master is not running, or it refused the job"),
                ("64", "usage error"),
            ],
            files: COMMON_FILES,
            examples: &[
                ("Ping every minion:", "halite '*' test.ping"),
                ("Run a command on two minions, output as one JSON object:", "halite -L web1,web2 cmd.run 'uptime' --static --out json"),
                ("Apply a state to the minions with a grain:", "halite -G 'os:Debian' state.sls nginx test=True"),
            ],
            see_also: &["halite-run(1)", "halite-key(1)", "halite-master(1)"],
        },
        "halite-key" => Extra {
            operands: "",
            description: &[
                "Salt's salt-key: lists, accepts, rejects and deletes minion keys through the running master, which owns the key directories. Globs match minion ids as Salt's do; several globs are separated by commas. Changes ask for confirmation unless -y is given.",
            ],
            exit_status: &[
                ("0", "done, also when the question was answered no"),
                ("1", "the glob matched no key in the statuses searched"),
                ("2", "the master is not running, its configuration is bad or unreadable, or it answered with an error"),
                ("64", "usage error: an unknown --out or -l status, or more than one of -a/-A, -r/-R, -d/-D"),
            ],
            files: COMMON_FILES,
            examples: &[
                ("List every key:", "halite-key -L"),
                ("Accept the pending key of web1 without asking:", "halite-key -a web1 -y"),
                ("Compare a fingerprint with the one the minion shows:", "halite-key -f web1"),
            ],
            see_also: &["halite-master(1)", "halite(1)"],
        },
        "halite-run" => Extra {
            operands: r"\fIrunner\fR [\fIarg\fR ...] [\fIkey\fR=\fIvalue\fR ...]",
            description: &[
                "Salt's salt-run: runs a function on the master and prints its return. state.event prints the live event bus (tag, a tab, the JSON data); reactor.list, reactor.test and reactor.replay are the reactor's dry runs, which need only the master's configuration.",
            ],
            exit_status: &[
                ("0", "done; state.event printed count events"),
                ("1", "the runner failed (unknown runner, bad arguments, a failed orchestration, a refused event), or the master dropped a state.event subscriber that read too slowly"),
                ("2", "the master is not running, its configuration is bad, or it answered unexpectedly"),
                ("64", "usage error"),
            ],
            files: COMMON_FILES,
            examples: &[
                ("Follow the event bus:", "halite-run state.event pretty=True"),
                ("Which minions are up, and which run an older Halite than the master:", "halite-run manage.status; halite-run manage.versions"),
                ("What the reactor would do for an event:", "halite-run reactor.test salt/auth data='{\"act\": \"pend\", \"id\": \"Minion2\"}'"),
            ],
            see_also: &["halite(1)", "halite-master(1)"],
        },
        _ => Extra { operands: "", description: &[], exit_status: &[], files: &[], examples: &[], see_also: &[] },
    }
}

/// Plain text as roff: backslashes and dashes escaped, a leading `.` or `'` defused,
/// `` `literal` `` spans in bold.
pub fn text(plain: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    let ticks = plain.matches('`').count();
    for c in plain.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '`' if ticks.is_multiple_of(2) => {
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            c if c.is_control() => out.push(' '),
            c if !c.is_ascii() => {
                let _ = write!(out, "\\[u{:04X}]", c as u32);
            }
            c => out.push(c),
        }
    }
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

fn bold(s: &str) -> String {
    format!("\\fB{}\\fR", text(s))
}

fn italic(s: &str) -> String {
    format!("\\fI{}\\fR", text(s))
}

/// The page's NAME line: the help's sentence up to a usage example it may carry.
fn summary(binary: &Binary) -> String {
    let description = &binary.help.description;
    let cut = description.find(&format!(": {} ", binary.help.name)).unwrap_or(description.len());
    let summary = description[..cut].trim_end_matches('.');
    let mut chars = summary.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub fn render(binary: &Binary) -> String {
    let name = &binary.help.name;
    let extra = extra(name);
    let mut out = String::new();
    let _ = writeln!(out, ".\\\" Generated by scripts/gen-docs from `{name} --help`: do not edit (tests/tests/docs.rs");
    let _ = writeln!(out, ".\\\" fails when this page and the binary disagree).");
    let _ = writeln!(
        out,
        ".TH {} 1 {DATE} \"Halite {}\" \"Halite Manual\"",
        text(&name.to_uppercase()),
        env!("CARGO_PKG_VERSION")
    );
    // Flags and paths are not to be broken at a hyphen.
    out.push_str(".nh\n");
    out.push_str(".SH NAME\n");
    let _ = writeln!(out, "{} \\- {}", text(name), text(&summary(binary)));

    out.push_str(".SH SYNOPSIS\n");
    let _ = writeln!(out, "{}", bold(name));
    for opt in &binary.help.options {
        let flag = match opt.short {
            Some(c) => format!("-{c}"),
            None => format!("--{}", opt.long),
        };
        match &opt.value {
            Some(value) => {
                let _ = writeln!(out, "[{} {}]", bold(&flag), italic(value));
            }
            None => {
                let _ = writeln!(out, "[{}]", bold(&flag));
            }
        }
    }
    if !extra.operands.is_empty() {
        let _ = writeln!(out, "{}", extra.operands);
    }
    for command in &binary.commands {
        let words = command.name.strip_prefix(name.as_str()).unwrap_or(&command.name).trim();
        let _ = writeln!(out, ".br\n{} [\\fIoptions\\fR] {}", bold(name), bold(words));
        for positional in &command.positionals {
            let _ = writeln!(out, "[{} ...]", italic(&positional.name));
        }
    }

    out.push_str(".SH DESCRIPTION\n");
    let _ = writeln!(out, "{}", text(&binary.help.description));
    for paragraph in extra.description {
        let _ = writeln!(out, ".PP\n{}", text(paragraph));
    }

    out.push_str(".SH OPTIONS\n");
    for opt in &binary.help.options {
        let mut head: Vec<String> = opt.spellings().iter().map(|s| bold(s)).collect();
        if let Some(value) = &opt.value {
            let last = head.pop().unwrap_or_default();
            head.push(format!("{last} {}", italic(value)));
        }
        let _ = writeln!(out, ".TP\n{}\n{}", head.join(", "), text(&opt.description));
    }
    let _ = writeln!(out, ".TP\n{}\ndisplay usage information", bold("--help"));

    if !binary.commands.is_empty() {
        out.push_str(".SH COMMANDS\n");
        for command in &binary.commands {
            let words = command.name.strip_prefix(name.as_str()).unwrap_or(&command.name).trim();
            let _ = writeln!(out, ".TP\n{}\n{}", bold(words), text(&command.description));
            for positional in &command.positionals {
                let _ = writeln!(
                    out,
                    ".RS\n.TP\n{}\n{}\n.RE",
                    italic(&positional.name),
                    text(&positional.description)
                );
            }
        }
    }
    if name == "halite-run" {
        out.push_str(".SH RUNNERS\n");
        let _ = writeln!(out, "{}", text(&super::runners().join(", ")));
    }
    if name == "halite" {
        out.push_str(".SH FUNCTIONS\n");
        out.push_str("The functions a minion has (sys.list_functions):\n");
        let _ = writeln!(out, "{}", text(&halite_minion::functions::list_functions().join(", ")));
    }
    if !extra.exit_status.is_empty() {
        out.push_str(".SH EXIT STATUS\n");
        for (code, meaning) in extra.exit_status {
            let _ = writeln!(out, ".TP\n{}\n{}", bold(code), text(meaning));
        }
    }
    if !extra.files.is_empty() {
        out.push_str(".SH FILES\n");
        for (path, meaning) in extra.files {
            let _ = writeln!(out, ".TP\n{}\n{}", italic(path), text(meaning));
        }
    }
    if !extra.examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (what, command) in extra.examples {
            let _ =
                writeln!(out, ".PP\n{}\n.PP\n.RS\n.nf\n{}\n.fi\n.RE", text(what), text(command));
        }
    }
    if !extra.see_also.is_empty() {
        out.push_str(".SH SEE ALSO\n");
        for (i, r) in extra.see_also.iter().enumerate() {
            let (page, section) = r.trim_end_matches(')').split_once('(').unwrap_or((r, "1"));
            let comma = if i + 1 < extra.see_also.len() { "," } else { "" };
            let _ = writeln!(out, ".BR {} ({section}){comma}", text(page));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn text_is_escaped_for_roff() {
        assert_eq!(text("-c, --config-dir"), "\\-c, \\-\\-config\\-dir");
        assert_eq!(text("a\\b"), "a\\eb");
        assert_eq!(text(".TH evil"), "\\&.TH evil");
        assert_eq!(text("'x"), "\\&'x");
        assert_eq!(text("holding `master` and"), "holding \\fBmaster\\fR and");
        assert_eq!(text("one ` tick"), "one ` tick");
        assert_eq!(text("a\nb"), "a b");
        assert_eq!(text("quiet … debug"), "quiet \\[u2026] debug");
    }
}
