//! Paths opened under a directory with openat2(2), so the kernel, not a userspace walk,
//! keeps the lookup inside it: a symlink or `..` planted in a container's or an image's
//! tree cannot lead to the host's files (CVE-2018-15664, CVE-2021-30465 class).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::owned_fd;

/// How the lookup is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Symlinks and `..` resolve as if `dir` were `/` (RESOLVE_IN_ROOT): what a process
    /// chrooted there would open.
    InRoot,
    /// A lookup that would leave `dir` fails with EXDEV (RESOLVE_BENEATH).
    Beneath,
    /// Beneath, and no symlink anywhere on the path (RESOLVE_NO_SYMLINKS).
    BeneathNoSymlinks,
}

impl Scope {
    fn flags(self) -> ResolveFlag {
        let base = ResolveFlag::RESOLVE_NO_MAGICLINKS;
        match self {
            Scope::InRoot => base | ResolveFlag::RESOLVE_IN_ROOT,
            Scope::Beneath => base | ResolveFlag::RESOLVE_BENEATH,
            Scope::BeneathNoSymlinks => {
                base | ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS
            }
        }
    }
}

/// openat2(`dir`, `path`, `flags` | O_CLOEXEC, `mode`) confined by `scope`. An absolute
/// `path` is taken relative to `dir`. Retries on EAGAIN (the kernel's answer to a
/// concurrent rename it could not rule out).
pub fn open(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    scope: Scope,
) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(scope.flags());
    loop {
        match nix::fcntl::openat2(dir.as_raw_fd(), rel, how) {
            Err(Errno::EAGAIN) => continue,
            r => return r.map(owned_fd),
        }
    }
}

/// An O_PATH|O_DIRECTORY descriptor of `path` (a normal, unconfined lookup): the anchor
/// of confined lookups.
pub fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(owned_fd)
}

/// The text of the file `path` read as a process chrooted at `root` would read it
/// (RESOLVE_IN_ROOT: an image's `/etc/passwd -> /usr/share/x` stays in the image), at most
/// `limit` bytes. An image's files are read this way, never by a host path under `root`.
pub fn read_in_root(root: &Path, path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let dir = open_dir(root)?;
    let fd = open(
        dir.as_fd(),
        path,
        OFlag::O_RDONLY,
        Mode::empty(),
        Scope::InRoot,
    )?;
    let mut s = String::new();
    std::fs::File::from(fd).take(limit).read_to_string(&mut s)?;
    Ok(s)
}

/// `p` relative to the anchor: "/a/b" → "a/b", "/" and "" → ".".
pub fn relative(p: &Path) -> &Path {
    let r = p.strip_prefix("/").unwrap_or(p);
    if r.as_os_str().is_empty() {
        Path::new(".")
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn scopes_confine_the_lookup() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "x").unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        let dir = open_dir(&root).unwrap();
        let o = |p: &str, s| open(dir.as_fd(), Path::new(p), OFlag::O_PATH, Mode::empty(), s);
        assert_eq!(
            real(&o("/abs/passwd", Scope::InRoot).unwrap()),
            root.join("etc/passwd")
        );
        assert_eq!(real(&o("up", Scope::InRoot).unwrap()), root);
        assert_eq!(o("up", Scope::Beneath).unwrap_err(), Errno::EXDEV);
        assert_eq!(o("/abs/passwd", Scope::Beneath).unwrap_err(), Errno::EXDEV);
        assert_eq!(
            o("abs", Scope::BeneathNoSymlinks).unwrap_err(),
            Errno::ELOOP
        );
        assert!(o("etc/passwd", Scope::BeneathNoSymlinks).is_ok());
        assert_eq!(relative(Path::new("/")), Path::new("."));
    }

    #[test]
    fn read_in_root_stays_in_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/share")).unwrap();
        std::fs::write(root.join("usr/share/passwd"), "img:x:7:7::/:/bin/sh\n").unwrap();
        // absolute links name the image's own files, a climbing one stops at its root
        symlink("/usr/share/passwd", root.join("etc/passwd")).unwrap();
        symlink("../../../../../../etc/hostname", root.join("etc/up")).unwrap();
        let read = |p: &str| read_in_root(&root, Path::new(p), 1 << 20);
        assert_eq!(read("/etc/passwd").unwrap(), "img:x:7:7::/:/bin/sh\n");
        assert_eq!(read("etc/passwd").unwrap(), "img:x:7:7::/:/bin/sh\n");
        assert_eq!(
            read("etc/up").unwrap_err().kind(),
            std::io::ErrorKind::NotFound,
            "the host's /etc/hostname was read"
        );
        assert_eq!(
            read_in_root(&root, Path::new("usr/share/passwd"), 3).unwrap(),
            "img"
        );
    }
}
