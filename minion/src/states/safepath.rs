//! A file a (root) minion changes, reached without following symlinks another user owns,
//! and changed relative to its directory held open.
//!
//! `file.managed` of `/home/u/.ssh/authorized_keys` runs as root in a directory `u` owns:
//! by path, `u` could make `.ssh` (or the file itself) a symlink to `/root/.ssh` and have
//! root write and chown what the state meant for `u` there. [`Place::resolve`] walks the
//! path one component at a time from `/`, holding each directory, following a symlink only
//! if root or the minion's own user owns it and no other user can write its directory (any
//! other is refused, with its name), and keeps the last directory open: what is then read,
//! written, made or removed is named relative to it, and what is chowned or chmodded is the
//! inode looked at ([`Pinned`]), so a name swapped afterwards changes nothing. In a directory
//! other users can write, a name with other hard links (root's file, linked there where
//! `protected_hardlinks` is off) is not read or changed in place, and no file is made
//! readable in place to a reader it did not have (its other name may have gone since).

use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed at most in one resolution (Linux's own limit).
const MAX_HOPS: usize = 40;

/// A file's place: its directory, held open, and its name there.
#[derive(Debug)]
pub(crate) struct Place {
    dir: OwnedFd,
    name: CString,
    /// Its directory (as it was looked at), when it is one another user can write: a name
    /// there may be their hard link to a file of root's (where `protected_hardlinks` is
    /// off), so one with other links is not changed in place, nor one whose other name
    /// went away made readable to new readers.
    shared: Option<Stat>,
    /// The path as resolved (for messages, and for what is only read).
    pub path: PathBuf,
}

/// What `fstatat` says of a name (the name itself, never a link's target).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
}

impl Stat {
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::other("a path with a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    match ret {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n),
    }
}

/// `openat`; `mode` is for a file `O_CREAT` makes (less the umask).
fn open_at(
    dir: Option<&OwnedFd>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let at = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    let (flags, mode) = (flags | libc::O_CLOEXEC, mode as libc::c_uint);
    // SAFETY: a valid NUL-terminated name; the descriptor returned is ours to own.
    let fd = check(unsafe { libc::openat(at, name.as_ptr(), flags, mode) })?;
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_at(dir: &OwnedFd, name: &CStr) -> io::Result<Stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: valid descriptor, NUL-terminated name and a `stat` to write into.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
    Ok(stat_of(&st))
}

fn stat_fd(fd: &impl AsRawFd) -> io::Result<Stat> {
    // SAFETY: as in `stat_at`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a `stat` to write into.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(stat_of(&st))
}

#[allow(clippy::unnecessary_cast)] // the field types differ between libcs
fn stat_of(st: &libc::stat) -> Stat {
    Stat {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode as u32,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        nlink: st.st_nlink as u64,
        size: st.st_size as u64,
    }
}

