//! Reading the event log from a position, across its rotations: whole lines only, in the
//! order the master wrote them. A position names a file by device and inode, so it stays
//! true when `events.log` becomes `events.log.1`, and by a hash of the file's first bytes,
//! since a rotated-away file's inode number is soon given to a new file.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where the next unread line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// FNV-1a of the file's first `min(offset, HEAD_BYTES)` bytes.
    pub head: u64,
}

/// How much of a file's start names it with its inode. The master's first line in a file
/// carries its `_stamp` (microseconds), so two files' starts differ.
const HEAD_BYTES: u64 = 4096;

/// What opening at a position found.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// The position's file is still there.
    Exact,
    /// It was rotated away: reading starts at the oldest file left (what lay between is lost).
    FileGone,
    /// The file is shorter than the position (truncated by hand): reading starts at its start.
    Truncated,
}

/// One whole line (without its newline) and the position after it.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub text: Vec<u8>,
    pub next: Position,
}

/// The reader: an open file of the log's set and how far into it lines were read.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    keep: u32,
    file: File,
    at: Position,
    /// Bytes read past `at.offset` that do not end in a newline yet.
    partial: Vec<u8>,
    /// The file's first bytes, as far as `head` of a position needs them.
    start: Vec<u8>,
    /// The head of every position past the file's first `HEAD_BYTES`, once known.
    full_head: Option<u64>,
}

impl Tail {
    /// The position of the current log's end: where a forwarder with no checkpoint starts.
    pub fn end_of(path: &Path) -> io::Result<Position> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let start = first_bytes(&file, meta.len())?;
        let head = fnv(&start);
        Ok(Position { dev: meta.dev(), ino: meta.ino(), offset: meta.len(), head })
    }

    /// Opens the file `at` names among `path`, `path.1` … `path.<keep>`.
    pub fn open(path: &Path, keep: u32, at: Position) -> io::Result<(Tail, Resume)> {
        let files = log_files(path, keep);
        let found = files.iter().find(|(p, meta)| {
            (meta.dev(), meta.ino()) == (at.dev, at.ino)
                && File::open(p).and_then(|f| first_bytes(&f, at.offset)).ok().map(|b| fnv(&b))
                    == Some(at.head)
        });
        let (file_path, meta, mut resume) = match found {
            Some((p, meta)) => (p.clone(), meta.clone(), Resume::Exact),
            // The oldest left: the last of the list that exists.
            None => match files.last() {
                Some((p, meta)) => (p.clone(), meta.clone(), Resume::FileGone),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no event log at {}", path.display()),
                    ))
                }
            },
        };
        let mut offset = if resume == Resume::Exact { at.offset } else { 0 };
        if offset > meta.len() {
            resume = Resume::Truncated;
            offset = 0;
        }
        let mut file = File::open(&file_path)?;
        file.seek(SeekFrom::Start(offset))?;
        let start = first_bytes(&file, offset)?;
        let at = Position { dev: meta.dev(), ino: meta.ino(), offset, head: fnv(&start) };
        let full_head = (start.len() == HEAD_BYTES as usize).then_some(at.head);
        let partial = Vec::new();
        let tail = Tail { path: path.to_path_buf(), keep, file, at, partial, start, full_head };
        Ok((tail, resume))
    }

    /// Where the next line starts.
    pub fn position(&self) -> Position {
        self.at
    }

    /// Up to `max_lines` whole lines (about `max_bytes` at most, but never fewer than one
    /// line), moving to the next newer file once this one was rotated and is read to its end.
    pub fn read(&mut self, max_lines: usize, max_bytes: usize) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        let mut bytes = 0;
        let mut chunk = vec![0; 64 * 1024];
        // How much of `partial` the lines taken so far used: dropped once, not per line.
        let mut used = 0;
        while lines.len() < max_lines && bytes < max_bytes {
            // Whole lines already buffered first.
            if let Some(len) = self.partial[used..].iter().position(|&b| b == b'\n') {
                let text = self.partial[used..used + len].to_vec();
                used += len + 1;
                self.at.offset += len as u64 + 1;
                self.name_position()?;
                bytes += len;
                lines.push(Line { text, next: self.at });
                continue;
            }
            self.partial.drain(..used);
            used = 0;
            let n = self.file.read(&mut chunk)?;
            if n > 0 {
                self.partial.extend_from_slice(&chunk[..n]);
                continue;
            }
            // The end of this file: go on to the next one if the master rotated past it.
            if !self.advance()? {
                break;
            }
        }
        self.partial.drain(..used);
        Ok(lines)
    }

    /// Passes over up to about `max_bytes` of whole lines without keeping them, and says how
    /// many there were (how the forwarder counts the events it is behind by).
    pub fn skip(&mut self, max_bytes: usize) -> io::Result<u64> {
        let (mut lines, mut bytes) = (0, 0);
        while bytes < max_bytes {
            let batch = self.read(4096, 1 << 20)?;
            if batch.is_empty() {
                break;
            }
            lines += batch.len() as u64;
            bytes += batch.iter().map(|l| l.text.len() + 1).sum::<usize>();
        }
        Ok(lines)
    }

    /// At the end of the file: when a newer file follows it (the master rotated it), reopens
    /// on that one. A line the master cut short is never left behind, since the master ends
    /// such a line before it writes on.
    fn advance(&mut self) -> io::Result<bool> {
        let files = log_files(&self.path, self.keep);
        let next = match files
            .iter()
            .position(|(_, m)| (m.dev(), m.ino()) == (self.at.dev, self.at.ino))
        {
            Some(0) => return Ok(false),
            Some(i) => &files[i - 1],
            // Not among the log's names: deleted (rotated past the kept files while open),
            // the oldest left follows it; moved elsewhere (logrotate), the new log does.
            None => {
                let deleted = self.file.metadata()?.nlink() == 0;
                let next = if deleted { files.last() } else { files.first() };
                match next {
                    Some(next) if deleted || next.0 == self.path => next,
                    _ => return Ok(false),
                }
            }
        };
        // Read what this file got between the last read and the rotation first.
        let mut rest = Vec::new();
        self.file.read_to_end(&mut rest)?;
        if !rest.is_empty() {
            self.partial.extend_from_slice(&rest);
            return Ok(true);
        }
        if !self.partial.is_empty() {
            log::warn!(
                "event log: {} bytes without a newline at the end of a rotated file skipped",
                self.partial.len()
            );
            self.partial.clear();
        }
        self.file = File::open(&next.0)?;
        self.at = Position { dev: next.1.dev(), ino: next.1.ino(), offset: 0, head: fnv(&[]) };
        self.start.clear();
        self.full_head = None;
        Ok(true)
    }

    /// Sets `at.head` for the new `at.offset`, reading the file's start as far as needed.
    fn name_position(&mut self) -> io::Result<()> {
        let want = self.at.offset.min(HEAD_BYTES) as usize;
        // Past the first 4 KiB every position of the file has the same head: hashed once.
        if let (true, Some(full)) = (want == HEAD_BYTES as usize, self.full_head) {
            self.at.head = full;
            return Ok(());
        }
        if self.start.len() < want {
            self.start = first_bytes(&self.file, want as u64)?;
        }
        self.at.head = fnv(&self.start[..want.min(self.start.len())]);
        if want == HEAD_BYTES as usize && self.start.len() == want {
            self.full_head = Some(self.at.head);
        }
        Ok(())
    }
}

