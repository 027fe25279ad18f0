//! One entry of config.json `mounts`: resolve its target inside the rootfs, mount through
//! the target's descriptor, then apply what a bind mount only takes on a remount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use capsa_linux::resolve::{self, Scope};
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

use super::copyup;
use super::inroot::InRoot;
use super::options::{MountOptions, REMOUNT_FLAGS};
use super::paths::fd_path;
use super::RootfsContext;
use crate::error::AsErrno;
use crate::syscall::Syscall;
use crate::{Error, Result};

fn merr(i: usize, dest: &Path, what: &str, e: impl AsErrno) -> Error {
    Error::mount(format!("mounts[{i}]"), dest, what, e.errno())
}

/// A mount refused for what its target is, not for an errno.
fn refuse(i: usize, dest: &Path, what: &str, why: &str) -> Error {
    Error::Other(format!("mounts[{i}] ({}): {what}: {why}", dest.display()))
}

pub fn mount_one(ctx: &RootfsContext, root: &InRoot, i: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("none");
    if opts.idmap {
        return Err(refuse(
            i,
            dest,
            "options",
            "idmap mounts are not supported yet",
        ));
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, i, dest, &opts);
    }
    let opened = ctx.bind_sources.get(i);
    let source = match opened {
        // Opened by `create` before the user namespace: mounted through its descriptor.
        Some(fd) => Some(fd_path(fd)),
        None => m.source().as_ref().map(|s| {
            if opts.is_bind() && s.is_relative() {
                ctx.bundle.join(s)
            } else {
                s.clone()
            }
        }),
    };
    let target = make_target(root, i, dest, &opts, source.as_deref(), typ)?;
    let mut flags = opts.flags;
    if !opts.is_bind() {
        flags.remove(MsFlags::MS_REC);
    }
    if read_only_last(m) {
        // Mounts and device nodes still go below it: read-only in `rootfs::finalize`.
        flags.remove(MsFlags::MS_RDONLY);
    }
    let data = opts.data();
    // tmpcopyup: what the tmpfs will cover, opened before it does.
    let covered = (opts.tmpcopyup && typ == "tmpfs")
        .then(|| copyup::open_dir(&target))
        .transpose()
        .map_err(|e| merr(i, dest, "tmpcopyup: open the directory", e))?;
    let res = match opened {
        Some(tree) => ctx.sys.move_mount(tree.as_fd(), target.as_fd()),
        None => ctx.sys.mount(
            source.as_deref(),
            &fd_path(&target),
            Some(typ),
            flags,
            data.as_deref(),
        ),
    };
    match res {
        Ok(()) => {}
        // Without its own network namespace a user namespace may not mount sysfs: bind it.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" && ctx.in_userns => {
            ctx.sys
                .mount(
                    Some(Path::new("/sys")),
                    &fd_path(&target),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(|e| merr(i, dest, "bind /sys", e))?;
        }
        Err(e) => {
            let src = source
                .as_deref()
                .map(|s| s.display().to_string())
                .unwrap_or_default();
            return Err(merr(i, dest, &format!("mount {typ} from {src:?}"), e));
        }
    }
    drop(target);
    if let Some(covered) = covered {
        let top = root
            .resolve(dest)
            .and_then(|fd| copyup::open_dir(&fd).map_err(std::io::Error::from))
            .map_err(|e| merr(i, dest, "tmpcopyup: open the tmpfs", e))?;
        copyup::copy_dir(&covered, &top, ctx.sys).map_err(|e| merr(i, dest, "tmpcopyup", e))?;
    }
    let needs_remount = opts.is_bind() && flags.intersects(REMOUNT_FLAGS);
    if needs_remount || !opts.propagation.is_empty() || opts.rec_set | opts.rec_clr != 0 {
        let top = root
            .resolve(dest)
            .map_err(|e| merr(i, dest, "resolve", e))?;
        if needs_remount {
            remount_bind(&top, flags & REMOUNT_FLAGS, ctx.sys)
                .map_err(|e| merr(i, dest, "remount", e))?;
        }
        for p in &opts.propagation {
            ctx.sys
                .mount(None, &fd_path(&top), None, *p, None)
                .map_err(|e| merr(i, dest, "set propagation", e))?;
        }
        if opts.rec_set | opts.rec_clr != 0 {
            ctx.sys
                .mount_setattr_recursive(top.as_fd(), opts.rec_set, opts.rec_clr)
                .map_err(|e| merr(i, dest, "mount_setattr", e))?;
        }
    }
    Ok(())
}

