//! Raw system calls that nix does not wrap. Every `unsafe` block of the runtime lives here,
//! each with a SAFETY note; the rest of the code calls these safe functions.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// What `clone_process` returned: in which of the two processes we are.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2) with namespace flags (`CLONE_NEW*`): the child starts in the new namespaces.
/// The runtime is single-threaded, so the child may do anything the parent could.
pub fn clone_process(ns_flags: libc::c_int) -> nix::Result<Forked> {
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: raw clone with a null stack behaves like fork(2): the child gets a copy of
    // the address space and returns 0. We are single-threaded, so no lock is held by
    // another thread at the time of the copy.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const AT_RECURSIVE: libc::c_uint = 0x8000;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;

/// mount_setattr(2) on `fd` and, recursively, every mount below it.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clr: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `attr` lives across the call and its size is passed; the path is a valid
    // empty C string used with AT_EMPTY_PATH on a descriptor we borrow.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Mark every fd from `first` on close-on-exec: close_range(CLOSE_RANGE_CLOEXEC), or, where
/// the kernel or a seccomp policy refuses it, FD_CLOEXEC on each fd in /proc/self/fd.
pub fn cloexec_from(first: RawFd) -> nix::Result<()> {
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
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|_| Errno::EBADF)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    for fd in fds {
        // The directory's own fd is gone by now: EBADF is expected for it.
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    Ok(())
}

/// setrlimit for any resource number (nix's enum lacks some).
pub fn set_rlimit(resource: libc::c_int, soft: u64, hard: u64) -> nix::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit64 for the duration of the call; old-limit pointer is null.
    let ret = unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) };
    Errno::result(ret).map(drop)
}

pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: pointer and length describe the bytes of `name`, valid for the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// Join a new session keyring named `name`, so the container does not share the host's.
pub fn join_new_session_keyring(name: &std::ffi::CStr) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;
    // SAFETY: keyctl reads a valid NUL-terminated name; other arguments are unused.
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
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this new descriptor; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

/// execve(2); returns only on failure.
pub fn execve(path: &CString, args: &[CString], env: &[CString]) -> Errno {
    match nix::unistd::execve(path, args, env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Terminate the current (forked) process at once, without running the parent's
/// destructors or flushing buffers it shares with the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Take ownership of a descriptor that a nix call has just returned as a raw fd.
/// Only for fresh descriptors nobody else owns.
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor just returned by open(2) or similar, owned by no
    // other object, so wrapping it cannot lead to a double close.
    unsafe { OwnedFd::from_raw_fd(fd) }
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

/// pidfd_open(2): a descriptor that polls readable once `pid` (our child) has exited.
pub fn pidfd_open(pid: u32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, touches no memory of ours, and returns a
    // new descriptor (owned by nobody else) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    Errno::result(fd).map(|fd| own(fd as RawFd))
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
