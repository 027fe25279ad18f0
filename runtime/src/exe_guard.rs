//! CVE-2019-5736: the container must never get a writable handle on the runtime binary.
//!
//! Until execve, the container's init and an exec'd process *are* this binary, and an
//! entrypoint `#!/proc/self/exe` makes the container run it once more as its own process,
//! so `/proc/<pid>/exe` of a process the container can see may be the host's capsa. A
//! process that holds that file (even read-only or O_PATH) reopens it for writing through
//! `/proc/self/fd/N` as soon as nobody executes it any more.
//!
//! So `create`, `run` and `exec` (the commands that make container processes) re-exec
//! themselves, first thing, from a sealed view of the binary:
//! - a lower-only overlayfs over the binary's directory, made with fsopen/fsmount as a
//!   detached mount that no mount namespace shows. Such an overlay refuses every write
//!   (EROFS), unlike a read-only bind mount it has no writable view to unwrap, and it
//!   copies nothing: its cost is one execve (runc 1.2's "overlayfs sealing");
//! - where overlayfs cannot be mounted (no CAP_SYS_ADMIN, no overlay), a memfd copy sealed
//!   with F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL.
//!
//! The other commands never run container code and keep their speed.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, openat, AtFlags, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::stat::Mode;

/// Set in the environment of the re-exec'd process, with our pid: if the new image still
/// is not sealed, we fail instead of looping.
const REEXEC_MARK: &str = "_CAPSA_EXE_SEALED";
const SELF_EXE: &str = "/proc/self/exe";
/// Directories for overlayfs' second lower layer (it needs two when there is no upper
/// layer). Their contents never matter: the binary's directory is the top layer, and only
/// the binary is opened. The first that does not overlap the binary's directory is used.
const SECOND_LAYERS: &[&str] = &["/run", "/dev", "/tmp", "/var", "/etc"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },
    #[error("copy {SELF_EXE} to a memfd: {0}")]
    Copy(std::io::Error),
    #[error("re-executed from a sealed copy, but {SELF_EXE} is still not sealed")]
    StillUnsealed,
}

fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> Error {
    let what = what.into();
    move |errno| Error::Sys { what, errno }
}

/// Which commands run container code: those re-exec from a sealed binary.
const SEALED_COMMANDS: &[&str] = &["create", "run", "exec"];
/// Global flags that take a separate value (`--root DIR`): the value is not the command.
const FLAGS_WITH_VALUE: &[&str] = &["--root", "--log", "--log-format"];

/// The subcommand of a capsa command line, found without parsing it all (clap runs after
/// the re-exec).
fn subcommand(args: &[OsString]) -> Option<&OsStr> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.as_bytes();
        if FLAGS_WITH_VALUE.iter().any(|f| f.as_bytes() == s) {
            it.next();
        } else if !s.starts_with(b"-") {
            return Some(a);
        }
    }
    None
}

/// Called first thing in `main`: for `create`, `run` and `exec`, make sure we run from a
/// sealed binary, re-executing ourselves from one if not. Returns only when sealed (or for
/// the other commands).
pub fn ensure_sealed() -> Result<(), Error> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let needs = subcommand(&args).is_some_and(|c| SEALED_COMMANDS.iter().any(|s| c == *s));
    if !needs || is_sealed()? {
        return Ok(());
    }
    let pid = std::process::id().to_string();
    if std::env::var_os(REEXEC_MARK).is_some_and(|v| v == pid.as_str()) {
        return Err(Error::StillUnsealed);
    }
    let exe = match sealed_overlay() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!("overlayfs sealing unavailable ({e}), using a sealed memfd copy");
            sealed_memfd()?
        }
    };
    let argv: Vec<CString> = args.into_iter().filter_map(cstring).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != REEXEC_MARK)
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    envp.extend(CString::new(format!("{REEXEC_MARK}={pid}")));
    let err = nix::unistd::execveat(
        Some(exe.as_raw_fd()),
        c"",
        &argv,
        &envp,
        AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    Err(Error::Sys {
        what: "re-exec from the sealed binary".into(),
        errno: err,
    })
}

fn cstring(s: OsString) -> Option<CString> {
    CString::new(s.into_vec()).ok()
}

/// Is our own image a file nobody can write: on a read-only overlayfs, or a sealed memfd?
fn is_sealed() -> Result<bool, Error> {
    let st = nix::sys::statfs::statfs(SELF_EXE).map_err(sys(format!("statfs {SELF_EXE}")))?;
    if st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC {
        let vfs =
            nix::sys::statvfs::statvfs(SELF_EXE).map_err(sys(format!("statvfs {SELF_EXE}")))?;
        if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return Ok(true);
        }
    }
    let fd = open(SELF_EXE, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(format!("open {SELF_EXE}")))?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(match fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits)
            .contains(SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
        Err(_) => false, // EINVAL: not a memfd
    })
}

