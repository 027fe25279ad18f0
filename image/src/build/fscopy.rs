//! Files into a build's rootfs for COPY and ADD. Every path in the rootfs is resolved from the
//! rootfs' fd: the destination with openat2(RESOLVE_IN_ROOT) (a symlink in the image points
//! inside the image, as the container would see it), everything below it with *at calls that
//! never follow a symlink. Sources are read the same way from the context (or another stage's
//! rootfs): a symlink named as a source is followed inside that root, symlinks inside a copied
//! directory are copied as symlinks.
use super::ignore::Ignore;
use crate::compress::decompress;
use crate::digest::{Digest, Sha256};
use crate::sys;
use crate::unpack::clean_path;
use capsa_linux::resolve::{self, Scope};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

const DIR: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;

fn kind(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

fn join(c: &[String]) -> String {
    c.join("/")
}

/// A source found in its root: its path there, an O_PATH fd (symlinks followed) and its stat.
pub struct Source {
    pub rel: Vec<String>,
    pub fd: OwnedFd,
    pub st: libc::stat,
}

impl Source {
    pub fn is_dir(&self) -> bool {
        kind(&self.st) == libc::S_IFDIR
    }
    /// The name a source file gets in a destination directory.
    pub fn base_name(&self) -> &str {
        self.rel.last().map(String::as_str).unwrap_or(".")
    }
    /// The file's content, opened for reading through its O_PATH fd.
    pub fn open(&self) -> io::Result<File> {
        let p = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        Ok(File::from(sys::openat(
            libc::AT_FDCWD,
            OsStr::new(&p),
            libc::O_RDONLY | libc::O_NOCTTY,
            0,
        )?))
    }
}

/// `rel` opened with openat2 under `root`: `scope` says how symlinks and `..` resolve.
fn open_scoped(root: &OwnedFd, rel: &str, flags: libc::c_int, scope: Scope) -> io::Result<OwnedFd> {
    let flags = OFlag::from_bits_truncate(flags);
    resolve::open(root.as_fd(), Path::new(rel), flags, Mode::empty(), scope)
        .map_err(io::Error::from)
}

/// Opens `rel` inside `root` (symlinks resolved inside it).
pub fn open_source(root: &OwnedFd, rel: &[String]) -> io::Result<Source> {
    let p = if rel.is_empty() {
        ".".to_string()
    } else {
        join(rel)
    };
    let fd = open_scoped(root, &p, libc::O_PATH, Scope::InRoot)?;
    let st = sys::fstat(fd.as_raw_fd())?;
    Ok(Source {
        rel: rel.to_vec(),
        fd,
        st,
    })
}

/// Entries of `root` matching the component patterns `pat` (no `**`), sorted; excluded paths
/// are skipped. Intermediate directories are not entered through symlinks.
pub fn glob(
    root: &OwnedFd,
    pat: &[String],
    excluded: &dyn Fn(&[String]) -> bool,
) -> io::Result<Vec<Vec<String>>> {
    let mut found = vec![Vec::new()];
    for (i, p) in pat.iter().enumerate() {
        let last = i + 1 == pat.len();
        let pc: Vec<char> = p.chars().collect();
        let mut next = Vec::new();
        for base in &found {
            let dir = if base.is_empty() {
                sys::openat(root.as_raw_fd(), OsStr::new("."), DIR, 0)
            } else {
                open_scoped(root, &join(base), DIR, Scope::Beneath)
            };
            let Ok(dir) = dir else { continue };
            let mut names: Vec<String> = sys::list_dir(&dir)?
                .into_iter()
                .filter_map(|n| n.into_string().ok())
                .collect();
            names.sort();
            for n in names {
                let nc: Vec<char> = n.chars().collect();
                if !super::ignore::match_component(&pc, &nc) {
                    continue;
                }
                let mut path = base.clone();
                path.push(n.clone());
                if excluded(&path) {
                    continue;
                }
                if !last {
                    let st = sys::fstatat(dir.as_raw_fd(), OsStr::new(&n))?;
                    if kind(&st) != libc::S_IFDIR {
                        continue;
                    }
                }
                next.push(path);
            }
        }
        found = next;
    }
    Ok(found)
}

/// Opens the directory `path` inside `root`, making the missing ones (mode 0755, owned by
/// root; the last one, when made here, by `owner`). Existing components are resolved inside
/// the root, symlinks included.
pub fn mkdir_in_root(root: &OwnedFd, path: &[String], owner: (u32, u32)) -> io::Result<OwnedFd> {
    let mut cur = sys::openat(root.as_raw_fd(), OsStr::new("."), DIR, 0)?;
    for (i, c) in path.iter().enumerate() {
        let name = OsStr::new(c);
        match sys::openat(cur.as_raw_fd(), name, DIR, 0) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sys::mkdirat(cur.as_raw_fd(), name, 0o755)?;
                sys::fchmodat(cur.as_raw_fd(), name, 0o755)?;
                if i + 1 == path.len() && owner != (0, 0) {
                    sys::lchownat(cur.as_raw_fd(), name, owner.0, owner.1)?;
                }
                cur = sys::openat(cur.as_raw_fd(), name, DIR, 0)?;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                // a symlink: resolve it as the container would
                let p = join(&path[..=i]);
                cur = open_scoped(root, &p, libc::O_RDONLY | libc::O_DIRECTORY, Scope::InRoot)
                    .map_err(|e| other(format!("/{p}: not a directory in the image ({e})")))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Whether `path` is an existing directory inside `root` (symlinks resolved inside it).
pub fn is_dir_in_root(root: &OwnedFd, path: &[String]) -> bool {
    if path.is_empty() {
        return true;
    }
    open_scoped(
        root,
        &join(path),
        libc::O_PATH | libc::O_DIRECTORY,
        Scope::InRoot,
    )
    .is_ok()
}

/// How copied entries are owned and moded.
#[derive(Clone, Copy, Default)]
pub struct Attrs {
    /// (uid, gid) for every entry; None keeps the source's (ADD of an archive) or, for
    /// COPY, gives root (the caller passes Some((0, 0)))
    pub owner: Option<(u32, u32)>,
    /// mode bits for every entry but symlinks
    pub chmod: Option<u32>,
}

/// Copies sources into a rootfs; remembers hardlinked inodes to link them again.
pub struct Copier<'a> {
    pub attrs: Attrs,
    /// paths (relative to the source's root) that are not copied (.dockerignore)
    pub excluded: &'a dyn Fn(&[String]) -> bool,
    /// excluded directories walked all the same: something below may be re-included
    pub reinclude: &'a dyn Fn(&[String]) -> bool,
    links: HashMap<(u64, u64), (Rc<OwnedFd>, OsString)>,
}

/// Removes `name` in `dir` unless it is a directory and `keep_dir`; returns whether a
/// directory is there now.
fn clear_target(dir: RawFd, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
    let Some(st) = sys::lstat_opt(dir, name)? else {
        return Ok(false);
    };
    if kind(&st) == libc::S_IFDIR {
        if keep_dir {
            return Ok(true);
        }
        let d = sys::openat(dir, name, DIR, 0)?;
        crate::unpack::remove_children(&d)?;
        sys::unlinkat(dir, name, true)?;
    } else {
        sys::unlinkat(dir, name, false)?;
    }
    Ok(false)
}

impl<'a> Copier<'a> {
    pub fn new(
        attrs: Attrs,
        excluded: &'a dyn Fn(&[String]) -> bool,
        reinclude: &'a dyn Fn(&[String]) -> bool,
    ) -> Copier<'a> {
        Copier {
            attrs,
            excluded,
            reinclude,
            links: HashMap::new(),
        }
    }

    /// Whether anything below the excluded directory `rel` (`dir`) is re-included.
    fn has_included(&self, dir: &OwnedFd, rel: &[String]) -> io::Result<bool> {
        for name in sys::list_dir(dir)? {
            let mut path = rel.to_vec();
            path.push(name.to_string_lossy().into_owned());
            if !(self.excluded)(&path) {
                return Ok(true);
            }
            if (self.reinclude)(&path)
                && kind(&sys::fstatat(dir.as_raw_fd(), &name)?) == libc::S_IFDIR
                && self.has_included(&sys::openat(dir.as_raw_fd(), &name, DIR, 0)?, &path)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn set_attrs(&self, dir: RawFd, name: &OsStr, st: &libc::stat) -> io::Result<()> {
        let (uid, gid) = self.attrs.owner.unwrap_or((st.st_uid, st.st_gid));
        sys::lchownat(dir, name, uid, gid)?;
        if kind(st) != libc::S_IFLNK {
            // after the chown, which clears set-id bits
            let mode = self.attrs.chmod.unwrap_or(st.st_mode & 0o7777);
            sys::fchmodat(dir, name, mode)?;
        }
        sys::lutimensat(
            dir,
            name,
            (st.st_atime, st.st_atime_nsec),
            (st.st_mtime, st.st_mtime_nsec),
        )
    }

    /// Copies the regular file `src` (stat `st`) to `name` in `dst`.
    pub fn copy_file(
        &mut self,
        src: &mut File,
        st: &libc::stat,
        dst: &Rc<OwnedFd>,
        name: &OsStr,
    ) -> io::Result<()> {
        let d = dst.as_raw_fd();
        if clear_target(d, name, false)? {
            unreachable!("clear_target removed the directory");
        }
        if st.st_nlink > 1 {
            if let Some((pdir, pname)) = self.links.get(&(st.st_dev, st.st_ino)) {
                return sys::linkat(pdir.as_raw_fd(), pname, d, name);
            }
            self.links
                .insert((st.st_dev, st.st_ino), (dst.clone(), name.to_os_string()));
        }
        let out = sys::openat(
            d,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
        )?;
        io::copy(src, &mut File::from(out))?;
        self.set_attrs(d, name, st)
    }

    /// Copies what the directory `src` holds into `dst` (not the directory itself).
    pub fn copy_dir_contents(
        &mut self,
        src: &OwnedFd,
        rel: &[String],
        dst: &Rc<OwnedFd>,
    ) -> io::Result<()> {
        let s = src.as_raw_fd();
        let d = dst.as_raw_fd();
        let mut names = sys::list_dir(src)?;
        names.sort();
        for name in names {
            let mut path = rel.to_vec();
            path.push(name.to_string_lossy().into_owned());
            if (self.excluded)(&path) {
                // an excluded directory holding re-included entries: those are copied, the
                // directory made for them as a missing parent (0755 root), as docker's and
                // buildah's context (which has no entry for the directory itself)
                if (self.reinclude)(&path) && kind(&sys::fstatat(s, &name)?) == libc::S_IFDIR {
                    let sub_s = sys::openat(s, &name, DIR, 0)?;
                    if self.has_included(&sub_s, &path)? {
                        if !clear_target(d, &name, true)? {
                            sys::mkdirat(d, &name, 0o755)?;
                            sys::fchmodat(d, &name, 0o755)?;
                        }
                        let sub_d = Rc::new(sys::openat(d, &name, DIR, 0)?);
                        self.copy_dir_contents(&sub_s, &path, &sub_d)?;
                    }
                }
                continue;
            }
            let st = sys::fstatat(s, &name)?;
            match kind(&st) {
                libc::S_IFDIR => {
                    if !clear_target(d, &name, true)? {
                        sys::mkdirat(d, &name, 0o700)?;
                    }
                    let sub_s = sys::openat(s, &name, DIR, 0)?;
                    let sub_d = Rc::new(sys::openat(d, &name, DIR, 0)?);
                    self.copy_dir_contents(&sub_s, &path, &sub_d)?;
                    self.set_attrs(d, &name, &st)?;
                }
                libc::S_IFREG => {
                    let f = sys::openat(s, &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                    self.copy_file(&mut File::from(f), &st, dst, &name)?;
                }
                libc::S_IFLNK => {
                    clear_target(d, &name, false)?;
                    sys::symlinkat(&sys::readlinkat(s, &name)?, d, &name)?;
                    self.set_attrs(d, &name, &st)?;
                }
                libc::S_IFSOCK => {}
                _ => {
                    clear_target(d, &name, false)?;
                    sys::mknodat(d, &name, kind(&st) | 0o600, st.st_rdev)?;
                    self.set_attrs(d, &name, &st)?;
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------- digests

/// A digest of what a set of sources would copy: names, types, modes, sizes, link targets,
/// device numbers and contents, in a fixed order (owners and times are not part of it: COPY
/// sets the owner, and a touched file with the same content is the same input, as docker).
pub struct TreeHash {
    h: Sha256,
    ignore: Option<Ignore>,
}

impl TreeHash {
    /// `ignore`: what .dockerignore leaves out (for sources in the context)
    pub fn new(ignore: Option<Ignore>) -> TreeHash {
        TreeHash {
            h: Sha256::new(),
            ignore,
        }
    }

    fn excluded(&self, p: &[String]) -> bool {
        self.ignore.as_ref().is_some_and(|i| i.excluded(p))
    }

    fn entry(&mut self, path: &str, st: &libc::stat, extra: &[u8]) {
        let line = format!(
            "{}\0{:o}\0{}\0{}\0",
            path,
            st.st_mode,
            if kind(st) == libc::S_IFREG {
                st.st_size
            } else {
                0
            },
            if matches!(kind(st), libc::S_IFCHR | libc::S_IFBLK) {
                st.st_rdev
            } else {
                0
            }
        );
        self.h.update(line.as_bytes());
        self.h.update(extra);
        self.h.update(b"\n");
    }

    fn content(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Digest::from_hasher(h).hex().as_bytes().to_vec())
    }

    /// Adds one source (a file, or a directory and everything below it).
    pub fn add(&mut self, src: &Source) -> io::Result<()> {
        let name = join(&src.rel);
        if src.is_dir() {
            self.entry(&name, &src.st, b"");
            let p = format!("/proc/self/fd/{}", src.fd.as_raw_fd());
            let d = sys::openat(libc::AT_FDCWD, OsStr::new(&p), DIR & !libc::O_NOFOLLOW, 0)?;
            self.dir(&d, &src.rel)
        } else if kind(&src.st) == libc::S_IFREG {
            let c = Self::content(&mut src.open()?)?;
            self.entry(&name, &src.st, &c);
            Ok(())
        } else {
            self.entry(&name, &src.st, b"");
            Ok(())
        }
    }

    fn dir(&mut self, d: &OwnedFd, rel: &[String]) -> io::Result<()> {
        let mut names = sys::list_dir(d)?;
        names.sort();
        for n in names {
            let mut path = rel.to_vec();
            path.push(n.to_string_lossy().into_owned());
            if self.excluded(&path) {
                // what a re-include pattern takes from an excluded directory (no entry of
                // the directory's own: its attributes are not copied)
                let reinclude = self
                    .ignore
                    .as_ref()
                    .is_some_and(|i| i.may_reinclude_below(&path));
                if reinclude && kind(&sys::fstatat(d.as_raw_fd(), &n)?) == libc::S_IFDIR {
                    let sub = sys::openat(d.as_raw_fd(), &n, DIR, 0)?;
                    self.dir(&sub, &path)?;
                }
                continue;
            }
            let st = sys::fstatat(d.as_raw_fd(), &n)?;
            let name = join(&path);
            match kind(&st) {
                libc::S_IFDIR => {
                    self.entry(&name, &st, b"");
                    let sub = sys::openat(d.as_raw_fd(), &n, DIR, 0)?;
                    self.dir(&sub, &path)?;
                }
                libc::S_IFREG => {
                    let f = sys::openat(d.as_raw_fd(), &n, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                    let c = Self::content(&mut File::from(f))?;
                    self.entry(&name, &st, &c);
                }
                libc::S_IFLNK => {
                    let t = sys::readlinkat(d.as_raw_fd(), &n)?;
                    self.entry(&name, &st, t.as_bytes());
                }
                _ => self.entry(&name, &st, b""),
            }
        }
        Ok(())
    }

    /// Adds bytes that are part of the input (the attributes a step applies).
    pub fn note(&mut self, b: &[u8]) {
        self.h.update(b);
    }

    pub fn finish(self) -> Digest {
        Digest::from_hasher(self.h)
    }
}

// ------------------------------------------------------------------------- ADD archives

/// A local file ADD unpacks: a tar, plain or compressed with gzip or zstd. bzip2 and xz
/// (which docker also unpacks) are refused by name rather than copied as a file.
pub fn is_archive(src: &Source) -> io::Result<bool> {
    if kind(&src.st) != libc::S_IFREG {
        return Ok(false);
    }
    let mut head = Vec::new();
    src.open()?.take(8).read_to_end(&mut head)?;
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(other(format!(
            "{}: bzip2 and xz archives are not supported by ADD (use gzip or zstd, or a plain tar)",
            join(&src.rel)
        )));
    }
    // a tar has "ustar" at offset 257 of its first header
    let (_, mut r) = decompress(src.open()?)?;
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return Ok(false),
        }
    }
    Ok(got == 512 && &block[257..262] == b"ustar")
}

/// Unpacks the tar `src` (plain, gzip or zstd) into `dst`: entry paths cleaned (a leading `/`
/// dropped, `..` refused), parents made as directories, owners from the archive unless
/// `attrs.owner`, hardlinks only to entries of the same archive.
pub fn extract(src: &Source, dst: &OwnedFd, attrs: Attrs) -> io::Result<()> {
    let (_, r) = decompress(src.open()?)?;
    let mut ar = tar::Archive::new(r);
    let mut dir_times: Vec<(Vec<OsString>, i64)> = Vec::new();
    for entry in ar.entries()? {
        let mut e = entry?;
        let raw = e.path_bytes().into_owned();
        let trimmed: &[u8] = {
            let mut t = &raw[..];
            while t.first() == Some(&b'/') {
                t = &t[1..];
            }
            t
        };
        let comps = clean_path(trimmed).map_err(|why| {
            other(format!(
                "archive entry {:?}: {why}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
        let Some((name, parents)) = comps.split_last() else {
            continue;
        };
        let parent = mkdir_beneath(dst, parents)?;
        let p = parent.as_raw_fd();
        let h = e.header().clone();
        let mode = attrs.chmod.unwrap_or(h.mode()? & 0o7777);
        let (uid, gid) = match attrs.owner {
            Some(o) => o,
            // an empty owner field (some writers) is root
            None => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        };
        let mtime = h.mtime().unwrap_or(0) as i64;
        let et = h.entry_type();
        match et {
            tar::EntryType::Directory => {
                if !clear_target(p, name, true)? {
                    sys::mkdirat(p, name, 0o700)?;
                }
                dir_times.push((comps.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear_target(p, name, false)?;
                let out = sys::openat(
                    p,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )?;
                let mut f = File::from(out);
                io::copy(&mut e, &mut f)?;
                f.flush()?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| other("symlink without a target".into()))?
                    .into_owned();
                clear_target(p, name, false)?;
                sys::symlinkat(OsStr::from_bytes(&target), p, name)?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| other("hardlink without a target".into()))?
                    .into_owned();
                let mut t: &[u8] = &target;
                while t.first() == Some(&b'/') {
                    t = &t[1..];
                }
                let tc = clean_path(t).map_err(|why| other(format!("hardlink target: {why}")))?;
                let Some((tname, tparents)) = tc.split_last() else {
                    return Err(other("hardlink to the archive's root".into()));
                };
                let tdir = open_beneath_dir(dst, tparents)?;
                clear_target(p, name, false)?;
                sys::linkat(tdir.as_raw_fd(), tname, p, name)?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let k = match et {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = sys::makedev(
                    h.device_major()?.unwrap_or(0),
                    h.device_minor()?.unwrap_or(0),
                );
                clear_target(p, name, false)?;
                sys::mknodat(p, name, k | 0o600, dev)?;
            }
            // pax/GNU extension headers are consumed by the tar crate; others are skipped
            _ => continue,
        }
        sys::lchownat(p, name, uid, gid)?;
        if et != tar::EntryType::Symlink {
            sys::fchmodat(p, name, mode)?;
        }
        sys::lutimensat(p, name, (mtime, 0), (mtime, 0))?;
    }
    // directory times last: their entries changed them
    for (comps, mtime) in dir_times.iter().rev() {
        if let Some((name, parents)) = comps.split_last() {
            let parent = open_beneath_dir(dst, parents)?;
            sys::lutimensat(parent.as_raw_fd(), name, (*mtime, 0), (*mtime, 0))?;
        }
    }
    Ok(())
}

/// Opens (making the missing ones, 0755) the directories `comps` below `dir`, never through
/// a symlink.
fn mkdir_beneath(dir: &OwnedFd, comps: &[OsString]) -> io::Result<OwnedFd> {
    let mut cur = sys::openat(dir.as_raw_fd(), OsStr::new("."), DIR, 0)?;
    for c in comps {
        match sys::openat(cur.as_raw_fd(), c, DIR, 0) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sys::mkdirat(cur.as_raw_fd(), c, 0o755)?;
                sys::fchmodat(cur.as_raw_fd(), c, 0o755)?;
                cur = sys::openat(cur.as_raw_fd(), c, DIR, 0)?;
            }
            Err(e) => {
                return Err(other(format!(
                    "{}: not a directory ({e})",
                    c.to_string_lossy()
                )))
            }
        }
    }
    Ok(cur)
}

fn open_beneath_dir(dir: &OwnedFd, comps: &[OsString]) -> io::Result<OwnedFd> {
    let mut cur = sys::openat(dir.as_raw_fd(), OsStr::new("."), DIR, 0)?;
    for c in comps {
        cur = sys::openat(cur.as_raw_fd(), c, DIR, 0)?;
    }
    Ok(cur)
}
