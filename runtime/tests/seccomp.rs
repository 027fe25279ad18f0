//! seccomp against the real kernel: each test compiles a filter in the test process, forks, loads
//! it in the child (so the test process stays unfiltered) and checks what the filtered syscall
//! did. Needs root (CAP_SYS_ADMIN) or no_new_privs, which the child sets where a test needs it.
#![cfg(target_arch = "x86_64")]

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use capsa::seccomp::{compile, send_listener, syscall_names, CompiledFilter};
use nix::sys::signal::Signal;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{ContainerState, LinuxSeccomp, StateBuilder};

/// Exit code of a child whose syscall succeeded.
const OK: i32 = 100;

fn filter(json: &str) -> CompiledFilter {
    let seccomp: LinuxSeccomp = serde_json::from_str(json).expect("valid linux.seccomp");
    compile(&seccomp).expect("compiles")
}

/// Forks; the child runs `body` and exits with its value (or 101 on a panic).
fn in_child(body: impl FnOnce() -> i32) -> (Pid, WaitStatus) {
    // SAFETY: the child only runs `body` (raw syscalls, and allocation that glibc's fork
    // handlers keep usable) and leaves with _exit, never returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => (child, waitpid(child, None).expect("waitpid")),
    }
}

/// Loads `f`, runs `call` and exits OK on success or with the errno.
fn run_filtered(f: &CompiledFilter, call: impl FnOnce() -> libc::c_long) -> WaitStatus {
    in_child(|| {
        f.load().expect("load");
        if call() >= 0 {
            OK
        } else {
            errno()
        }
    })
    .1
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn exited(code: i32) -> impl Fn(WaitStatus) -> bool {
    move |s| matches!(s, WaitStatus::Exited(_, c) if c == code)
}

fn getppid() -> libc::c_long {
    // SAFETY: getppid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

fn close(fd: u64) -> libc::c_long {
    // SAFETY: closing descriptors nobody uses (the numbers tested are never open).
    unsafe { libc::syscall(libc::SYS_close, fd) }
}

#[test]
fn errno_action_and_errno_ret() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getppid"],"action":"SCMP_ACT_ERRNO"},
            {"names":["getpgid","no_such_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    );
    let s = run_filtered(&f, getppid);
    assert!(exited(libc::EPERM)(s), "getppid: {s:?}");
    // SAFETY: getpgid(0) only reads.
    let s = run_filtered(&f, || unsafe { libc::syscall(libc::SYS_getpgid, 0) });
    assert!(exited(libc::ENOSYS)(s), "getpgid: {s:?}");
    // SAFETY: getpid has no arguments.
    let s = run_filtered(&f, || unsafe { libc::syscall(libc::SYS_getpid) });
    assert!(exited(OK)(s), "getpid is allowed: {s:?}");
}

#[test]
fn default_action_with_errno_ret() {
    // An allowlist: everything the child needs to exit, and nothing else.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,"syscalls":[
            {"names":["exit","exit_group","getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let s = run_filtered(&f, getppid);
    assert!(exited(libc::EACCES)(s), "{s:?}");
}

#[test]
fn kill_kills_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let f = filter(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["getppid"],"action":"{action}"}}]}}"#
        ));
        let s = run_filtered(&f, getppid);
        assert!(
            matches!(s, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
            "{action}: {s:?}"
        );
    }
}

/// A raw pthread: std::thread in a forked child can wait on a lock (output capture, thread
/// registry) that another test thread held at fork time.
fn pthread(body: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void) -> libc::pthread_t {
    // SAFETY: zeroed pthread_t is overwritten by pthread_create; `body` takes no argument.
    unsafe {
        let mut t: libc::pthread_t = std::mem::zeroed();
        let rc = libc::pthread_create(&mut t, std::ptr::null(), body, std::ptr::null_mut());
        assert_eq!(rc, 0, "pthread_create");
        t
    }
}

fn pthread_join(t: libc::pthread_t) {
    // SAFETY: `t` is a joinable thread of this process, joined once.
    unsafe { libc::pthread_join(t, std::ptr::null_mut()) };
}

extern "C" fn call_getppid(_: *mut libc::c_void) -> *mut libc::c_void {
    getppid();
    std::ptr::null_mut()
}