/// The binary's path on the host, for overlayfs' lower layer.
fn exe_path() -> Result<PathBuf, Error> {
    let p = std::fs::read_link(SELF_EXE).map_err(|e| Error::Sys {
        what: format!("readlink {SELF_EXE}"),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    if p.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(Error::Sys {
            what: format!("{}: replaced on disk", p.display()),
            errno: Errno::ENOENT,
        });
    }
    Ok(p)
}

/// overlayfs' lowerdir list escapes `:` (the separator) and `\`.
fn escape_layer(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The binary through a detached, lower-only overlayfs: an O_PATH descriptor to exec.
fn sealed_overlay() -> Result<OwnedFd, Error> {
    let exe = exe_path()?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(Error::Sys {
            what: format!("{}: no directory", exe.display()),
            errno: Errno::EINVAL,
        });
    };
    let second = SECOND_LAYERS
        .iter()
        .map(Path::new)
        .find(|l| !dir.starts_with(l) && !l.starts_with(dir) && l.is_dir())
        .ok_or_else(|| Error::Sys {
            what: "no directory for overlayfs' second layer".into(),
            errno: Errno::ENOENT,
        })?;
    let ctx = sys::fsopen(c"overlay").map_err(sys("fsopen overlay"))?;
    let mut lower = escape_layer(dir);
    lower.push(b':');
    lower.extend(escape_layer(second));
    let lower = CString::new(lower).map_err(|_| Error::Sys {
        what: "lowerdir with a NUL byte".into(),
        errno: Errno::EINVAL,
    })?;
    sys::fsconfig_string(&ctx, c"lowerdir", &lower).map_err(sys(format!(
        "overlayfs lowerdir={}",
        lower.to_string_lossy()
    )))?;
    // xino only adds dmesg noise when the layers are on different filesystems.
    let _ = sys::fsconfig_string(&ctx, c"xino", c"off");
    sys::fsconfig_create(&ctx).map_err(sys("create overlayfs"))?;
    let mnt = sys::fsmount(&ctx).map_err(sys("fsmount overlayfs"))?;
    let fd = openat(
        Some(mnt.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(format!(
        "open {} in the overlay",
        name.to_string_lossy()
    )))?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fallback: a copy of the binary in a memfd, sealed against any change.
fn sealed_memfd() -> Result<OwnedFd, Error> {
    let memfd = memfd_create(
        c"capsa",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(sys("memfd_create"))?;
    let mut src = std::fs::File::open(SELF_EXE).map_err(Error::Copy)?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).map_err(Error::Copy)?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SEAL;
    fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(sys("seal the memfd"))?;
    Ok(OwnedFd::from(dst))
}

/// The new mount API, which nix does not wrap.
mod sys {
    use super::*;

    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

    fn fd_result(ret: libc::c_long) -> nix::Result<OwnedFd> {
        if ret < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the syscall returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
    }

    pub fn fsopen(fs: &CStr) -> nix::Result<OwnedFd> {
        // SAFETY: `fs` is a NUL-terminated string that outlives the call.
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, fs.as_ptr(), FSOPEN_CLOEXEC) })
    }

    pub fn fsconfig_string(ctx: &OwnedFd, key: &CStr, value: &CStr) -> nix::Result<()> {
        // SAFETY: key and value are NUL-terminated strings that outlive the call; the
        // kernel only reads them.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        Errno::result(ret).map(drop)
    }

    pub fn fsconfig_create(ctx: &OwnedFd) -> nix::Result<()> {
        // SAFETY: FSCONFIG_CMD_CREATE takes no pointers.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        Errno::result(ret).map(drop)
    }

    /// A detached, read-only, nosuid, nodev mount of the configured superblock.
    pub fn fsmount(ctx: &OwnedFd) -> nix::Result<OwnedFd> {
        let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        // SAFETY: fsmount takes no pointers.
        fd_result(unsafe {
            libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_subcommand_after_global_flags() {
        assert_eq!(
            subcommand(&args(&["capsa", "--root", "run", "state", "x"])),
            Some(OsStr::new("state"))
        );
        assert_eq!(
            subcommand(&args(&["capsa", "--debug", "--log=/l", "exec", "x"])),
            Some(OsStr::new("exec"))
        );
        assert_eq!(subcommand(&args(&["capsa", "--version"])), None);
    }

    #[test]
    fn lowerdir_escapes_separators() {
        assert_eq!(escape_layer(Path::new("/a:b\\c")), b"/a\\:b\\\\c".to_vec());
    }
}
