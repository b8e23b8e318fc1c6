//! Salt's `cmd` module: `run` (also as `shell`), `run_all`, `run_stdout`, `run_stderr`,
//! `retcode`. A string runs as `<shell> -c <cmd>` (`/bin/sh` unless `shell=` says otherwise),
//! a list as an argv without a shell; see [`options`] for the keyword options.

mod options;

use super::process::{self, Finished};
use super::{Bound, Context, Failure, FnResult, Ret, Spec};
use options::Options;
use serde_json::json;

/// The parameters of Salt's `cmd.run`, in order (positional values bind to them).
const PARAMS: &[&str] = &[
    "cmd",
    "cwd",
    "stdin",
    "runas",
    "group",
    "shell",
    "python_shell",
    "env",
    "clean_env",
    "template",
    "rstrip",
    "umask",
    "output_encoding",
    "output_loglevel",
    "log_callback",
    "hide_output",
    "timeout",
    "reset_system_locale",
    "ignore_retcode",
    "saltenv",
    "use_vt",
    "redirect_stderr",
    "bg",
    "password",
    "encoded_cmd",
    "raise_err",
    "prepend_path",
    "success_retcodes",
    "success_stdout",
    "success_stderr",
];

pub(super) const SPECS: &[Spec] = &[
    Spec::new("cmd.run", RUN_DOC, run).params(PARAMS, 1).varkw(),
    Spec::new("cmd.shell", SHELL_DOC, run).params(PARAMS, 1).varkw(),
    Spec::new("cmd.run_all", RUN_ALL_DOC, run_all).params(PARAMS, 1).varkw(),
    Spec::new("cmd.run_stdout", RUN_STDOUT_DOC, run_stdout).params(PARAMS, 1).varkw(),
    Spec::new("cmd.run_stderr", RUN_STDERR_DOC, run_stderr).params(PARAMS, 1).varkw(),
    Spec::new("cmd.retcode", RETCODE_DOC, retcode).params(PARAMS, 1).varkw(),
];

const RUN_DOC: &str = "Execute the passed command and return the output (stdout and stderr \
    together, unless redirect_stderr=False) as a string. Options: see cmd.run_all.\n\n\
    CLI Example:\n\n    salt '*' cmd.run \"ls -l | awk '/foo/{print \\\\$2}'\"\n";
const SHELL_DOC: &str = "Execute the passed command through the shell and return the output \
    as a string (the same as cmd.run).\n\nCLI Example:\n\n    salt '*' cmd.shell 'ls -l'\n";
const RUN_STDOUT_DOC: &str = "Execute a command and only return the standard out\n\n\
    CLI Example:\n\n    salt '*' cmd.run_stdout 'ls -l'\n";
const RUN_STDERR_DOC: &str = "Execute a command and only return the standard error\n\n\
    CLI Example:\n\n    salt '*' cmd.run_stderr 'ls -l'\n";
const RETCODE_DOC: &str = "Execute a shell command and return the command's return code.\n\n\
    CLI Example:\n\n    salt '*' cmd.retcode 'file /bin/bash'\n";
const RUN_ALL_DOC: &str = "Execute the passed command and return a dict of return data: \
    pid, retcode, stdout, stderr.\n\n\
    Keyword options: cwd (default: the minion user's home), stdin, shell (default /bin/sh), \
    env (a dict, or a list of one-key dicts), clean_env, prepend_path, timeout (seconds), \
    rstrip, hide_output, ignore_retcode, reset_system_locale, redirect_stderr, bg, raise_err, \
    success_retcodes, success_stdout, success_stderr, stdin_raw_newlines. runas, group, umask \
    and template are refused. A list instead of a string runs as an argv, without a shell.\n\n\
    CLI Example:\n\n    salt '*' cmd.run_all 'ls -l' cwd=/tmp timeout=10\n";

/// What one `cmd.*` call ran and got back (Salt's `_run` result).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CmdResult {
    pub pid: u32,
    /// The exit code after the `success_*` overrides (1 after a timeout).
    pub retcode: i64,
    pub stdout: String,
    pub stderr: String,
    /// What the job's retcode becomes (0 with `ignore_retcode`).
    pub job_retcode: i64,
}

