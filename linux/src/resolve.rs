//! Paths opened under a directory with openat2(2), so the kernel, not a userspace walk,
//! keeps the lookup inside it: a symlink or `..` planted in a container's or an image's
//! tree cannot lead to the host's files (CVE-2018-15664, CVE-2021-30465 class).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
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
}
