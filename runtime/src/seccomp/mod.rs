//! seccomp: `linux.seccomp` of config.json compiled to a BPF program and installed.
//!
//! The runtime calls [`compile`] in the parent before it forks (all validation and allocation
//! happen there; errors name the field, e.g. `linux.seccomp.syscalls[3].errnoRet`), then
//! [`CompiledFilter::load`] in the container's init after capabilities are set and right before
//! execve, so the runtime's own syscalls are not filtered. When a rule uses SCMP_ACT_NOTIFY, load
//! returns the listener fd; the runtime hands it to the agent with [`send_listener`].
//!
//! # Where the init loads it (as runc's standard_init)
//!
//! - `process.noNewPrivileges` true: set no_new_privs, then `load()` after the capabilities
//!   are applied, while the sync channel is still open.
//! - false: loading needs CAP_SYS_ADMIN, so `load()` before the capabilities are dropped.
//! - With a listener fd: send it to the parent over the channel before the "created" sync; the
//!   parent calls [`send_listener`] (state with status "creating", the init's pid,
//!   `listenerMetadata`) and closes its copy; the init closes its own. The syscalls the init
//!   makes between `load()` and execve are filtered: a notified one waits for the agent, which
//!   is why NOTIFY on `write` is refused (as runc) and the fd must leave first.
//! - `capsa exec` applies the container's filter to the new process the same way.
//!
//! # How the program is built, and why not with seccompiler alone
//!
//! seccompiler (0.5) compiles a filter of one ABI where every rule shares one match action. OCI
//! needs a different action per rule (including NOTIFY, which seccompiler lacks), several ABIs in
//! one program (x86_64 with i386 and x32) and Docker's ~370-syscall profile under the kernel's
//! 4096-instruction limit (seccompiler spends 5 instructions on an argument-less syscall; three
//! ABIs of that do not fit). So capsa writes the outer program itself (arch dispatch, one
//! segment per `syscalls[]` entry, first match wins, a binary search over the syscalls of an
//! entry without arguments; see program.rs) and uses seccompiler for what
//! it does well: the argument conditions (64-bit comparisons split into 32-bit halves, masked
//! equality), compiled with stand-in actions whose `ret` instructions are rewritten in place.
//! Syscall names are resolved with tables generated from the kernel UAPI headers
//! (gen_syscalls.py), since seccompiler keeps its own tables private.
//!
//! # Semantics
//!
//! - Architectures: the native ABI always; listed ones this machine can run get rules too (x86
//!   and x32 on x86_64). An ABI that is not covered is killed (KILL_PROCESS), as libseccomp's
//!   default bad-arch action; so are x32 syscalls when x32 is not listed. Listed architectures
//!   the machine cannot run need no code.
//! - Unknown syscall names (in every covered ABI) are skipped with a warning, as runc does.
//! - `args` of one entry are ANDed, unless one argument index has two or more conditions:
//!   then each condition is a rule of its own and they are ORed, as runc and crun read
//!   them. Several entries for one syscall are tried in config order, the first whose
//!   arguments match decides.
//! - A syscall numbered past every syscall the profile names returns ENOSYS instead of a
//!   refusing default (for the ABIs `architectures` lists, unless the default is ENOSYS
//!   already), as runc's patched filters do: programs fall back from syscalls newer than
//!   the profile (glibc's clone3 to clone) instead of failing with EPERM.
//! - On 32-bit ABIs (x86) conditions compare the low 32 bits.
//! - ERRNO and TRACE default to EPERM; errnoRet with another action is ignored with a warning
//!   (as runc).
//! - Flags: TSYNC, LOG, SPEC_ALLOW, WAIT_KILLABLE_RECV (with a listener only); NEW_LISTENER is
//!   added for NOTIFY (and TSYNC_ESRCH when TSYNC is also asked, which the kernel requires).

mod arch;
mod bpf;
mod features;
mod listener;
mod program;
mod rules;
mod syscalls;
// capsa has syscall tables for these two.
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests;

use std::io;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use std::path::PathBuf;

use oci_spec::runtime::LinuxSeccomp;
use seccompiler::sock_filter;

use crate::syscall::{SeccompLoaded, Syscall};

pub use features::features;
pub use listener::{process_state_json, send_listener};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: compiling the argument conditions: {source}")]
    Backend {
        field: String,
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("the seccomp filter needs {0} BPF instructions, the kernel takes at most 4096")]
    TooLarge(usize),
    #[error("loading the seccomp filter (seccomp(2) flags {flags:#x}){hint}")]
    Load {
        flags: libc::c_ulong,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("loading the seccomp filter: thread {0} could not be synchronised (TSYNC)")]
    ThreadSync(libc::c_long),
    #[error("seccomp listener {path}: {what}: {source}")]
    Listener {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The syscall names capsa resolves on the native ABI (empty where seccomp is unsupported).
pub fn syscall_names() -> impl Iterator<Item = &'static str> {
    arch::native()
        .map(arch::Abi::table)
        .unwrap_or_default()
        .iter()
        .map(|(name, _)| *name)
}

/// A validated, compiled filter, ready to load after fork without allocating.
#[derive(Clone, Debug)]
pub struct CompiledFilter {
    /// In the kernel's layout (seccompiler's `sock_filter` has the same fields).
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    notify: bool,
}

/// Validates `seccomp` and builds its BPF program.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<CompiledFilter, SeccompError> {
    let validated = rules::validate(seccomp)?;
    let program = program::build(&validated)?
        .into_iter()
        .map(|i: sock_filter| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    Ok(CompiledFilter {
        program,
        flags: validated.flags,
        notify: validated.notify,
    })
}

impl CompiledFilter {
    /// Installs the filter on the calling thread (all threads with TSYNC). Needs
    /// no_new_privs or CAP_SYS_ADMIN. Returns the notify listener fd when a rule uses NOTIFY.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        self.load_with(&crate::syscall::Linux)
    }

    /// `load` through `sys`.
    pub(crate) fn load_with(&self, sys: &dyn Syscall) -> Result<Option<OwnedFd>, SeccompError> {
        match sys.seccomp_set_filter(self.flags, &self.program) {
            Err(errno) => {
                let hint = match errno {
                    Errno::EACCES => ": needs noNewPrivileges or CAP_SYS_ADMIN",
                    Errno::EINVAL => ": a flag or action this kernel does not support",
                    Errno::ESRCH => ": another thread could not be synchronised (TSYNC)",
                    _ => "",
                };
                Err(SeccompError::Load {
                    flags: self.flags,
                    hint,
                    source: io::Error::from(errno),
                })
            }
            Ok(SeccompLoaded::Listener(fd)) => Ok(Some(fd)),
            Ok(SeccompLoaded::ThreadNotSynced(tid)) => Err(SeccompError::ThreadSync(tid)),
            Ok(SeccompLoaded::Installed) => Ok(None),
        }
    }

    /// Whether a rule uses SCMP_ACT_NOTIFY (so [`load`](Self::load) returns a listener fd).
    pub fn has_notify(&self) -> bool {
        self.notify
    }

    /// The seccomp(2) flags the filter is loaded with.
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The program, for inspection (`(code, jt, jf, k)` per instruction).
    pub fn instructions(&self) -> impl Iterator<Item = (u16, u8, u8, u32)> + '_ {
        self.program.iter().map(|i| (i.code, i.jt, i.jf, i.k))
    }
}
