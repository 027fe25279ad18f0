//! /dev inside the container: the default devices, the config's `linux.devices`, and the
//! standard symlinks. In a user namespace mknod is not allowed, so devices are bind
//! mounted from the host instead.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::{makedev, Mode, SFlag};

use super::inroot::InRoot;
use super::paths::fd_path;
use super::RootfsContext;
use crate::error::AsErrno;
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
    let made = devs.iter().try_for_each(|d| create(ctx, root, d));
    ctx.sys.umask(umask);
    made?;
    if dev_mounted {
        symlinks(root)?;
    }
    Ok(())
}

fn create(ctx: &RootfsContext, root: &InRoot, d: &Dev) -> Result<()> {
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    let dir = root
        .mkdir_all(parent, 0o755)
        .map_err(|e| err(&d.path, "mkdir", e))?;
    let name = d.path.file_name().ok_or_else(|| {
        Error::Config(format!(
            "linux.devices ({}): no file name",
            d.path.display()
        ))
    })?;
    if ctx.in_userns {
        // Bind the host's node over an empty file.
        let _ = nix::sys::stat::mknodat(
            Some(dir.as_fd().as_raw_fd()),
            name,
            SFlag::S_IFREG,
            Mode::from_bits_truncate(0o600),
            0,
        );
        let target = root
            .resolve(&d.path)
            .map_err(|e| err(&d.path, "resolve", e))?;
        return ctx
            .sys
            .mount(
                Some(&d.path),
                &fd_path(&target),
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(|e| err(&d.path, "bind from host", e));
    }
    let _ = nix::unistd::unlinkat(
        Some(dir.as_fd().as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    ctx.sys
        .mknodat(
            dir.as_fd(),
            name,
            d.kind,
            Mode::from_bits_truncate(d.mode & 0o7777),
            makedev(d.major, d.minor),
        )
        .map_err(|e| err(&d.path, "mknod", e))?;
    if d.uid.is_some() || d.gid.is_some() {
        ctx.sys
            .fchownat(
                dir.as_fd(),
                name,
                d.uid.map(nix::unistd::Uid::from_raw),
                d.gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(|e| err(&d.path, "chown", e))?;
    }
    Ok(())
}

fn symlinks(root: &InRoot) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if root.resolve(Path::new("/dev/pts/ptmx")).is_ok() {
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (target, link) in links {
        let (target, link) = (Path::new(target), Path::new(link));
        if root.resolve_nofollow(link).is_ok() {
            if link != Path::new("/dev/ptmx") {
                continue;
            }
            let _ = root.remove_file(link);
        }
        root.symlink(target, link).map_err(|e| {
            Error::mount(
                "/dev",
                link,
                format!("symlink to {}", target.display()),
                e.errno(),
            )
        })?;
    }
    Ok(())
}
