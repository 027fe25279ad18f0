//! Paths handled after pivot_root: maskedPaths, readonlyPaths, a read-only root, and
//! writes to /proc that must land on procfs and nowhere else.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, major, minor, Mode};

use super::mounts::remount_bind;
use crate::syscall::{mount_setattr_recursive, own, MOUNT_ATTR_RDONLY};
use crate::{Error, Result};

fn fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

fn open_path(p: &Path) -> nix::Result<OwnedFd> {
    let fd = open(
        p,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(own(fd))
}

/// maskedPaths: a directory gets an empty read-only tmpfs, anything else /dev/null.
/// The /dev/null used must be the real null device (CVE-2025-31133).
pub fn mask(p: &Path) -> Result<()> {
    let err = |what: &str, e: nix::Error| {
        Error::Other(format!("linux.maskedPaths {}: {what}: {e}", p.display()))
    };
    let fd = match open_path(p) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(err("open", e)),
    };
    let st = fstat(fd.as_raw_fd()).map_err(|e| err("stat", e))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return mount(
            Some("tmpfs"),
            fd_path(&fd).as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0,mode=755"),
        )
        .map_err(|e| err("mount tmpfs", e));
    }
    let null = open_path(Path::new("/dev/null")).map_err(|e| err("open /dev/null", e))?;
    let ns = fstat(null.as_raw_fd()).map_err(|e| err("stat /dev/null", e))?;
    if ns.st_mode & libc::S_IFMT != libc::S_IFCHR
        || major(ns.st_rdev) != 1
        || minor(ns.st_rdev) != 3
    {
        return Err(Error::Other(format!(
            "linux.maskedPaths {}: /dev/null in the container is not the null device (1:3); refusing to mask with it",
            p.display()
        )));
    }
    mount(
        Some(fd_path(&null).as_str()),
        fd_path(&fd).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| err("bind /dev/null", e))
}

/// readonlyPaths: bind the path onto itself, then read-only recursively.
pub fn make_readonly(p: &Path) -> Result<()> {
    let err = |what: &str, e: nix::Error| {
        Error::Other(format!("linux.readonlyPaths {}: {what}: {e}", p.display()))
    };
    let fd = match open_path(p) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(err("open", e)),
    };
    let path = fd_path(&fd);
    mount(
        Some(path.as_str()),
        path.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| err("bind", e))?;
    drop(fd);
    let top = open_path(p).map_err(|e| err("open", e))?;
    if mount_setattr_recursive(top.as_fd(), MOUNT_ATTR_RDONLY, 0).is_err() {
        remount_bind(&top, MsFlags::MS_RDONLY).map_err(|e| err("remount ro", e))?;
    }
    Ok(())
}

/// root.readonly: the root mount only (mounts below keep their own flags), as runc does.
pub fn remount_readonly(p: &Path) -> Result<()> {
    let fd = open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open /", e))?;
    remount_bind(&own(fd), MsFlags::MS_RDONLY)
        .map_err(|e| Error::sys("root.readonly: remount / read-only", e))
}

/// Write `value` to a file under /proc, checking the opened file really is on procfs, so a
/// bind mount over /proc cannot redirect the write (CVE-2019-16884, CVE-2025-52881).
pub fn write_proc(path: &str, value: &str) -> Result<()> {
    let fd = open(
        path,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {path}"), e))?;
    let fd = own(fd);
    let fs = nix::sys::statfs::fstatfs(&fd).map_err(|e| Error::sys(format!("statfs {path}"), e))?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(Error::Other(format!(
            "{path} is not on procfs; refusing to write to it"
        )));
    }
    let mut f = std::fs::File::from(fd);
    f.write_all(value.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}