#[test]
fn kill_thread_spares_the_other_threads_kill_process_does_not() {
    for (action, process_dies) in [
        ("SCMP_ACT_KILL_THREAD", false),
        ("SCMP_ACT_KILL_PROCESS", true),
    ] {
        let f = filter(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["getppid"],"action":"{action}"}}]}}"#
        ));
        let (_, s) = in_child(|| {
            f.load().expect("load");
            // The thread dies in getppid; the join still returns (the kernel clears its tid).
            pthread_join(pthread(call_getppid));
            OK
        });
        if process_dies {
            assert!(
                matches!(s, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
                "{action}: {s:?}"
            );
        } else {
            assert!(exited(OK)(s), "{action}: {s:?}");
        }
    }
}

#[test]
fn argument_conditions() {
    // close(2) of a never-open fd fails with EBADF unless a rule answers first.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
          {"names":["close"],"action":"SCMP_ACT_ERRNO","errnoRet":71,
           "args":[{"index":0,"value":1000,"op":"SCMP_CMP_EQ"}]},
          {"names":["close"],"action":"SCMP_ACT_ERRNO","errnoRet":72,
           "args":[{"index":0,"value":65280,"valueTwo":3328,"op":"SCMP_CMP_MASKED_EQ"}]},
          {"names":["close"],"action":"SCMP_ACT_ERRNO","errnoRet":73,
           "args":[{"index":0,"value":2000,"op":"SCMP_CMP_EQ"},{"index":0,"value":2999,"op":"SCMP_CMP_EQ"}]},
          {"names":["close"],"action":"SCMP_ACT_ERRNO","errnoRet":74,
           "args":[{"index":0,"value":5001,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    // Two conditions on one argument (73) are ORed, as runc and crun read them.
    let cases: &[(u64, i32)] = &[
        (1000, 71),
        (1001, libc::EBADF),
        (0x1_0000_03e8, libc::EBADF), // EQ compares all 64 bits
        (0xdff, 72),                  // (fd & 0xff00) == 0xd00
        (0x1_0000_0d00, 72),          // the mask ignores the high half
        (0xcff, libc::EBADF),
        (2000, 73),
        (2999, 73),
        (2500, libc::EBADF),
        (5001, 74),
        (5000, libc::EBADF),
    ];
    for &(fd, want) in cases {
        let s = run_filtered(&f, || close(fd));
        assert!(exited(want)(s), "close({fd:#x}): {s:?}, want errno {want}");
    }
}

static mut TRAPPED_SYSCALL: i32 = -1;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; for SIGSYS, si_syscall is the int at offset 24
    // (after si_signo, si_errno, si_code, padding and si_call_addr), per <asm-generic/siginfo.h>.
    unsafe {
        if (*info).si_code == 1 {
            // SYS_SECCOMP
            TRAPPED_SYSCALL = *(info as *const u8).add(24).cast::<i32>();
        }
    }
}

#[test]
fn trap_sends_sigsys_to_a_handler() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_TRAP"}]}"#,
    );
    let (_, s) = in_child(|| {
        // SAFETY: a plain sigaction with an async-signal-safe handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
        }
        f.load().expect("load");
        getppid();
        // SAFETY: the handler ran synchronously in this thread.
        let trapped = unsafe { TRAPPED_SYSCALL };
        if trapped == libc::SYS_getppid as i32 {
            OK
        } else {
            1
        }
    });
    assert!(exited(OK)(s), "{s:?}");
}

/// The kernel's seccomp audit records (type 1326) from /dev/kmsg. Without auditd, kauditd
/// prints them asynchronously and under printk's rate limit, so a record is waited for, and a
/// child whose record was dropped is run again (a few times at most).
struct Kmsg(std::fs::File);

impl Kmsg {
    fn open() -> Self {
        use std::io::Seek;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("open /dev/kmsg");
        f.seek(std::io::SeekFrom::End(0)).expect("seek /dev/kmsg");
        Kmsg(f)
    }

    /// Seccomp records until one about `pid` (included); None if none came within 6 s (longer
    /// than printk's 5 s rate-limit interval: a hang guard, not a speed check).
    fn records_until(&mut self, pid: Pid) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        let mut waited_ms = 0;
        while waited_ms < 6000 {
            match self.0.read(&mut buf) {
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if rec.contains("type=1326") {
                        let mine = rec.contains(&format!(" pid={pid} "));
                        out.push(rec);
                        if mine {
                            return Some(out);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut pfd = libc::pollfd {
                        fd: self.0.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: polls one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 100) };
                    waited_ms += 100;
                }
                Err(e) => panic!("read /dev/kmsg: {e}"),
            }
        }
        None
    }
}

