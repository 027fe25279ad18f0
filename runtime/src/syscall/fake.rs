//! A recording fake of [`Syscall`] for unit tests: every call is recorded with its
//! arguments (a `/proc/self/fd/N` path as the path the descriptor names, so tests read
//! real locations) and succeeds, unless a test asks for a failure.

use std::cell::RefCell;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::{CapMask, Forked, SeccompLoaded, Syscall};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Clone(CloneFlags),
    Execve {
        path: String,
        argv: Vec<String>,
    },
    Setsid,
    Dumpable(bool),
    Pdeathsig(Option<Signal>),
    ChildSubreaper,
    DefaultSignal(Signal),
    Rlimit {
        resource: i32,
        soft: u64,
        hard: u64,
    },
    CloexecFrom(RawFd),
    SessionKeyring(String),
    Setns(CloneFlags),
    Unshare(CloneFlags),
    Setgroups(Vec<u32>),
    Setresgid(u32),
    Setresuid(u32),
    Umask(u32),
    Keepcaps(bool),
    NoNewPrivs,
    DropBounding(u8),
    SetCaps {
        effective: CapMask,
        permitted: CapMask,
        inheritable: CapMask,
    },
    ClearAmbient,
    RaiseAmbient(u8),
    Hostname(String),
    LoopbackUp,
    Domainname(String),
    Mount {
        source: Option<String>,
        target: String,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount {
        target: String,
        flags: MntFlags,
    },
    MountSetattr {
        target: String,
        set: u64,
        clear: u64,
    },
    PivotRoot {
        new_root: String,
        put_old: String,
    },
    Chroot(String),
    /// A detached tree moved onto `target` (the path the descriptor names).
    MoveMount {
        target: String,
    },
    /// fchown of descriptor `fd` to `uid` (group unchanged).
    FdChown {
        fd: RawFd,
        uid: u32,
    },
    Chdir(String),
    Mknod {
        path: String,
        kind: SFlag,
        perm: u32,
        dev: u64,
    },
    Chown {
        path: String,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    WriteProc {
        path: String,
        value: String,
    },
    Seccomp {
        flags: libc::c_ulong,
        len: usize,
    },
}

type Failure = Box<dyn Fn(&Call) -> Option<Errno>>;

/// Records calls; `clone_process` returns `Forked::Child` (tests run a child's side
/// in-process) and `permitted_caps` every capability, unless told otherwise.
pub struct Recorder {
    calls: RefCell<Vec<Call>>,
    fail: RefCell<Option<Failure>>,
    pub clone_returns: Forked,
    pub permitted: CapMask,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            calls: RefCell::default(),
            fail: RefCell::default(),
            clone_returns: Forked::Child,
            permitted: u64::MAX >> 23, // capabilities 0..=40
        }
    }
}

/// What a descriptor names (readlink of /proc/self/fd/N), or the path itself.
fn real(path: &Path) -> String {
    let s = path.to_string_lossy();
    if s.starts_with("/proc/self/fd/") {
        if let Ok(p) = std::fs::read_link(path) {
            return p.to_string_lossy().into_owned();
        }
    }
    s.into_owned()
}

fn fd_real(fd: BorrowedFd<'_>) -> String {
    real(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))
}

fn at(dir: BorrowedFd<'_>, name: &OsStr) -> String {
    PathBuf::from(fd_real(dir))
        .join(name)
        .to_string_lossy()
        .into_owned()
}

impl Recorder {
    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// From now on, fail the calls for which `f` gives an errno.
    pub fn fail_when(&self, f: impl Fn(&Call) -> Option<Errno> + 'static) {
        *self.fail.borrow_mut() = Some(Box::new(f));
    }

    fn record(&self, call: Call) -> nix::Result<()> {
        let failure = self.fail.borrow().as_ref().and_then(|f| f(&call));
        self.calls.borrow_mut().push(call);
        failure.map_or(Ok(()), Err)
    }