/// Bytes of the log at `path` after `at`: the rest of its file and every newer one (all of
/// the log when that file is gone).
pub fn behind_bytes(path: &Path, keep: u32, at: Position) -> u64 {
    let files = log_files(path, keep);
    match files.iter().position(|(_, m)| (m.dev(), m.ino()) == (at.dev, at.ino)) {
        Some(i) => {
            files[i].1.len().saturating_sub(at.offset)
                + files[..i].iter().map(|(_, m)| m.len()).sum::<u64>()
        }
        None => files.iter().map(|(_, m)| m.len()).sum(),
    }
}

/// The file's first `min(upto, HEAD_BYTES)` bytes (fewer if it is shorter).
fn first_bytes(file: &File, upto: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; upto.min(HEAD_BYTES) as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// 64-bit FNV-1a: a file's name by its first bytes, not a defence against anyone.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// `path`, `path.1` … `path.<keep>` that exist, newest first.
fn log_files(path: &Path, keep: u32) -> Vec<(PathBuf, std::fs::Metadata)> {
    std::iter::once(path.to_path_buf())
        .chain((1..=keep).map(|n| PathBuf::from(format!("{}.{n}", path.display()))))
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn rotate(path: &Path, keep: u32) {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        let _ = std::fs::remove_file(numbered(keep));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(path, numbered(1)).unwrap();
        append(path, "");
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| String::from_utf8(l.text.clone()).unwrap()).collect()
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("halite-tail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn whole_lines_only_and_resumes_where_it_stopped() {
        let dir = tempdir("lines");
        let log = dir.join("events.log");
        append(&log, "a\nb\nhalf");
        let (mut tail, resume) = Tail::open(&log, 2, Tail::end_of(&log).unwrap()).unwrap();
        assert_eq!(resume, Resume::Exact);
        assert!(tail.read(10, 1 << 20).unwrap().is_empty(), "starts at the end");
        let start = Position { offset: 0, head: fnv(&[]), ..tail.position() };
        let (mut tail, _) = Tail::open(&log, 2, start).unwrap();
        let lines = tail.read(10, 1 << 20).unwrap();
        assert_eq!(texts(&lines), ["a", "b"]);
        assert_eq!(lines[1].next.offset, 4);
        append(&log, "-line\nc\n");
        let lines = tail.read(1, 1 << 20).unwrap();
        assert_eq!(texts(&lines), ["half-line"]);
        // A new reader at the last line's position sees what follows, once.
        let (mut again, _) = Tail::open(&log, 2, lines[0].next).unwrap();
        assert_eq!(texts(&again.read(10, 1 << 20).unwrap()), ["c"]);
        assert_eq!(behind_bytes(&log, 2, again.position()), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn positions_past_the_first_bytes_name_the_file_as_its_end_does() {
        let dir = tempdir("head");
        let log = dir.join("events.log");
        for i in 0..300 {
            append(&log, &format!("{{\"tag\": \"t/{i}\", \"data\": {{}}}}\n"));
        }
        let start = Position { offset: 0, head: fnv(&[]), ..Tail::end_of(&log).unwrap() };
        let (mut tail, _) = Tail::open(&log, 2, start).unwrap();
        let lines = tail.read(1000, 1 << 20).unwrap();
        assert_eq!(lines.len(), 300);
        assert!(lines[299].next.offset > HEAD_BYTES);
        assert_eq!(lines[299].next, Tail::end_of(&log).unwrap());
        // And a reader opened there (the head hashed from the file) goes on from it.
        let (_, resume) = Tail::open(&log, 2, lines[150].next).unwrap();
        assert_eq!(resume, Resume::Exact);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn follows_rotations_and_says_when_its_file_is_gone() {
        let dir = tempdir("rotate");
        let log = dir.join("events.log");
        append(&log, "1\n");
        let (mut tail, _) = Tail::open(
            &log,
            2,
            Position { offset: 0, head: fnv(&[]), ..Tail::end_of(&log).unwrap() },
        )
        .unwrap();
        let first = tail.read(10, 1 << 20).unwrap();
        assert_eq!(texts(&first), ["1"]);
        append(&log, "2\n");
        rotate(&log, 2);
        append(&log, "3\n");
        rotate(&log, 2);
        append(&log, "4\n");
        assert_eq!(behind_bytes(&log, 2, tail.position()), 6);
        assert_eq!(texts(&tail.read(10, 1 << 20).unwrap()), ["2", "3", "4"]);
        // A checkpoint in the file now at .2 still resumes exactly.
        let (mut resumed, resume) = Tail::open(&log, 2, first[0].next).unwrap();
        assert_eq!(resume, Resume::Exact);
        assert_eq!(texts(&resumed.read(10, 1 << 20).unwrap()), ["2", "3", "4"]);
        // One more rotation drops that file: the oldest left is read, and the loss is said.
        rotate(&log, 2);
        let (mut lossy, resume) = Tail::open(&log, 2, first[0].next).unwrap();
        assert_eq!(resume, Resume::FileGone);
        assert_eq!(texts(&lossy.read(10, 1 << 20).unwrap()), ["3", "4"]);
        // A new file that got the old one's inode number is not taken for it: a file
        // emptied by hand under a checkpoint reads as gone too.
        let one = log.with_extension("log.1");
        let end = Tail::end_of(&one).unwrap();
        std::fs::write(&one, "").unwrap();
        let (_, resume) = Tail::open(&log, 2, end).unwrap();
        assert_eq!(resume, Resume::FileGone);
        // Cut short past its first bytes, it is the same file, read again from its start.
        let long = format!("{}\n", "x".repeat(5000));
        std::fs::write(&one, format!("{long}{long}")).unwrap();
        let end = Tail::end_of(&one).unwrap();
        std::fs::write(&one, &long).unwrap();
        let (mut cut, resume) = Tail::open(&log, 2, end).unwrap();
        assert_eq!(resume, Resume::Truncated);
        assert_eq!(cut.read(1, 1 << 20).unwrap()[0].text.len(), 5000);
        let _ = std::fs::remove_dir_all(dir);
    }
}
