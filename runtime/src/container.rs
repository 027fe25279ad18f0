//! A container that exists: what `create` saved, its state directory (locked while this
//! value lives), the status derived from its live init, and the lifecycle rules of the
//! commands that act on it (start, kill, pause, resume, delete).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

use crate::cgroups::{self, Cgroup};
use crate::process::{parent, wait, CreateOptions};
use crate::state::{hook_state_json, process_alive, ContainerDir, OciState, Saved, Status};
use crate::{hooks, Error, Result};

pub struct Container {
    pub dir: ContainerDir,
    pub saved: Saved,
}

impl Container {
    /// Lock `id`'s directory (shared for commands that only read or add a process,
    /// exclusive for those that change the container) and read what create saved.
    pub fn load(root: &Path, id: &str, exclusive: bool) -> Result<Container> {
        let dir = ContainerDir::open(root, id, exclusive)?;
        let saved = dir.load()?;
        Ok(Container { dir, saved })
    }

    /// Lock the container's directory again, with what create saved still in hand.
    pub fn reopen(root: &Path, saved: Saved) -> Result<Container> {
        let dir = ContainerDir::open(root, &saved.id, true)?;
        Ok(Container { dir, saved })
    }

    pub fn id(&self) -> &str {
        &self.saved.id
    }

    /// The init's pid while it is alive (and is still the same process).
    pub fn live_pid(&self) -> Option<i32> {
        let pid = self.saved.pid;
        (pid > 0 && process_alive(pid, self.saved.pid_start)).then_some(pid)
    }