fn run(b: &Bound, ctx: &Context) -> FnResult {
    let r = execute(b, ctx, true)?;
    if r.retcode != 0 && b.flag("raise_err", false) {
        return Err(Failure::Command(r.stdout));
    }
    Ok(Ret::with_retcode(r.stdout, r.job_retcode))
}

fn run_all(b: &Bound, ctx: &Context) -> FnResult {
    let r = execute(b, ctx, false)?;
    let value = json!({"pid": r.pid, "retcode": r.retcode, "stdout": r.stdout, "stderr": r.stderr});
    Ok(Ret::with_retcode(value, r.job_retcode))
}

fn run_stdout(b: &Bound, ctx: &Context) -> FnResult {
    let r = execute(b, ctx, false)?;
    Ok(Ret::with_retcode(r.stdout, r.job_retcode))
}

fn run_stderr(b: &Bound, ctx: &Context) -> FnResult {
    let r = execute(b, ctx, false)?;
    Ok(Ret::with_retcode(r.stderr, r.job_retcode))
}

fn retcode(b: &Bound, ctx: &Context) -> FnResult {
    let r = execute(b, ctx, true)?;
    Ok(Ret::with_retcode(r.retcode, r.job_retcode))
}

/// Checks the options and runs the command (Salt's `_run`). `merge_default`: whether stderr
/// goes into stdout unless `redirect_stderr` says otherwise.
pub(crate) fn execute(b: &Bound, ctx: &Context, merge_default: bool) -> Result<CmdResult, Failure> {
    let opts = options::parse(b, merge_default)?;
    log::info!(
        "{}: executing command '{}' in directory '{}'",
        ctx.id,
        opts.display.split_whitespace().next().unwrap_or(""),
        opts.job.cwd.display()
    );
    let unable = |e: std::io::Error| {
        Failure::Command(format!("Unable to run command '{}', reason: {e}", opts.display))
    };
    if opts.bg {
        let pid = process::spawn_background(&opts.job).map_err(unable)?;
        return Ok(CmdResult {
            pid,
            retcode: 0,
            stdout: String::new(),
            stderr: String::new(),
            job_retcode: 0,
        });
    }
    let mut result = match process::run(&opts.job).map_err(unable)? {
        Finished::TimedOut { pid } => {
            log::warn!("{}: command timed out after {} seconds", ctx.id, opts.timeout_text);
            CmdResult {
                pid,
                retcode: 1,
                stdout: format!("{} : Timed out after {} seconds", opts.display, opts.timeout_text),
                stderr: String::new(),
                job_retcode: 1,
            }
        }
        Finished::Exited { pid, code, stdout, stderr } => {
            finish(&opts, pid, code, &stdout, &stderr)
        }
    };
    if result.retcode != 0 && !opts.ignore_retcode {
        log::info!("{}: command failed with return code: {}", ctx.id, result.retcode);
    }
    if opts.ignore_retcode {
        result.job_retcode = 0;
    }
    if opts.hide_output {
        result.stdout.clear();
        result.stderr.clear();
    }
    Ok(result)
}

/// Decodes and strips the output and applies the `success_*` overrides.
fn finish(opts: &Options, pid: u32, code: i64, stdout: &[u8], stderr: &[u8]) -> CmdResult {
    let text = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        match opts.rstrip {
            true => text.trim_end().to_string(),
            false => text.into_owned(),
        }
    };
    let (stdout, stderr) = (text(stdout), text(stderr));
    let succeeded = opts.success_retcodes.contains(&code)
        || opts.success_stdout.iter().any(|s| stdout.contains(s.as_str()))
        || opts.success_stderr.iter().any(|s| stderr.contains(s.as_str()));
    let retcode = if succeeded { 0 } else { code };
    CmdResult { pid, retcode, stdout, stderr, job_retcode: retcode }
}

#[cfg(test)]
mod tests;
