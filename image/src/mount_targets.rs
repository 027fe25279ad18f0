//! The mount-target layer of a build step's bundle. A runtime creates the mount points its
//! config needs (/dev, /proc, /sys, and the /etc/hosts, /etc/hostname, /etc/resolv.conf a
//! build binds in) when the image lacks them; in an overlay rootfs they would land in the
//! writable layer and be committed with the step. This layer holds the ones the image lacks,
//! between the image's layers and the upper dir (docker's "init layer"), so a step's layer
//! holds only what the step itself changed. Its /etc, when it needs one, copies the image's
//! /etc attributes: a step that writes into /etc copies that directory up as the image has it.
use crate::sys;
use crate::unpack::OPAQUE_XATTR;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const DIRS: [&str; 3] = ["dev", "proc", "sys"];
const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

enum Found {
    Missing,
    Dir(libc::stat),
    NonDir,
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn opaque(dir: &impl AsRawFd, name: &OsStr) -> io::Result<bool> {
    Ok(sys::lgetxattr(dir.as_raw_fd(), name, OPAQUE_XATTR)?.as_deref() == Some(b"y"))
}

/// What the image (its layer dirs, bottom first) has at `path`, overlay rules applied:
/// the top-most layer with an entry wins, a whiteout or an opaque parent hides the layers below.
fn lookup(layers: &[PathBuf], path: &[&str]) -> io::Result<Found> {
    'layers: for l in layers.iter().rev() {
        let mut dir = sys::open_dir(l)?;
        let mut dir_opaque = opaque(&dir, OsStr::new("."))?;
        for (i, comp) in path.iter().enumerate() {
            let name = OsStr::new(comp);
            let last = i + 1 == path.len();
            match sys::lstat_opt(dir.as_raw_fd(), name)? {
                None if dir_opaque => return Ok(Found::Missing),
                None => continue 'layers,
                Some(st) if is_whiteout(&st) => return Ok(Found::Missing),
                Some(st) if last => {
                    return Ok(if is_dir(&st) {
                        Found::Dir(st)
                    } else {
                        Found::NonDir
                    })
                }
                Some(st) if is_dir(&st) => {
                    dir_opaque = opaque(&dir, name)?;
                    dir = sys::openat(
                        dir.as_raw_fd(),
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                }
                // a symlink or file where a directory would be: the runtime resolves it
                Some(_) => return Ok(Found::NonDir),
            }
        }
    }
    Ok(Found::Missing)
}

/// Makes `init` (a new directory) hold the mount targets `layers` lack.
pub fn make(layers: &[PathBuf], init: &Path) -> io::Result<()> {
    std::fs::create_dir(init)?;
    let root = sys::open_dir(init)?;
    let r = root.as_raw_fd();
    for d in DIRS {
        if matches!(lookup(layers, &[d])?, Found::Missing) {
            sys::mkdirat(r, OsStr::new(d), 0o755)?;
            sys::fchmodat(r, OsStr::new(d), 0o755)?;
        }
    }
    let mut missing = Vec::new();
    for f in ETC_FILES {
        if matches!(lookup(layers, &["etc", f])?, Found::Missing) {
            missing.push(f);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let etc_attrs = match lookup(layers, &["etc"])? {
        // /etc is a symlink in the image: the runtime follows it; nothing to shadow here
        Found::NonDir => return Ok(()),
        Found::Missing => None,
        Found::Dir(st) => Some(st),
    };
    let etc = OsStr::new("etc");
    sys::mkdirat(r, etc, 0o755)?;
    let etc_fd = sys::openat(r, etc, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for f in missing {
        let fd = sys::openat(
            etc_fd.as_raw_fd(),
            OsStr::new(f),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o644,
        )?;
        sys::fchmod(fd.as_raw_fd(), 0o644)?;
    }
    match etc_attrs {
        Some(st) => {
            sys::lchownat(r, etc, st.st_uid, st.st_gid)?;
            sys::fchmodat(r, etc, st.st_mode & 0o7777)?;
            sys::lutimensat(
                r,
                etc,
                (st.st_atime, st.st_atime_nsec),
                (st.st_mtime, st.st_mtime_nsec),
            )?;
        }
        None => sys::fchmodat(r, etc, 0o755)?,
    }
    Ok(())
}