    /// The index of the first call matching `pred`; panics with the calls if none does.
    pub fn position(&self, what: &str, pred: impl Fn(&Call) -> bool) -> usize {
        let calls = self.calls();
        calls
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no call {what} in {calls:#?}"))
    }
}

/// One expected call: what it is, for the message, and how to recognise it.
pub type Step<'a> = (&'a str, &'a dyn Fn(&Call) -> bool);

/// Where `steps` occur in `calls`, each after the one before; panics naming the first
/// step that does not.
pub fn in_order(calls: &[Call], steps: &[Step]) -> Vec<usize> {
    let mut from = 0;
    let mut found = Vec::new();
    for (what, pred) in steps {
        let i = calls[from..]
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no {what} after call {from}: {calls:#?}"));
        found.push(from + i);
        from += i + 1;
    }
    found
}

fn s(p: Option<&Path>) -> Option<String> {
    p.map(real)
}

impl Syscall for Recorder {
    fn clone_process(&self, namespaces: CloneFlags) -> nix::Result<Forked> {
        self.record(Call::Clone(namespaces))?;
        Ok(self.clone_returns)
    }
    fn execve(&self, path: &CStr, argv: &[CString], _envp: &[CString]) -> Errno {
        let argv = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let call = Call::Execve {
            path: path.to_string_lossy().into_owned(),
            argv,
        };
        // A fake execve never replaces the test: it reports ENOEXEC unless told otherwise.
        self.record(call).err().unwrap_or(Errno::ENOEXEC)
    }
    fn setsid(&self) -> nix::Result<()> {
        self.record(Call::Setsid)
    }
    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()> {
        self.record(Call::Dumpable(dumpable))
    }
    fn set_pdeathsig(&self, signal: Option<Signal>) -> nix::Result<()> {
        self.record(Call::Pdeathsig(signal))
    }
    fn set_child_subreaper(&self) -> nix::Result<()> {
        self.record(Call::ChildSubreaper)
    }
    fn set_rlimit(&self, resource: libc::c_int, soft: u64, hard: u64) -> nix::Result<()> {
        self.record(Call::Rlimit {
            resource,
            soft,
            hard,
        })
    }
    fn default_signal(&self, signal: Signal) -> nix::Result<()> {
        self.record(Call::DefaultSignal(signal))
    }
    fn cloexec_from(&self, first: RawFd) -> nix::Result<()> {
        self.record(Call::CloexecFrom(first))
    }
    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()> {
        self.record(Call::SessionKeyring(name.to_string_lossy().into_owned()))
    }
    fn setns(&self, _fd: BorrowedFd<'_>, namespace: CloneFlags) -> nix::Result<()> {
        self.record(Call::Setns(namespace))
    }
    fn unshare(&self, namespaces: CloneFlags) -> nix::Result<()> {
        self.record(Call::Unshare(namespaces))
    }
    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()> {
        self.record(Call::Setgroups(gids.iter().map(|g| g.as_raw()).collect()))
    }
    fn setresgid(&self, gid: Gid) -> nix::Result<()> {
        self.record(Call::Setresgid(gid.as_raw()))
    }
    fn setresuid(&self, uid: Uid) -> nix::Result<()> {
        self.record(Call::Setresuid(uid.as_raw()))
    }
    fn umask(&self, mask: Mode) -> Mode {
        let _ = self.record(Call::Umask(mask.bits()));
        Mode::from_bits_truncate(0o022)
    }
    fn set_keepcaps(&self, keep: bool) -> nix::Result<()> {
        self.record(Call::Keepcaps(keep))
    }
    fn set_no_new_privs(&self) -> nix::Result<()> {
        self.record(Call::NoNewPrivs)
    }
    fn drop_bounding(&self, cap: u8) -> nix::Result<()> {
        self.record(Call::DropBounding(cap))
    }
    fn permitted_caps(&self) -> nix::Result<CapMask> {
        Ok(self.permitted)
    }
    fn set_caps(
        &self,
        effective: CapMask,
        permitted: CapMask,
        inheritable: CapMask,
    ) -> nix::Result<()> {
        self.record(Call::SetCaps {
            effective,
            permitted,
            inheritable,
        })
    }
    fn clear_ambient_caps(&self) -> nix::Result<()> {
        self.record(Call::ClearAmbient)
    }
    fn raise_ambient_cap(&self, cap: u8) -> nix::Result<()> {
        self.record(Call::RaiseAmbient(cap))
    }
    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Hostname(name.into()))
    }
    fn loopback_up(&self) -> nix::Result<()> {
        self.record(Call::LoopbackUp)
    }
    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Domainname(name.into()))
    }
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        self.record(Call::Mount {
            source: s(source),
            target: real(target),
            fstype: fstype.map(String::from),
            flags,
            data: data.map(String::from),
        })
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        self.record(Call::Umount {
            target: real(target),
            flags,
        })
    }
    fn mount_setattr_recursive(&self, fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()> {
        self.record(Call::MountSetattr {
            target: fd_real(fd),
            set,
            clear,
        })
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        self.record(Call::PivotRoot {
            new_root: real(new_root),
            put_old: real(put_old),
        })
    }
    fn chroot(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chroot(real(path)))
    }
    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chdir(real(path)))
    }
    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
        self.record(Call::Chdir(fd_real(dir)))
    }
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        perm: Mode,
        dev: libc::dev_t,
    ) -> nix::Result<()> {
        self.record(Call::Mknod {
            path: at(dir, name),
            kind,
            perm: perm.bits(),
            dev,
        })
    }
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> nix::Result<()> {
        self.record(Call::Chown {
            path: at(dir, name),
            uid: uid.map(|u| u.as_raw()),
            gid: gid.map(|g| g.as_raw()),
        })
    }
    fn move_mount(&self, _from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
        self.record(Call::MoveMount {
            target: fd_real(to),
        })
    }

    fn fchown_fd(&self, fd: RawFd, uid: Uid) -> nix::Result<()> {
        self.record(Call::FdChown {
            fd,
            uid: uid.as_raw(),
        })
    }

    fn write_proc(&self, path: &Path, value: &[u8]) -> nix::Result<()> {
        self.record(Call::WriteProc {
            path: path.to_string_lossy().into_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
        })
    }
    fn seccomp_set_filter(
        &self,
        flags: libc::c_ulong,
        program: &[libc::sock_filter],
    ) -> nix::Result<SeccompLoaded> {
        self.record(Call::Seccomp {
            flags,
            len: program.len(),
        })?;
        Ok(SeccompLoaded::Installed)
    }
}
