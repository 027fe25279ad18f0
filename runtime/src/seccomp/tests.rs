//! Unit tests: the compiled program run by a small classic-BPF interpreter on made-up syscalls.
//! (runtime/tests/seccomp.rs loads real filters into the kernel.)

use oci_spec::runtime::LinuxSeccomp;

use super::arch::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::rules::*;
use super::{compile, CompiledFilter, SeccompError};

const EPERM: u32 = RET_ERRNO | 1;

/// Runs `f` on `struct seccomp_data { nr, arch, ip, args[6] }`.
fn run(f: &CompiledFilter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend(nr.to_le_bytes());
    data.extend(arch.to_le_bytes());
    data.extend(0u64.to_le_bytes());
    for a in args {
        data.extend(a.to_le_bytes());
    }
    let prog: Vec<_> = f.instructions().collect();
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let (code, jt, jf, k) = prog[pc];
        pc += 1;
        let cond = |taken: bool| if taken { jt as usize } else { jf as usize };
        match code {
            0x20 => {
                let k = k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
            }
            0x54 => acc &= k,
            0x05 => pc += k as usize,
            0x15 => pc += cond(acc == k),
            0x25 => pc += cond(acc > k),
            0x35 => pc += cond(acc >= k),
            0x45 => pc += cond(acc & k != 0),
            0x06 => return k,
            _ => panic!("unexpected BPF code {code:#x} at {}", pc - 1),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_64(f: &CompiledFilter, nr: i64, args: [u64; 6]) -> u32 {
    run(f, AUDIT_ARCH_X86_64, nr as u32, args)
}

fn filter(json: &str) -> CompiledFilter {
    compile(&parse(json)).unwrap()
}

fn parse(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

fn err(json: &str) -> String {
    compile(&parse(json)).unwrap_err().to_string()
}

const A0: [u64; 6] = [0; 6];

#[cfg(target_arch = "x86_64")]
mod x86_64_host {
    use super::*;

    #[test]
    fn default_and_errno() {
        let f = filter(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getpid"],"action":"SCMP_ACT_ERRNO"},
                {"names":["getppid","nosuchcall"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        assert_eq!(x86_64(&f, libc::SYS_getpid, A0), EPERM);
        assert_eq!(x86_64(&f, libc::SYS_getppid, A0), RET_ERRNO | 38);
        assert_eq!(x86_64(&f, libc::SYS_read, A0), RET_ALLOW);

        let f = filter(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(x86_64(&f, libc::SYS_read, A0), RET_ALLOW);
        assert_eq!(x86_64(&f, libc::SYS_write, A0), RET_ERRNO | 13);
    }

    #[test]
    fn every_action() {
        let cases = [
            ("SCMP_ACT_ALLOW", RET_ALLOW),
            ("SCMP_ACT_KILL", RET_KILL_THREAD),
            ("SCMP_ACT_KILL_THREAD", RET_KILL_THREAD),
            ("SCMP_ACT_KILL_PROCESS", RET_KILL_PROCESS),
            ("SCMP_ACT_TRAP", RET_TRAP),
            ("SCMP_ACT_TRACE", RET_TRACE | 1),
            ("SCMP_ACT_LOG", RET_LOG),
            ("SCMP_ACT_ERRNO", EPERM),
            ("SCMP_ACT_NOTIFY", RET_USER_NOTIF),
        ];
        for (action, ret) in cases {
            let f = filter(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":99,"listenerPath":"/x",
                    "syscalls":[{{"names":["getpid"],"action":"{action}"}}]}}"#
            ));
            assert_eq!(x86_64(&f, libc::SYS_getpid, A0), ret, "{action}");
            assert_eq!(
                x86_64(&f, libc::SYS_getppid, A0),
                RET_ERRNO | 99,
                "{action}"
            );
            assert_eq!(f.has_notify(), action == "SCMP_ACT_NOTIFY");
        }
        let f = filter(
            r#"{"defaultAction":"SCMP_ACT_TRACE","defaultErrnoRet":7,
                "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_TRACE","errnoRet":5}]}"#,
        );
        assert_eq!(x86_64(&f, libc::SYS_getpid, A0), RET_TRACE | 5);
        assert_eq!(x86_64(&f, libc::SYS_read, A0), RET_TRACE | 7);
    }

    fn one_arg(op: &str, value: u64, value_two: u64) -> CompiledFilter {
        filter(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["personality"],
                "action":"SCMP_ACT_ERRNO","args":[{{"index":1,"value":{value},
                "valueTwo":{value_two},"op":"{op}"}}]}}]}}"#
        ))
    }

    #[test]
    fn every_operator_on_64_bits() {
        let hi = 0x1_0000_0005u64; // differs from 5 only in the high half
        type Case<'a> = (&'a str, u64, &'a [(u64, bool)]);
        let cases: [Case; 6] = [
            (
                "SCMP_CMP_EQ",
                hi,
                &[(hi, true), (5, false), (hi + 1, false)],
            ),
            ("SCMP_CMP_NE", hi, &[(hi, false), (5, true), (0, true)]),
            (
                "SCMP_CMP_LT",
                hi,
                &[(5, true), (hi - 1, true), (hi, false), (u64::MAX, false)],
            ),
            ("SCMP_CMP_LE", hi, &[(5, true), (hi, true), (hi + 1, false)]),
            (
                "SCMP_CMP_GT",
                hi,
                &[(hi + 1, true), (u64::MAX, true), (hi, false), (6, false)],
            ),
            (
                "SCMP_CMP_GE",
                hi,
                &[(hi, true), (hi + 1, true), (hi - 1, false)],
            ),
        ];
        for (op, value, args) in cases {
            let f = one_arg(op, value, 0);
            for &(arg, matches) in args {
                let want = if matches { EPERM } else { RET_ALLOW };
                let got = x86_64(&f, libc::SYS_personality, [0, arg, 0, 0, 0, 0]);
                assert_eq!(got, want, "{op} {value:#x} with arg {arg:#x}");
                // Another argument or syscall is not looked at.
                let other = x86_64(&f, libc::SYS_personality, [arg, 0, arg, arg, arg, arg]);
                let want_other = if op == "SCMP_CMP_NE" || op.contains("LT") || op.contains("LE") {
                    EPERM
                } else {
                    RET_ALLOW
                };
                assert_eq!(other, want_other, "{op} arg 0 vs arg 1");
                assert_eq!(
                    x86_64(&f, libc::SYS_getpid, [0, arg, 0, 0, 0, 0]),
                    RET_ALLOW
                );
            }
        }
    }

    #[test]
    fn masked_equal() {
        // (arg & value) == valueTwo, on both halves.
        let f = one_arg(
            "SCMP_CMP_MASKED_EQ",
            0x8000_0000_0000_00f0,
            0x8000_0000_0000_0010,
        );
        let p = libc::SYS_personality;
        assert_eq!(x86_64(&f, p, [0, 0x8000_0000_0000_0010, 0, 0, 0, 0]), EPERM);
        assert_eq!(x86_64(&f, p, [0, 0xffff_0000_ffff_ff1f, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            x86_64(&f, p, [0, 0x0000_0000_0000_0010, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            x86_64(&f, p, [0, 0x8000_0000_0000_0020, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }

    #[test]
    fn args_are_anded_unless_an_index_repeats_entries_first_match() {
        let f = filter(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":1,
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":2,"op":"SCMP_CMP_EQ"}]},
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":2,
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":3,
               "args":[{"index":0,"value":10,"op":"SCMP_CMP_EQ"},{"index":0,"value":20,"op":"SCMP_CMP_EQ"}]},
              {"names":["personality","getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":4}]}"#,
        );
        let p = libc::SYS_personality;
        assert_eq!(x86_64(&f, p, [1, 2, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(x86_64(&f, p, [1, 3, 0, 0, 0, 0]), RET_ERRNO | 2);
        // Two conditions on argument 0: ORed (runc, crun).
        assert_eq!(x86_64(&f, p, [10, 0, 0, 0, 0, 0]), RET_ERRNO | 3);
        assert_eq!(x86_64(&f, p, [20, 0, 0, 0, 0, 0]), RET_ERRNO | 3);
        assert_eq!(x86_64(&f, p, [15, 0, 0, 0, 0, 0]), RET_ERRNO | 4);
        assert_eq!(x86_64(&f, libc::SYS_getpid, A0), RET_ERRNO | 4);
        assert_eq!(x86_64(&f, libc::SYS_read, A0), RET_ALLOW);
    }

    #[test]
    fn syscalls_past_the_profile_get_enosys() {
        let profile = |default: &str, archs: &str| {
            filter(&format!(
                r#"{{"defaultAction":{default},"architectures":[{archs}],
                    "syscalls":[{{"names":["getpid","read"],"action":"SCMP_ACT_ALLOW"}}]}}"#
            ))
        };
        let f = profile(r#""SCMP_ACT_ERRNO""#, r#""SCMP_ARCH_X86_64""#);
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(x86_64(&f, libc::SYS_getpid, A0), RET_ALLOW);
        // Below getpid, not named: the default.
        assert_eq!(x86_64(&f, libc::SYS_write, A0), EPERM);
        assert_eq!(x86_64(&f, libc::SYS_getpid + 1, A0), enosys);
        assert_eq!(x86_64(&f, 1000, A0), enosys);
        // A tracer's -1 is not a syscall number.
        assert_eq!(x86_64(&f, -1, A0), EPERM);
        // Not for an allowing default, nor an ABI `architectures` does not list.
        let allow = profile(r#""SCMP_ACT_LOG""#, r#""SCMP_ARCH_X86_64""#);
        assert_eq!(x86_64(&allow, 1000, A0), RET_LOG);
        let unlisted = profile(r#""SCMP_ACT_ERRNO""#, "");
        assert_eq!(x86_64(&unlisted, 1000, A0), EPERM);
        // x86 listed: its own highest number.
        let both = profile(
            r#""SCMP_ACT_ERRNO""#,
            r#""SCMP_ARCH_X86_64","SCMP_ARCH_X86""#,
        );
        assert_eq!(run(&both, AUDIT_ARCH_I386, 20, A0), RET_ALLOW);
        assert_eq!(run(&both, AUDIT_ARCH_I386, 21, A0), enosys);
        assert_eq!(run(&both, AUDIT_ARCH_I386, 2, A0), EPERM);
    }

    #[test]
    fn foreign_abis() {
        let native_only = filter(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        // i386 and x32 are not covered: killed, whatever the default.
        assert_eq!(run(&native_only, AUDIT_ARCH_I386, 20, A0), RET_KILL_PROCESS);
        assert_eq!(
            x86_64(&native_only, (X32_SYSCALL_BIT + 39).into(), A0),
            RET_KILL_PROCESS
        );
        assert_eq!(run(&native_only, 0xc000_00b7, 172, A0), RET_KILL_PROCESS);
        // A tracer's skipped syscall (-1) gets the default.
        assert_eq!(x86_64(&native_only, -1, A0), RET_ALLOW);

        let all = filter(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32","SCMP_ARCH_S390X"],
                "syscalls":[{"names":["getpid","socketcall"],"action":"SCMP_ACT_ERRNO"},
                  {"names":["personality"],"action":"SCMP_ACT_KILL",
                   "args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert_eq!(x86_64(&all, libc::SYS_getpid, A0), EPERM);
        assert_eq!(run(&all, AUDIT_ARCH_I386, 20, A0), EPERM); // i386 getpid
        assert_eq!(run(&all, AUDIT_ARCH_I386, 102, A0), EPERM); // socketcall
        assert_eq!(run(&all, AUDIT_ARCH_I386, 39, A0), RET_ALLOW); // i386 39 is mkdir
        assert_eq!(x86_64(&all, (X32_SYSCALL_BIT + 39).into(), A0), EPERM);
        assert_eq!(x86_64(&all, (X32_SYSCALL_BIT + 20).into(), A0), RET_ALLOW);
        // 32-bit ABI: the low half decides.
        let i386_personality = 136;
        assert_eq!(
            run(
                &all,
                AUDIT_ARCH_I386,
                i386_personality,
                [0xffff_ffff, 0, 0, 0, 0, 0]
            ),
            0
        );
        assert_eq!(
            run(&all, AUDIT_ARCH_I386, i386_personality, [1, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            x86_64(&all, libc::SYS_personality, [u64::MAX, 0, 0, 0, 0, 0]),
            RET_ALLOW,
            "64-bit ABI compares all 64 bits"
        );
    }

    #[test]
    fn docker_sized_profile_fits() {
        use super::super::syscalls::{X32, X86, X86_64};
        // Every name of every table but every fifth one (so misses fall between hits).
        let mut names: Vec<&str> = X86_64
            .iter()
            .chain(X86)
            .chain(X32)
            .map(|(n, _)| *n)
            .collect();
        names.sort();
        names.dedup();
        let denied: std::collections::HashSet<&str> = names.iter().copied().step_by(5).collect();
        let allowed: Vec<String> = names
            .iter()
            .filter(|n| !denied.contains(*n))
            .map(|n| format!("{n:?}"))
            .collect();
        let f = filter(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
            allowed.join(",")
        ));
        assert!(f.len() < 4096, "{} instructions", f.len());
        for (table, arch) in [
            (X86_64, AUDIT_ARCH_X86_64),
            (X86, AUDIT_ARCH_I386),
            (X32, AUDIT_ARCH_X86_64),
        ] {
            let by_nr: std::collections::HashMap<u32, &str> =
                table.iter().map(|(n, nr)| (*nr, *n)).collect();
            let base = if std::ptr::eq(table, X32) {
                X32_SYSCALL_BIT
            } else {
                0
            };
            let last = by_nr
                .iter()
                .filter(|(_, name)| !denied.contains(*name))
                .map(|(nr, _)| *nr)
                .max()
                .unwrap();
            for nr in base..base + 600 {
                let want = match by_nr.get(&nr) {
                    Some(name) if !denied.contains(name) => RET_ALLOW,
                    _ if nr > last => RET_ERRNO | libc::ENOSYS as u32,
                    _ => EPERM,
                };
                assert_eq!(
                    run(&f, arch, nr, A0),
                    want,
                    "arch {arch:#x} nr {nr:#x} {:?}",
                    by_nr.get(&nr)
                );
            }
        }
    }
}

#[test]
fn flags() {
    use libc::*;
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    );
    assert_eq!(
        f.flags(),
        SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],"listenerPath":"/x",
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(
        f.flags(),
        SECCOMP_FILTER_FLAG_TSYNC
            | SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | SECCOMP_FILTER_FLAG_NEW_LISTENER
            | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn errno_ret_without_errno_action_is_ignored() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":3,
            "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_KILL_PROCESS","errnoRet":1}]}"#,
    );
    let (getpid, other) = (libc::SYS_getpid as u32, libc::SYS_getppid as u32);
    assert_eq!(run(&f, AUDIT_ARCH_X86_64, getpid, A0), RET_KILL_PROCESS);
    assert_eq!(run(&f, AUDIT_ARCH_X86_64, other, A0), RET_ALLOW);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn unknown_names_are_skipped() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["no_such_syscall"],"action":"SCMP_ACT_KILL"},
            {"names":["no_such_either"],"action":"SCMP_ACT_KILL",
             "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert_eq!(x86_64(&f, 0, A0), RET_ALLOW);
    let v = super::rules::validate(&parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["read","no_such_syscall"],"action":"SCMP_ACT_KILL"},
            {"names":["no_such_syscall","recv"],"action":"SCMP_ACT_KILL"}]}"#,
    ))
    .unwrap();
    assert_eq!(
        super::program::unknown_names(&v),
        ["no_such_syscall (syscalls[0])", "recv (syscalls[1])"]
    );
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#,
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#,
            "linux.seccomp.defaultErrnoRet: 70000 does not fit in 16 bits",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
            "linux.seccomp.syscalls[0].names: must name at least one syscall",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
            "linux.seccomp.syscalls[0].args[1].index: 6 is not a syscall argument",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x",
                "syscalls":[{"names":["write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for the write syscall",
        ),
    ];
    for (json, want) in cases {
        let got = err(json);
        assert!(got.starts_with(want), "{json}\n got: {got}\nwant: {want}");
    }
    assert!(matches!(
        compile(&parse(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#)),
        Err(SeccompError::Invalid { .. })
    ));
}

#[test]
fn features_shape() {
    let v = serde_json::to_value(super::features()).unwrap();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["actions"].as_array().unwrap().len(), 9);
    assert!(v["operators"]
        .as_array()
        .unwrap()
        .contains(&"SCMP_CMP_MASKED_EQ".into()));
    assert!(v["archs"]
        .as_array()
        .unwrap()
        .contains(&"SCMP_ARCH_X86_64".into()));
    assert_eq!(v["knownFlags"].as_array().unwrap().len(), 4);
    // Kernel 4.17+ knows these three; the probe installs nothing.
    for flag in [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ] {
        assert!(
            v["supportedFlags"]
                .as_array()
                .unwrap()
                .contains(&flag.into()),
            "{flag}"
        );
    }
}

#[test]
fn process_state_json_shape() {
    use oci_spec::runtime::{ContainerState, StateBuilder};
    let state = StateBuilder::default()
        .version("1.2.0")
        .id("c1")
        .status(ContainerState::Creating)
        .pid(42)
        .bundle("/b")
        .build()
        .unwrap();
    let json = super::process_state_json(&state, 42, Some("meta")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["ociVersion"], "1.2.0");
    assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(v["pid"], 42);
    assert_eq!(v["metadata"], "meta");
    assert_eq!(v["state"]["id"], "c1");
    assert_eq!(v["state"]["status"], "creating");
}
