//! The daemons' logging: stderr through `env_logger` (`RUST_LOG` honoured), and Salt's
//! `log_file` at `log_level_logfile`, written by a thread of its own so that a slow disk never
//! holds a loop, and reopened on SIGHUP (after logrotate moved it).

use crate::files::open_line_log;
use crate::time::Utc;
use log::{LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines the file writer may lag behind by; past it lines are dropped and counted.
const QUEUE: usize = 10_000;

enum Msg {
    Line(String),
    Reopen,
}

/// The handle that reopens the log file (SIGHUP).
#[derive(Clone)]
pub struct LogFile {
    tx: SyncSender<Msg>,
}

impl LogFile {
    /// Has the writer reopen its path; the lines before go to the old file.
    pub fn reopen(&self) {
        // A full queue will write on; the reopen comes when there is room.
        let _ = self.tx.send(Msg::Reopen);
    }
}

/// Sets up the global logger: stderr at `stderr_level` (and `RUST_LOG`), plus `file` at its
/// level. The file is opened (0600) before this returns, so a bad path is a start-up error.
pub fn init(
    stderr_level: LevelFilter,
    file: Option<(&Path, LevelFilter)>,
) -> io::Result<Option<LogFile>> {
    let stderr = env_logger::Builder::new().filter_level(stderr_level).parse_default_env().build();
    let mut max = stderr.filter();
    let mut handle = None;
    let mut sink = None;
    if let Some((path, level)) = file {
        let opened = open(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer { path: path.to_path_buf(), file: opened, dropped: dropped.clone() };
        std::thread::Builder::new().name("log-file".into()).spawn(move || writer.run(rx))?;
        max = max.max(level);
        handle = Some(LogFile { tx: tx.clone() });
        sink = Some(Sink { level, tx, dropped });
    }
    log::set_boxed_logger(Box::new(Tee { stderr, file: sink }))
        .map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(max);
    Ok(handle)
}

/// Why a daemon could not start logging: [`start`]'s error.
#[derive(Debug)]
pub enum StartError {
    /// `--log-level` named no level Salt knows.
    UnknownLevel(String),
    /// The log file (or the logger) could not be set up.
    CannotLog(io::Error),
}

impl StartError {
    /// The daemon's exit status: 64 (usage) for a bad level, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::UnknownLevel(_) => 64,
            StartError::CannotLog(_) => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::UnknownLevel(name) => write!(f, "unknown log level '{name}'"),
            StartError::CannotLog(e) => write!(f, "cannot log: {e}"),
        }
    }
}

/// A daemon's logging from its command line and config: `--log-level` (when given) over the
/// config's `level` on stderr, the config's log `file` at its level ([`init`]), then the
/// config's `warnings` logged.
pub fn start(
    cli_level: Option<&str>,
    level: LevelFilter,
    file: Option<(&Path, LevelFilter)>,
    warnings: &[String],
) -> Result<Option<LogFile>, StartError> {
    let level = match cli_level {
        Some(name) => crate::config::parse_log_level(name)
            .ok_or_else(|| StartError::UnknownLevel(name.to_string()))?,
        None => level,
    };
    let handle = init(level, file).map_err(StartError::CannotLog)?;
    for warning in warnings {
        log::warn!("{warning}");
    }
    Ok(handle)
}

/// `text` shortened to 120 characters for a message, made [`printable`]: a peer's string (a
/// target, a jid) may be as long as a frame.
pub fn clip(text: &str) -> String {
    printable(text, 120)
}

/// `text` fit for one log line: control characters, and the invisible ones that reorder or
/// hide the text around them ([`crate::id::is_invisible`]), written as escapes (`\n`,
/// `\u{202e}`), so that a peer's string can neither start a forged line nor disguise one,
/// and `\` itself doubled (a peer's literal `\n` is not read as an escaped line break); at
/// most `max` characters, then `...`.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_add(3)));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if escaped(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// `message` as one log line: [`printable`], unclipped, when it needs to be.
fn one_line(message: String) -> String {
    match message.chars().any(escaped) {
        true => printable(&message, usize::MAX),
        false => message,
    }
}

/// What [`printable`] writes as an escape.
fn escaped(c: char) -> bool {
    c.is_control() || crate::id::is_invisible(c)
}

