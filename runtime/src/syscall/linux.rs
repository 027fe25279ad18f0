//! The real kernel: [`Linux`] implements [`Syscall`], and the free functions below are the
//! raw calls nix does not wrap. The only module of the crate allowed `unsafe`; each block
//! says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

use super::{CapMask, Forked, SeccompLoaded, Syscall};

/// The running kernel.
pub struct Linux;

/// A descriptor the kernel has just returned, owned by nothing else yet.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes the return value of a syscall that creates a new
    // descriptor (checked non-negative), which no other object of ours knows of.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn fd_result(ret: libc::c_long) -> nix::Result<OwnedFd> {
    Errno::result(ret).map(|fd| owned(fd as RawFd))
}

/// Set in the child of `clone_process`: fork copies only the calling thread, and capsa
/// starts no thread in its children, so such a process is single-threaded. (It may also
/// have joined a mount namespace whose /proc does not show it.)
static FORKED: AtomicBool = AtomicBool::new(false);

/// Whether this process runs one thread: a child of `clone_process`, or a process whose
/// /proc/self/task has one link per thread plus two, and three of them.
fn single_threaded() -> bool {
    FORKED.load(Ordering::Relaxed)
        || nix::sys::stat::stat("/proc/self/task").is_ok_and(|st| st.st_nlink == 3)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

impl Syscall for Linux {
    fn clone_process(&self, namespaces: CloneFlags) -> nix::Result<Forked> {
        if !single_threaded() {
            return Err(Errno::EBUSY);
        }
        let flags = (namespaces.bits() | libc::SIGCHLD) as libc::c_ulong;
        // SAFETY: a raw clone with a null stack behaves like fork(2): the child gets a copy
        // of the address space and returns 0. The process was checked to have a single
        // thread, and a single thread cannot start another between the check and the
        // clone, so no lock is held by a thread that the child would lack.
        let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        match Errno::result(ret)? {
            0 => {
                FORKED.store(true, Ordering::Relaxed);
                Ok(Forked::Child)
            }
            pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
        }
    }

    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
        match nix::unistd::execve(path, argv, envp) {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }

    fn setsid(&self) -> nix::Result<()> {
        nix::unistd::setsid().map(drop)
    }

    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()> {
        prctl::set_dumpable(dumpable)
    }

    fn set_pdeathsig(&self, signal: Option<Signal>) -> nix::Result<()> {
        prctl::set_pdeathsig(signal)
    }

    fn set_child_subreaper(&self) -> nix::Result<()> {
        prctl::set_child_subreaper(true)
    }

    fn set_rlimit(&self, resource: libc::c_int, soft: u64, hard: u64) -> nix::Result<()> {
        let lim = libc::rlimit64 {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: `lim` is a valid rlimit64 for the duration of the call; the old-limit
        // pointer is null.
        let ret = unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) };
        Errno::result(ret).map(drop)
    }

    fn default_signal(&self, signal: Signal) -> nix::Result<()> {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
        let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_DFL runs no handler code of ours, so nothing about the
        // state of this process can make it unsound.
        unsafe { sigaction(signal, &dfl) }.map(drop)
    }

    fn cloexec_from(&self, first: RawFd) -> nix::Result<()> {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range only changes descriptor flags; no memory is passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if Errno::result(ret).is_ok() {
            return Ok(());
        }
        // Where the kernel or a seccomp policy refuses close_range: FD_CLOEXEC one by one.
        let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map_err(|_| Errno::EBADF)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= first)
            .collect();
        for fd in fds {
            // The directory's own descriptor is gone by now: EBADF is expected for it.
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
        Ok(())
    }

    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()> {
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;
        // SAFETY: keyctl reads a valid NUL-terminated name; the other arguments are unused.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                name.as_ptr(),
                0,
                0,
                0,
            )
        };
        Errno::result(ret).map(drop)
    }

    fn setns(&self, fd: BorrowedFd<'_>, namespace: CloneFlags) -> nix::Result<()> {
        nix::sched::setns(fd, namespace)
    }

    fn unshare(&self, namespaces: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(namespaces)
    }

    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()> {
        nix::unistd::setgroups(gids)
    }

    fn setresgid(&self, gid: Gid) -> nix::Result<()> {
        nix::unistd::setresgid(gid, gid, gid)
    }

    fn setresuid(&self, uid: Uid) -> nix::Result<()> {
        nix::unistd::setresuid(uid, uid, uid)
    }

    fn umask(&self, mask: Mode) -> Mode {
        nix::sys::stat::umask(mask)
    }

    fn set_keepcaps(&self, keep: bool) -> nix::Result<()> {
        prctl::set_keepcaps(keep)
    }

    fn set_no_new_privs(&self) -> nix::Result<()> {
        prctl::set_no_new_privs()
    }

    fn drop_bounding(&self, cap: u8) -> nix::Result<()> {
        // SAFETY: PR_CAPBSET_DROP takes integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        Errno::result(ret).map(drop)
    }

    fn permitted_caps(&self) -> nix::Result<CapMask> {
        let mut header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: version 3 of the interface reads the header and writes two CapData,
        // both valid for the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_capget,
                &mut header as *mut CapHeader,
                data.as_mut_ptr(),
            )
        };
        Errno::result(ret)?;
        Ok(data[0].permitted as u64 | (data[1].permitted as u64) << 32)
    }

    fn set_caps(
        &self,
        effective: CapMask,
        permitted: CapMask,
        inheritable: CapMask,
    ) -> nix::Result<()> {
        let mut header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        let half = |m: CapMask, i: usize| (m >> (32 * i)) as u32;
        let data = [0, 1].map(|i| CapData {
            effective: half(effective, i),
            permitted: half(permitted, i),
            inheritable: half(inheritable, i),
        });
        // SAFETY: version 3 of the interface reads the header and two CapData, both valid
        // for the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapHeader,
                data.as_ptr(),
            )
        };
        Errno::result(ret).map(drop)
    }

    fn clear_ambient_caps(&self) -> nix::Result<()> {
        // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        Errno::result(ret).map(drop)
    }

    fn raise_ambient_cap(&self, cap: u8) -> nix::Result<()> {
        // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        Errno::result(ret).map(drop)
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn loopback_up(&self) -> nix::Result<()> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write the ifreq we own, which
        // outlives both calls; ifru_flags is the union member those requests use.
        unsafe {
            Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
        }
        Ok(())
    }

    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        // SAFETY: pointer and length describe the bytes of `name`, valid for the call.
        let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        Errno::result(ret).map(drop)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn mount_setattr_recursive(&self, fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()> {
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: `attr` lives across the call and its size is passed; the path is a valid
        // empty C string used with AT_EMPTY_PATH on a descriptor we borrow.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        Errno::result(ret).map(drop)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
        nix::unistd::fchdir(dir.as_raw_fd())
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        perm: Mode,
        dev: libc::dev_t,
    ) -> nix::Result<()> {
        nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, kind, perm, dev)
    }

    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> nix::Result<()> {
        nix::unistd::fchownat(
            Some(dir.as_raw_fd()),
            name,
            uid,
            gid,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
        const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
        const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
        // SAFETY: both paths are empty NUL-terminated strings (the descriptors name the
        // mounts), which outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from.as_raw_fd(),
                c"".as_ptr(),
                to.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        Errno::result(ret).map(drop)
    }

    fn fchown_fd(&self, fd: RawFd, uid: Uid) -> nix::Result<()> {
        nix::unistd::fchown(fd, Some(uid), None)
    }

    fn write_proc(&self, path: &Path, value: &[u8]) -> nix::Result<()> {
        let fd = open_path(path, OFlag::O_WRONLY | OFlag::O_NOFOLLOW)?;
        let fs = nix::sys::statfs::fstatfs(&fd)?;
        if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(Errno::EXDEV);
        }
        std::fs::File::from(fd)
            .write_all(value)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }

    fn seccomp_set_filter(
        &self,
        flags: libc::c_ulong,
        program: &[libc::sock_filter],
    ) -> nix::Result<SeccompLoaded> {
        let prog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            // The kernel only reads the program.
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `program`, alive for the call; the kernel copies the
        // program in and keeps no pointer to our memory.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        let rc = Errno::result(rc)?;
        Ok(if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            SeccompLoaded::Listener(owned(rc as RawFd))
        } else if rc > 0 {
            SeccompLoaded::ThreadNotSynced(rc)
        } else {
            SeccompLoaded::Installed
        })
    }
}

