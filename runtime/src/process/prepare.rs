//! What `create` and `exec` work out before they fork, the same way for both: every check
//! of the process that can fail is made here, in the parent, so a bad config fails before
//! anything exists; the child gets the results ready to apply, without allocating.

use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use crate::capabilities::Sets;
use crate::namespaces::Plan;
use crate::seccomp::CompiledFilter;
use crate::{console, lsm, rlimits, Error, Result};

/// The process' capabilities and seccomp filter, checked and compiled.
pub struct ProcessPlan {
    pub caps: Option<Sets>,
    pub seccomp: Option<CompiledFilter>,
}

impl ProcessPlan {
    pub fn new(process: &Process, seccomp: Option<&LinuxSeccomp>) -> Result<ProcessPlan> {
        lsm::check(process)?;
        rlimits::validate(process.rlimits().as_deref().unwrap_or_default())?;
        let caps = process
            .capabilities()
            .as_ref()
            .map(Sets::from_spec)
            .transpose()?;
        let seccomp = seccomp
            .map(crate::seccomp::compile)
            .transpose()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(ProcessPlan { caps, seccomp })
    }

    /// Whether the filter hands a notify listener to the parent (sync 2a).
    pub fn seccomp_listener(&self) -> bool {
        self.seccomp
            .as_ref()
            .is_some_and(CompiledFilter::has_notify)
    }
}

/// `process` of a config: required.
pub fn process_of(spec: &Spec) -> Result<&Process> {
    spec.process()
        .as_ref()
        .ok_or_else(|| Error::Config("process: missing".into()))
}

/// Every check `create` makes on a config before it touches the system: the spec's own
/// rules, the namespace plan, the process (LSM, rlimits, capabilities, seccomp).
pub fn check_config(spec: &Spec, rootfs: &Path) -> Result<()> {
    crate::spec::validate(spec, rootfs)?;
    Plan::from_spec(spec)?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    ProcessPlan::new(process_of(spec)?, seccomp).map(drop)
}

/// Where a terminal's pty master goes: the child's end of the caller's
/// `--console-socket`, or, for a terminal in the foreground without one, a socketpair
/// whose other end (`ours`) `run`/`exec` serve the terminal from.
#[derive(Default)]
pub struct ConsoleSockets {
    pub child: Option<UnixStream>,
    pub ours: Option<UnixStream>,
}

/// Checked before anything is made: a terminal needs a console socket unless we serve
/// it in the foreground, and a console socket needs a terminal.
pub fn check_terminal(terminal: bool, socket: Option<&Path>, foreground: bool) -> Result<()> {
    match (terminal, socket.is_some()) {
        (true, false) if !foreground => Err(Error::Config(
            "process.terminal is true: --console-socket is required".into(),
        )),
        (false, true) => Err(Error::Config(
            "--console-socket was given but process.terminal is false".into(),
        )),
        _ => Ok(()),
    }
}

/// The sockets for `check_terminal`'s cases.
pub fn console_sockets(terminal: bool, socket: Option<&Path>) -> Result<ConsoleSockets> {
    match (terminal, socket) {
        (_, Some(path)) => Ok(ConsoleSockets {
            child: Some(console::connect(path)?),
            ours: None,
        }),
        (true, None) => {
            let (ours, child) =
                UnixStream::pair().map_err(|e| Error::Other(format!("console socketpair: {e}")))?;
            Ok(ConsoleSockets {
                child: Some(child),
                ours: Some(ours),
            })
        }
        (false, None) => Ok(ConsoleSockets::default()),
    }
}