fn open(path: &Path) -> io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = open_line_log(path)
        .map_err(|e| io::Error::new(e.kind(), format!("log_file {}: {e}", path.display())))?;
    Ok(BufWriter::new(file))
}

struct Sink {
    level: LevelFilter,
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

struct Tee {
    stderr: env_logger::Logger,
    file: Option<Sink>,
}

impl Log for Tee {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.stderr.enabled(meta) || self.file.as_ref().is_some_and(|f| meta.level() <= f.level)
    }

    fn log(&self, record: &Record<'_>) {
        let to_stderr = self.stderr.matches(record);
        let sink = self.file.as_ref().filter(|sink| record.level() <= sink.level);
        if !to_stderr && sink.is_none() {
            return;
        }
        // One record, one line: a message quoting what a peer or a local user chose (a tag, a
        // path, serde's "unknown variant") can neither start a forged line nor disguise one.
        let message = one_line(record.args().to_string());
        if to_stderr {
            self.stderr.log(
                &Record::builder()
                    .args(format_args!("{message}"))
                    .level(record.level())
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        }
        let Some(sink) = sink else { return };
        let line = line(&Utc::now().stamp(), record, &message);
        if let Err(TrySendError::Full(_)) = sink.tx.try_send(Msg::Line(line)) {
            sink.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

/// `2026-12-03T06:03:07.123456+00:00 [INFO ] halite_minion: message`
fn line(stamp: &str, record: &Record<'_>, message: &str) -> String {
    format!("{stamp} [{:<5}] {}: {message}\n", record.level(), record.target())
}

struct Writer {
    path: PathBuf,
    file: BufWriter<File>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            self.handle(first);
            // Whatever else is queued goes out with it, then one flush.
            while let Ok(more) = rx.try_recv() {
                self.handle(more);
            }
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                let note = format!(
                    "{} [WARN ] halite: {dropped} log lines dropped: the log file fell behind\n",
                    Utc::now().stamp()
                );
                let _ = self.file.write_all(note.as_bytes());
            }
            if let Err(e) = self.file.flush() {
                eprintln!("log_file {}: {e}", self.path.display());
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Line(line) => {
                if let Err(e) = self.file.write_all(line.as_bytes()) {
                    eprintln!("log_file {}: {e}", self.path.display());
                }
            }
            Msg::Reopen => {
                let _ = self.file.flush();
                match open(&self.path) {
                    Ok(file) => self.file = file,
                    // Keep writing to the old file rather than losing lines.
                    Err(e) => eprintln!("cannot reopen {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_forges_or_disguises_a_line() {
        let forged =
            "a\n2026-01-01 [WARN ] minion admin authenticated\r\t\u{1b}[31m\u{202e}x\u{7f}";
        assert_eq!(
            printable(forged, 200),
            "a\\n2026-01-01 [WARN ] minion admin authenticated\\r\\t\\u{1b}[31m\\u{202e}x\\u{7f}"
        );
        assert_eq!(printable("é✓ ok", 200), "é✓ ok");
        // A literal backslash-n is not an escaped line break.
        assert_eq!(printable("a\\nb\nc", 200), "a\\\\nb\\nc");
        assert_eq!(printable("abcdef", 3), "abc...");
        assert_eq!(clip(&"x".repeat(200)).len(), 123);
    }

    #[test]
    fn a_file_line_says_when_what_and_where() {
        let record = Record::builder()
            .level(log::Level::Warn)
            .target("halite_master")
            .args(format_args!("closed connection minion1@127.0.0.1:5: x"))
            .build();
        assert_eq!(
            line("2026-12-03T06:03:07.123456+00:00", &record, &one_line(record.args().to_string())),
            "2026-12-03T06:03:07.123456+00:00 [WARN ] halite_master: closed connection \
             minion1@127.0.0.1:5: x\n"
        );
        // A message that quotes a peer stays one line.
        let forged = "refused event 'x\n2026-01-01T00:00:00+00:00 [ERROR] halite: forged'";
        assert_eq!(
            one_line(forged.to_string()),
            "refused event 'x\\n2026-01-01T00:00:00+00:00 [ERROR] halite: forged'"
        );
    }
}
