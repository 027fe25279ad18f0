//! The operations on an existing container: start, kill, delete, and waiting for the
//! init to go away.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

use crate::cgroups::Cgroup;
use crate::state::{Container, Status};
use crate::{hooks, Error, Result};

fn bad_status(c: &Container, status: Status, what: &str) -> Error {
    Error::BadStatus {
        id: c.id().into(),
        status: status.to_string(),
        what: what.into(),
    }
}

/// Release the init: one byte into the exec fifo, wait for the exec, remove the fifo (the
/// container now counts as running), then the poststart hooks.
pub fn start(c: &Container) -> Result<()> {
    let status = c.status();
    if status != Status::Created {
        return Err(bad_status(
            c,
            status,
            "cannot start a container that is not created",
        ));
    }
    let fifo = c.dir.fifo_path();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| Error::io("open exec fifo", &fifo, e))?;
    f.write_all(&[0])
        .map_err(|e| Error::io("write exec fifo", &fifo, e))?;
    wait_exec(&f);
    let _ = std::fs::remove_file(&fifo);
    let state = c.hook_state(Status::Running);
    if let Some(h) = c.saved.config.hooks() {
        hooks::run_all_warn("poststart", h.poststart().as_ref(), &state);
    }
    Ok(())
}

/// Until the init has exec'd the container's process (or died): its exec.fifo descriptor
/// is close-on-exec, and a fifo writer sees POLLERR once no reader is left. So poststart
/// hooks run only after the process really started.
fn wait_exec(f: &std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(n) if n > 0 => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Send `sig` to the init, or with `all` to every process of the container's cgroup.
pub fn kill(c: &Container, sig: Signal, all: bool) -> Result<()> {
    let status = c.status();
    if status == Status::Stopped && !all {
        return Err(bad_status(c, status, "cannot kill a stopped container"));
    }
    if all {
        let cg = Cgroup::of(&c.saved, false)?;
        for pid in cg.pids().unwrap_or_default() {
            let _ = send_signal(Pid::from_raw(pid), sig);
        }
        if status == Status::Paused && (sig == Signal::SIGKILL || sig == Signal::SIGTERM) {
            let _ = cg.freeze(false);
        }
        return Ok(());
    }
    let pid = c
        .live_pid()
        .ok_or_else(|| bad_status(c, Status::Stopped, "cannot kill it"))?;
    send_signal(Pid::from_raw(pid), sig)
        .map_err(|e| Error::sys(format!("kill {pid} with {sig}"), e))?;
    if status == Status::Paused && sig == Signal::SIGKILL {
        // A frozen task cannot die: thaw so the kill takes effect (runc#3217).
        let cg = Cgroup::of(&c.saved, false)?;
        let _ = cg.freeze(false);
    }
    Ok(())
}

/// Remove a stopped (or, with `force`, any) container: processes, cgroup, poststop hooks,
/// state dir.
pub fn delete(c: Container, force: bool) -> Result<()> {
    delete_with(c, force, None)
}

/// `delete`, reusing a cgroup handle the caller already has (`run` keeps create's).
pub fn delete_with(c: Container, force: bool, cgroup: Option<Cgroup>) -> Result<()> {
    let status = c.status();
    // The spec: deleting a container that is not stopped is an error with no effect.
    if status != Status::Stopped && !force {
        return Err(Error::Other(format!(
            "cannot delete container {} that is not stopped: {status}",
            c.id()
        )));
    }
    // Opening the cgroup parses the host's mounts for every controller: once is enough.
    let cg = match cgroup {
        Some(cg) => cg,
        None => Cgroup::of(&c.saved, false)?,
    };
    if let Some(pid) = c.live_pid() {
        if status == Status::Paused {
            let _ = cg.freeze(false);
        }
        let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
        wait_gone(&c, Duration::from_secs(10));
    }
    cg.destroy(&c.saved.cgroup_path)?;
    let state = c.hook_state(Status::Stopped);
    if let Some(h) = c.saved.config.hooks() {
        hooks::run_all_warn("poststop", h.poststop().as_ref(), &state);
    }
    c.dir.remove()
}

/// Poll until the init is gone (dead or a zombie); it is not our child, so no waitpid.
fn wait_gone(c: &Container, limit: Duration) {
    let deadline = Instant::now() + limit;
    while c.live_pid().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Parse a signal as runc does: "9", "KILL", "SIGKILL", "sigkill".
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::Other(format!("invalid signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| Error::Other(format!("invalid signal {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
