//! Processes for the whole-process benchmarks: temp trees, daemons whose log is a file,
//! the swarm on pipes, memory readings from `/proc`, and medians.

use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long any one step may take before the benchmark gives up.
pub const STEP: Duration = Duration::from_secs(60);

pub type Result<T> = std::result::Result<T, String>;

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Result<TempDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("halite-bench-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `rel` (creating its directory).
    pub fn write(&self, rel: &str, text: &str) -> Result<PathBuf> {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Adds `text` at the end of `rel`.
    pub fn append(&self, rel: &str, text: &str) -> Result<()> {
        let path = self.0.join(rel);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Where dropped [`TempDir`]s wait until [`Trash`] is dropped. Removing a run's tree (thousands of
/// key and job files) just before the next run made that run's file creations slower on this
/// machine's journal-less ext4, whose inode allocator skips (and reads the inode table for)
/// inodes deleted in the last 5-10 s: a cost of the benchmark, not of the master.
fn trash() -> PathBuf {
    std::env::temp_dir().join(format!("halite-bench-{}-trash", std::process::id()))
}

/// Whether a [`Trash`] is held: without one (the unit tests), nothing would empty it.
static TRASH_HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Removes every dropped [`TempDir`] when it is dropped itself: at the end of the run.
pub struct Trash(());

impl Trash {
    /// From now on dropped [`TempDir`]s wait in the trash until this is dropped.
    pub fn hold() -> Trash {
        TRASH_HELD.store(true, std::sync::atomic::Ordering::Relaxed);
        Trash(())
    }
}

impl Drop for Trash {
    fn drop(&mut self) {
        TRASH_HELD.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = fs::remove_dir_all(trash());
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let moved = TRASH_HELD.load(std::sync::atomic::Ordering::Relaxed)
            && fs::create_dir_all(trash())
                .and_then(|()| {
                    fs::rename(&self.0, trash().join(self.0.file_name().unwrap_or_default()))
                })
                .is_ok();
        if !moved {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A daemon whose stderr goes to a log file; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    name: String,
}

impl Daemon {
    pub fn spawn(mut cmd: Command, log: PathBuf, name: &str) -> Result<Daemon> {
        let file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Daemon { child, log, name: name.to_string() })
    }

    /// Waits for a log line containing `needle`; returns that line.
    pub fn wait_line(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + STEP;
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_string());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited ({status}) before '{needle}':\n{text}", self.name));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not log '{needle}' within {STEP:?}:\n{text}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn memory(&self) -> Memory {
        Memory::of(self.child.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, in KiB: now and at its peak.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Memory { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:") }
    }
}

/// The swarm process: commands on stdin, status lines from stdout.
pub struct SwarmProc {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl SwarmProc {
    pub fn spawn(mut cmd: Command) -> Result<SwarmProc> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting halite-swarm: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(SwarmProc { child, stdin, lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn command(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}").map_err(|e| format!("halite-swarm stdin: {e}"))
    }

    /// A `lost ...` line the swarm has said since the last look, if any (other lines are
    /// dropped: call this only while no other line is awaited).
    pub fn lost(&mut self) -> Option<String> {
        self.lines.try_iter().find(|line| line.starts_with("lost "))
    }

    /// The next status line starting with `prefix`; `lost ...` lines are errors.
    pub fn wait_line(&mut self, prefix: &str) -> Result<String> {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(line) if line.starts_with("lost ") => return Err(format!("swarm: {line}")),
                Ok(_) => {}
                Err(_) => return Err(format!("halite-swarm did not say '{prefix}' in time")),
            }
        }
    }
}

impl Drop for SwarmProc {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows a growing file (the event log) like `tail -F`: through rotations, without losing
/// the lines written to the old file before it was renamed away, however the rotations fall
/// between two looks (files are told apart by inode).
pub struct Follow {
    path: PathBuf,
    file: Option<fs::File>,
    carry: String,
    /// Inodes of the rotated files already counted, or there before the start.
    done: std::collections::HashSet<u64>,
}

impl Follow {
    /// Starts at the file's current end.
    pub fn from_end(path: &Path) -> Follow {
        let file = fs::File::open(path).ok().map(|mut f| {
            let _ = f.seek(SeekFrom::End(0));
            f
        });
        let mut follow = Follow {
            path: path.to_path_buf(),
            file,
            carry: String::new(),
            done: Default::default(),
        };
        follow.done = follow.rotated().into_iter().map(|(_, ino)| ino).collect();
        follow
    }

    /// `PATH.1`, `PATH.2`, … as they are now, with their inodes.
    fn rotated(&self) -> Vec<(PathBuf, u64)> {
        use std::os::unix::fs::MetadataExt;
        let base = self.path.display().to_string();
        (1..=1000)
            .map(|k| PathBuf::from(format!("{base}.{k}")))
            .map_while(|p| fs::metadata(&p).ok().map(|m| (p, m.ino())))
            .collect()
    }

    /// Polls until `n` new lines contain `needle`.
    pub fn wait_count(&mut self, needle: &str, n: usize) -> Result<()> {
        self.wait_count_unless(needle, n, STEP, || None)
    }

    /// `wait_count`, giving up after `limit`, or as soon as `stop` has a reason to.
    pub fn wait_count_unless(
        &mut self,
        needle: &str,
        n: usize,
        limit: Duration,
        mut stop: impl FnMut() -> Option<String>,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        loop {
            seen += self.count_new(needle);
            if seen >= n {
                return Ok(());
            }
            if let Some(why) = stop() {
                return Err(format!("{seen} of {n} '{needle}' in {}: {why}", self.path.display()));
            }
            if Instant::now() > deadline {
                return Err(format!("{seen} of {n} '{needle}' in {}", self.path.display()));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// How many complete new lines contain `needle`. Once the followed file was rotated: its
    /// rest, every rotated file not counted yet (oldest first), then the new file from its
    /// start; if the file moved again meanwhile, once more.
    fn count_new(&mut self, needle: &str) -> usize {
        use std::os::unix::fs::MetadataExt;
        let ino = |f: &fs::File| f.metadata().ok().map(|m| m.ino());
        let mut found = self.drain(needle);
        loop {
            let ours = self.file.as_ref().and_then(ino);
            let head = fs::metadata(&self.path).ok().map(|m| m.ino());
            if head.is_none() || head == ours {
                return found;
            }
            // Renamed away: complete. Count its rest, then what came after it.
            found += self.drain(needle);
            self.carry.clear();
            self.done.extend(ours);
            let rotated = self.rotated();
            for (path, inode) in rotated.iter().rev() {
                if self.done.contains(inode) {
                    continue;
                }
                let Ok(file) = fs::File::open(path) else { continue };
                if ino(&file) == Some(*inode) {
                    self.file = Some(file);
                    found += self.drain(needle);
                    self.carry.clear();
                    self.done.insert(*inode);
                }
            }
            // Inodes no name holds any more were deleted (and may be reused).
            self.done.retain(|i| rotated.iter().any(|(_, r)| r == i));
            match fs::File::open(&self.path) {
                // The head the scan started from: follow it from its start.
                Ok(file) if ino(&file) == head => {
                    self.file = Some(file);
                    found += self.drain(needle);
                }
                // It was rotated during the scan: scan again (it is among the rotated now).
                _ => {}
            }
        }
    }

    /// Reads the open file to its end; counts the complete lines containing `needle`.
    fn drain(&mut self, needle: &str) -> usize {
        let Some(file) = self.file.as_mut() else { return 0 };
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() || bytes.is_empty() {
            return 0;
        }
        let text = std::mem::take(&mut self.carry) + &String::from_utf8_lossy(&bytes);
        // A partial last line waits for the next look.
        let (complete, partial) = match text.rfind('\n') {
            Some(end) => text.split_at(end + 1),
            None => ("", text.as_str()),
        };
        let found = complete.lines().filter(|line| line.contains(needle)).count();
        self.carry = partial.to_string();
        found
    }
}

/// Runs a command to completion; returns (wall time, stdout) or its failure.
pub fn timed(cmd: &mut Command) -> Result<(Duration, String)> {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// CPU time (user + system, all threads) a process has used, and that of its children it
/// has waited for, from `/proc/PID/stat` (clock ticks of 10 ms: Linux's `USER_HZ` on x86).
pub fn cpu_times(pid: u32) -> (Duration, Duration) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    cpu_of_stat(&stat)
}

fn cpu_of_stat(stat: &str) -> (Duration, Duration) {
    // The name (field 2) may hold spaces and parentheses: fields are counted after its `)`.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> =
        rest.split_whitespace().skip(11).take(4).map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = |i: usize| Duration::from_millis(10 * fields.get(i).copied().unwrap_or(0));
    (ticks(0) + ticks(1), ticks(2) + ticks(3))
}

/// The median of some durations, in milliseconds.
pub fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    match samples.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => samples[n / 2].as_secs_f64() * 1000.0,
        n => (samples[n / 2 - 1] + samples[n / 2]).as_secs_f64() * 500.0,
    }
}

/// The median of some numbers.
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    match samples.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit tests hold no [`Trash`]: each run left its temp trees in a trash directory
    /// nothing removed.
    #[test]
    fn a_temp_dir_dropped_without_a_trash_held_is_removed() {
        let dir = TempDir::new("no-trash").unwrap();
        dir.write("a/b", "x").unwrap();
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        assert!(!trash().exists(), "{}", trash().display());
    }

    #[test]
    fn cpu_times_are_read_after_the_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194304 100 0 0 0 250 31 7 3 20 0 1 0";
        assert_eq!(cpu_of_stat(stat), (Duration::from_millis(2810), Duration::from_millis(100)));
    }

    /// The log rotates twice between two looks: the lines of the file in between are counted.
    #[test]
    fn follow_reads_through_two_rotations_between_looks() {
        let dir = TempDir::new("follow").unwrap();
        let log = dir.join("events.log");
        let rotate = || {
            let _ = fs::rename(dir.join("events.log.1"), dir.join("events.log.2"));
            fs::rename(&log, dir.join("events.log.1")).unwrap();
        };
        let append = |text: &str| {
            let mut f = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append("old\n");
        let mut follow = Follow::from_end(&log);
        append("hit 1\nhit 2\n");
        assert_eq!(follow.count_new("hit"), 2);
        append("hit 3\n");
        rotate();
        append("hit 4\nhit 5\n");
        rotate();
        append("hit 6\npartial hi");
        assert_eq!(follow.count_new("hit"), 4);
        append("t 7\n");
        assert_eq!(follow.count_new("hit"), 1);
    }
}
