//! Raw *at syscalls relative to a directory fd. Every path operation of the unpacker and the
//! copier goes through here, so that nothing ever resolves a path from the host's root or
//! follows a symlink out of the directory being written. All `unsafe` of the crate lives here
//! (lib.rs denies it everywhere else); openat2 resolution comes from capsa-linux.
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_result(r: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(r)?;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat(2) of one name in `dir`.
pub fn openat(dir: RawFd, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let p = cstr(name)?;
    // SAFETY: p is a valid C string; the returned fd is checked.
    fd_result(unsafe {
        libc::openat(
            dir,
            p.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

/// Opens a directory path (host path) as an O_PATH|O_DIRECTORY fd.
pub fn open_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    openat(
        libc::AT_FDCWD,
        path.as_os_str(),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
}

pub fn fstatat(dir: RawFd, name: &OsStr) -> io::Result<libc::stat> {
    let p = cstr(name)?;
    // SAFETY: stat is plain data; the kernel fills it on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a C string and to st.
    check(unsafe { libc::fstatat(dir, p.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to st.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// fstatat that maps ENOENT to None.
pub fn lstat_opt(dir: RawFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    match fstatat(dir, name) {
        Ok(st) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn mkdirat(dir: RawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let p = cstr(name)?;
    // SAFETY: valid C string.
    check(unsafe { libc::mkdirat(dir, p.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: RawFd, name: &OsStr, mode: u32, dev: u64) -> io::Result<()> {
    let p = cstr(name)?;
    // SAFETY: valid C string.
    check(unsafe { libc::mknodat(dir, p.as_ptr(), mode, dev) }).map(drop)
}

pub fn symlinkat(target: &OsStr, dir: RawFd, name: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let p = cstr(name)?;
    // SAFETY: valid C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir, p.as_ptr()) }).map(drop)
}

/// linkat without AT_SYMLINK_FOLLOW: a symlink source is linked itself, never followed.
pub fn linkat(odir: RawFd, oname: &OsStr, ndir: RawFd, nname: &OsStr) -> io::Result<()> {
    let o = cstr(oname)?;
    let n = cstr(nname)?;
    // SAFETY: valid C strings.
    check(unsafe { libc::linkat(odir, o.as_ptr(), ndir, n.as_ptr(), 0) }).map(drop)
}

pub fn unlinkat(dir: RawFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let p = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid C string.
    check(unsafe { libc::unlinkat(dir, p.as_ptr(), flags) }).map(drop)
}

pub fn readlinkat(dir: RawFd, name: &OsStr) -> io::Result<std::ffi::OsString> {
    let p = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf is writable for buf.len() bytes.
    let n = unsafe { libc::readlinkat(dir, p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(std::ffi::OsString::from_vec(buf))
}
use std::os::unix::ffi::OsStringExt;

/// Owner of `name` in `dir`, never following a symlink.
pub fn lchownat(dir: RawFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let p = cstr(name)?;
    // SAFETY: valid C string.
    check(unsafe { libc::fchownat(dir, p.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// chmod of `name` in `dir`; callers never pass a symlink (checked by fstatat first).
pub fn fchmodat(dir: RawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let p = cstr(name)?;
    // SAFETY: valid C string.
    check(unsafe { libc::fchmodat(dir, p.as_ptr(), mode, 0) }).map(drop)
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an fd we own.
    check(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an fd we own.
    check(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

fn timespec(t: (i64, i64)) -> libc::timespec {
    libc::timespec {
        tv_sec: t.0,
        tv_nsec: t.1,
    }
}

/// Sets atime/mtime of `name` in `dir` without following a symlink.
pub fn lutimensat(
    dir: RawFd,
    name: &OsStr,
    atime: (i64, i64),
    mtime: (i64, i64),
) -> io::Result<()> {
    let p = cstr(name)?;
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: valid C string and a 2-element timespec array.
    check(unsafe { libc::utimensat(dir, p.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub fn futimens(fd: RawFd, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: a 2-element timespec array.
    check(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(drop)
}

/// Path naming `name` inside the directory open as `dir`, through procfs: the directory is
/// reached by its fd (no path walk), and the last component is not followed by l*xattr calls.
fn proc_path(dir: RawFd, name: &OsStr) -> io::Result<CString> {
    let mut v = format!("/proc/self/fd/{dir}/").into_bytes();
    v.extend_from_slice(name.as_bytes());
    CString::new(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

pub fn lsetxattr(dir: RawFd, name: &OsStr, key: &CStr, value: &[u8]) -> io::Result<()> {
    let p = proc_path(dir, name)?;
    // SAFETY: valid C strings; value points to value.len() readable bytes.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

pub fn fsetxattr(fd: RawFd, key: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid C string; value points to value.len() readable bytes.
    check(unsafe { libc::fsetxattr(fd, key.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
        .map(drop)
}

/// All xattrs (name, value) of `name` in `dir`, symlinks not followed.
pub fn lxattrs(dir: RawFd, name: &OsStr) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let p = proc_path(dir, name)?;
    let mut list = vec![0u8; 4096];
    let n = loop {
        // SAFETY: list is writable for list.len() bytes.
        let n = unsafe { libc::llistxattr(p.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => list.resize(list.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for key in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let key = CString::new(key).expect("split on NUL");
        let mut val = vec![0u8; 256];
        loop {
            // SAFETY: val is writable for val.len() bytes.
            let m = unsafe {
                libc::lgetxattr(p.as_ptr(), key.as_ptr(), val.as_mut_ptr().cast(), val.len())
            };
            if m >= 0 {
                val.truncate(m as usize);
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                let l = val.len();
                val.resize(l * 8, 0);
                continue;
            }
            return Err(e);
        }
        out.push((key, val));
    }
    Ok(out)
}

/// Removes the xattr `key` of `name` in `dir`, symlinks not followed.
pub fn lremovexattr(dir: RawFd, name: &OsStr, key: &CStr) -> io::Result<()> {
    let p = proc_path(dir, name)?;
    // SAFETY: valid C strings.
    check(unsafe { libc::lremovexattr(p.as_ptr(), key.as_ptr()) }).map(drop)
}

pub fn lgetxattr(dir: RawFd, name: &OsStr, key: &CStr) -> io::Result<Option<Vec<u8>>> {
    let p = proc_path(dir, name)?;
    let mut val = vec![0u8; 256];
    // SAFETY: val is writable for val.len() bytes.
    let m =
        unsafe { libc::lgetxattr(p.as_ptr(), key.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
    if m < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(e),
        };
    }
    val.truncate(m as usize);
    Ok(Some(val))
}

/// Names in the directory open as `dir` (excluding . and ..).
pub fn list_dir(dir: &impl AsRawFd) -> io::Result<Vec<std::ffi::OsString>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        v.push(e?.file_name());
    }
    Ok(v)
}

pub fn mount_overlay(target: &std::path::Path, options: &str) -> io::Result<()> {
    let t = cstr(target.as_os_str())?;
    let o =
        CString::new(options).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL"))?;
    // SAFETY: valid C strings; overlay takes its options as a string.
    check(unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            t.as_ptr(),
            c"overlay".as_ptr(),
            0,
            o.as_ptr().cast(),
        )
    })
    .map(drop)
}

pub fn umount(target: &std::path::Path) -> io::Result<()> {
    let t = cstr(target.as_os_str())?;
    // SAFETY: valid C string.
    check(unsafe { libc::umount2(t.as_ptr(), libc::UMOUNT_NOFOLLOW) }).map(drop)
}

pub fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

pub fn major_minor(dev: u64) -> (u32, u32) {
    (libc::major(dev), libc::minor(dev))
}

/// flock(2) on an open file; `exclusive` or shared. Blocks until granted.
pub fn flock(fd: RawFd, exclusive: bool) -> io::Result<()> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    loop {
        // SAFETY: plain syscall on an fd we own.
        let r = unsafe { libc::flock(fd, op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

pub fn is_mountpoint(path: &std::path::Path) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::symlink_metadata(path),
        std::fs::symlink_metadata(parent),
    ) {
        (Ok(a), Ok(b)) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}

/// The filesystem uid/gid new files get (the effective ids; no setfsuid here).
pub fn fs_ids() -> (u32, u32) {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// The process umask, read from /proc/self/status (umask(2) cannot read it without
/// changing it, which would race with other threads creating files).
pub fn umask() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok()
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    // async-signal-safe: one atomic store
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

const INTERRUPTS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// While held, SIGINT, SIGTERM and SIGHUP only set a flag (`interrupted`), so that a long
/// operation can stop at its next step and clean up; children started meanwhile get the
/// default actions back at exec. The previous handlers come back on drop.
pub struct InterruptGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

pub fn catch_interrupts() -> io::Result<InterruptGuard> {
    let mut old = Vec::new();
    for sig in INTERRUPTS {
        // SAFETY: sigaction is plain data; all-zero is a valid empty action.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: sa and prev are valid sigaction structs; the handler only stores an atomic.
        let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to two sigaction structs.
        check(unsafe { libc::sigaction(sig, &sa, &mut prev) })?;
        old.push((sig, prev));
    }
    INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
    Ok(InterruptGuard { old })
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the action sigaction returned for this signal.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// Whether an interrupt arrived since `catch_interrupts`.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}
