//! seccomp as runc applies it, seen from inside the container (a static C probe makes raw
//! syscalls and prints what the kernel answered): conditions on one argument ORed, the
//! -ENOSYS answer to syscalls newer than the profile, startContainer hooks under the
//! filter, and the notify listener handed to the agent for `exec` as for `create`.

use integration::probe::compile_static;
use integration::seccomp_agent::Agent;
use integration::{Bundle, Ctx};
use serde_json::{json, Value};

/// `name` compiled from `source` into the bundle's rootfs, run as the container's process.
fn with_probe(b: Bundle, name: &str, source: &str) -> Bundle {
    compile_static(source, &b.rootfs().join(name));
    b.args(&[&format!("/{name}")])
}

const PRINT_RET: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static int ret(long r) { return r < 0 ? -errno : (int)r; }
"#;

/// The lines the probe printed, as `name value` pairs.
fn answers(out: &integration::Out) -> std::collections::HashMap<String, i32> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Two conditions on one argument index are ORed (runc and crun); ANDed they could never
/// both hold, and the rule would never match.
#[test]
fn conditions_on_one_argument_are_ored() {
    let ctx = Ctx::new();
    let source = format!(
        "{PRINT_RET}int main(void) {{
            printf(\"a %d\\n\", ret(syscall(SYS_getpgid, 1337)));
            printf(\"b %d\\n\", ret(syscall(SYS_getpgid, 2020)));
            printf(\"own %d\\n\", ret(syscall(SYS_getpgid, 0)));
            return 0;
        }}"
    );
    let b = with_probe(ctx.bundle(), "probe", &source).linux(
        "seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{
                "names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOANO,
                "args": [
                    { "index": 0, "value": 1337, "op": "SCMP_CMP_EQ" },
                    { "index": 0, "value": 2020, "op": "SCMP_CMP_EQ" }
                ]
            }]
        }),
    );
    let out = ctx.run(&b).ok();
    let a = answers(&out);
    assert_eq!(a.get("a"), Some(&-libc::ENOANO), "{out}");
    assert_eq!(a.get("b"), Some(&-libc::ENOANO), "{out}");
    assert!(a.get("own").is_some_and(|&p| p > 0), "{out}");
}

/// What a static probe, the runtime's last steps and runc's Go runtime need.
const ALLOWED: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fchmod",
    "fchown",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpid",
    "getppid",
    "getrandom",
    "getrlimit",
    "gettid",
    "gettimeofday",
    "getuid",
    "ioctl",
    "kill",
    "lseek",
    "madvise",
    "mmap",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlink",
    "readlinkat",
    "recvfrom",
    "recvmsg",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setresgid",
    "setresuid",
    "setsid",
    "setuid",
    "sigaltstack",
    "socket",
    "stat",
    "statx",
    "tgkill",
    "umask",
    "uname",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// A syscall numbered past every syscall a refusing profile names gets ENOSYS (runc's
/// filters), so programs fall back from a syscall newer than the profile; one below
/// that the profile does not allow still gets the default errno.
#[test]
fn a_syscall_newer_than_the_profile_gets_enosys() {
    let ctx = Ctx::new();
    let source = format!(
        "{PRINT_RET}int main(void) {{
            printf(\"past %d\\n\", ret(syscall(1000, 0, 0, 0)));
            printf(\"unlisted %d\\n\", ret(syscall(SYS_getpgid, 0)));
            return 0;
        }}"
    );
    let b = with_probe(ctx.bundle(), "probe", &source).linux(
        "seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": ALLOWED, "action": "SCMP_ACT_ALLOW" }]
        }),
    );
    let out = ctx.run(&b).ok();
    let a = answers(&out);
    assert_eq!(a.get("past"), Some(&-libc::ENOSYS), "{out}");
    assert_eq!(a.get("unlisted"), Some(&-libc::EPERM), "{out}");
}

/// startContainer hooks run in the container with its seccomp filter loaded (runc), with
/// and without noNewPrivileges: a hook making a killed syscall fails the start.
#[test]
fn start_container_hooks_run_under_the_filter() {
    for nnp in [true, false] {
        let ctx = Ctx::new();
        let b = ctx
            .bundle()
            .with(|s| s["process"]["noNewPrivileges"] = json!(nnp))
            .linux(
                "seccomp",
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL" }]
                }),
            )
            .hook(
                "startContainer",
                json!({ "path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/hooked"] }),
            );
        let out = ctx.run(&b);
        assert!(
            !out.success(),
            "noNewPrivileges {nnp}: the hook ran unfiltered: {out}"
        );
        // runc's words, which its own suite looks for.
        assert!(
            out.all().contains("error running hook") && out.all().contains("bad system call"),
            "{out}"
        );
        assert!(
            !b.rootfs().join("tmp/hooked").exists(),
            "noNewPrivileges {nnp}"
        );
    }
}

/// `exec` into a container whose filter has a NOTIFY rule: the new process' listener
/// goes to the agent with the container process state, as create's does, and the agent
/// answers the process' syscalls.
#[test]
fn exec_hands_the_notify_listener_to_the_agent() {
    for nnp in [true, false] {
        let ctx = Ctx::new();
        let agent = Agent::start(&ctx.path("agent.sock"), libc::ENOMEDIUM);
        let b = ctx
            .bundle()
            .args(&["/bin/sleep", "1000"])
            .with(|s| s["process"]["noNewPrivileges"] = json!(nnp))
            .linux(
                "seccomp",
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": agent.path,
                    "listenerMetadata": "tests",
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
                }),
            );
        let id = ctx.id();
        ctx.create_start(&id, &b);
        let init = ctx.pid(&id);
        let out = ctx.rt(&["exec", &id, "mkdir", "/tmp/x"]);
        assert_eq!(out.code(), Some(1), "noNewPrivileges {nnp}: {out}");
        assert!(
            out.all().contains("No medium found"),
            "the agent's answer: {out}"
        );
        let states = agent.states();
        assert_eq!(states.len(), 2, "create's and exec's listeners: {states:?}");
        let exec: &Value = &states[1];
        assert_eq!(exec["fds"], json!(["seccompFd"]), "{exec}");
        assert_eq!(exec["metadata"], "tests", "{exec}");
        assert_eq!(exec["state"]["id"], id.as_str(), "{exec}");
        assert_ne!(
            exec["pid"],
            json!(init),
            "the exec'd process, not the init: {exec}"
        );
    }
}

/// No agent at listenerPath: create fails with runc's words and leaves nothing.
#[test]
fn no_agent_fails_create_clearly() {
    let ctx = Ctx::new();
    let b = ctx.bundle().linux(
        "seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": ctx.path("nobody.sock"),
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }]
        }),
    );
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().contains("failed to connect with seccomp agent"),
        "{out}"
    );
    ctx.assert_nothing_left(&id, &b);
}
