//! Paths handled after pivot_root: maskedPaths, readonlyPaths, a read-only root; and the
//! `/proc/self/fd/N` names through which a resolved descriptor is mounted on.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, major, minor};

use super::mounts::remount_bind;
use crate::syscall::{open_path, Syscall, MOUNT_ATTR_RDONLY};
use crate::{Error, Result};

/// The magic link of a descriptor: mounting on it mounts on what the descriptor names.
pub fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

fn open_nofollow(p: &Path) -> nix::Result<OwnedFd> {
    open_path(p, OFlag::O_PATH | OFlag::O_NOFOLLOW)
}

/// maskedPaths: a directory gets an empty read-only tmpfs, anything else /dev/null.
/// The /dev/null used must be the real null device (CVE-2025-31133); it is opened and
/// checked once, into `null`, for all the paths.
pub fn mask(p: &Path, null: &mut Option<OwnedFd>, sys: &dyn Syscall) -> Result<()> {
    let err = |what: &str, e: Errno| Error::mount("linux.maskedPaths", p, what, e);
    let fd = match open_nofollow(p) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(err("open", e)),
    };
    let st = fstat(fd.as_raw_fd()).map_err(|e| err("stat", e))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return sys
            .mount(
                Some(Path::new("tmpfs")),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0,mode=755"),
            )
            .map_err(|e| err("mount tmpfs", e));
    }
    let null = match null {
        Some(null) => null,
        None => null.insert(real_null(p)?),
    };
    sys.mount(
        Some(&fd_path(null)),
        &fd_path(&fd),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .map_err(|e| err("bind /dev/null", e))
}

/// The container's /dev/null, checked to be the null device (1:3).
fn real_null(masking: &Path) -> Result<OwnedFd> {
    let err = |what: &str, e: Errno| Error::mount("linux.maskedPaths", masking, what, e);
    let null = open_nofollow(Path::new("/dev/null")).map_err(|e| err("open /dev/null", e))?;
    let ns = fstat(null.as_raw_fd()).map_err(|e| err("stat /dev/null", e))?;
    if ns.st_mode & libc::S_IFMT != libc::S_IFCHR
        || major(ns.st_rdev) != 1
        || minor(ns.st_rdev) != 3
    {
        return Err(Error::Other(format!(
            "linux.maskedPaths {}: /dev/null in the container is not the null device (1:3); refusing to mask with it",
            masking.display()
        )));
    }
    Ok(null)
}

/// readonlyPaths: bind the path onto itself, then read-only recursively.
pub fn make_readonly(p: &Path, sys: &dyn Syscall) -> Result<()> {
    let err = |what: &str, e: Errno| Error::mount("linux.readonlyPaths", p, what, e);
    let fd = match open_nofollow(p) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(err("open", e)),
    };
    let path = fd_path(&fd);
    sys.mount(
        Some(&path),
        &path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| err("bind", e))?;
    drop(fd);
    let top = open_nofollow(p).map_err(|e| err("open", e))?;
    if sys
        .mount_setattr_recursive(top.as_fd(), MOUNT_ATTR_RDONLY, 0)
        .is_err()
    {
        remount_bind(&top, MsFlags::MS_RDONLY, sys).map_err(|e| err("remount ro", e))?;
    }
    Ok(())
}

/// root.readonly: the root mount only (mounts below keep their own flags), as runc does.
pub fn remount_readonly(p: &Path, sys: &dyn Syscall) -> Result<()> {
    let fd = open_path(p, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::sys(format!("open {}", p.display()), e))?;
    remount_bind(&fd, MsFlags::MS_RDONLY, sys)
        .map_err(|e| Error::sys("root.readonly: remount / read-only", e))
}