/// What the symlink opened as `link` (O_PATH | O_NOFOLLOW) points to.
fn read_link(link: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer is `buf.len()` bytes long; an empty name reads the link itself.
    let n = unsafe {
        libc::readlinkat(link.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(n);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// Largest file [`Place::read`] reads (what is compared with the wanted contents).
const MAX_READ: u64 = 256 * 1024 * 1024;

/// Whether a directory may hold names of another user's making: owned by someone other
/// than root and us, writable by others (sticky or not), or by a group other than root's
/// (Debian's `/usr/local` is root:staff 2775: staff counts as other users).
fn shared_dir(dir: &Stat) -> bool {
    (dir.uid != 0 && dir.uid != euid())
        || dir.mode & 0o002 != 0
        || (dir.mode & 0o020 != 0 && dir.gid != 0)
}

/// The `/proc` name of a descriptor (the file it holds, for calls that take only a path).
fn proc_name(fd: &impl AsRawFd) -> io::Result<PathBuf> {
    let fds = Path::new("/proc/self/fd");
    if !fds.is_dir() {
        return Err(io::Error::other("/proc is not mounted (needed to change files safely)"));
    }
    Ok(fds.join(fd.as_raw_fd().to_string()))
}

/// The uid the minion runs as.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The parts of `path` left to walk (`.` dropped).
fn parts(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

impl Place {
    /// Resolves the absolute `path` from `/` (see the module's text); the last component is
    /// followed too if it is a symlink and `follow_last`. The last component need not exist
    /// (a file to create); every directory before it must.
    pub fn resolve(path: &Path, follow_last: bool) -> io::Result<Place> {
        Place::walk(path, follow_last, false)
    }

    /// [`Place::resolve`], creating the directories before the last component that are
    /// missing (`makedirs`, mode `0777` less the umask), each in the directory held open.
    pub fn make_dirs(path: &Path, follow_last: bool) -> io::Result<Place> {
        Place::walk(path, follow_last, true)
    }

    fn walk(path: &Path, follow_last: bool, make_dirs: bool) -> io::Result<Place> {
        if !path.is_absolute() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an absolute path"));
        }
        let root = c"/";
        let dir_flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let mut dir = open_at(None, root, dir_flags, 0)?;
        // The directories walked through, held: `..` goes back to the one held, not to
        // whatever is the parent by then (a directory of the user's, moved elsewhere while
        // it was held, had `..` lead out of their tree).
        let mut above: Vec<OwnedFd> = Vec::new();
        let mut resolved = PathBuf::from("/");
        let mut todo: VecDeque<OsString> = parts(path).collect();
        let mut hops = 0;
        while let Some(part) = todo.pop_front() {
            let last = todo.is_empty();
            let name = c_name(&part)?;
            if part == ".." {
                if last {
                    return Err(io::Error::other(format!("{} is a directory", path.display())));
                }
                if let Some(parent) = above.pop() {
                    dir = parent; // `/..` is `/`
                    resolved.pop();
                }
                continue;
            }
            let stat = match stat_at(&dir, &name) {
                Err(e) if last && e.kind() == io::ErrorKind::NotFound => None,
                Err(e) if make_dirs && e.kind() == io::ErrorKind::NotFound => {
                    // SAFETY: a valid descriptor and NUL-terminated name.
                    match check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) }) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                        _ => Some(stat_at(&dir, &name)?),
                    }
                }
                Err(e) => return Err(e),
                Ok(stat) => Some(stat),
            };
            let here = resolved.join(&part);
            match stat {
                Some(stat) if stat.is_symlink() && (!last || follow_last) => {
                    // The link's owner and target from one descriptor: a name swapped between
                    // two looks would have another's target followed.
                    let link = open_at(Some(&dir), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
                    let stat = stat_fd(&link)?;
                    let refused = |why: String| {
                        let why = format!("{} is {why}: not followed", here.display());
                        Err(io::Error::new(io::ErrorKind::PermissionDenied, why))
                    };
                    if !stat.is_symlink() {
                        return refused("no longer a symlink".into());
                    }
                    if stat.uid != 0 && stat.uid != euid() {
                        let user = super::perms::user_name(stat.uid);
                        return refused(format!(
                            "a symlink of user {user}, who could point it anywhere"
                        ));
                    }
                    // Root's link in a directory another user can write may be theirs to
                    // place: moved there from anywhere, or hard-linked.
                    if shared_dir(&stat_fd(&dir)?) {
                        return refused(format!(
                            "a symlink in {}, a directory other users can write",
                            resolved.display()
                        ));
                    }
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(io::Error::other(format!(
                            "too many levels of symbolic links at {}",
                            here.display()
                        )));
                    }
                    let target = read_link(&link)?;
                    if target.is_absolute() {
                        dir = open_at(None, root, dir_flags, 0)?;
                        above.clear();
                        resolved = PathBuf::from("/");
                    }
                    for part in parts(&target).collect::<Vec<_>>().into_iter().rev() {
                        todo.push_front(part);
                    }
                }
                _ if last => {
                    let held = stat_fd(&dir)?;
                    let shared = shared_dir(&held).then_some(held);
                    return Ok(Place { dir, name, shared, path: here });
                }
                _ => {
                    let next = open_at(Some(&dir), &name, dir_flags, 0)?;
                    // O_PATH with O_NOFOLLOW opens a symlink itself: one swapped in since the
                    // look above is refused, not followed.
                    if !stat_fd(&next)?.is_dir() {
                        return Err(io::Error::other(format!(
                            "{} changed while it was resolved",
                            here.display()
                        )));
                    }
                    above.push(std::mem::replace(&mut dir, next));
                    resolved = here;
                }
            }
        }
        Err(io::Error::other(format!("{} is a directory", path.display())))
    }

    /// The name itself (a symlink is not followed); `NotFound` if nothing has it.
    pub fn stat(&self) -> io::Result<Stat> {
        stat_at(&self.dir, &self.name)
    }

    /// Refuses to change `stat`'s file in place when it has other hard links and the
    /// directory is one another user can write (see `shared`).
    fn guard(&self, stat: &Stat) -> io::Result<()> {
        if self.shared() && !stat.is_dir() && stat.nlink > 1 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} has {} hard links, in a directory other users can write: not changed",
                    self.path.display(),
                    stat.nlink
                ),
            ));
        }
        Ok(())
    }

    /// The name itself, opened without following it (a symlink's own inode).
    pub fn pin(&self) -> io::Result<Pinned<'_>> {
        let fd = open_at(Some(&self.dir), &self.name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let stat = stat_fd(&fd)?;
        Ok(Pinned { place: self, fd, stat })
    }

    /// Its contents: a regular file's (never through a symlink, never a FIFO or device); in
    /// a directory others can write, not one with other hard links (root's, linked there)
    /// and at most 256 MiB.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let mut file = File::from(open_at(Some(&self.dir), &self.name, flags, 0)?);
        let stat = stat_fd(&file)?;
        if !stat.is_file() {
            return Err(io::Error::other(format!("{} is not a regular file", self.path.display())));
        }
        self.guard(&stat)?;
        let max = if self.shared() { MAX_READ } else { u64::MAX };
        if stat.size > max {
            let what = format!("{} is larger than {} MiB", self.path.display(), MAX_READ >> 20);
            return Err(io::Error::other(what));
        }
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(&mut file, max), &mut bytes)?;
        Ok(bytes)
    }

    /// Whether its directory is one another user can write (see `shared`).
    pub fn shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether the file may be given this owner, group and mode in place (each `None`: as it
    /// is), all three together: [`Pinned::chown`] and [`Pinned::chmod`] check one step
    /// each, so a change the second refuses was left half made by the first.
    pub fn may_become(
        &self,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> io::Result<()> {
        let stat = match self.stat() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            stat => stat?,
        };
        let changes = uid.is_some_and(|u| u != stat.uid)
            || gid.is_some_and(|g| g != stat.gid)
            || mode.is_some_and(|m| m & 0o7777 != stat.mode & 0o7777);
        if !changes {
            return Ok(()); // nothing to refuse: a state that changes nothing passes
        }
        self.guard(&stat)?;
        let (uid, gid) = (uid.unwrap_or(stat.uid), gid.unwrap_or(stat.gid));
        self.no_new_readers(&stat, uid, gid, mode.map_or(stat.mode, |m| m & 0o7777))
    }

    /// Refuses to give `before`'s file the owner `uid`, group `gid` and `mode` in place when
    /// that lets a user, group or everyone read it who could not, in a directory another
    /// user can write: its name there may be the last link to someone else's file, linked
    /// there before its own name went away (`passwd` renames a new `/etc/shadow` over the
    /// old one). A file everyone can read, root (user or group) as the new reader, and what
    /// the directory's own (non-root) user does with a file of its own pass, the last only
    /// where no one else can write the directory (in a group-writable one, a member may
    /// have linked the owner's file there).
    fn no_new_readers(&self, before: &Stat, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        let Some(dir) = self.shared else { return Ok(()) };
        if !before.is_file() || before.mode & 0o004 != 0 {
            return Ok(());
        }
        let owners_own = before.uid == dir.uid && dir.uid != 0 && dir.mode & 0o022 == 0;
        if owners_own && uid == before.uid {
            return Ok(());
        }
        let group_reads = mode & 0o040 != 0 && gid != 0;
        let new_owner = uid != before.uid && uid != 0;
        let new_group = group_reads && (gid != before.gid || before.mode & 0o040 == 0);
        if new_owner || new_group || mode & 0o004 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is uid {}'s, mode {:04o}, in a directory other users can write: not \
                     made readable to others in place",
                    self.path.display(),
                    before.uid,
                    before.mode & 0o7777
                ),
            ));
        }
        Ok(())
    }

    /// What the name links to, if it is a symlink.
    pub fn read_link(&self) -> io::Result<PathBuf> {
        self.pin()?.read_link()
    }

    /// `lchown` of the name (a symlink's own owner, as Salt's `check_perms`).
    pub fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        self.pin()?.chown(uid, gid)
    }

    /// `chmod` of the file itself (see [`Pinned::chmod`]).
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        self.pin()?.chmod(mode)
    }

    /// What was made under the name, if it is what `made` says and ours: another user who
    /// can write the directory may have put their own there since.
    fn made(&self, what: &str, made: impl Fn(&Stat) -> bool) -> io::Result<Pinned<'_>> {
        let pinned = self.pin()?;
        if !made(&pinned.stat) || pinned.stat.uid != euid() {
            let path = self.path.display();
            return Err(io::Error::other(format!("the {what} made at {path} was replaced")));
        }
        Ok(pinned)
    }

    /// Creates `tmp` beside the file, new, private and never through a symlink.
    pub fn create_beside(&self, tmp: &OsStr) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        open_at(Some(&self.dir), &c_name(tmp)?, flags, 0o600).map(File::from)
    }

    /// Renames `tmp` (beside the file) over the file.
    pub fn rename_in(&self, tmp: &OsStr) -> io::Result<()> {
        let (dir, tmp) = (self.dir.as_raw_fd(), c_name(tmp)?);
        // SAFETY: valid descriptors and NUL-terminated names.
        check(unsafe { libc::renameat(dir, tmp.as_ptr(), dir, self.name.as_ptr()) }).map(drop)
    }

    /// Removes `name` from the file's directory (`None`: the file itself).
    pub fn remove(&self, name: Option<&OsStr>) -> io::Result<()> {
        let name = match name {
            Some(name) => c_name(name)?,
            None => self.name.clone(),
        };
        // SAFETY: a valid descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    /// Opens the file itself to append to it, created (`0666` less the umask) if `create`.
    pub fn append(&self, create: bool) -> io::Result<File> {
        let mut flags = libc::O_WRONLY | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        if create {
            flags |= libc::O_CREAT;
        }
        let file = File::from(open_at(Some(&self.dir), &self.name, flags, 0o666)?);
        let stat = stat_fd(&file)?;
        if !stat.is_file() {
            return Err(io::Error::other(format!("{} is not a regular file", self.path.display())));
        }
        self.guard(&stat)?;
        Ok(file)
    }

    /// Creates the directory (`mode` less the umask); the directory made, held.
    pub fn mkdir(&self, mode: u32) -> io::Result<Pinned<'_>> {
        let (dir, name) = (self.dir.as_raw_fd(), self.name.as_ptr());
        // SAFETY: a valid descriptor and NUL-terminated name.
        check(unsafe { libc::mkdirat(dir, name, mode as libc::mode_t) })?;
        self.made("directory", Stat::is_dir)
    }

    /// Creates a symlink to `target` under the name; the link made, held.
    pub fn symlink(&self, target: &OsStr) -> io::Result<Pinned<'_>> {
        let target = c_name(target)?;
        let (dir, name) = (self.dir.as_raw_fd(), self.name.as_ptr());
        // SAFETY: a valid descriptor and NUL-terminated strings.
        check(unsafe { libc::symlinkat(target.as_ptr(), dir, name) })?;
        self.made("symlink", Stat::is_symlink)
    }

    /// Removes the directory under the name with all it holds. `remove_dir_all` is given the
    /// held directory's `/proc` name, so the walk starts there and never through a link.
    pub fn remove_all(&self) -> io::Result<()> {
        std::fs::remove_dir_all(proc_name(&self.dir)?.join(self.name()))
    }

    /// The file's own name.
    pub fn name(&self) -> &OsStr {
        OsStr::from_bytes(self.name.as_bytes())
    }
}

