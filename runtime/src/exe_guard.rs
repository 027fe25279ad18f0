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

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use capsa_linux::resolve::{self, Scope};
use nix::errno::Errno;
use nix::fcntl::{fcntl, AtFlags, FcntlArg, OFlag, SealFlag};
use nix::sys::stat::Mode;

use crate::syscall::{detached_overlay, memfd_sealed_copy, open_path};

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
const FLAGS_WITH_VALUE: &[&str] = &[
    "--root",
    "--log",
    "--log-format",
    "--rootless",
    "--cgroup-manager",
    "--criu",
];

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
/// One statfs tells both the filesystem and its read-only flag; only a memfd (on tmpfs or
/// hugetlbfs) needs its seals read.
fn is_sealed() -> Result<bool, Error> {
    use nix::sys::statfs::{HUGETLBFS_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC};
    let st = nix::sys::statfs::statfs(SELF_EXE).map_err(sys(format!("statfs {SELF_EXE}")))?;
    let fs = st.filesystem_type();
    if fs == OVERLAYFS_SUPER_MAGIC {
        return Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    }
    if fs != TMPFS_MAGIC && fs != HUGETLBFS_MAGIC {
        return Ok(false);
    }
    let fd =
        open_path(Path::new(SELF_EXE), OFlag::O_RDONLY).map_err(sys(format!("open {SELF_EXE}")))?;
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
    // A binary bind-mounted over a file (a runtime handed into a container) is not what
    // an overlay of its directory shows: that is the file under the mount, which may be
    // anything. Such a binary gets the memfd copy.
    if mount_id(Path::new(SELF_EXE))? != mount_id(dir)? {
        return Err(Error::Sys {
            what: format!(
                "{} is a mount of its own (bound over a file)",
                exe.display()
            ),
            errno: Errno::EXDEV,
        });
    }
    let second = SECOND_LAYERS
        .iter()
        .map(Path::new)
        .find(|l| !dir.starts_with(l) && !l.starts_with(dir) && l.is_dir())
        .ok_or_else(|| Error::Sys {
            what: "no directory for overlayfs' second layer".into(),
            errno: Errno::ENOENT,
        })?;
    let mut lower = escape_layer(dir);
    lower.push(b':');
    lower.extend(escape_layer(second));
    let lower = CString::new(lower).map_err(|_| Error::Sys {
        what: "lowerdir with a NUL byte".into(),
        errno: Errno::EINVAL,
    })?;
    let mnt = detached_overlay(&lower).map_err(|(what, errno)| Error::Sys {
        what: format!("{what} (lowerdir={})", lower.to_string_lossy()),
        errno,
    })?;
    resolve::open(
        mnt.as_fd(),
        Path::new(name),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        Mode::empty(),
        Scope::Beneath,
    )
    .map_err(sys(format!(
        "open {} in the overlay",
        name.to_string_lossy()
    )))
}

/// The id of the mount `p` (symlinks followed) is on, from its descriptor's fdinfo.
fn mount_id(p: &Path) -> Result<u64, Error> {
    let fd = open_path(p, OFlag::O_PATH).map_err(sys(format!("open {}", p.display())))?;
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).map_err(|e| {
            Error::Sys {
                what: format!("read the fdinfo of {}", p.display()),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        })?;
    parse_mnt_id(&info).ok_or_else(|| Error::Sys {
        what: format!("no mnt_id in the fdinfo of {}", p.display()),
        errno: Errno::EINVAL,
    })
}

fn parse_mnt_id(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Fallback: a copy of the binary in a memfd, sealed against any change.
fn sealed_memfd() -> Result<OwnedFd, Error> {
    let mut src = std::fs::File::open(SELF_EXE).map_err(Error::Copy)?;
    memfd_sealed_copy(c"capsa", &mut src).map_err(Error::Copy)
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
        // podman's runtime flags: a value that is not the command (else create ran unsealed)
        assert_eq!(
            subcommand(&args(&[
                "capsa",
                "--cgroup-manager",
                "disabled",
                "create",
                "x"
            ])),
            Some(OsStr::new("create"))
        );
        assert_eq!(
            subcommand(&args(&["capsa", "--rootless", "true", "run", "x"])),
            Some(OsStr::new("run"))
        );
        // runc's global --criu PATH (the checkpoint branch added it)
        assert_eq!(
            subcommand(&args(&[
                "capsa",
                "--criu",
                "/usr/sbin/criu",
                "restore",
                "x"
            ])),
            Some(OsStr::new("restore"))
        );
    }

    /// A global flag taking a separate value but missing from FLAGS_WITH_VALUE makes its
    /// value look like the command, and `create` run unsealed.
    #[test]
    fn every_global_flag_with_a_value_is_known() {
        use clap::CommandFactory;
        for a in crate::cli::Cli::command().get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if a.get_action().takes_values() {
                let flag = format!("--{long}");
                assert!(
                    FLAGS_WITH_VALUE.contains(&flag.as_str()),
                    "{flag} takes a value: add it to FLAGS_WITH_VALUE"
                );
            }
        }
    }

    #[test]
    fn mount_id_from_fdinfo() {
        assert_eq!(
            parse_mnt_id("pos:\t0\nflags:\t012000000\nmnt_id:\t1234\nino:\t5\n"),
            Some(1234)
        );
        assert_eq!(parse_mnt_id("pos:\t0\n"), None);
        // The same mount for a file and its directory.
        let exe = exe_path().unwrap();
        assert_eq!(
            mount_id(&exe).unwrap(),
            mount_id(exe.parent().unwrap()).unwrap()
        );
    }

    #[test]
    fn lowerdir_escapes_separators() {
        assert_eq!(escape_layer(Path::new("/a:b\\c")), b"/a\\:b\\\\c".to_vec());
    }
}
