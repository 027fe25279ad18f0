//! Unpacks one layer tar into its own empty directory, in the overlay format: a whiteout
//! `.wh.NAME` becomes a 0:0 character device NAME, an opaque marker `.wh..wh..opq` becomes the
//! `trusted.overlay.opaque=y` xattr of its directory. Stacking such dirs as overlay lower dirs
//! gives the image's root filesystem.
//!
//! Paths as umoci (securejoin) and containerd resolve them: an entry's parent directory and a
//! hardlink's target are resolved in the image's root, this layer over the lower ones as
//! overlay merges them: symlinks are followed, an absolute one from the image's root, `..`
//! never above it. Nothing can reach outside: the walk is ours, component by component, each
//! step an *at call on a directory fd of one layer that never follows a symlink
//! (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS for a path without one); the last component
//! is created/changed with *at calls that never follow it. Entry names and hardlink targets
//! are cleaned lexically first (a leading `/` is the root); one whose `..` climbs above the
//! root fails the whole layer (docker refuses it too, umoci clamps it).
use crate::compress::{decompress, Compression};
use crate::digest::{Digest, Sha256};
use crate::error::{Error, IoContext, Result};
use crate::sys;
use capsa_linux::resolve::{self, Scope};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub const OPAQUE_XATTR: &CStr_ = c"trusted.overlay.opaque";
type CStr_ = std::ffi::CStr;

/// What unpacking a layer found out.
#[derive(Debug)]
pub struct Unpacked {
    pub diff_id: Digest,
    pub compression: Compression,
    pub uncompressed_size: u64,
}

/// Splits an entry path into its components, cleaned as umoci, docker and containerd clean
/// it: a leading `/` means the layer's root, `a/../b` is `b`. A `..` that climbs above the
/// root is refused (docker refuses it too; umoci would clamp it to the root).
pub fn clean_path(raw: &[u8]) -> std::result::Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path climbs above the layer root with '..'".into());
                }
            }
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> OsString {
    let mut v = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            v.push(b'/');
        }
        v.extend_from_slice(c.as_bytes());
    }
    OsString::from(OsStr::from_bytes(&v))
}

/// Xattrs that never come from a layer: SELinux labels and NFSv4 ACLs (host policy), and
/// overlay's own, which would let a layer forge whiteouts or redirects.
pub fn xattr_allowed(name: &[u8]) -> bool {
    !(name == b"security.selinux"
        || name == b"system.nfs4_acl"
        || name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay."))
}

/// A directory's real path in the layer and (atime, mtime), applied after the layer's last
/// entry.
type DirTimes = (Vec<OsString>, (i64, i64), (i64, i64));

struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    atime: Option<(i64, i64)>,
    xattrs: Vec<(CString, Vec<u8>)>,
    /// a PAX sparse file (GNU.sparse.* records, which the tar crate does not interpret)
    sparse: Option<PaxSparse>,
}

/// A sparse file in GNU tar's PAX formats: 0.0 (GNU.sparse.offset/numbytes records), 0.1
/// (GNU.sparse.map) or 1.0 (the map at the start of the data). The entry's data holds the
/// listed chunks one after the other.
#[derive(Default)]
struct PaxSparse {
    /// the file's real name (the header's is GNUSparseFile.PID/NAME)
    name: Option<Vec<u8>>,
    realsize: Option<u64>,
    /// (offset, size) of each chunk; None for 1.0: read from the data
    map: Option<Vec<(u64, u64)>>,
    major: Option<u64>,
}

/// What a new entry created in a directory gets without chown/chmod.
#[derive(Clone, Copy)]
struct Inherit {
    /// the directory is setgid: new entries take its group (and new dirs the setgid bit)
    setgid: bool,
    gid: u32,
}

/// Owner and mode that creating an entry gives it by itself, so that the chown/chmod that
/// would only repeat them are skipped (most layer entries are root-owned with plain modes).
struct Creds {
    uid: u32,
    gid: u32,
    /// the process umask; 0o777 (always chmod) when unknown or when a default ACL may
    /// decide new modes instead
    umask: u32,
}

impl Creds {
    fn current(root: RawFd) -> Creds {
        let (uid, gid) = sys::fs_ids();
        let mut umask = sys::umask().unwrap_or(0o777);
        // a default ACL on the layer dir (inherited from the store) replaces the umask
        if !matches!(sys::lgetxattr(root, OsStr::new("."), DEFAULT_ACL), Ok(None)) {
            umask = 0o777;
        }
        Creds { uid, gid, umask }
    }
}

const DEFAULT_ACL: &CStr_ = c"system.posix_acl_default";

/// The most symlinks one path may go through (securejoin's limit, which umoci uses).
const MAX_SYMLINKS: u32 = 255;

/// A directory of one layer: the layer's root (index into the stack, 0 = the layer being
/// written) or a directory below it.
enum LayerDir {
    Root(usize),
    Sub(usize, OwnedFd),
}

impl LayerDir {
    fn layer(&self) -> usize {
        match self {
            LayerDir::Root(i) | LayerDir::Sub(i, _) => *i,
        }
    }
}

/// One directory of the merged view (the layers stacked as overlay stacks them), reached by
/// a walk: its name and the layers' directories that make it up, top first.
struct Level {
    name: OsString,
    dirs: Vec<LayerDir>,
    /// this layer holds a whiteout at this name: a directory made here must be opaque (the
    /// whiteout hid what the lower layers have there)
    upper_whiteout: bool,
    /// a non-directory stands here: the path is only good if a later `..` leaves it
    not_dir: bool,
}

/// What a name is in the merged view.
enum Lookup {
    /// in no layer, or whited out
    Missing { upper_whiteout: bool },
    /// a directory, made of these layers' directories (top first)
    Dir(Vec<LayerDir>),
    /// anything else (symlink included): its stat, found in `dirs[at]`
    Entry { at: usize, st: libc::stat },
}

/// The parent directory resolved last (entries come grouped by directory).
struct Parent {
    /// the parent's path as the tar names it
    key: OsString,
    /// its path in the layer, symlinks resolved
    real: Vec<OsString>,
    fd: OwnedFd,
    inherit: Inherit,
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn errno_in(e: &io::Error, codes: &[i32]) -> bool {
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

struct Unpacker<'a> {
    layer: &'a str,
    root: OwnedFd,
    /// the layer dirs below this one, nearest first
    lowers: Vec<OwnedFd>,
    cached_parent: Option<Parent>,
    /// a directory or symlink was removed, a whiteout hid a lower entry, or the parent was
    /// found through a symlink: the path may lead elsewhere now. The entry being made keeps
    /// its parent and the parent's fd (umoci resolves it once, before it replaces what
    /// stands at the entry's path); the next entry resolves anew
    parent_stale: bool,
    creds: Creds,
    /// directories whose times are set at the end, by path in the layer
    dir_times: Vec<DirTimes>,
    /// the root's (atime, mtime), set after every other directory's
    root_times: Option<((i64, i64), (i64, i64))>,
    deferred_links: Vec<(Vec<OsString>, Vec<OsString>)>,
    /// real paths an entry of this layer made, and their ancestors (umoci's upperPaths). A
    /// directory of this layer that is not among them was made only to hold whiteouts: a
    /// whiteout or an opaque marker over it removes it whole, as umoci does
    upper: HashSet<Vec<OsString>>,
    /// file data goes through this buffer: fewer, larger writes than io::copy's 8 KiB
    buf: Vec<u8>,
}

fn copy_data(r: &mut impl Read, w: &mut impl io::Write, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
    }
}

