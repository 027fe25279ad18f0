//! Paths resolved inside the container's rootfs, race-free.
//!
//! Every lookup is one openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from a descriptor
//! of the rootfs: the kernel resolves symlinks and `..` as if the rootfs were `/`, so a
//! link planted in the image (or swapped in while we work) cannot lead outside it
//! (CVE-2021-30465, CVE-2024-45310). Directories that do not exist yet are created one
//! component at a time relative to the descriptor of their parent, and each new component
//! is opened with RESOLVE_NO_SYMLINKS, so a component replaced by a symlink between the
//! mkdirat and the open is refused rather than followed.
//!
//! The lookups go straight to the kernel: no procfs checks per call (the rootfs is not
//! procfs, and /proc/self/fd paths are only used in the runtime's own, still private,
//! mount namespace before pivot_root).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use capsa_linux::resolve::{self, relative, Scope};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// An O_PATH descriptor of the rootfs; the anchor of every lookup in it.
pub struct InRoot {
    root: OwnedFd,
}

fn open(dir: &impl AsFd, path: &Path, flags: OFlag, scope: Scope) -> nix::Result<OwnedFd> {
    resolve::open(dir.as_fd(), path, flags, Mode::empty(), scope)
}

impl InRoot {
    pub fn open(rootfs: &Path) -> io::Result<InRoot> {
        Ok(InRoot {
            root: resolve::open_dir(rootfs)?,
        })
    }

    /// An O_PATH descriptor of `p`, symlinks followed inside the rootfs.
    pub fn resolve(&self, p: &Path) -> io::Result<OwnedFd> {
        Ok(open(&self.root, p, OFlag::O_PATH, Scope::InRoot)?)
    }

    /// Like `resolve`, but a symlink as the last component is returned, not followed.
    pub fn resolve_nofollow(&self, p: &Path) -> io::Result<OwnedFd> {
        Ok(open(
            &self.root,
            p,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Scope::InRoot,
        )?)
    }

    /// `p` as a directory, created (with its missing parents, mode `mode`) if absent.
    pub fn mkdir_all(&self, p: &Path, mode: u32) -> io::Result<OwnedFd> {
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let rel = relative(p);
        match open(&self.root, rel, dir_flags, Scope::InRoot) {
            Err(Errno::ENOENT) => {}
            r => return Ok(r?),
        }
        // Find the deepest ancestor that exists, then create the rest below it.
        let comps: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(Ok(s)),
                Component::ParentDir => Some(Err(())),
                _ => None,
            })
            .collect::<Result<_, ()>>()
            .map_err(|()| {
                io::Error::new(io::ErrorKind::InvalidInput, "'..' in a path to create")
            })?;
        let mut existing = comps.len();
        let mut dir = loop {
            if existing == 0 {
                break self.root.try_clone()?;
            }
            existing -= 1;
            let prefix: PathBuf = comps[..existing].iter().collect();
            match open(&self.root, &prefix, dir_flags, Scope::InRoot) {
                Ok(fd) => break fd,
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let step = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        for name in &comps[existing..] {
            match nix::sys::stat::mkdirat(
                Some(dir.as_raw_fd()),
                *name,
                Mode::from_bits_truncate(mode),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = open(&dir, Path::new(name), step, Scope::BeneathNoSymlinks)?;
        }
        Ok(dir)
    }

    /// An O_PATH descriptor of the file `p`, created empty (mode `mode`) if absent,
    /// for a file bind mount. A dangling symlink is not followed to create its target.
    pub fn create_file(&self, p: &Path, mode: u32) -> io::Result<OwnedFd> {
        match self.resolve(p) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => return r,
        }
        let name = p
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let parent = self.mkdir_all(p.parent().unwrap_or(Path::new("/")), 0o755)?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
        match resolve::open(
            parent.as_fd(),
            Path::new(name),
            flags,
            Mode::from_bits_truncate(mode),
            Scope::BeneathNoSymlinks,
        ) {
            // Lost a race with another creator: fine if what is there now resolves.
            Ok(_) | Err(Errno::EEXIST) => self.resolve(p),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn absolute_symlink_resolves_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("link")).unwrap();
        symlink("../../../../..", root.join("up")).unwrap();
        let r = InRoot::open(&root).unwrap();
        assert_eq!(
            real(&r.resolve(Path::new("/link")).unwrap()),
            root.join("etc")
        );
        assert_eq!(real(&r.resolve(Path::new("/up")).unwrap()), root);
        let made = r.mkdir_all(Path::new("/link/new/dir"), 0o755).unwrap();
        assert_eq!(real(&made), root.join("etc/new/dir"));
        let made = r.mkdir_all(Path::new("/up/x"), 0o755).unwrap();
        assert_eq!(real(&made), root.join("x"));
    }

    #[test]
    fn files_are_created_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let r = InRoot::open(&root).unwrap();
        let f = r.create_file(Path::new("/a/b/file"), 0o644).unwrap();
        assert_eq!(real(&f), root.join("a/b/file"));
        symlink("/outside", root.join("a/l")).unwrap();
        assert!(r.resolve_nofollow(Path::new("/a/l")).is_ok());
        assert!(r.resolve(Path::new("/a/l")).is_err());
        assert!(r.mkdir_all(Path::new("/a/b/file/x"), 0o755).is_err());
        assert!(r.mkdir_all(Path::new("/nope/../x"), 0o755).is_err());
    }
}