/// Runs `unlogged` (if any) then `marker`, and returns the seccomp records up to the marker's.
fn audit_records(
    unlogged: Option<&CompiledFilter>,
    marker: &CompiledFilter,
) -> (Option<Pid>, Vec<String>) {
    let child = |f: &CompiledFilter| {
        in_child(|| {
            f.load().expect("load");
            if getppid() < 0 {
                errno()
            } else {
                OK
            }
        })
    };
    for _ in 0..3 {
        let mut kmsg = Kmsg::open();
        let first = unlogged.map(|f| child(f).0);
        let (pid, _) = child(marker);
        if let Some(records) = kmsg.records_until(pid) {
            return (first, records);
        }
    }
    panic!(
        "no seccomp audit record in /dev/kmsg after 3 tries (with auditd running they go to its log)"
    );
}

#[test]
fn log_action_allows_and_logs() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_LOG"}]}"#,
    );
    assert!(
        exited(OK)(run_filtered(&f, getppid)),
        "SCMP_ACT_LOG lets the syscall run"
    );
    let (_, records) = audit_records(None, &f);
    let last = records.last().unwrap();
    assert!(
        last.contains(&format!("syscall={} ", libc::SYS_getppid))
            && last.contains("code=0x7ffc0000"),
        "{last}"
    );
}