    pub fn status(&self) -> Status {
        if self.live_pid().is_none() {
            return Status::Stopped;
        }
        if self.dir.fifo_path().exists() {
            return Status::Created;
        }
        if !self.saved.no_cgroup && cgroups::is_frozen(&self.saved.cgroup_path) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: crate::state::OCI_VERSION,
            id: &self.saved.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.saved.pid
            },
            status: status.as_str(),
            bundle: &self.saved.bundle,
            rootfs: &self.saved.rootfs,
            created: &self.saved.created,
            owner: &self.saved.owner,
            annotations: self.saved.config.annotations().as_ref(),
        }
    }

    /// The OCI state JSON given to hooks on stdin.
    pub fn hook_state(&self, status: Status) -> String {
        hook_state_json(&self.saved, status)
    }

    /// The container's cgroup, as `create` recorded it.
    pub fn cgroup(&self) -> Result<Cgroup> {
        if self.saved.no_cgroup {
            return Ok(Cgroup::none(self.saved.pid));
        }
        Cgroup::open(&self.saved.cgroup_path, self.saved.systemd, &self.saved.id)
    }

    /// Let go of the lock, keeping what create saved: for a command that goes on for a
    /// long time (events) or may wait on the container's own processes (exec, whose new
    /// process freezes in a paused container until `resume`, which needs the lock).
    pub fn release(self) -> Saved {
        drop(self.dir);
        self.saved
    }

    fn bad_status(&self, status: Status, what: &str) -> Error {
        Error::BadStatus {
            id: self.id().into(),
            status: status.to_string(),
            what: what.into(),
        }
    }

    /// Release the init: one byte into the exec fifo, wait for the exec, remove the fifo
    /// (the container now counts as running), then the poststart hooks.
    pub fn start(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.bad_status(status, "cannot start a container that is not created"));
        }
        let fifo = self.dir.fifo_path();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(|e| Error::io("open exec fifo", &fifo, e))?;
        f.write_all(&[0])
            .map_err(|e| Error::io("write exec fifo", &fifo, e))?;
        wait_exec(&f);
        let _ = std::fs::remove_file(&fifo);
        tracing::debug!("{}: started", self.id());
        if let Some(h) = self.saved.config.hooks() {
            let state = self.hook_state(Status::Running);
            hooks::run_all_warn("poststart", h.poststart().as_ref(), &state);
        }
        Ok(())
    }

    /// Send `sig` to the init, or with `all` to every process of the container's cgroup.
    /// `None` is signal 0: nothing is sent, only whether the target exists is checked.
    pub fn kill(&self, sig: Option<Signal>, all: bool) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(self.bad_status(status, "cannot kill a stopped container"));
        }
        let frozen = status == Status::Paused;
        if all {
            let cg = self.cgroup()?;
            for pid in cg.pids().unwrap_or_default() {
                let _ = send_signal(Pid::from_raw(pid), sig);
            }
            if frozen && matches!(sig, Some(Signal::SIGKILL | Signal::SIGTERM)) {
                let _ = cg.freeze(false);
            }
            return Ok(());
        }
        let pid = self
            .live_pid()
            .ok_or_else(|| self.bad_status(Status::Stopped, "cannot kill it"))?;
        send_signal(Pid::from_raw(pid), sig).map_err(|e| {
            let name = sig.map_or("signal 0", Signal::as_str);
            Error::sys(format!("kill {pid} with {name}"), e)
        })?;
        if frozen && sig == Some(Signal::SIGKILL) {
            // A frozen task cannot die: thaw so the kill takes effect (runc#3217).
            let _ = self.cgroup()?.freeze(false);
        }
        Ok(())
    }

    /// Freeze every process (a running or created container).
    pub fn pause(&self) -> Result<()> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(self.bad_status(status, "cannot pause it"));
        }
        self.cgroup()?.freeze(true)
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Paused {
            return Err(self.bad_status(status, "not paused"));
        }
        self.cgroup()?.freeze(false)
    }

    /// Remove a stopped (or, with `force`, any) container: processes, cgroup, poststop
    /// hooks, state dir.
    pub fn delete(self, force: bool) -> Result<()> {
        self.delete_with(force, None)
    }

    /// `delete`, reusing a cgroup handle the caller already has (`run` keeps create's:
    /// opening one reads the host's mount table).
    fn delete_with(self, force: bool, cgroup: Option<Cgroup>) -> Result<()> {
        let status = self.status();
        // The spec: deleting a container that is not stopped is an error with no effect.
        if status != Status::Stopped && !force {
            return Err(Error::NotStopped {
                id: self.id().into(),
                status: status.to_string(),
            });
        }
        let cg = match cgroup {
            Some(cg) => cg,
            None => self.cgroup()?,
        };
        if let Some(pid) = self.live_pid() {
            if status == Status::Paused {
                let _ = cg.freeze(false);
            }
            let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
            self.wait_gone(Duration::from_secs(10));
        }
        cg.destroy(&self.saved.cgroup_path)?;
        tracing::debug!(
            "{}: cgroup {} removed",
            self.id(),
            self.saved.cgroup_path.display()
        );
        if let Some(h) = self.saved.config.hooks() {
            let state = self.hook_state(Status::Stopped);
            hooks::run_all_warn("poststop", h.poststop().as_ref(), &state);
        }
        self.dir.remove()
    }

    /// Poll until the init is gone (dead or a zombie); it is not our child, so no waitpid.
    fn wait_gone(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.live_pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `run`: create, start, and unless `detach`, wait for the init and return its exit
/// status, deleting the container afterwards unless `keep`.
pub fn run(opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let created = parent::create(opts)?;
    let pid = created.pid;
    // What create saved is still in hand: lock the directory again without re-reading it.
    let c = Container::reopen(&opts.root, created.saved.clone())?;
    if let Err(e) = c.start() {
        let _ = c.delete_with(true, Some(created.cgroup));
        return Err(e);
    }
    drop(c);
    if detach {
        return Ok(0);
    }
    let master = created
        .console
        .as_ref()
        .map(wait::receive_pty_master)
        .transpose()?;
    let code = wait::wait_forwarding(pid, master)?;
    if !keep {
        Container::reopen(&opts.root, created.saved)?.delete_with(true, Some(created.cgroup))?;
    }
    Ok(code)
}

/// `delete --force` of `id`, whatever state it is in: it must not wait for ever for the
/// lock, and must also remove a container whose create was killed before it saved its
/// state (only a directory, and maybe a cgroup with a half-made init in it).
pub fn force_delete(root: &Path, id: &str) -> Result<()> {
    kill_lock_holders(root, id);
    match Container::load(root, id, true) {
        Ok(c) => c.delete(true),
        Err(Error::NotExist(_)) => {
            if crate::utils::validate_id(id).is_ok() {
                let dir = root.join(id);
                if let Ok(p) = std::fs::read_to_string(dir.join(crate::state::CGROUP_FILE)) {
                    let path = PathBuf::from(p);
                    Cgroup::open(&path, false, id)?.destroy(&path)?;
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The holder of a container's lock may be stuck on the container itself: an
/// `exec --ignore-paused` whose half-made process is frozen in the paused cgroup, or a
/// create whose init cannot proceed. Thawing and killing everything in the container's
/// cgroup lets such a holder fail and let go (a create in progress then fails and cleans
/// up: forced, the container goes, whatever its stage). Best effort: the locked delete
/// that follows does the real work.
fn kill_lock_holders(root: &Path, id: &str) {
    if !ContainerDir::is_locked(root, id) {
        return;
    }
    let Some(path) = ContainerDir::peek_cgroup(root, id) else {
        return;
    };
    tracing::debug!("{id} is locked: killing what is in {}", path.display());
    if let Ok(cg) = Cgroup::open(&path, false, id) {
        if cgroups::is_frozen(&path) {
            let _ = cg.freeze(false);
        }
        for pid in cg.pids().unwrap_or_default() {
            let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
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

/// Parse a signal as runc does: "9", "KILL", "SIGKILL", "sigkill"; "0" is `None`, the
/// null signal that only checks the process exists (`kill -a ID 0`).
pub fn parse_signal(s: &str) -> Result<Option<Signal>> {
    if let Ok(n) = s.parse::<i32>() {
        if n == 0 {
            return Ok(None);
        }
        return Signal::try_from(n)
            .map(Some)
            .map_err(|_| Error::InvalidSignal(s.into()));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map(Some)
        .map_err(|_| Error::InvalidSignal(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("KILL").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("0").unwrap(), None);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
