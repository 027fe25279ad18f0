//! Validation of `linux.seccomp` into rules ready to compile; every error names its field.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};

use super::arch::{self, Abi, Listed};
use super::SeccompError;

pub(super) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(super) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(super) const RET_TRAP: u32 = 0x0003_0000;
pub(super) const RET_ERRNO: u32 = 0x0005_0000;
pub(super) const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(super) const RET_TRACE: u32 = 0x7ff0_0000;
pub(super) const RET_LOG: u32 = 0x7ffc_0000;
pub(super) const RET_ALLOW: u32 = 0x7fff_0000;
/// SECCOMP_RET_DATA: the errno (or trace message) travels in the low 16 bits.
const RET_DATA: u32 = 0xffff;

/// One argument condition, as in the spec: MASKED_EQ is `(arg & value) == valueTwo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

/// One `syscalls[]` entry: any of `names` whose arguments meet every `args` gets `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub names: Vec<String>,
    pub action: u32,
    pub args: Vec<Cond>,
}

#[derive(Debug)]
pub(super) struct Validated {
    pub default: u32,
    pub rules: Vec<Rule>,
    pub flags: libc::c_ulong,
    pub notify: bool,
    pub native: Abi,
    /// The ABIs besides the native one that get rules (x86 and x32 on x86_64).
    pub compat: Vec<Abi>,
    /// The covered ABIs `architectures` names: each gets runc's -ENOSYS stub (`enosys`).
    pub listed: Vec<Abi>,
}

impl Validated {
    /// Whether syscalls of `abi` numbered past every syscall the profile names return
    /// ENOSYS rather than the default action, as runc's filters do (libseccomp patched):
    /// a syscall newer than the profile is then "not implemented", and a program falls
    /// back to an older one (glibc: clone3 to clone) instead of failing with EPERM. Only
    /// for a default that refuses, not already ENOSYS, and an ABI `architectures` lists.
    pub fn enosys(&self, abi: Abi) -> bool {
        let refusing = !matches!(self.default & 0xffff_0000, RET_ALLOW | RET_LOG | RET_TRACE);
        refusing && self.default != RET_ERRNO | libc::ENOSYS as u32 && self.listed.contains(&abi)
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The SECCOMP_RET_* value of an action; `errno_ret` only for ERRNO and TRACE (default EPERM).
fn action_ret(action: Action, errno_ret: Option<u32>, field: &str) -> Result<u32, SeccompError> {
    let data = match (action, errno_ret) {
        (Action::ScmpActErrno | Action::ScmpActTrace, Some(e)) if e > RET_DATA => {
            return Err(invalid(field, format!("{e} does not fit in 16 bits")));
        }
        (Action::ScmpActErrno | Action::ScmpActTrace, e) => e.unwrap_or(libc::EPERM as u32),
        (_, Some(_)) => {
            // runc ignores it; so do we, loudly.
            tracing::warn!("{field}: ignored, {action} takes no errno");
            0
        }
        (_, None) => 0,
    };
    Ok(match action {
        Action::ScmpActAllow => RET_ALLOW,
        Action::ScmpActErrno => RET_ERRNO | data,
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActTrace => RET_TRACE | data,
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActNotify => RET_USER_NOTIF,
    })
}

pub(super) fn validate(seccomp: &LinuxSeccomp) -> Result<Validated, SeccompError> {
    let native = arch::native().ok_or_else(|| {
        invalid(
            "linux.seccomp",
            format!("seccomp is not supported on {}", std::env::consts::ARCH),
        )
    })?;

    if seccomp.default_action() == Action::ScmpActNotify {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let default = action_ret(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;

    let mut compat = Vec::new();
    let mut listed = Vec::new();
    for (i, &a) in seccomp.architectures().iter().flatten().enumerate() {
        let class = arch::classify(a, native);
        if let Listed::Covered(abi) = class {
            if !listed.contains(&abi) {
                listed.push(abi);
            }
        }
        match class {
            Listed::Covered(abi) if abi != native && !compat.contains(&abi) => compat.push(abi),
            Listed::Covered(_) | Listed::Unreachable => {}
            Listed::NoTable => tracing::warn!(
                "linux.seccomp.architectures[{i}]: no syscall table for {a:?}; its syscalls are killed"
            ),
        }
    }

    let mut rules = Vec::new();
    let mut notify = false;
    for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        if call.names().is_empty() {
            return Err(invalid(
                format!("{field}.names"),
                "must name at least one syscall",
            ));
        }
        let action = action_ret(
            call.action(),
            call.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        if call.action() == Action::ScmpActNotify {
            // As runc: the runtime's own error reporting writes until execve.
            if call.names().iter().any(|n| n == "write") {
                return Err(invalid(
                    format!("{field}.action"),
                    "SCMP_ACT_NOTIFY cannot be used for the write syscall",
                ));
            }
            notify = true;
        }
        let mut args = Vec::new();
        for (j, arg) in call.args().iter().flatten().enumerate() {
            let index = u8::try_from(arg.index())
                .ok()
                .filter(|&n| n <= 5)
                .ok_or_else(|| {
                    invalid(
                        format!("{field}.args[{j}].index"),
                        format!("{} is not a syscall argument (0 to 5)", arg.index()),
                    )
                })?;
            // MASKED_EQ without valueTwo compares with 0, as runc and libseccomp read it
            // (Docker's default profile omits it in its clone rule).
            args.push(Cond {
                index,
                op: arg.op(),
                value: arg.value(),
                value_two: arg.value_two().unwrap_or(0),
            });
        }
        // Two or more conditions on one argument: every condition becomes a rule of its
        // own, so they are ORed (runc's and crun's reading; ANDed, `arg0 == 1 && arg0 == 2`
        // could never match and an allowed call would get the default action).
        let repeated = (0..=5u8).any(|n| args.iter().filter(|c| c.index == n).count() > 1);
        if repeated {
            for c in args {
                rules.push(Rule {
                    names: call.names().clone(),
                    action,
                    args: vec![c],
                });
            }
        } else {
            rules.push(Rule {
                names: call.names().clone(),
                action,
                args,
            });
        }
    }
    if notify && seccomp.listener_path().is_none() {
        return Err(invalid(
            "linux.seccomp.listenerPath",
            "required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }

    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only meaningful with a listener (the kernel refuses it otherwise), as libseccomp.
            Flag::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            Flag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // The kernel refuses TSYNC with NEW_LISTENER unless TSYNC failures report ESRCH.
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }

    Ok(Validated {
        default,
        rules,
        flags,
        notify,
        native,
        compat,
        listed,
    })
}