/// The inode a [`Place`]'s name had when it was looked at, held open (`O_PATH`): what is
/// done to it is done to that inode, whatever the name holds by then.
#[derive(Debug)]
pub(crate) struct Pinned<'a> {
    place: &'a Place,
    fd: OwnedFd,
    stat: Stat,
}

impl Pinned<'_> {
    /// Its owner and group now.
    pub fn owners(&self) -> Option<(u32, u32)> {
        stat_fd(&self.fd).ok().map(|s| (s.uid, s.gid))
    }

    /// `lchown` (a symlink's own owner).
    pub fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let before = &self.stat;
        self.place.guard(before)?;
        let after = (uid.unwrap_or(before.uid), gid.unwrap_or(before.gid));
        self.place.no_new_readers(before, after.0, after.1, before.mode)?;
        // -1 leaves one alone (the same id given again would still clear setuid).
        let (uid, gid) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
        let flags = libc::AT_EMPTY_PATH;
        // SAFETY: a valid descriptor and an empty NUL-terminated name.
        let ret = unsafe { libc::fchownat(self.fd.as_raw_fd(), c"".as_ptr(), uid, gid, flags) };
        check(ret).map(drop)
    }

    /// `chmod`: refused for a symlink (Linux has no mode for one, and following it is what
    /// this module is for).
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        if self.stat.is_symlink() {
            let what = format!("{} is a symlink", self.place.path.display());
            return Err(io::Error::other(what));
        }
        let before = &self.stat;
        self.place.guard(before)?;
        self.place.no_new_readers(before, before.uid, before.gid, mode)?;
        // An O_PATH descriptor takes no fchmod; its /proc name is the file itself.
        let proc = c_name(proc_name(&self.fd)?.as_os_str())?;
        // SAFETY: a NUL-terminated path.
        check(unsafe { libc::chmod(proc.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    /// What the symlink points to.
    pub fn read_link(&self) -> io::Result<PathBuf> {
        read_link(&self.fd)
    }

    /// The path it was reached by (for messages).
    pub fn path(&self) -> &Path {
        &self.place.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};

    /// A fresh directory under the temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("halite-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const OTHER: u32 = 65534;

    /// A scratch tree with `home`, a directory of another user's; `None` (the test
    /// skipped) unless the tests run as root, who alone can give it away.
    fn others_home(name: &str) -> Option<(Scratch, PathBuf)> {
        if euid() != 0 {
            eprintln!("skipped: needs root, to give a directory to another user");
            return None;
        }
        let t = Scratch::new(name);
        let home = t.0.join("home");
        fs::create_dir_all(&home).unwrap();
        lchown(&home, Some(OTHER), Some(OTHER)).unwrap();
        Some((t, home))
    }

    /// `/home/u/.ssh` made a symlink (of `u`'s) to root's directory: managing
    /// `~u/.ssh/authorized_keys` as root wrote root's. Another user's symlink is refused, in
    /// the path or last; root's and our own are followed.
    #[test]
    fn another_users_symlink_is_not_followed() {
        let Some((t, home)) = others_home("safepath-links") else { return };
        let root_ssh = t.0.join("root-ssh");
        fs::create_dir_all(&root_ssh).unwrap();
        let ssh = home.join(".ssh");
        symlink(&root_ssh, &ssh).unwrap();
        lchown(&ssh, Some(OTHER), Some(OTHER)).unwrap();
        let err = Place::resolve(&ssh.join("authorized_keys"), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        let user = crate::states::perms::user_name(OTHER);
        let text = format!("{} is a symlink of user {user}, who could point it", ssh.display());
        assert!(err.to_string().starts_with(&text), "{err}");
        // The file itself a link of theirs: refused when followed, the link when not.
        let keys = home.join("keys");
        symlink(root_ssh.join("authorized_keys"), &keys).unwrap();
        lchown(&keys, Some(OTHER), Some(OTHER)).unwrap();
        let err = Place::resolve(&keys, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        let place = Place::resolve(&keys, false).unwrap();
        assert!(place.stat().unwrap().is_symlink());
        assert!(place.chmod(0o600).is_err(), "a mode given through the link");
        // Root's own link in their directory may be theirs to place (moved there, or a
        // hard link): not followed either.
        fs::remove_file(&ssh).unwrap();
        symlink("../root-ssh", &ssh).unwrap();
        let err = Place::resolve(&ssh.join("authorized_keys"), true).unwrap_err();
        let text = format!(
            "{} is a symlink in {}, a directory other users can write",
            ssh.display(),
            home.display()
        );
        assert!(err.to_string().starts_with(&text), "{err}");
        // Root's links in root's directories are followed, relative ones and `..` too.
        let etc = t.0.join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::set_permissions(&etc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        symlink("../root-ssh", etc.join("ssh")).unwrap();
        let place = Place::resolve(&etc.join("ssh/authorized_keys"), true).unwrap();
        assert_eq!(place.path, root_ssh.join("authorized_keys"));
        assert!(matches!(place.stat(), Err(e) if e.kind() == io::ErrorKind::NotFound));
        // `..` goes back to the directory walked through (here the link's target's: t), `/..`
        // is `/`.
        let place = Place::resolve(&etc.join("ssh/../etc/x"), true).unwrap();
        assert_eq!(place.path, etc.join("x"));
        let place = Place::resolve(Path::new("/../../tmp"), false).unwrap();
        assert_eq!(place.path, Path::new("/tmp"));
        // Directories made on the way are made where the walk is, never through their link.
        let err = Place::make_dirs(&keys.join("a/b/file"), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        let place = Place::make_dirs(&home.join("a/b/file"), false).unwrap();
        assert_eq!(place.path, home.join("a/b/file"));
        assert!(home.join("a/b").is_dir());
    }

    /// Where `protected_hardlinks` is off, another user may hard-link root's file into their
    /// directory: changing that name in place (chown, chmod, append) changed root's file.
    /// In a directory others can write, a name with other links is not changed in place; a
    /// FIFO is not read (nor waited on).
    #[test]
    fn a_hard_link_in_a_shared_directory_is_not_changed_in_place() {
        let Some((t, home)) = others_home("safepath-hardlinks") else { return };
        let shadow = t.0.join("shadow");
        fs::write(&shadow, "root:x").unwrap();
        fs::hard_link(&shadow, home.join("keys")).unwrap();
        let place = Place::resolve(&home.join("keys"), true).unwrap();
        for err in [
            place.chown(Some(OTHER), None).unwrap_err(),
            place.chmod(0o666).unwrap_err(),
            place.append(false).unwrap_err(),
            place.read().unwrap_err(),
        ] {
            assert!(
                err.to_string().ends_with(
                    "has 2 hard links, in a directory other users can write: not changed"
                ),
                "{err}"
            );
        }
        // Checked together up front, what changes nothing passes, what changes is refused.
        place.may_become(None, None, None).unwrap();
        place.may_become(Some(0), Some(0), Some(0o644)).unwrap();
        let err = place.may_become(Some(OTHER), None, None).unwrap_err();
        assert!(err.to_string().ends_with("not changed"), "{err}");
        let meta = fs::metadata(&shadow).unwrap();
        assert_eq!((std::os::unix::fs::MetadataExt::uid(&meta), meta.len()), (0, 6));
        // Its own file (one link) is changed.
        fs::write(home.join("own"), "x").unwrap();
        let own = Place::resolve(&home.join("own"), true).unwrap();
        own.chown(Some(OTHER), None).unwrap();
        own.chmod(0o640).unwrap();
        // A FIFO is refused at once.
        let fifo = CString::new(home.join("fifo").into_os_string().into_vec()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = Place::resolve(&home.join("fifo"), true).unwrap().read().unwrap_err();
        assert!(err.to_string().ends_with("is not a regular file"), "{err}");
    }

    /// Root's file hard-linked into a user's directory, whose own name then went away (a
    /// `passwd` replaces `/etc/shadow` by a rename): the link is the only one left, so the
    /// hard-link rule passed it, and `replace: False` with `user: u` gave `u` root's old
    /// shadow. In a directory others can write, a file is not made readable in place to a
    /// user (or group, or everyone) that could not read it before.
    #[test]
    fn a_file_in_a_shared_directory_is_not_made_readable_to_new_readers_in_place() {
        let Some((t, home)) = others_home("safepath-readers") else { return };
        let shadow = t.0.join("shadow");
        fs::write(&shadow, "root:x").unwrap();
        fs::set_permissions(&shadow, fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(&shadow, home.join("keys")).unwrap();
        fs::remove_file(&shadow).unwrap();
        let place = Place::resolve(&home.join("keys"), true).unwrap();
        for err in [
            place.chown(Some(OTHER), None).unwrap_err(),
            place.chown(None, Some(OTHER)).unwrap_err(),
            place.chmod(0o644).unwrap_err(),
        ] {
            assert!(
                err.to_string().ends_with(
                    "in a directory other users can write: not made readable to others in place"
                ),
                "{err}"
            );
        }
        let meta = fs::metadata(home.join("keys")).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (0, 0, 0o640));
        // What takes no reader away from root's is done: narrower, or to root.
        place.chmod(0o600).unwrap();
        place.chown(None, Some(OTHER)).unwrap();
        place.chown(Some(0), Some(0)).unwrap();
        // A file everyone could read already is given away (root's `.bashrc` in a home).
        fs::write(home.join("bashrc"), "x").unwrap();
        fs::set_permissions(home.join("bashrc"), fs::Permissions::from_mode(0o644)).unwrap();
        let place = Place::resolve(&home.join("bashrc"), true).unwrap();
        place.chown(Some(OTHER), Some(OTHER)).unwrap();
        place.chmod(0o600).unwrap();
        place.chmod(0o640).unwrap();
        // Not where the directory's group may write too: a member may have linked the
        // owner's private file there.
        place.chmod(0o600).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o775)).unwrap();
        let place = Place::resolve(&home.join("bashrc"), true).unwrap();
        let err = place.chmod(0o640).unwrap_err();
        assert!(err.to_string().ends_with("not made readable to others in place"), "{err}");
    }

    /// Once resolved, the directory is held: one swapped for a link to root's directory
    /// afterwards gets nothing, not the write, nor the owner and mode.
    #[test]
    fn a_directory_swapped_after_the_resolution_changes_nothing_there() {
        let t = Scratch::new("safepath-swap");
        let (target, home) = (t.0.join("root-ssh"), t.0.join("home"));
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::write(target.join("keys"), "root's").unwrap();
        let place = Place::resolve(&home.join(".ssh/keys"), true).unwrap();
        fs::rename(home.join(".ssh"), home.join("old")).unwrap();
        symlink(&target, home.join(".ssh")).unwrap();
        let tmp = OsStr::new(".keys.tmp");
        let mut file = place.create_beside(tmp).unwrap();
        io::Write::write_all(&mut file, b"u's").unwrap();
        place.rename_in(tmp).unwrap();
        place.chmod(0o604).unwrap();
        place.chown(None, None).unwrap();
        assert_eq!(fs::read_to_string(target.join("keys")).unwrap(), "root's");
        assert_eq!(fs::read_to_string(home.join("old/keys")).unwrap(), "u's");
        assert_eq!(place.read().unwrap(), b"u's");
        let mode = fs::metadata(home.join("old/keys")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o604);
        // The link swapped in is this test's own: a new resolution follows it.
        let err = Place::resolve(&home.join(".ssh/x"), true);
        assert!(err.is_ok(), "root's own link is followed: {err:?}");
        assert!(Place::resolve(Path::new("relative/x"), true).is_err());
        assert!(Place::resolve(Path::new("/"), true).is_err());
    }
}
