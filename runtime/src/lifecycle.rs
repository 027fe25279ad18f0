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

/// Release the init: one byte into the exec fifo, then remove the fifo (the container now
/// counts as running), then the poststart hooks.
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
    wait_consumed(&f);
    let _ = std::fs::remove_file(&fifo);
    let state = c.hook_state(Status::Running);
    if let Some(h) = c.saved.config.hooks() {
        if let Err(e) = hooks::run_all("poststart", h.poststart().as_ref(), &state) {
            tracing::warn!("{e}");
        }
    }
    Ok(())
}

/// Until the init has read the byte (or died): a few ms at most.
fn wait_consumed(f: &std::fs::File) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if crate::syscall::bytes_unread(f.as_fd()).map_or(true, |n| n == 0) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Send `sig` to the init, or with `all` to every process of the container's cgroup.
pub fn kill(c: &Container, sig: Signal, all: bool) -> Result<()> {
    let status = c.status();
    if status == Status::Stopped && !all {
        return Err(bad_status(c, status, "cannot kill a stopped container"));
    }
    if all {
        let cg = Cgroup::open(&c.saved.cgroup_path, false, c.id())?;
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
        let cg = Cgroup::open(&c.saved.cgroup_path, false, c.id())?;
        let _ = cg.freeze(false);
    }
    Ok(())
}

/// Remove a stopped (or, with `force`, any) container: processes, cgroup, poststop hooks,
/// state dir.
pub fn delete(c: Container, force: bool) -> Result<()> {
    let status = c.status();
    // The spec: deleting a container that is not stopped is an error with no effect.
    if status != Status::Stopped && !force {
        return Err(Error::Other(format!(
            "cannot delete container {} that is not stopped: {status}",
            c.id()
        )));
    }
    if let Some(pid) = c.live_pid() {
        let cg = Cgroup::open(&c.saved.cgroup_path, false, c.id())?;
        let _ = cg.freeze(false);
        let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
        wait_gone(&c, Duration::from_secs(10));
    }
    let cg = Cgroup::open(&c.saved.cgroup_path, false, c.id())?;
    cg.destroy(&c.saved.cgroup_path)?;
    let state = c.hook_state(Status::Stopped);
    if let Some(h) = c.saved.config.hooks() {
        if let Err(e) = hooks::run_all("poststop", h.poststop().as_ref(), &state) {
            tracing::warn!("{e}");
        }
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
