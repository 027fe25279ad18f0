//! The container's filesystem view: propagation, the rootfs bind, the config's mounts in
//! order, /dev, pivot_root, then masked/readonly paths and a read-only root.
//!
//! Every mount target is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT) (see
//! inroot.rs) and mounted through its descriptor (/proc/self/fd/N), so a symlink planted in
//! the image, or swapped during set-up, cannot send a mount outside the container
//! (CVE-2021-30465, CVE-2024-45310, CVE-2025-52565 class).

mod devices;
mod inroot;
mod mounts;
mod options;
mod paths;

use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::error::SysContext;
use crate::syscall::Syscall;
use crate::{Error, Result};

pub(crate) use inroot::InRoot;
pub(crate) use paths::fd_path;

/// What the mount set-up needs to know beyond the spec.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub in_userns: bool,
    pub new_cgroupns: bool,
    /// The host's mount table, read by `create` before the clone (the child's is a copy).
    pub host_mounts: &'a [capsa_linux::mountinfo::MountEntry],
    pub sys: &'a dyn Syscall,
}

fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    {
        None => Ok(None),
        Some(p) => options::propagation(&p)
            .map(Some)
            .ok_or_else(|| Error::Config(format!("linux.rootfsPropagation {p:?} is not valid"))),
    }
}

/// Before any mount: stop propagation to the host (rslave whatever the config says; its
/// rootfsPropagation is applied to the new root after pivot_root), make the rootfs a
/// mount point. After the recursive rslave no mount is shared, so pivot_root's rule that
/// the new root's parent mount must not be shared holds.
pub fn prepare(ctx: &RootfsContext) -> Result<()> {
    root_propagation(ctx.spec)?;
    let prop = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    ctx.sys
        .mount(None, Path::new("/"), None, prop, None)
        .ctx(|| "set propagation of /".into())?;
    ctx.sys
        .mount(
            Some(ctx.rootfs),
            ctx.rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .ctx(|| format!("bind rootfs {}", ctx.rootfs.display()))
}

/// Mount the config's mounts, in order, then populate /dev.
pub fn mount_all(ctx: &RootfsContext) -> Result<()> {
    let root = InRoot::open(ctx.rootfs).map_err(|e| Error::io("open", ctx.rootfs, e))?;
    let list = ctx.spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in list.iter().enumerate() {
        mounts::mount_one(ctx, &root, i, m)?;
    }
    let dev_mounted = list.iter().any(|m| m.destination() == Path::new("/dev"));
    devices::populate(ctx, &root, dev_mounted)
}

/// Switch the root: pivot_root(".", ".") then detach the old root, the sequence runc uses,
/// or (--no-pivot) move the rootfs over / and chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool, sys: &dyn Syscall) -> Result<()> {
    let dir = std::fs::File::open(rootfs).map_err(|e| Error::io("open", rootfs, e))?;
    sys.fchdir(dir.as_fd()).ctx(|| "chdir to rootfs".into())?;
    let here = Path::new(".");
    if no_pivot {
        sys.mount(Some(here), Path::new("/"), None, MsFlags::MS_MOVE, None)
            .ctx(|| "move rootfs to /".into())?;
        sys.chroot(here).ctx(|| "chroot".into())?;
    } else {
        sys.pivot_root(here, here).ctx(|| "pivot_root".into())?;
        // The old root is now stacked under "."; keep its unmount from reaching the host.
        let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
        sys.mount(None, here, None, slave, None)
            .ctx(|| "make old root slave".into())?;
        sys.umount2(here, MntFlags::MNT_DETACH)
            .ctx(|| "detach old root".into())?;
    }
    sys.chdir(Path::new("/")).ctx(|| "chdir /".into())
}

/// After pivot: masked and readonly paths, propagation, read-only root.
pub fn finalize(spec: &Spec, sys: &dyn Syscall) -> Result<()> {
    if let Some(linux) = spec.linux() {
        let mut null = None;
        for p in linux.masked_paths().as_deref().unwrap_or_default() {
            paths::mask(Path::new(p), &mut null, sys)?;
        }
        for p in linux.readonly_paths().as_deref().unwrap_or_default() {
            paths::make_readonly(Path::new(p), sys)?;
        }
    }
    if let Some(prop) = root_propagation(spec)? {
        sys.mount(None, Path::new("/"), None, prop, None)
            .ctx(|| "set linux.rootfsPropagation".into())?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        paths::remount_readonly(Path::new("/"), sys)?;
    }
    Ok(())
}