impl<'a> Unpacker<'a> {
    fn bad(&self, entry: &[OsString], reason: impl Into<String>) -> Error {
        Error::BadEntry {
            layer: self.layer.to_string(),
            entry: join(entry).to_string_lossy().into_owned(),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &[OsString], what: &str, e: io::Error) -> Error {
        self.bad(entry, format!("{what}: {e}"))
    }

    fn raw(&self, d: &LayerDir) -> RawFd {
        match d {
            LayerDir::Root(0) => self.root.as_raw_fd(),
            LayerDir::Root(i) => self.lowers[i - 1].as_raw_fd(),
            LayerDir::Sub(_, fd) => fd.as_raw_fd(),
        }
    }

    /// The roots of every layer, this one first.
    fn root_dirs(&self) -> Vec<LayerDir> {
        (0..=self.lowers.len()).map(LayerDir::Root).collect()
    }

    /// Opens `path` (real: no symlink on it) in this layer as an O_PATH directory.
    fn open_real(&self, path: &OsStr) -> io::Result<OwnedFd> {
        let p = if path.is_empty() {
            Path::new(".")
        } else {
            Path::new(path)
        };
        resolve::open(
            self.root.as_fd(),
            p,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
            Scope::BeneathNoSymlinks,
        )
        .map_err(io::Error::from)
    }

    /// Resolves (creating missing directories) the parent directory `comps` and caches it.
    fn parent(&mut self, entry: &[OsString], comps: &[OsString]) -> Result<RawFd> {
        let key = join(comps);
        if let Some(p) = &self.cached_parent {
            if p.key == key {
                return Ok(p.fd.as_raw_fd());
            }
        }
        let (real, fd) = self.resolve_dir(entry, comps)?;
        // resolved through a symlink: an entry made at one of the names it went through
        // (a directory of this layer over a lower layer's symlink, say) makes the same
        // path lead elsewhere, so the next entry resolves it anew
        self.parent_stale |= real.as_slice() != comps;
        let st = sys::fstat(fd.as_raw_fd()).map_err(|e| self.io(entry, "stat parent", e))?;
        let inherit = Inherit {
            setgid: st.st_mode & libc::S_ISGID != 0,
            gid: st.st_gid,
        };
        let p = self.cached_parent.insert(Parent {
            key,
            real,
            fd,
            inherit,
        });
        Ok(p.fd.as_raw_fd())
    }

    /// The real path in this layer of `name` in the parent `parent()` returned last.
    fn real_path(&self, name: &OsStr) -> Vec<OsString> {
        let mut v = self.parent_real();
        v.push(name.to_os_string());
        v
    }

    /// The real path in this layer of the parent `parent()` returned last.
    fn parent_real(&self) -> Vec<OsString> {
        self.cached_parent
            .as_ref()
            .map(|p| p.real.clone())
            .unwrap_or_default()
    }

    /// Whether an entry just created in the cached parent (the one `parent()` returned last)
    /// needs a chown to become `uid:gid`. The new entry's group is ours, or the parent's
    /// when the parent is setgid or the filesystem is mounted `grpid`: the chown is skipped
    /// only when all of these are `gid`.
    fn needs_chown(&self, uid: u32, gid: u32) -> bool {
        let Some(p) = &self.cached_parent else {
            return true;
        };
        uid != self.creds.uid || gid != self.creds.gid || p.inherit.gid != gid
    }

    /// Whether an entry just created in the cached parent with `mode & 0o777` needs a chmod
    /// to get `mode`: special bits (set after chown, which clears them), bits the umask
    /// took away, or the setgid bit a new directory inherits.
    fn needs_chmod(&self, mode: u32, is_dir: bool) -> bool {
        let parent_setgid = match &self.cached_parent {
            Some(p) => p.inherit.setgid,
            None => return true,
        };
        mode & 0o7000 != 0 || mode & self.creds.umask != 0 || (is_dir && parent_setgid)
    }

    /// The directory `comps` as umoci's securejoin + MkdirAll make it: the path resolved in
    /// the image's root (this layer over the lower ones), then every directory it lacks in
    /// this layer made. Returns its real path and an O_PATH fd.
    fn resolve_dir(
        &mut self,
        entry: &[OsString],
        comps: &[OsString],
    ) -> Result<(Vec<OsString>, OwnedFd)> {
        // the common case: every component a directory of this layer, no symlink
        match self.open_real(&join(comps)) {
            Ok(fd) => return Ok((comps.to_vec(), fd)),
            Err(e) if errno_in(&e, &[libc::ENOENT, libc::ENOTDIR, libc::ELOOP, libc::EXDEV]) => {}
            Err(e) => return Err(self.io(entry, "resolve parent", e)),
        }
        let levels = self.walk_dirs(entry, comps)?;
        let real = levels.iter().map(|l| l.name.clone()).collect();
        let fd = self
            .make_dirs(&levels)
            .map_err(|e| self.io(entry, "create parent directory", e))?;
        Ok((real, fd))
    }

    /// What `name` is in the merged directory made of `dirs`, as overlay sees it: the top
    /// layer that has the name decides; a whiteout hides it; a directory merges with the
    /// directories of the layers below it down to an opaque one or a non-directory.
    fn lookup(&self, dirs: &[LayerDir], name: &OsStr) -> io::Result<Lookup> {
        let mut found = Vec::new();
        for (at, d) in dirs.iter().enumerate() {
            let fd = self.raw(d);
            let Some(st) = sys::lstat_opt(fd, name)? else {
                continue;
            };
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if found.is_empty() {
                if is_whiteout(&st) {
                    return Ok(Lookup::Missing {
                        upper_whiteout: d.layer() == 0,
                    });
                }
                if !is_dir {
                    return Ok(Lookup::Entry { at, st });
                }
            } else if !is_dir {
                break;
            }
            let sub = sys::openat(
                fd,
                name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            let opaque = sys::lgetxattr(fd, name, OPAQUE_XATTR)?.is_some_and(|v| v == b"y");
            found.push(LayerDir::Sub(d.layer(), sub));
            if opaque {
                break;
            }
        }
        Ok(if found.is_empty() {
            Lookup::Missing {
                upper_whiteout: false,
            }
        } else {
            Lookup::Dir(found)
        })
    }

    /// Resolves the directory path `comps` in the merged view as securejoin resolves a path
    /// in umoci's single tree: symlinks followed (an absolute one from the image's root),
    /// `..` never above the root and lexical (`f/..` is where `f` is, even when `f` is a
    /// file), components that exist nowhere kept (MkdirAll makes them).
    /// Err(path) when a component left in the path is not a directory (nor a symlink to one).
    fn walk(
        &self,
        entry: &[OsString],
        comps: &[OsString],
    ) -> Result<std::result::Result<Vec<Level>, OsString>> {
        let mut levels: Vec<Level> = Vec::new();
        let mut todo: std::collections::VecDeque<OsString> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    levels.pop();
                    continue;
                }
                _ => {}
            }
            let root_dirs;
            let dirs = match levels.last() {
                Some(l) => &l.dirs,
                None => {
                    root_dirs = self.root_dirs();
                    &root_dirs
                }
            };
            let found = self
                .lookup(dirs, &c)
                .map_err(|e| self.io(entry, "resolve parent", e))?;
            match found {
                Lookup::Dir(dirs) => levels.push(Level {
                    name: c,
                    dirs,
                    upper_whiteout: false,
                    not_dir: false,
                }),
                Lookup::Missing { upper_whiteout } => levels.push(Level {
                    name: c,
                    dirs: Vec::new(),
                    upper_whiteout,
                    not_dir: false,
                }),
                Lookup::Entry { at, st } if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(self.bad(
                            entry,
                            format!(
                                "parent {:?}: too many levels of symbolic links",
                                join(comps)
                            ),
                        ));
                    }
                    let target = sys::readlinkat(self.raw(&dirs[at]), &c)
                        .map_err(|e| self.io(entry, "read symlink", e))?;
                    if target.as_bytes().starts_with(b"/") {
                        levels.clear();
                    }
                    for part in target.as_bytes().rsplit(|b| *b == b'/') {
                        todo.push_front(OsStr::from_bytes(part).to_os_string());
                    }
                }
                // nothing is below it (a lookup under it finds nothing); a `..` may leave it
                Lookup::Entry { .. } => levels.push(Level {
                    name: c,
                    dirs: Vec::new(),
                    upper_whiteout: false,
                    not_dir: true,
                }),
            }
        }
        if let Some(i) = levels.iter().position(|l| l.not_dir) {
            let names: Vec<OsString> = levels[..=i].iter().map(|l| l.name.clone()).collect();
            return Ok(Err(join(&names)));
        }
        Ok(Ok(levels))
    }

    /// `walk`, where a component that is not a directory fails the entry.
    fn walk_dirs(&self, entry: &[OsString], comps: &[OsString]) -> Result<Vec<Level>> {
        self.walk(entry, comps)?
            .map_err(|p| self.bad(entry, format!("parent {p:?} is not a directory")))
    }

    /// Whether a lower layer has `name` in the directory `comps` (seen through the layers).
    fn lower_has(&self, entry: &[OsString], comps: &[OsString], name: &OsStr) -> Result<bool> {
        let dirs = match self.walk(entry, comps)? {
            Ok(levels) => match levels.into_iter().last() {
                Some(l) => l.dirs,
                None => self.root_dirs(),
            },
            Err(_) => return Ok(false),
        };
        let lower: Vec<LayerDir> = dirs.into_iter().filter(|d| d.layer() != 0).collect();
        let found = self
            .lookup(&lower, name)
            .map_err(|e| self.io(entry, "stat whiteout target", e))?;
        Ok(!matches!(found, Lookup::Missing { .. }))
    }

    /// Whether the directory `comps` exists in the merged view (this layer or a lower one).
    fn dir_exists(&self, entry: &[OsString], comps: &[OsString]) -> Result<bool> {
        if self.open_real(&join(comps)).is_ok() {
            return Ok(true);
        }
        Ok(match self.walk(entry, comps)? {
            Ok(levels) => levels.iter().all(|l| !l.dirs.is_empty()),
            Err(_) => false,
        })
    }

    /// Makes the path of `levels` a path of directories in this layer: a directory it lacks
    /// gets the attributes (mode, owner, xattrs, times) of the lower layers' directory there,
    /// as the directory stays in umoci's tree, where a layer only adds to it; 0755 root
    /// where no layer has one (MkdirAll's). Returns an O_PATH fd of the last one.
    fn make_dirs(&mut self, levels: &[Level]) -> io::Result<OwnedFd> {
        let mut cur = sys::openat(
            self.root.as_raw_fd(),
            OsStr::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?;
        let mut real = Vec::new();
        for l in levels {
            real.push(l.name.clone());
            if let Some(LayerDir::Sub(0, fd)) = l.dirs.first() {
                cur = fd.try_clone()?;
                continue;
            }
            let c = cur.as_raw_fd();
            let name = l.name.as_os_str();
            if l.upper_whiteout {
                sys::unlinkat(c, name, false)?;
            }
            sys::mkdirat(c, name, 0o700)?;
            match l.dirs.first() {
                Some(lower) => {
                    let lfd = self.raw(lower);
                    let st = sys::fstat(lfd)?;
                    sys::lchownat(c, name, st.st_uid, st.st_gid)?;
                    sys::fchmodat(c, name, st.st_mode & 0o7777)?;
                    for (k, v) in sys::lxattrs(lfd, OsStr::new("."))? {
                        if xattr_allowed(k.as_bytes()) {
                            sys::lsetxattr(c, name, &k, &v)?;
                        }
                    }
                    self.dir_times.push((
                        real.clone(),
                        (st.st_atime, st.st_atime_nsec),
                        (st.st_mtime, st.st_mtime_nsec),
                    ));
                }
                None => {
                    sys::lchownat(c, name, 0, 0)?;
                    sys::fchmodat(c, name, 0o755)?;
                }
            }
            if l.upper_whiteout {
                sys::lsetxattr(c, name, OPAQUE_XATTR, b"y")?;
            }
            cur = sys::openat(
                c,
                name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
        }
        Ok(cur)
    }

    /// The root of a layer over others starts with the attributes of the root below it
    /// (mode, owner, xattrs, times): in umoci's single tree a layer without a "./" entry
    /// leaves the root as it was; a "./" entry sets its own. The bottom layer's root
    /// starts with the times umoci gives it, the epoch (not the time of the unpack).
    fn inherit_root(&mut self) -> io::Result<()> {
        let Some(lower) = self.lowers.first() else {
            self.root_times = Some(((0, 0), (0, 0)));
            return Ok(());
        };
        let lfd = lower.as_raw_fd();
        let st = sys::fstat(lfd)?;
        let (r, dot) = (self.root.as_raw_fd(), OsStr::new("."));
        sys::lchownat(r, dot, st.st_uid, st.st_gid)?;
        sys::fchmodat(r, dot, st.st_mode & 0o7777)?;
        for (k, v) in sys::lxattrs(lfd, dot)? {
            if xattr_allowed(k.as_bytes()) {
                sys::lsetxattr(r, dot, &k, &v)?;
            }
        }
        self.root_times = Some((
            (st.st_atime, st.st_atime_nsec),
            (st.st_mtime, st.st_mtime_nsec),
        ));
        Ok(())
    }

    /// Before each entry: a cached parent gone stale is resolved anew.
    fn next_entry(&mut self) {
        if std::mem::take(&mut self.parent_stale) {
            self.cached_parent = None;
        }
    }

    /// Removes whatever is at `name` in `dir` (recursively for a directory).
    fn remove(&mut self, entry: &[OsString], dir: RawFd, name: &OsStr) -> Result<()> {
        let Some(st) = sys::lstat_opt(dir, name).map_err(|e| self.io(entry, "stat", e))? else {
            return Ok(());
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let d = sys::openat(
                dir,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(|e| self.io(entry, "open for removal", e))?;
            remove_children(&d).map_err(|e| self.io(entry, "remove directory contents", e))?;
            sys::unlinkat(dir, name, true).map_err(|e| self.io(entry, "remove directory", e))?;
            self.parent_stale = true;
        } else {
            sys::unlinkat(dir, name, false).map_err(|e| self.io(entry, "remove", e))?;
            self.parent_stale |= st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        }
        Ok(())
    }

    fn set_xattrs(
        &mut self,
        entry: &[OsString],
        dir: RawFd,
        name: &OsStr,
        a: &Attrs,
    ) -> Result<()> {
        for (k, v) in &a.xattrs {
            if k.as_c_str() == DEFAULT_ACL {
                // modes of entries created below it now come from the ACL, not the umask
                self.creds.umask = 0o777;
            }
            if let Err(e) = sys::lsetxattr(dir, name, k, v) {
                if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) {
                    tracing::warn!(layer = self.layer, entry = ?join(entry), xattr = ?k, "xattr not kept: {e}");
                } else {
                    return Err(self.io(entry, &format!("set xattr {k:?}"), e));
                }
            }
        }
        Ok(())
    }

    /// One tar entry: its path checked, then handed to the step for its kind.
    fn entry(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> Result<()> {
        self.next_entry();
        let mut raw = entry.path_bytes().into_owned();
        let bad_header = |e: io::Error| Error::BadEntry {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason: format!("read header: {e}"),
        };
        let mut attrs = read_attrs(entry).map_err(bad_header)?;
        if let Some(n) = attrs.sparse.as_mut().and_then(|s| s.name.take()) {
            raw = n;
        }
        let comps = clean_path(&raw).map_err(|r| Error::BadEntry {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason: r,
        })?;
        let kind = entry.header().entry_type();
        use tar::EntryType as T;

        let Some(name) = comps.last() else {
            // the layer's root itself ("./"): only a directory may stand there
            if kind != T::Directory {
                return Err(self.bad(&comps, "the root entry is not a directory"));
            }
            return self.root_dir(comps, &attrs);
        };
        if name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // what it hides may have been on the way to the cached parent (a lower symlink)
            self.parent_stale = true;
            return self.whiteout(&comps);
        }
        let made = match kind {
            T::Directory => self.dir(&comps, &attrs),
            T::Regular | T::Continuous if attrs.sparse.is_some() => {
                self.sparse_file(&comps, &attrs, entry)
            }
            T::Regular | T::Continuous | T::GNUSparse => self.file(&comps, &attrs, entry),
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(&comps, "symlink without target"))?
                    .into_owned();
                self.symlink(&comps, &attrs, OsStr::from_bytes(&target))
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(&comps, "hardlink without target"))?
                    .into_owned();
                self.hardlink(&comps, &target)
            }
            T::Char | T::Block | T::Fifo => {
                let t = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let h = entry.header();
                let dev = sys::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                self.node(&comps, &attrs, t, dev)
            }
            T::XGlobalHeader => return Ok(()),
            other => Err(self.bad(&comps, format!("unsupported tar entry type {other:?}"))),
        };
        made?;
        self.note_upper(&comps)
    }

    /// Records the entry `comps`, just made, and its ancestors as paths this layer wrote.
    fn note_upper(&mut self, comps: &[OsString]) -> Result<()> {
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let mut real = match &self.cached_parent {
            Some(p) if p.key == join(parent_comps) => p.real.clone(),
            _ => self.resolve_dir(comps, parent_comps)?.0,
        };
        real.push(name.clone());
        // ancestors of a path already there are there too
        while !real.is_empty() && self.upper.insert(real.clone()) {
            real.pop();
        }
        Ok(())
    }

    /// Below the directory `name` of `at` (real path `real`), whose lower layers are now
    /// hidden, removes what only served to hide them: every directory no entry of this layer
    /// made (one made to hold whiteouts; umoci removes it with the lower one) and every
    /// whiteout device (overlay lists those of a directory no lower one merges with as
    /// names that cannot be opened).
    fn clear_hidden(
        &mut self,
        entry: &[OsString],
        at: RawFd,
        name: &OsStr,
        real: &mut Vec<OsString>,
    ) -> Result<()> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let d = sys::openat(at, name, flags, 0).map_err(|e| self.io(entry, "open directory", e))?;
        let names = sys::list_dir(&d).map_err(|e| self.io(entry, "list directory", e))?;
        for child in names {
            let st = sys::fstatat(d.as_raw_fd(), &child).map_err(|e| self.io(entry, "stat", e))?;
            if is_whiteout(&st) {
                sys::unlinkat(d.as_raw_fd(), &child, false)
                    .map_err(|e| self.io(entry, "remove whiteout", e))?;
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                continue;
            }
            real.push(child);
            let child = real.last().expect("just pushed").clone();
            if self.upper.contains(real) {
                self.clear_hidden(entry, d.as_raw_fd(), &child, real)?;
            } else {
                self.remove(entry, d.as_raw_fd(), &child)?;
            }
            real.pop();
        }
        Ok(())
    }

    /// The layer root's own attributes ("./" in the tar).
    fn root_dir(&mut self, comps: Vec<OsString>, attrs: &Attrs) -> Result<()> {
        let r = self.root.as_raw_fd();
        let dot = OsStr::new(".");
        sys::lchownat(r, dot, attrs.uid, attrs.gid)
            .and_then(|_| sys::fchmodat(r, dot, attrs.mode))
            .map_err(|e| self.io(&comps, "set root attributes", e))?;
        self.set_xattrs(&comps, r, dot, attrs)?;
        self.cached_parent = None; // the root's setgid bit may have changed
        self.root_times = Some((attrs.atime.unwrap_or(attrs.mtime), attrs.mtime));
        Ok(())
    }

    /// `.wh..wh..opq` marks its directory opaque; `.wh.NAME` replaces NAME by a 0:0 char device.
    fn whiteout(&mut self, comps: &[OsString]) -> Result<()> {
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let nb = name.as_bytes();
        let target = &nb[WHITEOUT_PREFIX.len()..];
        // `.wh.`, `.wh..`, `.wh...` name their own directory or its parent, which umoci
        // removes (`.wh...` in a top directory: the whole root); refused wherever they are
        if matches!(target, b"" | b"." | b"..") {
            return Err(self.bad(comps, "whiteout names no file"));
        }
        // in a directory no layer has there is nothing to hide: no directory is made for it
        // (umoci makes none either)
        if !self.dir_exists(comps, parent_comps)? {
            return Ok(());
        }
        let dir = self.parent(comps, parent_comps)?;
        if nb == OPAQUE_MARKER.as_bytes() {
            let mut real = self.parent_real();
            if real.is_empty() {
                return self.opaque_root(comps);
            }
            sys::lsetxattr(dir, OsStr::new("."), OPAQUE_XATTR, b"y")
                .map_err(|e| self.io(comps, "mark directory opaque", e))?;
            return self.clear_hidden(comps, dir, OsStr::new("."), &mut real);
        }
        if nb.starts_with(b".wh..wh.") {
            return Ok(()); // AUFS internals (.wh..wh.plnk, ...): meaningless here
        }
        let target = OsStr::from_bytes(target).to_os_string();
        // a whiteout hides only the lower layers' entry, never one of its own layer (OCI
        // image spec; umoci keeps the paths the layer wrote)
        match sys::lstat_opt(dir, &target).map_err(|e| self.io(comps, "stat", e))? {
            // nothing below to hide: no whiteout (overlay lists one in a directory that no
            // lower layer merges with, though a lookup does not find it)
            None if !self.lower_has(comps, parent_comps, &target)? => Ok(()),
            None => sys::mknodat(dir, &target, libc::S_IFCHR, 0)
                .map_err(|e| self.io(comps, "create whiteout device", e)),
            // a directory an entry of this layer made: what the lower ones have below it goes
            Some(st)
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR
                    && self.upper.contains(&self.real_path(&target)) =>
            {
                sys::lsetxattr(dir, &target, OPAQUE_XATTR, b"y")
                    .map_err(|e| self.io(comps, "mark directory opaque", e))?;
                let mut real = self.real_path(&target);
                self.clear_hidden(comps, dir, &target, &mut real)
            }
            // a directory made only to hold whiteouts: it goes whole, the lower one with it
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                self.remove(comps, dir, &target)?;
                sys::mknodat(dir, &target, libc::S_IFCHR, 0)
                    .map_err(|e| self.io(comps, "create whiteout device", e))
            }
            // a whiteout already, or a non-directory of this layer, which hides the lower one
            Some(_) => Ok(()),
        }
    }

    /// An opaque marker at the image's root. Overlay ignores `trusted.overlay.opaque` on a
    /// layer's root (the mount's root merges every layer's), so what the lower layers have
    /// at the root is hidden name by name: a whiteout for each, or, for a directory this
    /// layer already made there, the opaque xattr. An entry that comes after the marker
    /// replaces its name's whiteout as it replaces any (a directory made there is opaque).
    fn opaque_root(&mut self, comps: &[OsString]) -> Result<()> {
        let lower: Vec<LayerDir> = (1..=self.lowers.len()).map(LayerDir::Root).collect();
        let mut names = std::collections::BTreeSet::new();
        for d in &lower {
            let listed = sys::list_dir(&self.raw(d))
                .map_err(|e| self.io(comps, "list a lower layer's root", e))?;
            names.extend(listed);
        }
        let root = self.root.as_raw_fd();
        self.clear_hidden(comps, root, OsStr::new("."), &mut Vec::new())?;
        for name in names {
            let found = self
                .lookup(&lower, &name)
                .map_err(|e| self.io(comps, "stat a lower layer's entry", e))?;
            if matches!(found, Lookup::Missing { .. }) {
                continue; // hidden already
            }
            let hide = match sys::lstat_opt(root, &name) {
                Ok(None) => sys::mknodat(root, &name, libc::S_IFCHR, 0),
                Ok(Some(st)) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    sys::lsetxattr(root, &name, OPAQUE_XATTR, b"y")
                }
                Ok(Some(_)) => Ok(()), // this layer's non-directory hides it already
                Err(e) => Err(e),
            };
            hide.map_err(|e| self.io(comps, &format!("hide {name:?} of the lower layers"), e))?;
        }
        Ok(())
    }

    /// Creates `name` in `dir` with `create`; when something is already there (a path named
    /// twice in the tar), removes it and creates again. Returns the parent's fd.
    fn create_replacing(
        &mut self,
        comps: &[OsString],
        what: &str,
        mut create: impl FnMut(RawFd, &OsStr) -> io::Result<()>,
    ) -> Result<RawFd> {
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let dir = self.parent(comps, parent_comps)?;
        match create(dir, name) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.remove(comps, dir, name)?;
                create(dir, name).map_err(|e| self.io(comps, what, e))?;
                Ok(dir)
            }
            r => r.map(|_| dir).map_err(|e| self.io(comps, what, e)),
        }
    }

    fn dir(&mut self, comps: &[OsString], attrs: &Attrs) -> Result<()> {
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let dir = self.parent(comps, parent_comps)?;
        let fresh = match sys::mkdirat(dir, name, attrs.mode & 0o777) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = sys::lstat_opt(dir, name).map_err(|e| self.io(comps, "stat", e))?;
                if matches!(st, Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
                    false // a dir named again: keep its content, set its attributes
                } else {
                    // a whiteout or a non-directory of this layer stood there: the lower
                    // layers' directory there is gone, the new one must not merge with it
                    self.remove(comps, dir, name)?;
                    sys::mkdirat(dir, name, attrs.mode & 0o777)
                        .map_err(|e| self.io(comps, "mkdir", e))?;
                    sys::lsetxattr(dir, name, OPAQUE_XATTR, b"y")
                        .map_err(|e| self.io(comps, "mark directory opaque", e))?;
                    true
                }
            }
            Err(e) => return Err(self.io(comps, "mkdir", e)),
        };
        if !fresh || self.needs_chown(attrs.uid, attrs.gid) {
            sys::lchownat(dir, name, attrs.uid, attrs.gid)
                .map_err(|e| self.io(comps, "set directory owner", e))?;
        }
        if !fresh || self.needs_chmod(attrs.mode, true) {
            sys::fchmodat(dir, name, attrs.mode)
                .map_err(|e| self.io(comps, "set directory mode", e))?;
        }
        self.set_xattrs(comps, dir, name, attrs)?;
        let times = (attrs.atime.unwrap_or(attrs.mtime), attrs.mtime);
        let real = self.real_path(name);
        self.dir_times.push((real, times.0, times.1));
        Ok(())
    }

    /// A regular file, created with its final permission bits (the special bits wait for the
    /// chown, which would clear them).
    fn file(&mut self, comps: &[OsString], attrs: &Attrs, data: &mut impl Read) -> Result<()> {
        let mut f = self.create_file(comps, attrs)?;
        copy_data(data, &mut f, &mut self.buf).map_err(|e| self.io(comps, "write file", e))?;
        self.file_attrs(comps, attrs, f)
    }

    fn create_file(&mut self, comps: &[OsString], attrs: &Attrs) -> Result<std::fs::File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let mut fd = None;
        self.create_replacing(comps, "create file", |d, n| {
            fd = Some(sys::openat(d, n, flags, attrs.mode & 0o777)?);
            Ok(())
        })?;
        Ok(std::fs::File::from(fd.expect("created")))
    }

    /// A PAX sparse file: each chunk of the data written at its offset, holes left as holes,
    /// the file extended to its real size.
    fn sparse_file(
        &mut self,
        comps: &[OsString],
        attrs: &Attrs,
        data: &mut impl Read,
    ) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let sp = attrs.sparse.as_ref().expect("sparse");
        let bad = |e: String| self.bad(comps, format!("sparse file: {e}"));
        let map = match (&sp.map, sp.major) {
            (_, Some(1)) => read_sparse_map(data).map_err(|e| bad(e.to_string()))?,
            (Some(m), _) => m.clone(),
            (None, _) => return Err(bad("no map".into())),
        };
        let mut f = self.create_file(comps, attrs)?;
        let mut end = 0u64;
        for (off, len) in map {
            f.seek(SeekFrom::Start(off))
                .and_then(|_| copy_data(&mut data.take(len), &mut f, &mut self.buf))
                .map_err(|e| self.io(comps, "write file", e))?;
            end = end.max(off.saturating_add(len));
        }
        let size = sp.realsize.unwrap_or(end).max(end);
        f.set_len(size)
            .map_err(|e| self.io(comps, "write file", e))?;
        self.file_attrs(comps, attrs, f)
    }

    /// Owner, mode, xattrs and times of a file just written.
    fn file_attrs(&mut self, comps: &[OsString], attrs: &Attrs, f: std::fs::File) -> Result<()> {
        let raw = f.as_raw_fd();
        if self.needs_chown(attrs.uid, attrs.gid) {
            sys::fchown(raw, attrs.uid, attrs.gid)
                .map_err(|e| self.io(comps, "set file owner", e))?;
        }
        if self.needs_chmod(attrs.mode, false) {
            sys::fchmod(raw, attrs.mode).map_err(|e| self.io(comps, "set file mode", e))?;
        }
        for (k, v) in &attrs.xattrs {
            if let Err(e) = sys::fsetxattr(raw, k, v) {
                tracing::warn!(layer = self.layer, entry = ?join(comps), xattr = ?k, "xattr not kept: {e}");
            }
        }
        sys::futimens(raw, attrs.atime.unwrap_or(attrs.mtime), attrs.mtime)
            .map_err(|e| self.io(comps, "set times", e))
    }

    fn symlink(&mut self, comps: &[OsString], attrs: &Attrs, target: &OsStr) -> Result<()> {
        let dir =
            self.create_replacing(comps, "create symlink", |d, n| sys::symlinkat(target, d, n))?;
        let name = comps.last().expect("non-empty");
        if self.needs_chown(attrs.uid, attrs.gid) {
            sys::lchownat(dir, name, attrs.uid, attrs.gid)
                .map_err(|e| self.io(comps, "chown symlink", e))?;
        }
        self.set_xattrs(comps, dir, name, attrs)?;
        sys::lutimensat(dir, name, attrs.atime.unwrap_or(attrs.mtime), attrs.mtime)
            .map_err(|e| self.io(comps, "set times", e))
    }

    /// A hardlink to an entry of this layer; made at the end of the layer when its target
    /// comes later in the tar.
    fn hardlink(&mut self, comps: &[OsString], target: &[u8]) -> Result<()> {
        let parent_comps = &comps[..comps.len() - 1];
        self.parent(comps, parent_comps)?;
        let tcomps = clean_path(target).map_err(|r| {
            self.bad(
                comps,
                format!("hardlink target {:?}: {r}", String::from_utf8_lossy(target)),
            )
        })?;
        if tcomps.is_empty() {
            return Err(self.bad(comps, "hardlink to the root"));
        }
        if !self.link(comps, &tcomps, false)? {
            self.deferred_links.push((comps.to_vec(), tcomps));
        }
        Ok(())
    }

    /// A char or block device or a fifo (`kind` is its S_IF* type).
    fn node(&mut self, comps: &[OsString], attrs: &Attrs, kind: u32, dev: u64) -> Result<()> {
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let dir = self.parent(comps, parent_comps)?;
        self.remove(comps, dir, name)?;
        sys::mknodat(dir, name, kind | 0o600, dev).map_err(|e| self.io(comps, "mknod", e))?;
        sys::lchownat(dir, name, attrs.uid, attrs.gid)
            .and_then(|_| sys::fchmodat(dir, name, attrs.mode))
            .map_err(|e| self.io(comps, "set device attributes", e))?;
        self.set_xattrs(comps, dir, name, attrs)?;
        sys::lutimensat(dir, name, attrs.atime.unwrap_or(attrs.mtime), attrs.mtime)
            .map_err(|e| self.io(comps, "set times", e))
    }

    /// Hardlinks `comps` to `tcomps`, as umoci does: the target's directory resolved in the
    /// image's root, its last component not followed (a link to a symlink links the
    /// symlink). A target in a lower layer is copied (overlay cannot link across layers:
    /// same content, mode, owner, xattrs; its own inode). Returns false when the target
    /// does not exist yet (the link is retried at the end of the layer).
    fn link(&mut self, comps: &[OsString], tcomps: &[OsString], last_try: bool) -> Result<bool> {
        let (tname, tparent) = tcomps.split_last().expect("non-empty");
        // the common case: the target's directory is a real path of this layer, and the
        // target is there
        if let Ok(tdir) = self.open_real(&join(tparent)) {
            if let Some(st) = sys::lstat_opt(tdir.as_raw_fd(), tname)
                .map_err(|e| self.io(comps, "stat link target", e))?
            {
                if !is_whiteout(&st) {
                    return self.link_here(comps, tdir.as_raw_fd(), tname, &st);
                }
            }
        }
        let levels = self.walk_dirs(comps, tparent)?;
        let dirs = match levels.last() {
            Some(l) => &l.dirs,
            None => &self.root_dirs(),
        };
        let found = self
            .lookup(dirs, tname)
            .map_err(|e| self.io(comps, "resolve link target", e))?;
        match found {
            Lookup::Missing { .. } if !last_try => Ok(false),
            Lookup::Missing { .. } => Err(self.bad(
                comps,
                format!("hardlink target {:?} does not exist", join(tcomps)),
            )),
            Lookup::Dir(_) => Err(self.bad(comps, "hardlink to a directory")),
            Lookup::Entry { at, st } if dirs[at].layer() == 0 => {
                self.link_here(comps, self.raw(&dirs[at]), tname, &st)
            }
            Lookup::Entry { at, st } => {
                self.copy_from_lower(comps, self.raw(&dirs[at]), tname, &st)?;
                Ok(true)
            }
        }
    }

    /// Links `comps` to `tname` in `tdir`, a directory of this layer.
    fn link_here(
        &mut self,
        comps: &[OsString],
        tdir: RawFd,
        tname: &OsStr,
        tst: &libc::stat,
    ) -> Result<bool> {
        if tst.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(self.bad(comps, "hardlink to a directory"));
        }
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let dir = self.parent(comps, parent_comps)?;
        if let Some(st) = sys::lstat_opt(dir, name).map_err(|e| self.io(comps, "stat", e))? {
            if st.st_ino == tst.st_ino && st.st_dev == tst.st_dev {
                return Ok(true);
            }
            self.remove(comps, dir, name)?;
        }
        sys::linkat(tdir, tname, dir, name).map_err(|e| self.io(comps, "create hardlink", e))?;
        Ok(true)
    }

    /// A copy at `comps` of `tname` in `src` (a directory of a lower layer; `st` its stat):
    /// a regular file, a symlink or a device node, with its owner, mode, xattrs and times.
    fn copy_from_lower(
        &mut self,
        comps: &[OsString],
        src: RawFd,
        tname: &OsStr,
        st: &libc::stat,
    ) -> Result<()> {
        let (name, parent_comps) = comps.split_last().expect("non-empty");
        let dir = self.parent(comps, parent_comps)?;
        self.remove(comps, dir, name)?;
        let kind = st.st_mode & libc::S_IFMT;
        let atime = (st.st_atime, st.st_atime_nsec);
        let mtime = (st.st_mtime, st.st_mtime_nsec);
        let copy = || -> io::Result<()> {
            match kind {
                libc::S_IFREG => {
                    let from = sys::openat(src, tname, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                    let mut f = std::fs::File::from(sys::openat(dir, name, flags, 0o600)?);
                    io::copy(&mut std::fs::File::from(from), &mut f)?;
                }
                libc::S_IFLNK => sys::symlinkat(&sys::readlinkat(src, tname)?, dir, name)?,
                _ => sys::mknodat(dir, name, kind | 0o600, st.st_rdev)?,
            }
            sys::lchownat(dir, name, st.st_uid, st.st_gid)?;
            if kind != libc::S_IFLNK {
                sys::fchmodat(dir, name, st.st_mode & 0o7777)?;
            }
            for (k, v) in sys::lxattrs(src, tname)? {
                if xattr_allowed(k.as_bytes()) {
                    sys::lsetxattr(dir, name, &k, &v)?;
                }
            }
            sys::lutimensat(dir, name, atime, mtime)
        };
        copy().map_err(|e| self.io(comps, "copy hardlink target from a lower layer", e))
    }

    fn finish(&mut self) -> Result<()> {
        for (comps, tcomps) in std::mem::take(&mut self.deferred_links) {
            self.next_entry();
            self.link(&comps, &tcomps, true)?;
        }
        // directory times last: creating entries inside changed them. In tar order: a
        // directory named again (or named after it was made implicitly) takes its last times
        for (real, atime, mtime) in std::mem::take(&mut self.dir_times) {
            let res = match real.split_last() {
                None => sys::lutimensat(self.root.as_raw_fd(), OsStr::new("."), atime, mtime),
                Some((name, parent)) => match self.open_real(&join(parent)) {
                    // only while a directory stands there: a later entry may have replaced it
                    Ok(fd) => match sys::lstat_opt(fd.as_raw_fd(), name) {
                        Ok(Some(st)) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                            sys::lutimensat(fd.as_raw_fd(), name, atime, mtime)
                        }
                        _ => continue,
                    },
                    Err(_) => continue, // removed or replaced by a later entry
                },
            };
            if let Err(e) = res {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(self.io(&real, "set directory times", e));
                }
            }
        }
        if let Some((atime, mtime)) = self.root_times {
            sys::lutimensat(self.root.as_raw_fd(), OsStr::new("."), atime, mtime)
                .map_err(|e| self.io(&[], "set root times", e))?;
        }
        Ok(())
    }
}

