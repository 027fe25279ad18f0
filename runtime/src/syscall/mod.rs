//! The runtime's syscall layer: the one seam between the container's set-up steps and the
//! kernel.
//!
//! The steps of `create`, the init and `exec` (namespaces, mounts, pivot_root, identity,
//! capabilities, rlimits, seccomp, execve) call the kernel through the [`Syscall`] trait:
//! [`Linux`] in capsa, a recording fake (`fake::Recorder`) in unit tests, which check the
//! order and the arguments of each step without root. The real kernel stays the proof in
//! the integration tests.
//!
//! Every `unsafe` block of the crate is in `linux.rs` (the crate denies `unsafe_code`
//! elsewhere), each with a SAFETY note; the free functions re-exported here are the
//! operations that are not steps worth faking (pty ioctls, pidfds, the new mount API of
//! the exe seal).

#[cfg(test)]
pub mod fake;
mod linux;

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

pub use linux::{
    bpf_attach_cgroup_device, bpf_detach_cgroup_device, bpf_load_cgroup_device, bpf_prog_fd_by_id,
    bpf_query_cgroup_device, detached_overlay, die_with_parent, exit_now, get_winsize,
    memfd_sealed_copy, open_at, open_path, open_tree_clone, pidfd_open, pty_peer,
    seccomp_flag_supported, set_controlling_tty, set_winsize, unlockpt, Linux,
};

/// In which of the two processes `clone_process` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent(Pid),
    Child,
}

/// A capability set as the kernel's bit mask (bit N is capability N).
pub type CapMask = u64;

/// mount_setattr(2) attributes (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;

/// The kernel operations of the container's set-up steps. Paths given as
/// `/proc/self/fd/N` name a descriptor the caller resolved safely (see rootfs::inroot).
pub trait Syscall {
    // --- processes ---
    /// fork(2) with `CLONE_NEW*` flags: the child starts in the new namespaces. Refused
    /// (EBUSY) while another thread runs: the child of a multi-threaded process may find
    /// a lock (malloc's) held by a thread that does not exist in it.
    fn clone_process(&self, namespaces: CloneFlags) -> nix::Result<Forked>;
    /// execve(2); returns only on failure.
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno;
    fn setsid(&self) -> nix::Result<()>;
    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()>;
    fn set_pdeathsig(&self, signal: Option<Signal>) -> nix::Result<()>;
    fn set_child_subreaper(&self) -> nix::Result<()>;
    fn set_rlimit(&self, resource: libc::c_int, soft: u64, hard: u64) -> nix::Result<()>;
    /// Back to the default action for `signal`: an ignored signal stays ignored across
    /// execve, and Rust's runtime ignores SIGPIPE in capsa.
    fn default_signal(&self, signal: Signal) -> nix::Result<()>;
    /// Mark every descriptor from `first` on close-on-exec.
    fn cloexec_from(&self, first: RawFd) -> nix::Result<()>;
    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()>;

    // --- namespaces ---
    fn setns(&self, fd: BorrowedFd<'_>, namespace: CloneFlags) -> nix::Result<()>;
    fn unshare(&self, namespaces: CloneFlags) -> nix::Result<()>;

    // --- identity ---
    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()>;
    fn setresgid(&self, gid: Gid) -> nix::Result<()>;
    fn setresuid(&self, uid: Uid) -> nix::Result<()>;
    /// Set the file mode creation mask; returns the previous one.
    fn umask(&self, mask: Mode) -> Mode;
    fn set_keepcaps(&self, keep: bool) -> nix::Result<()>;
    fn set_no_new_privs(&self) -> nix::Result<()>;
    /// Remove capability `cap` from the bounding set.
    fn drop_bounding(&self, cap: u8) -> nix::Result<()>;
    /// The permitted set of this thread.
    fn permitted_caps(&self) -> nix::Result<CapMask>;
    /// capset(2): effective, permitted and inheritable in one call.
    fn set_caps(
        &self,
        effective: CapMask,
        permitted: CapMask,
        inheritable: CapMask,
    ) -> nix::Result<()>;
    fn clear_ambient_caps(&self) -> nix::Result<()>;
    fn raise_ambient_cap(&self, cap: u8) -> nix::Result<()>;
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// Set the loopback interface of our network namespace up.
    fn loopback_up(&self) -> nix::Result<()>;
    fn setdomainname(&self, name: &str) -> nix::Result<()>;

    // --- filesystems ---
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    /// mount_setattr(2) on `fd`'s mount and every mount below it.
    fn mount_setattr_recursive(&self, fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()>;
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        perm: Mode,
        dev: libc::dev_t,
    ) -> nix::Result<()>;
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> nix::Result<()>;
    /// move_mount(2) of the detached tree `from` (`open_tree_clone`) onto `to`.
    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()>;
    /// fchown(2) of an open descriptor to `uid`, its group left as it is.
    fn fchown_fd(&self, fd: RawFd, uid: Uid) -> nix::Result<()>;
    /// Write `value` to a file of procfs, checking that the opened file is on procfs, so
    /// a mount over /proc cannot redirect the write (CVE-2019-16884, CVE-2025-52881).
    fn write_proc(&self, path: &Path, value: &[u8]) -> nix::Result<()>;

    // --- seccomp ---
    /// seccomp(SECCOMP_SET_MODE_FILTER, `flags`, `program`): the kernel's return value
    /// (a listener descriptor with NEW_LISTENER).
    fn seccomp_set_filter(
        &self,
        flags: libc::c_ulong,
        program: &[libc::sock_filter],
    ) -> nix::Result<SeccompLoaded>;
}

/// Why a `write_proc` failed, for a message: EXDEV is its procfs check refusing.
pub fn proc_write_failure(errno: Errno) -> String {
    if errno == Errno::EXDEV {
        "not on procfs; refusing to write to it".into()
    } else {
        errno.to_string()
    }
}

/// What loading a seccomp filter returned.
#[derive(Debug)]
pub enum SeccompLoaded {
    Installed,
    /// With SECCOMP_FILTER_FLAG_NEW_LISTENER: the notify descriptor.
    Listener(OwnedFd),
    /// With TSYNC: the thread that could not be synchronised.
    ThreadNotSynced(libc::c_long),
}