/// Whether the kernel knows seccomp filter flag `flags`: it checks the flags before it
/// reads the program, so a NULL program fails with EFAULT for a known flag and EINVAL for
/// an unknown one. Nothing is installed either way.
pub fn seccomp_flag_supported(flags: libc::c_ulong) -> bool {
    // SAFETY: seccomp(2) with a NULL program pointer: the kernel fails reading it (or on
    // the flags) and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc == -1 && Errno::last() == Errno::EFAULT
}

/// open(2) with O_CLOEXEC added: an owned descriptor.
pub fn open_path(path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()).map(owned)
}

/// openat(2) relative to `dir`, the descriptor owned (close-on-exec added).
pub fn open_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags | OFlag::O_CLOEXEC, mode).map(owned)
}

/// Open the peer (slave) of a pty master by descriptor, never by path (CVE-2025-52565).
pub fn pty_peer(master: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: TIOCGPTPEER takes open flags as its integer argument and returns a new fd.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    fd_result(fd as libc::c_long)
}

pub fn unlockpt(master: BorrowedFd<'_>) -> nix::Result<()> {
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) };
    Errno::result(ret).map(drop)
}

/// Make `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(ret).map(drop)
}

/// TIOCGWINSZ: the size of the terminal on `fd`, if it is one.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (ret == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Terminate the current (forked) process at once, without running destructors or
/// flushing buffers it shares with its parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// pidfd_open(2): a descriptor that polls readable once `pid` (our child) has exited.
pub fn pidfd_open(pid: u32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and touches no memory of ours.
    fd_result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })
}