/// Removes everything inside the directory open as `dir`, never following symlinks.
pub fn remove_children(dir: &OwnedFd) -> io::Result<()> {
    for name in sys::list_dir(dir)? {
        let st = sys::fstatat(dir.as_raw_fd(), &name)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let sub = sys::openat(
                dir.as_raw_fd(),
                &name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            remove_children(&sub)?;
            sys::unlinkat(dir.as_raw_fd(), &name, true)?;
        } else {
            sys::unlinkat(dir.as_raw_fd(), &name, false)?;
        }
    }
    Ok(())
}

fn parse_time(v: &str) -> Option<(i64, i64)> {
    let (s, frac) = match v.split_once('.') {
        Some((s, f)) => (s, f),
        None => (v, ""),
    };
    let secs: i64 = s.parse().ok()?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let f: String = frac.chars().take(9).collect();
        nanos = format!("{f:0<9}").parse().ok()?;
        if secs < 0 && nanos > 0 {
            return Some((secs - 1, 1_000_000_000 - nanos));
        }
    }
    Some((secs, nanos))
}

fn read_attrs(entry: &mut tar::Entry<'_, impl Read>) -> io::Result<Attrs> {
    let h = entry.header();
    let mut a = Attrs {
        mode: h.mode()? & 0o7777,
        uid: h.uid()? as u32,
        gid: h.gid()? as u32,
        mtime: (h.mtime()? as i64, 0),
        atime: None,
        xattrs: Vec::new(),
        sparse: None,
    };
    if let Some(exts) = entry.pax_extensions()? {
        let mut sparse = PaxSparse::default();
        let mut offset = None;
        let mut chunks = Vec::new();
        for ext in exts {
            let ext = ext?;
            let key = ext.key_bytes();
            if ext.value_bytes().is_empty() {
                continue; // an empty record deletes the key (POSIX pax); Go's reader drops it too
            }
            if let Some(k) = key.strip_prefix(b"GNU.sparse.") {
                let num = || ext.value().ok().and_then(|v| v.trim().parse::<u64>().ok());
                match k {
                    b"name" => sparse.name = Some(ext.value_bytes().to_vec()),
                    b"realsize" | b"size" => sparse.realsize = num(),
                    b"major" => sparse.major = num(),
                    b"map" => {
                        let v: Vec<u64> = ext
                            .value()
                            .unwrap_or("")
                            .split(',')
                            .filter_map(|n| n.trim().parse().ok())
                            .collect();
                        sparse.map = Some(v.chunks_exact(2).map(|c| (c[0], c[1])).collect());
                    }
                    b"offset" => offset = num(),
                    b"numbytes" => {
                        if let (Some(o), Some(n)) = (offset.take(), num()) {
                            chunks.push((o, n));
                        }
                    }
                    _ => {}
                }
                a.sparse.get_or_insert_with(PaxSparse::default);
                continue;
            }
            if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                if xattr_allowed(x) {
                    if let Ok(k) = CString::new(x) {
                        a.xattrs.push((k, ext.value_bytes().to_vec()));
                    }
                }
                continue;
            }
            let Ok(v) = ext.value() else { continue };
            match key {
                b"uid" => a.uid = v.parse().unwrap_or(a.uid),
                b"gid" => a.gid = v.parse().unwrap_or(a.gid),
                b"mtime" => a.mtime = parse_time(v).unwrap_or(a.mtime),
                b"atime" => a.atime = parse_time(v),
                _ => {}
            }
        }
        if a.sparse.is_some() {
            if sparse.map.is_none() && !chunks.is_empty() {
                sparse.map = Some(chunks);
            }
            a.sparse = Some(sparse);
        }
    }
    Ok(a)
}