/// A read-only tmpfs (a read-only /dev, runc#3248) is mounted read-write and made
/// read-only last, as runc does: /dev/pts, /dev/shm and the device nodes go into it first.
pub fn read_only_last(m: &Mount) -> bool {
    m.typ().as_deref() == Some("tmpfs")
        && MountOptions::parse(m.options().as_deref().unwrap_or_default())
            .flags
            .contains(MsFlags::MS_RDONLY)
}

/// After pivot_root: the `read_only_last` mounts made read-only, keeping their own flags.
pub fn remount_read_only_last(m: &Mount, i: usize, sys: &dyn Syscall) -> Result<()> {
    let dest = m.destination();
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let fd = crate::syscall::open_path(
        dest,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_DIRECTORY,
    )
    .map_err(|e| merr(i, dest, "open", e))?;
    remount_bind(&fd, opts.flags & REMOUNT_FLAGS, sys).map_err(|e| merr(i, dest, "remount ro", e))
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locks in a user
/// namespace (nosuid, nodev, noexec, atime) that a remount may not clear.
pub fn remount_bind(target: &impl AsFd, flags: MsFlags, sys: &dyn Syscall) -> nix::Result<()> {
    let path = fd_path(target);
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match sys.mount(None, &path, None, base | flags, None) {
        Err(nix::errno::Errno::EPERM) => {
            let st = nix::sys::statvfs::fstatvfs(target.as_fd())?;
            let mut locked = MsFlags::empty();
            let f = st.flags();
            use nix::sys::statvfs::FsFlags as V;
            for (v, m) in [
                (V::ST_NOSUID, MsFlags::MS_NOSUID),
                (V::ST_NODEV, MsFlags::MS_NODEV),
                (V::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (V::ST_NOATIME, MsFlags::MS_NOATIME),
                (V::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (V::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(v) {
                    locked |= m;
                }
            }
            sys.mount(None, &path, None, base | flags | locked, None)
        }
        r => r,
    }
}

/// Create the mount point inside the rootfs (a file for a file bind mount) and return an
/// O_PATH descriptor of it.
fn make_target(
    root: &InRoot,
    i: usize,
    dest: &Path,
    opts: &MountOptions,
    source: Option<&Path>,
    typ: &str,
) -> Result<OwnedFd> {
    let source_is_file = opts.is_bind()
        && source
            .map(|s| std::fs::metadata(s).map(|m| !m.is_dir()))
            .transpose()
            .map_err(|e| {
                merr(
                    i,
                    dest,
                    &format!("bind source {:?}", source.unwrap_or(Path::new(""))),
                    e,
                )
            })?
            .unwrap_or(false);
    if matches!(typ, "proc" | "sysfs") {
        // procfs/sysfs over a symlink or a file is an escape attempt (CVE-2019-19921,
        // CVE-2023-27561, CVE-2025-54867): refuse it.
        if let Ok(h) = root.resolve_nofollow(dest) {
            let st = nix::sys::stat::fstat(h.as_fd().as_raw_fd())
                .map_err(|e| merr(i, dest, "stat", e))?;
            match st.st_mode & libc::S_IFMT {
                // Not a symlink: this descriptor is the mount point itself.
                libc::S_IFDIR => return Ok(h),
                // runc's words first ("must be mounted on ordinary directory").
                libc::S_IFLNK => {
                    return Err(refuse(
                        i,
                        dest,
                        typ,
                        "must be mounted on ordinary directory (the mount point is a symlink)",
                    ))
                }
                _ => return Err(refuse(
                    i,
                    dest,
                    typ,
                    "must be mounted on ordinary directory (the mount point is not a directory)",
                )),
            }
        }
    }
    if source_is_file {
        return root
            .create_file(dest, 0o644)
            .map_err(|e| merr(i, dest, "create file mount point", e));
    }
    root.mkdir_all(dest, 0o755)
        .map_err(|e| merr(i, dest, "mkdir", e))
}

/// `type: cgroup`: on cgroup v2 the cgroup2 fs (its own view with a cgroup namespace, else
/// the container's cgroup bound); on v1/hybrid a tmpfs with one directory per hierarchy.
fn mount_cgroup(
    ctx: &RootfsContext,
    root: &InRoot,
    i: usize,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let base = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let target = root
        .mkdir_all(dest, 0o755)
        .map_err(|e| merr(i, dest, "mkdir", e))?;
    let own = crate::cgroups::memberships("self");
    let entries = ctx.host_mounts;
    let unified_host = entries
        .iter()
        .any(|m| m.mount_point == "/sys/fs/cgroup" && m.fstype == "cgroup2");
    if unified_host {
        mount_hierarchy(
            ctx,
            i,
            dest,
            &target,
            "cgroup2",
            "",
            "/sys/fs/cgroup",
            own.get("").map(String::as_str),
            base,
        )?;
        if ro {
            let top = root
                .resolve(dest)
                .map_err(|e| merr(i, dest, "resolve", e))?;
            remount_bind(&top, MsFlags::MS_RDONLY | base, ctx.sys)
                .map_err(|e| merr(i, dest, "remount ro", e))?;
        }
        return Ok(());
    }
    ctx.sys
        .mount(
            Some(Path::new("tmpfs")),
            &fd_path(&target),
            Some("tmpfs"),
            base,
            Some("mode=755"),
        )
        .map_err(|e| merr(i, dest, "mount tmpfs", e))?;
    drop(target);
    // The tmpfs is new and empty: each hierarchy's directory is made and opened right
    // under it, no symlink followed.
    let tmpfs = root
        .resolve(dest)
        .map_err(|e| merr(i, dest, "resolve", e))?;
    let under = |name: &str, flags: OFlag, scope: Scope| {
        resolve::open(tmpfs.as_fd(), Path::new(name), flags, Mode::empty(), scope)
    };
    for m in entries
        .iter()
        .filter(|m| m.mount_point.starts_with("/sys/fs/cgroup/"))
    {
        let name = m.mount_point.trim_start_matches("/sys/fs/cgroup/");
        if name.contains('/') || !(m.fstype == "cgroup" || m.fstype == "cgroup2") {
            continue;
        }
        let sub = dest.join(name);
        nix::sys::stat::mkdirat(
            Some(tmpfs.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        )
        .map_err(|e| merr(i, &sub, "mkdir", e))?;
        let dir = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        let t = under(name, dir, Scope::BeneathNoSymlinks).map_err(|e| merr(i, &sub, "open", e))?;
        // The hierarchy's options name its controllers: "rw,cpu", "rw,name=systemd".
        let ctrl: Vec<&str> = m
            .super_options
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect();
        let key = if m.fstype == "cgroup2" {
            String::new()
        } else {
            ctrl.join(",")
        };
        mount_hierarchy(
            ctx,
            i,
            &sub,
            &t,
            &m.fstype,
            &ctrl.join(","),
            &m.mount_point,
            own.get(&key).map(String::as_str),
            base,
        )?;
        drop(t);
        if ro {
            // Opened again: now the root of the mount just made there.
            let top = under(name, OFlag::O_PATH, Scope::Beneath)
                .map_err(|e| merr(i, &sub, "resolve", e))?;
            remount_bind(&top, MsFlags::MS_RDONLY | base, ctx.sys)
                .map_err(|e| merr(i, &sub, "remount ro", e))?;
        }
    }
    if ro {
        ctx.sys
            .mount(
                None,
                &fd_path(&tmpfs),
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
                Some("mode=755"),
            )
            .map_err(|e| merr(i, dest, "remount tmpfs ro", e))?;
    }
    Ok(())
}

/// Mount one hierarchy: a fresh mount in a new cgroup namespace (it shows the namespace's
/// root), else a bind of the container's own cgroup directory.
#[allow(clippy::too_many_arguments)]
fn mount_hierarchy(
    ctx: &RootfsContext,
    i: usize,
    dest: &Path,
    target: &impl AsFd,
    fstype: &str,
    data: &str,
    host_mount: &str,
    own_path: Option<&str>,
    base: MsFlags,
) -> Result<()> {
    if ctx.new_cgroupns {
        let d = (!data.is_empty()).then_some(data);
        let fresh = ctx.sys.mount(
            Some(Path::new("cgroup")),
            &fd_path(target),
            Some(fstype),
            base,
            d,
        );
        if fresh.is_ok() {
            return Ok(());
        }
    }
    let src: PathBuf = Path::new(host_mount).join(own_path.unwrap_or("/").trim_start_matches('/'));
    ctx.sys
        .mount(
            Some(&src),
            &fd_path(target),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| merr(i, dest, &format!("bind {}", src.display()), e))
}
