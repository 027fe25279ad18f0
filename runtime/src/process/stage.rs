//! The first stage's fork, shared by a two-stage `create` and by `exec`: pid and time
//! namespaces apply to children only, so the process that becomes the init (or the exec'd
//! process) is forked once the namespaces are joined.

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};

use crate::channel::{Channel, Msg};
use crate::error::SysContext;
use crate::syscall::{exit_now, Forked, Syscall};
use crate::Result;

/// Fork the process; returns in the child only (sync 1b). The first stage reports the
/// child's pid and exits without reading the channel again; the child waits for the
/// parent's answer before anything else, so none of its messages can overtake its pid.
pub fn fork_process(ch: &Channel, sys: &dyn Syscall) -> Result<()> {
    match sys
        .clone_process(CloneFlags::empty())
        .ctx(|| "fork the container's process".into())?
    {
        Forked::Parent(pid) => {
            if ch.send(&Msg::InitPid(pid.as_raw())).is_err() {
                // Nobody will answer the child: it must not wait for ever.
                let _ = kill(pid, Signal::SIGKILL);
                exit_now(1)
            }
            exit_now(0)
        }
        Forked::Child => ch.expect(Msg::Proceed),
    }
}