/// The map at the start of a PAX 1.0 sparse file's data: decimal numbers one a line (the
/// count, then offset and size of each chunk), padded to a 512-byte block.
fn read_sparse_map(data: &mut impl Read) -> io::Result<Vec<(u64, u64)>> {
    let mut consumed = 0u64;
    let mut line = Vec::new();
    let mut next = |data: &mut dyn Read| -> io::Result<u64> {
        line.clear();
        let mut b = [0u8; 1];
        loop {
            data.read_exact(&mut b)?;
            consumed += 1;
            if b[0] == b'\n' {
                break;
            }
            if line.len() > 20 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad sparse map"));
            }
            line.push(b[0]);
        }
        std::str::from_utf8(&line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad sparse map"))
    };
    let n = next(data)?;
    let mut map = Vec::new();
    for _ in 0..n {
        let off = next(data)?;
        let len = next(data)?;
        map.push((off, len));
    }
    let pad = (512 - consumed % 512) % 512;
    io::copy(&mut data.take(pad), &mut io::sink())?;
    Ok(map)
}

/// A chunk of the decompressed stream, or the error that ended it.
type Chunk = io::Result<Vec<u8>>;

/// Reads the chunks the hashing thread passes on; hands used buffers back to the
/// decompressing thread so that it does not allocate (and zero) a new one per chunk.
struct ChanReader {
    rx: Receiver<Chunk>,
    recycle: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    let used = std::mem::replace(&mut self.buf, v);
                    let _ = self.recycle.try_send(used); // full or gone: just drop it
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the sender is done: end of stream
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

const CHUNK: usize = 1 << 20;
/// Chunks in flight between two stages.
const DEPTH: usize = 8;

type DecompressHandle<R> = JoinHandle<(R, io::Result<Compression>)>;
type HashHandle = JoinHandle<(Digest, u64)>;

/// A three-stage pipeline, one thread each: decompression (with the caller's hashing of the
/// compressed stream, in `blob`), hashing of the uncompressed stream (the diff_id), and the
/// caller's thread, which parses the tar and writes files. Without SHA-NI a sha256 pass costs
/// about as much CPU as inflating, so the two hashes and the inflate are spread over threads.
/// The decompressing thread hands `blob` back at the end so the caller can finish its hashing.
fn spawn_pipeline<R: Read + Send + 'static>(
    blob: R,
) -> (ChanReader, DecompressHandle<R>, HashHandle) {
    let (tx, rx) = sync_channel::<Chunk>(DEPTH);
    let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(2 * DEPTH + 2);
    let decompress_thread = std::thread::spawn(move || {
        let mut blob = blob;
        let res = (|| -> io::Result<Compression> {
            let (c, mut hr) = decompress(&mut blob)?;
            loop {
                let mut v = recycle_rx.try_recv().unwrap_or_default();
                v.resize(CHUNK, 0);
                let mut n = 0;
                while n < CHUNK {
                    let m = hr.read(&mut v[n..])?;
                    if m == 0 {
                        break;
                    }
                    n += m;
                }
                if n == 0 {
                    break;
                }
                v.truncate(n);
                if tx.send(Ok(v)).is_err() {
                    break; // the writer gave up (bad entry): stop reading
                }
            }
            Ok(c)
        })();
        if let Err(e) = &res {
            let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        (blob, res)
    });
    let (htx, hrx) = sync_channel::<Chunk>(DEPTH);
    let hash_thread = std::thread::spawn(move || {
        let mut h = Sha256::new();
        let mut count = 0u64;
        for chunk in rx {
            if let Ok(v) = &chunk {
                h.update(v);
                count += v.len() as u64;
            }
            if htx.send(chunk).is_err() {
                break; // the writer gave up; dropping rx stops the decompressing thread
            }
        }
        (Digest::from_hasher(h), count)
    });
    let reader = ChanReader {
        rx: hrx,
        recycle: recycle_tx,
        buf: Vec::new(),
        pos: 0,
    };
    (reader, decompress_thread, hash_thread)
}

/// Unpacks the (possibly compressed) layer `blob` into the empty directory `dest`.
/// `lowers` are the layer dirs below this one, nearest first (for implicit parents and
/// hardlinks into lower layers). When `expected` is given, the uncompressed stream must hash
/// to it. `blob` is handed back (None only if the decompressing thread panicked).
pub fn unpack_layer<R: Read + Send + 'static>(
    blob: R,
    dest: &Path,
    layer: &str,
    expected: Option<&Digest>,
    lowers: &[PathBuf],
) -> (Result<Unpacked>, Option<R>) {
    let (mut rd, decompress_thread, hash_thread) = spawn_pipeline(blob);
    let res = write_entries(&mut rd, dest, layer, lowers);
    // read what follows the end-of-archive marker (it counts for the diff_id); after an
    // error, dropping the reader stops the threads
    let drained = match &res {
        Ok(()) => Some(io::copy(&mut rd, &mut io::sink())),
        Err(_) => None,
    };
    drop(rd);
    let hashed = hash_thread.join();
    let (blob, stream) = match decompress_thread.join() {
        Ok((b, s)) => (Some(b), s),
        Err(_) => (None, Err(io::Error::other("decompressing thread panicked"))),
    };
    let out = (|| {
        res?;
        let drained = drained.expect("drained when res is ok");
        let hashed = hashed.map_err(|_| io::Error::other("hashing thread panicked"));
        let ((diff_id, size), compression) = drained
            .and(hashed)
            .and_then(|h| stream.map(|c| (h, c)))
            .map_err(|e| Error::Malformed {
                what: format!("layer {layer}"),
                reason: format!("truncated or corrupt stream: {e}"),
            })?;
        if let Some(exp) = expected {
            if exp != &diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("uncompressed layer {layer} (diff_id)"),
                    expected: exp.to_string(),
                    actual: diff_id.to_string(),
                });
            }
        }
        Ok(Unpacked {
            diff_id,
            compression,
            uncompressed_size: size,
        })
    })();
    (out, blob)
}

