//! /dev inside the container: the default devices, the config's `linux.devices`, and the
//! standard symlinks. In a user namespace mknod is not allowed, so devices are bind
//! mounted from the host instead.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use capsa_linux::resolve::{self, Scope};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, fstatat, major, makedev, minor, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::inroot::InRoot;
use super::paths::fd_path;
use super::RootfsContext;
use crate::error::AsErrno;
use crate::syscall::open_path;
use crate::{Error, Result};

struct Dev {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

fn defaults() -> Vec<Dev> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, major, minor)| Dev {
        path: PathBuf::from("/dev").join(n),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: None,
        gid: None,
    })
    .collect()
}

fn err(path: &Path, what: &str, e: impl AsErrno) -> Error {
    Error::mount("linux.devices", path, what, e.errno())
}

pub fn populate(ctx: &RootfsContext, root: &InRoot, dev_mounted: bool) -> Result<()> {
    let mut devs = if dev_mounted { defaults() } else { Vec::new() };
    for d in ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            T::C | T::U => SFlag::S_IFCHR,
            T::B => SFlag::S_IFBLK,
            T::P => SFlag::S_IFIFO,
            T::A => {
                return Err(Error::Config(format!(
                    "linux.devices ({}): type \"a\" is not a device type",
                    d.path().display()
                )))
            }
        };
        devs.retain(|x| x.path != *d.path());
        devs.push(Dev {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid(),
            gid: d.gid(),
        });
    }
    // Device modes are exactly the config's: nothing masked off while they are made.
    let umask = ctx.sys.umask(Mode::empty());
    let mut dirs = Dirs::default();
    let made = devs
        .iter()
        .try_for_each(|d| create(ctx, root, &mut dirs, d));
    ctx.sys.umask(umask);
    made?;
    if dev_mounted {
        let dev = dirs.get(root, Path::new("/dev"))?;
        symlinks(root, dev)?;
    }
    Ok(())
}

/// The directories devices go in, each opened (made if missing) once: most are /dev.
#[derive(Default)]
struct Dirs(Vec<(PathBuf, OwnedFd)>);

impl Dirs {
    fn get(&mut self, root: &InRoot, dir: &Path) -> Result<BorrowedFd<'_>> {
        let i = match self.0.iter().position(|(p, _)| p == dir) {
            Some(i) => i,
            None => {
                let fd = root
                    .mkdir_all(dir, 0o755)
                    .map_err(|e| err(dir, "mkdir", e))?;
                self.0.push((dir.to_path_buf(), fd));
                self.0.len() - 1
            }
        };
        Ok(self.0[i].1.as_fd())
    }
}

fn create(ctx: &RootfsContext, root: &InRoot, dirs: &mut Dirs, d: &Dev) -> Result<()> {
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    let dir = dirs.get(root, parent)?;
    let name = d.path.file_name().ok_or_else(|| {
        Error::Config(format!(
            "linux.devices ({}): no file name",
            d.path.display()
        ))
    })?;
    if ctx.in_userns {
        return bind_from_host(ctx, dir, name, d);
    }
    let perm = Mode::from_bits_truncate(d.mode & 0o7777);
    let dev = makedev(d.major, d.minor);
    let made = match ctx.sys.mknodat(dir, name, d.kind, perm, dev) {
        // The image has something there: the config's node replaces it.
        Err(Errno::EEXIST) => {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            ctx.sys.mknodat(dir, name, d.kind, perm, dev)
        }
        r => r,
    };
    match made {
        // No CAP_MKNOD (a user namespace we did not make, a nested runtime) or the device
        // cgroup refuses: the host's node, as runc and crun do.
        Err(Errno::EPERM) => return bind_from_host(ctx, dir, name, d),
        r => r.map_err(|e| err(&d.path, "mknod", e))?,
    }
    if d.uid.is_some() || d.gid.is_some() {
        ctx.sys
            .fchownat(
                dir,
                name,
                d.uid.map(nix::unistd::Uid::from_raw),
                d.gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(|e| err(&d.path, "chown", e))?;
    }
    Ok(())
}

/// The host's node of `d` bound over an empty file `name` in `dir`, where mknod is not
/// allowed (in a user namespace). The host's node must be the device the config names
/// (its type, major and minor), else another file would stand in its place. On failure the
/// empty file made for it is removed again: /dev holds the device or nothing.
fn bind_from_host(ctx: &RootfsContext, dir: BorrowedFd<'_>, name: &OsStr, d: &Dev) -> Result<()> {
    let src = open_path(&d.path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .map_err(|e| err(&d.path, "open the host's node to bind", e))?;
    let st = fstat(src.as_raw_fd()).map_err(|e| err(&d.path, "stat the host's node", e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    let same_dev =
        d.kind == SFlag::S_IFIFO || (major(st.st_rdev) == d.major && minor(st.st_rdev) == d.minor);
    if kind != d.kind || !same_dev {
        return Err(Error::Config(format!(
            "linux.devices ({}): mknod is not allowed here (user namespace) and the host's \
             {} is not that device ({}), so it cannot be bound in its place",
            d.path.display(),
            d.path.display(),
            describe(kind, st.st_rdev),
        )));
    }
    let made = placeholder(dir, name).map_err(|e| err(&d.path, "create the file to bind on", e))?;
    let bound = resolve::open(
        dir,
        Path::new(name),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        Mode::empty(),
        Scope::BeneathNoSymlinks,
    )
    .and_then(|dst| {
        ctx.sys.mount(
            Some(&fd_path(&src)),
            &fd_path(&dst),
            None,
            MsFlags::MS_BIND,
            None,
        )
    });
    if let Err(e) = bound {
        if made {
            let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir);
        }
        return Err(err(&d.path, "bind from host", e));
    }
    Ok(())
}

/// An empty file `name` to bind on; whatever the image has there but a directory is
/// replaced (as mknod replaces it). Returns whether we made it.
fn placeholder(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<bool> {
    let make = || {
        nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            name,
            SFlag::S_IFREG,
            Mode::empty(),
            0,
        )
    };
    match make() {
        Ok(()) => Ok(true),
        Err(Errno::EEXIST) => {
            let st = fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                return Err(Errno::EISDIR);
            }
            nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)?;
            make().map(|()| true)
        }
        Err(e) => Err(e),
    }
}

fn describe(kind: SFlag, rdev: libc::dev_t) -> String {
    let what = match kind {
        SFlag::S_IFCHR => "c",
        SFlag::S_IFBLK => "b",
        SFlag::S_IFIFO => return "a fifo".into(),
        SFlag::S_IFDIR => return "a directory".into(),
        SFlag::S_IFLNK => return "a symlink".into(),
        _ => return "not a device".into(),
    };
    format!("{what} {}:{}", major(rdev), minor(rdev))
}

/// The standard links of /dev, made in the directory `dev`: an existing entry is left
/// alone, but for /dev/ptmx, which must point at this /dev/pts' ptmx.
fn symlinks(root: &InRoot, dev: BorrowedFd<'_>) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if root.resolve(Path::new("/dev/pts/ptmx")).is_ok() {
        links.push(("pts/ptmx", "ptmx"));
    }
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let link = Path::new("/dev").join(name);
        let made = match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Err(Errno::EEXIST) if name == "ptmx" => {
                let _ = nix::unistd::unlinkat(
                    Some(dev.as_raw_fd()),
                    name,
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name)
            }
            Err(Errno::EEXIST) => Ok(()),
            r => r,
        };
        made.map_err(|e| Error::mount("/dev", &link, format!("symlink to {target}"), e))?;
    }
    Ok(())
}