/// The process `cmd` spawns gets SIGKILL if the spawning thread dies first: a hook must
/// not outlive a runtime command killed while it waits for it.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one prctl(2) call and reads errno.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A memfd copy of `src` sealed against every change (the exe seal's fallback).
pub fn memfd_sealed_copy(name: &CStr, src: &mut std::fs::File) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let memfd = memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(src, &mut dst)?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SEAL;
    fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals))?;
    Ok(OwnedFd::from(dst))
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path` (and the
/// mounts below it with `recursive`), to be attached in another mount namespace with
/// `Syscall::move_mount` (a bind mount's source opened before a user namespace).
pub fn open_tree_clone(path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a NUL-terminated string that outlives the call; the kernel only
    // reads it and returns a new descriptor or -1.
    fd_result(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
}

/// A detached, read-only, nosuid, nodev overlayfs of `lowerdir` (no upper layer) made
/// with the new mount API: a mount no mount namespace shows (the exe seal).
pub fn detached_overlay(lowerdir: &CStr) -> Result<OwnedFd, (&'static str, Errno)> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let attrs = (super::MOUNT_ATTR_RDONLY | super::MOUNT_ATTR_NOSUID | super::MOUNT_ATTR_NODEV)
        as libc::c_uint;
    let set_string = |ctx: &OwnedFd, key: &CStr, value: &CStr| {
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
    };
    // SAFETY: the filesystem name is a NUL-terminated string that outlives the call.
    let ctx =
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })
            .map_err(|e| ("fsopen overlay", e))?;
    set_string(&ctx, c"lowerdir", lowerdir).map_err(|e| ("overlayfs lowerdir", e))?;
    // xino only adds dmesg noise when the layers are on different filesystems.
    let _ = set_string(&ctx, c"xino", c"off");
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
    Errno::result(ret).map_err(|e| ("create overlayfs", e))?;
    // SAFETY: fsmount takes no pointers.
    fd_result(unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
        .map_err(|e| ("fsmount overlayfs", e))
}

// --- bpf(2): the cgroup v2 device filter (cgroups::v2_devices) ---

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// The attrs below have no implicit padding (whose bytes Rust leaves undefined): the
// kernel refuses (EINVAL) an attr with non-zero bytes past the fields it knows of a
// command, and reads newer fields from bytes an older layout would leave as padding.

/// The BPF_PROG_LOAD part of `union bpf_attr` (linux/bpf.h), up to expected_attach_type;
/// the kernel takes a shorter attr as zero-filled. 72 bytes, no padding.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH / BPF_PROG_DETACH part of `union bpf_attr`. 20 bytes, no padding.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_QUERY part of `union bpf_attr`. 32 bytes, the tail explicit.
#[repr(C)]
#[derive(Default)]
struct BpfProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part of `union bpf_attr`. 12 bytes, no padding.
#[repr(C)]
#[derive(Default)]
struct BpfGetFdById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

const _: () = {
    assert!(std::mem::size_of::<BpfProgLoad>() == 72);
    assert!(std::mem::size_of::<BpfProgAttach>() == 20);
    assert!(std::mem::size_of::<BpfProgQuery>() == 32);
    assert!(std::mem::size_of::<BpfGetFdById>() == 12);
};

/// bpf(2) with `attr`, whose size is passed along.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: `attr` is a live, exclusively borrowed #[repr(C)] prefix of `union
    // bpf_attr` of the size passed; every pointer it holds (set by our callers) points at
    // memory that outlives the call, sized as the attr says.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    }
}

