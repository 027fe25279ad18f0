//! `bundle --copy`: merges the image's layer dirs, bottom to top, into one plain directory,
//! interpreting the overlay format (0:0 char device = whiteout, trusted.overlay.opaque = opaque
//! dir). Used where overlay cannot be mounted. All writes go through dir fds; nothing is
//! followed.
use crate::sys;
use crate::unpack::{remove_children, xattr_allowed, OPAQUE_XATTR};
use capsa_linux::resolve::{self, Scope};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn is_opaque(dir: RawFd, name: &OsStr) -> io::Result<bool> {
    Ok(sys::lgetxattr(dir, name, OPAQUE_XATTR)?.as_deref() == Some(b"y"))
}

fn remove_any(dir: RawFd, name: &OsStr) -> io::Result<()> {
    let Some(st) = sys::lstat_opt(dir, name)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let d = sys::openat(dir, name, DIR_FLAGS, 0)?;
        remove_children(&d)?;
        sys::unlinkat(dir, name, true)
    } else {
        sys::unlinkat(dir, name, false)
    }
}

/// Copies owner, mode, xattrs and times of `name` from `sdir` to `ddir`.
pub fn copy_attrs(sdir: RawFd, ddir: RawFd, name: &OsStr, st: &libc::stat) -> io::Result<()> {
    sys::lchownat(ddir, name, st.st_uid, st.st_gid)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
        sys::fchmodat(ddir, name, st.st_mode & 0o7777)?;
    }
    for (k, v) in sys::lxattrs(sdir, name)? {
        if xattr_allowed(k.as_bytes()) {
            if let Err(e) = sys::lsetxattr(ddir, name, &k, &v) {
                tracing::warn!(?name, xattr = ?k, "xattr not copied: {e}");
            }
        }
    }
    sys::lutimensat(
        ddir,
        name,
        (st.st_atime, st.st_atime_nsec),
        (st.st_mtime, st.st_mtime_nsec),
    )
}

struct Copier {
    dst_root: OwnedFd,
    /// hardlinked inodes of the current layer: (dev, ino) -> path in the destination
    links: HashMap<(u64, u64), Vec<OsString>>,
}

impl Copier {
    fn copy_dir(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        path: &mut Vec<OsString>,
    ) -> io::Result<()> {
        let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
        for name in sys::list_dir(src)? {
            let st = sys::fstatat(s, &name)?;
            let fmt = st.st_mode & libc::S_IFMT;
            if is_whiteout(&st) {
                remove_any(d, &name)?;
                continue;
            }
            path.push(name.clone());
            if fmt == libc::S_IFDIR {
                let existing = sys::lstat_opt(d, &name)?;
                match existing {
                    Some(e) if e.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                        if is_opaque(s, &name)? {
                            remove_children(&sys::openat(d, &name, DIR_FLAGS, 0)?)?;
                        }
                    }
                    _ => {
                        remove_any(d, &name)?;
                        sys::mkdirat(d, &name, 0o700)?;
                    }
                }
                let sub_s = sys::openat(s, &name, DIR_FLAGS, 0)?;
                let sub_d = sys::openat(d, &name, DIR_FLAGS, 0)?;
                self.copy_dir(&sub_s, &sub_d, path)?;
                copy_attrs(s, d, &name, &st)?;
            } else {
                remove_any(d, &name)?;
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 && fmt != libc::S_IFDIR {
                    if let Some(first) = self.links.get(&key) {
                        let (fname, fparent) = first.split_last().expect("non-empty");
                        let pdir = self.parent_of(fparent)?;
                        sys::linkat(pdir.as_raw_fd(), fname, d, &name)?;
                        path.pop();
                        continue;
                    }
                    self.links.insert(key, path.clone());
                }
                match fmt {
                    libc::S_IFREG => {
                        let sf = sys::openat(s, &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                        let df = sys::openat(
                            d,
                            &name,
                            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                            0o600,
                        )?;
                        io::copy(&mut std::fs::File::from(sf), &mut std::fs::File::from(df))?;
                    }
                    libc::S_IFLNK => sys::symlinkat(&sys::readlinkat(s, &name)?, d, &name)?,
                    _ => sys::mknodat(d, &name, fmt | 0o600, st.st_rdev)?,
                }
                copy_attrs(s, d, &name, &st)?;
            }
            path.pop();
        }
        Ok(())
    }

    fn parent_of(&self, comps: &[OsString]) -> io::Result<OwnedFd> {
        if comps.is_empty() {
            return sys::openat(self.dst_root.as_raw_fd(), OsStr::new("."), DIR_FLAGS, 0);
        }
        let mut v = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            if i > 0 {
                v.push(b'/');
            }
            v.extend_from_slice(c.as_bytes());
        }
        resolve::open(
            self.dst_root.as_fd(),
            Path::new(OsStr::from_bytes(&v)),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
            Scope::Beneath,
        )
        .map_err(io::Error::from)
    }
}

/// Merges `layers` (bottom first) into the existing empty directory `dest`.
pub fn merge_layers(layers: &[PathBuf], dest: &Path) -> io::Result<()> {
    let dst_root = sys::open_dir(dest)?;
    let mut c = Copier {
        dst_root,
        links: HashMap::new(),
    };
    for l in layers {
        c.links.clear();
        let src = sys::open_dir(l)?;
        let dst = sys::openat(c.dst_root.as_raw_fd(), OsStr::new("."), DIR_FLAGS, 0)?;
        if is_opaque(src.as_raw_fd(), OsStr::new("."))? {
            remove_children(&dst)?;
        }
        c.copy_dir(&src, &dst, &mut Vec::new())?;
        let st = sys::fstat(src.as_raw_fd())?;
        let dparent = sys::open_dir(dest.parent().unwrap_or(Path::new("/")))?;
        let dname = dest.file_name().unwrap_or(OsStr::new("."));
        sys::lchownat(dparent.as_raw_fd(), dname, st.st_uid, st.st_gid)?;
        sys::fchmodat(dparent.as_raw_fd(), dname, st.st_mode & 0o7777)?;
    }
    Ok(())
}
