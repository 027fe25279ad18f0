//! Waiting in the foreground (`run`, `exec` without -d) for the container's process.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::{Error, Result};

/// Wait for `pid` (our child, or a grandchild reparented to us as subreaper), forwarding
/// the usual signals to it; its exit status (128+N when killed by signal N) is returned.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Error::sys("block signals", e))?;
    let sfd = SignalFd::new(&set).map_err(|e| Error::sys("signalfd", e))?;
    loop {
        // Reap first: the init may have exited before the mask was set.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    return Ok(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        if let Some(info) = sfd
            .read_signal()
            .map_err(|e| Error::sys("read signalfd", e))?
        {
            let sig = info.ssi_signo as i32;
            if sig != libc::SIGCHLD {
                if let Ok(s) = Signal::try_from(sig) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), s);
                }
            }
        }
    }
}