#[test]
fn log_flag_logs_errno_actions() {
    let json = |flags: &str| {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":{flags},
                "syscalls":[{{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":5}}]}}"#
        )
    };
    let logged = filter(&json(r#"["SECCOMP_FILTER_FLAG_LOG"]"#));
    let unlogged = filter(&json("[]"));
    assert!(exited(libc::EIO)(run_filtered(&logged, getppid)));
    // The record of an ERRNO (the audit code is the action without its data)...
    let (first, records) = audit_records(Some(&unlogged), &logged);
    assert!(
        records.last().unwrap().contains("code=0x50000"),
        "{records:?}"
    );
    // ...and none for the same filter without the flag, run just before (kauditd keeps order).
    let first = format!(" pid={} ", first.unwrap());
    assert!(!records.iter().any(|r| r.contains(&first)), "{records:?}");
}

static GO: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];
static THREAD_RESULT: AtomicI32 = AtomicI32::new(-1);

/// Waits for a byte on the pipe GO, then records what getppid did.
extern "C" fn getppid_when_told(_: *mut libc::c_void) -> *mut libc::c_void {
    let mut b = 0u8;
    // SAFETY: reads one byte into `b` from the pipe made before this thread.
    unsafe { libc::read(GO[0].load(Ordering::SeqCst), (&mut b as *mut u8).cast(), 1) };
    let r = if getppid() < 0 { errno() } else { OK };
    THREAD_RESULT.store(r, Ordering::SeqCst);
    std::ptr::null_mut()
}

#[test]
fn tsync_filters_every_thread() {
    for (flags, other_thread_filtered) in
        [(r#"["SECCOMP_FILTER_FLAG_TSYNC"]"#, true), ("[]", false)]
    {
        let f = filter(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":{flags},
                "syscalls":[{{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":7}}]}}"#
        ));
        let (_, s) = in_child(|| {
            let mut p = [0; 2];
            // SAFETY: pipe(2) fills the two-int array.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
            GO[0].store(p[0], Ordering::SeqCst);
            let t = pthread(getppid_when_told);
            f.load().expect("load");
            // SAFETY: writes one byte from a live buffer to the pipe.
            unsafe { libc::write(p[1], [1u8].as_ptr().cast(), 1) };
            pthread_join(t);
            THREAD_RESULT.load(Ordering::SeqCst)
        });
        let want = if other_thread_filtered {
            libc::E2BIG
        } else {
            OK
        };
        assert!(exited(want)(s), "flags {flags}: {s:?}");
    }
}

#[test]
fn spec_allow_flag_loads() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(exited(libc::EPERM)(run_filtered(&f, getppid)));
}

#[test]
fn foreign_abi_is_killed() {
    // An x32 syscall (getppid with __X32_SYSCALL_BIT) on a filter that does not list x32.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    // SAFETY: an x32 getppid takes no arguments.
    let s = run_filtered(&f, || unsafe {
        libc::syscall(0x4000_0000 | libc::SYS_getppid)
    });
    assert!(
        matches!(s, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "{s:?}"
    );
}

#[test]
fn load_needs_no_new_privs_without_cap_sys_admin() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":9}]}"#,
    );
    let (_, s) = in_child(|| {
        caps::clear(None, caps::CapSet::Effective).expect("drop effective caps");
        let err = f.load().expect_err("no CAP_SYS_ADMIN, no no_new_privs");
        if !err
            .to_string()
            .contains("needs noNewPrivileges or CAP_SYS_ADMIN")
        {
            return 2;
        }
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        f.load().expect("load with no_new_privs");
        getppid();
        errno()
    });
    assert!(exited(libc::EBADF)(s), "{s:?}");
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("capsa-seccomp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn notify_sends_the_listener_to_the_agent() {
    let dir = TempDir::new("notify");
    let sock = dir.0.join("agent.sock");
    let agent = UnixListener::bind(&sock).expect("bind agent socket");
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","listenerMetadata":"meta-1",
            "syscalls":[{{"names":["mkdirat","mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
        sock.display()
    );
    let f = filter(&json);
    assert!(f.has_notify());
    let state = StateBuilder::default()
        .version("1.2.1")
        .id("seccomp-test")
        .status(ContainerState::Creating)
        .bundle("/nonexistent-bundle")
        .build()
        .unwrap();

    // SAFETY: as in_child; the child leaves with _exit.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let listener = f.load().expect("load").expect("a listener fd");
                send_listener(&sock, &state, std::process::id() as i32, Some("meta-1"), {
                    use std::os::fd::AsFd;
                    listener.as_fd()
                })
                .expect("send_listener");
                drop(listener);
                let path = c"/nonexistent-capsa-dir/x";
                // SAFETY: a valid C string; the agent answers this syscall.
                let rc = unsafe { libc::mkdirat(libc::AT_FDCWD, path.as_ptr(), 0o755) };
                if rc == 0 {
                    OK
                } else {
                    errno()
                }
            }))
            .unwrap_or(101);
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };

    // The agent: one message with the state and the fd. A child that failed before connecting
    // must fail the test, not hang it in accept.
    let _reap = Reap(child);
    agent.set_nonblocking(true).expect("nonblocking");
    let conn = loop {
        match agent.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: agent.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: polls one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                let status =
                    nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
                if let Ok(s) = status {
                    assert!(
                        matches!(s, WaitStatus::StillAlive),
                        "child ended before connecting: {s:?}"
                    );
                }
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let fd = msg
        .cmsgs()
        .expect("cmsgs")
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("an fd in SCM_RIGHTS");
    let len = msg.bytes;
    // SAFETY: the fd just arrived by SCM_RIGHTS and is owned by nobody else.
    let listener = unsafe { OwnedFd::from_raw_fd(fd) };
    let v: serde_json::Value = serde_json::from_slice(&buf[..len]).expect("JSON state");
    assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(v["metadata"], "meta-1");
    assert_eq!(v["pid"], child.as_raw() as i64);
    assert_eq!(v["state"]["id"], "seccomp-test");
    assert_eq!(v["ociVersion"], "1.2.1");

    // Answer the child's mkdirat with ENOTEMPTY, which mkdirat itself cannot return here.
    // SAFETY: zeroed plain-data kernel structs; the ioctls fill and read them.
    unsafe {
        let mut req: libc::seccomp_notif = std::mem::zeroed();
        let rc = libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        );
        assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        assert_eq!(req.data.nr as i64, libc::SYS_mkdirat);
        assert_eq!(req.pid, child.as_raw() as u32);
        let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
        resp.id = req.id;
        resp.error = -libc::ENOTEMPTY;
        let rc = libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        );
        assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    }
    let s = waitpid(child, None).expect("waitpid");
    std::mem::forget(_reap);
    assert!(exited(libc::ENOTEMPTY)(s), "{s:?}");
}

/// Kills and reaps a child the test did not get to wait for.
struct Reap(Pid);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

/// A syscall through the i386 ABI (`int 0x80`), which seccomp sees as AUDIT_ARCH_I386.
fn int80(nr: u32, arg0: u32) -> i32 {
    let ret: i32;
    // SAFETY: an i386 syscall with one argument in ebx (rbx is reserved by LLVM, hence the
    // swap); the kernel clobbers r8-r11 on int 0x80 from 64-bit code and nothing else.
    unsafe {
        std::arch::asm!(
            "xchg {a0:r}, rbx",
            "int 0x80",
            "xchg {a0:r}, rbx",
            a0 = inout(reg) u64::from(arg0) => _,
            inlateout("eax") nr as i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret
}

const I386_CLOSE: u32 = 6;
const I386_GETPPID: u32 = 64;

#[test]
fn i386_abi_gets_its_own_rules_or_is_killed() {
    let rules = r#""syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":7},
        {"names":["close"],"action":"SCMP_ACT_ERRNO","errnoRet":71,
         "args":[{"index":0,"value":1000,"op":"SCMP_CMP_EQ"}]}]"#;
    // Unfiltered, the i386 ABI works on this kernel (else the test would prove nothing).
    let (_, s) = in_child(|| if int80(I386_GETPPID, 0) > 0 { OK } else { 1 });
    assert!(exited(OK)(s), "int 0x80 getppid without a filter: {s:?}");

    let native_only = filter(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW",{rules}}}"#));
    let s = run_filtered(&native_only, || int80(I386_GETPPID, 0).into());
    assert!(
        matches!(s, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "x86 not listed: {s:?}"
    );

    let with_x86 = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],{rules}}}"#
    ));
    for (nr, arg0, want) in [
        (I386_GETPPID, 0, -7),
        (I386_CLOSE, 1000, -71),
        (I386_CLOSE, 1001, -libc::EBADF),
    ] {
        let (_, s) = in_child(|| {
            with_x86.load().expect("load");
            -int80(nr, arg0)
        });
        assert!(
            exited(-want)(s),
            "i386 syscall {nr}({arg0}): {s:?}, want {want}"
        );
    }
}

#[test]
fn x32_abi_gets_its_own_rules() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"],
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":7}]}"#,
    );
    // SAFETY: x32 getppid takes no arguments.
    let s = run_filtered(&f, || unsafe {
        libc::syscall(0x4000_0000 | libc::SYS_getppid)
    });
    assert!(exited(7)(s), "x32 getppid: {s:?}");
    // The x86_64 one as well, and x32 syscalls without a rule get the default.
    assert!(exited(7)(run_filtered(&f, getppid)));
    // SAFETY: x32 getpid takes no arguments.
    let s = run_filtered(&f, || unsafe {
        libc::syscall(0x4000_0000 | libc::SYS_getpid)
    });
    assert!(
        !matches!(s, WaitStatus::Signaled(..)),
        "x32 getpid is not killed: {s:?}"
    );
}