/// Load a BPF_PROG_TYPE_CGROUP_DEVICE program of `insns` (8-byte `struct bpf_insn`s,
/// as the kernel lays them out). On failure, the errno and, when the verifier said
/// something (a second load with a log), its log.
pub fn bpf_load_cgroup_device(
    insns: &[[u8; 8]],
    license: &CStr,
) -> Result<OwnedFd, (Errno, String)> {
    let load = |log: &mut [u8]| {
        let mut attr = BpfProgLoad {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..Default::default()
        };
        if !log.is_empty() {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        fd_result(bpf(BPF_PROG_LOAD, &mut attr))
    };
    match load(&mut []) {
        Ok(fd) => Ok(fd),
        Err(errno) => {
            let mut log = vec![0u8; 64 * 1024];
            let _ = load(&mut log);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((
                errno,
                String::from_utf8_lossy(&log[..end]).trim().to_string(),
            ))
        }
    }
}

/// Attach device program `prog` to cgroup `cgroup` (a directory fd), BPF_F_ALLOW_MULTI:
/// it runs with the programs already there, every one of which must allow an access.
pub fn bpf_attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    Errno::result(bpf(BPF_PROG_ATTACH, &mut attr)).map(drop)
}

/// Detach device program `prog` from cgroup `cgroup`.
pub fn bpf_detach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    Errno::result(bpf(BPF_PROG_DETACH, &mut attr)).map(drop)
}

/// The ids of the device programs attached to cgroup `cgroup` itself (not inherited).
pub fn bpf_query_cgroup_device(cgroup: BorrowedFd<'_>) -> nix::Result<Vec<u32>> {
    // 64 is the kernel's limit of programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS).
    let mut ids = vec![0u32; 64];
    let mut attr = BpfProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    Errno::result(bpf(BPF_PROG_QUERY, &mut attr))?;
    ids.truncate((attr.prog_cnt as usize).min(64));
    Ok(ids)
}

/// A descriptor of the loaded BPF program `id`.
pub fn bpf_prog_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = BpfGetFdById {
        id,
        ..Default::default()
    };
    fd_result(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr))
}
