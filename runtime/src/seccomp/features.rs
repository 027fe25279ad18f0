//! The "seccomp" object of `capsa features`, shaped as runc's.

use oci_spec::runtime::{Arch, LinuxSeccompAction as Action, Seccomp, SeccompBuilder};

use super::arch;

const FLAGS: [(&str, libc::c_ulong); 4] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", libc::SECCOMP_FILTER_FLAG_TSYNC),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    ("SECCOMP_FILTER_FLAG_LOG", libc::SECCOMP_FILTER_FLAG_LOG),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ),
];

/// Known actions, operators, architectures and flags; `supportedFlags` are those this kernel
/// accepts (probed without installing anything).
pub fn features() -> Seccomp {
    let enabled = arch::native().is_some();
    let actions = vec![
        Action::ScmpActAllow,
        Action::ScmpActErrno,
        Action::ScmpActKill,
        Action::ScmpActKillProcess,
        Action::ScmpActKillThread,
        Action::ScmpActLog,
        Action::ScmpActNotify,
        Action::ScmpActTrace,
        Action::ScmpActTrap,
    ];
    let operators = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    // Every name is accepted; those this machine cannot run need no code (see arch.rs).
    let archs = vec![
        Arch::ScmpArchAarch64,
        Arch::ScmpArchArm,
        Arch::ScmpArchLoongarch64,
        Arch::ScmpArchM68k,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchParisc,
        Arch::ScmpArchParisc64,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchRiscv64,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchSh,
        Arch::ScmpArchSheb,
        Arch::ScmpArchX32,
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
    ];
    let supported: Vec<String> = FLAGS
        .iter()
        .filter(|(_, flag)| enabled && flag_supported(*flag))
        .map(|(name, _)| name.to_string())
        .collect();
    SeccompBuilder::default()
        .enabled(enabled)
        .actions(actions)
        .operators(operators.map(String::from).to_vec())
        .archs(archs)
        .known_flags(FLAGS.map(|(n, _)| n.to_string()).to_vec())
        .supported_flags(supported)
        .build()
        .expect("every field is set")
}

/// The kernel checks the flags before it reads the program: EFAULT (for a NULL program) means
/// the flag is known, EINVAL that it is not. Nothing is installed either way.
fn flag_supported(flag: libc::c_ulong) -> bool {
    let flags = if flag == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
        flag | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        flag
    };
    crate::syscall::seccomp_flag_supported(flags)
}