fn write_entries(rd: &mut ChanReader, dest: &Path, layer: &str, lowers: &[PathBuf]) -> Result<()> {
    let root = sys::open_dir(dest).ctx(|| format!("open {}", dest.display()))?;
    let creds = Creds::current(root.as_raw_fd());
    let lowers = lowers
        .iter()
        .map(|l| {
            resolve::open_dir(l)
                .map_err(io::Error::from)
                .ctx(|| format!("open lower layer {}", l.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut u = Unpacker {
        layer,
        root,
        lowers,
        cached_parent: None,
        parent_stale: false,
        creds,
        dir_times: Vec::new(),
        root_times: None,
        deferred_links: Vec::new(),
        upper: HashSet::new(),
        buf: vec![0u8; 256 << 10],
    };
    u.inherit_root()
        .map_err(|e| u.io(&[], "copy the lower layer's root attributes", e))?;
    let mut ar = tar::Archive::new(rd);
    let entries = ar.entries().map_err(|e| Error::Malformed {
        what: format!("layer {layer}"),
        reason: e.to_string(),
    })?;
    for e in entries {
        let mut e = e.map_err(|e| Error::Malformed {
            what: format!("layer {layer}"),
            reason: format!("tar: {e}"),
        })?;
        u.entry(&mut e)?;
    }
    u.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn clean_path_refuses_escapes() {
        assert_eq!(
            clean_path(b"/etc/passwd").unwrap(),
            vec![OsString::from("etc"), OsString::from("passwd")]
        );
        assert_eq!(clean_path(b"a/../b").unwrap(), vec![OsString::from("b")]);
        assert!(clean_path(b"a/../../b").is_err());
        assert!(clean_path(b"..").is_err());
        assert_eq!(
            clean_path(b"./a//b/").unwrap(),
            vec![OsString::from("a"), OsString::from("b")]
        );
        assert!(clean_path(b"./").unwrap().is_empty());
    }
    #[test]
    fn pax_times() {
        assert_eq!(parse_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time("7"), Some((7, 0)));
    }
}