#[test]
fn real_programs_run_under_a_docker_sized_allowlist() {
    // Every syscall but mkdir/mkdirat, on three ABIs, default EPERM: about Docker's profile.
    let names: Vec<String> = syscall_names()
        .filter(|n| !n.starts_with("mkdir"))
        .map(|n| format!("{n:?}"))
        .collect();
    let f = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
        names.join(",")
    ));
    let dir = TempDir::new("allowlist");
    let target = dir.0.join("made");
    let exec = |argv: &[&str]| {
        let argv: Vec<std::ffi::CString> = argv
            .iter()
            .map(|a| std::ffi::CString::new(*a).unwrap())
            .collect();
        in_child(|| {
            f.load().expect("load");
            let devnull = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap();
            nix::unistd::dup2(devnull.as_raw_fd(), 2).unwrap();
            let _ = nix::unistd::execv(&argv[0], &argv);
            127
        })
        .1
    };
    assert!(
        exited(0)(exec(&["/bin/true"])),
        "/bin/true under the allowlist"
    );
    let s = exec(&["/bin/mkdir", target.to_str().unwrap()]);
    assert!(exited(1)(s), "mkdir must fail: {s:?}");
    assert!(!target.exists(), "mkdir was filtered");
    let s = exec(&["/bin/sh", "-c", "echo ok >/dev/null && exit 3"]);
    assert!(exited(3)(s), "a shell runs: {s:?}");
}

#[test]
fn notify_loads_with_tsync_and_wait_killable_recv() {
    // The kernel refuses TSYNC with NEW_LISTENER unless TSYNC_ESRCH is added too.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/nonexistent/agent.sock",
            "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{"names":["mkdirat"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    let (_, s) = in_child(|| match f.load() {
        Ok(Some(fd)) if fd.as_raw_fd() > 2 => {
            // With the listener closed, a notified syscall fails with ENOSYS instead of waiting.
            drop(fd);
            // SAFETY: a valid C string.
            let rc = unsafe { libc::mkdirat(libc::AT_FDCWD, c"/nonexistent-capsa/x".as_ptr(), 0) };
            if rc < 0 {
                errno()
            } else {
                OK
            }
        }
        Ok(_) => 1,
        Err(_) => 2,
    });
    assert!(exited(libc::ENOSYS)(s), "{s:?}");
}
