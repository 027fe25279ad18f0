//! The container's filesystem view: propagation, the rootfs bind, the config's mounts in
//! order, /dev, pivot_root, then masked/readonly paths and a read-only root.
//!
//! Every mount target is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT) (see
//! inroot.rs) and mounted through its descriptor (/proc/self/fd/N), so a symlink planted in
//! the image, or swapped during set-up, cannot send a mount outside the container
//! (CVE-2021-30465, CVE-2024-45310, CVE-2025-52565 class).

mod copyup;
mod devices;
mod inroot;
mod mounts;
mod options;
mod paths;

use std::os::fd::{AsFd, AsRawFd};
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
    /// Bind sources opened by `create` before the user namespace (`BindSources::open`).
    pub bind_sources: &'a BindSources,
    /// The host's mount table, read by `create` before the clone (the child's is a copy).
    pub host_mounts: &'a [capsa_linux::mountinfo::MountEntry],
    pub sys: &'a dyn Syscall,
}

/// The sources of the config's bind mounts, opened by `create` with the host's
/// credentials before the init enters a new user namespace, whose root may not be able
/// to reach them (a 0700 directory of the host's root), as runc does: detached copies
/// (open_tree) that the init moves onto their targets. Indexed as `mounts`; empty
/// without a new user namespace.
#[derive(Default)]
pub struct BindSources(Vec<Option<std::os::fd::OwnedFd>>);

impl BindSources {
    pub fn open(spec: &Spec, bundle: &Path) -> Result<BindSources> {
        let mut v = Vec::new();
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            let opts = options::MountOptions::parse(m.options().as_deref().unwrap_or_default());
            let fd = match m.source() {
                Some(src) if opts.is_bind() && m.typ().as_deref() != Some("cgroup") => {
                    let path = bundle.join(src);
                    // A detached copy: the init attaches it in its own mount namespace,
                    // where a plain descriptor of ours could not be bind-mounted from.
                    let recursive = opts.flags.contains(MsFlags::MS_REC);
                    let fd = crate::syscall::open_tree_clone(&path, recursive).map_err(|e| {
                        Error::mount(
                            format!("mounts[{i}]"),
                            m.destination(),
                            format!("open bind source {}", path.display()),
                            e,
                        )
                    })?;
                    Some(fd)
                }
                _ => None,
            };
            v.push(fd);
        }
        Ok(BindSources(v))
    }

    /// The descriptor of `mounts[i]`'s source, if it was opened.
    pub fn get(&self, i: usize) -> Option<&std::os::fd::OwnedFd> {
        self.0.get(i).and_then(Option::as_ref)
    }
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
        hide_full_proc_and_sys(rootfs, sys)?;
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

/// After pivot: stdio that is the host's /dev/null becomes the container's (as runc), so
/// no descriptor of the init refers to a mount outside the container (CRIU cannot dump
/// one). Only a real null device (1:3) is used.
pub fn reopen_dev_null() -> Result<()> {
    use nix::sys::stat::{fstat, major, minor};
    let null = match crate::syscall::open_path(Path::new("/dev/null"), nix::fcntl::OFlag::O_RDWR) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("open /dev/null", e)),
    };
    let st = fstat(null.as_raw_fd()).map_err(|e| Error::sys("stat /dev/null", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || major(st.st_rdev) != 1
        || minor(st.st_rdev) != 3
    {
        return Ok(());
    }
    for fd in 0..3 {
        let same = fstat(fd)
            .is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFCHR && s.st_rdev == st.st_rdev);
        if same {
            nix::unistd::dup3(null.as_raw_fd(), fd, nix::fcntl::OFlag::empty())
                .map_err(|e| Error::sys(format!("reopen /dev/null as fd {fd}"), e))?;
        }
    }
    Ok(())
}

/// --no-pivot leaves the old root in our mount namespace, under the chroot. The kernel
/// lets a process that makes a user and pid namespace mount a new procfs or sysfs only
/// where a full one is visible: the host's would do, and that procfs has no masked
/// paths. So, as runc does, every full procfs and sysfs outside the rootfs is detached
/// (or covered with a tmpfs where it may not be) before the move.
fn hide_full_proc_and_sys(rootfs: &Path, sys: &dyn Syscall) -> Result<()> {
    use nix::errno::Errno;
    for m in capsa_linux::mountinfo::read() {
        let point = Path::new(&m.mount_point);
        if m.root != "/"
            || !matches!(m.fstype.as_str(), "proc" | "sysfs")
            || point.starts_with(rootfs)
        {
            continue;
        }
        // No unmount may reach the host.
        match sys.mount(None, point, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None) {
            // A parent of it is gone already.
            Err(Errno::ENOENT) => continue,
            r => r.ctx(|| format!("--no-pivot: make {} slave", m.mount_point))?,
        }
        match sys.umount2(point, MntFlags::MNT_DETACH) {
            Err(Errno::EINVAL | Errno::EPERM) => sys
                .mount(
                    Some(Path::new("tmpfs")),
                    point,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None,
                )
                .ctx(|| format!("--no-pivot: cover {}", m.mount_point))?,
            r => r.ctx(|| format!("--no-pivot: detach {}", m.mount_point))?,
        }
    }
    Ok(())
}

/// After pivot: masked and readonly paths, read-only tmpfs mounts (a read-only /dev),
/// propagation, read-only root.
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
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if mounts::read_only_last(m) {
            mounts::remount_read_only_last(m, i, sys)?;
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
