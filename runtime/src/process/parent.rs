//! `capsa create`, the parent's side. One function, one step per line; `// sync N` marks
//! the points that match `child::init`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::{child, idmap, CreateOptions};
use crate::cgroups::delegation::{self, Decision};
use crate::cgroups::{self, Cgroup};
use crate::channel::{self, Msg};
use crate::namespaces::Plan;
use crate::spec::Bundle;
use crate::state::{self, ContainerDir, Saved, Status};
use crate::syscall::{clone_process, Forked};
use crate::utils::write_atomic;
use crate::{hooks, rlimits, Error, Result};

/// Undo a half-made container on any error: no process, cgroup or state dir is left.
struct Cleanup {
    dir: Option<ContainerDir>,
    cgroup: Option<(Cgroup, PathBuf)>,
    pids: Vec<i32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some((cg, path)) = self.cgroup.take() {
            if let Err(e) = cg.destroy(&path) {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

/// What `create` leaves to its caller.
pub struct Created {
    pub pid: i32,
    /// `run` in the foreground with a terminal and no --console-socket: our end of the
    /// console socket, on which the pty master arrives.
    pub console: Option<std::os::unix::net::UnixStream>,
    /// The container's cgroup, for a `run` that deletes the container when it exits.
    pub cgroup: Cgroup,
    /// What was saved in state.json, so `run` need not read it back.
    pub saved: Saved,
}

/// Create the container; returns the init's pid with the init waiting for `start`.
pub fn create(opts: &CreateOptions) -> Result<Created> {
    let bundle = Bundle::load(&opts.bundle)?;
    let spec = &bundle.spec;
    let plan = Plan::from_spec(spec)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process: missing".into()))?;
    crate::lsm::check(process)?;
    let terminal = process.terminal().unwrap_or(false);
    check_terminal(terminal, opts)?;
    rlimits::validate(process.rlimits().as_deref().unwrap_or_default())?;
    let caps = process
        .capabilities()
        .as_ref()
        .map(crate::capabilities::Sets::from_spec)
        .transpose()?;
    let seccomp_cfg = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let seccomp = seccomp_cfg
        .map(crate::seccomp::compile)
        .transpose()
        .map_err(|e| Error::Config(e.to_string()))?;

    let dir = ContainerDir::create(&opts.root, &opts.id)?;
    let mut cleanup = Cleanup {
        dir: None,
        cgroup: None,
        pids: Vec::new(),
    };
    let fifo_path = dir.fifo_path();
    let lock_fd = dir.lock_fd();
    cleanup.dir = Some(dir);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::sys(format!("mkfifo {}", fifo_path.display()), e))?;
    let fifo: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo_path)
        .map_err(|e| Error::io("open", &fifo_path, e))?
        .into();
    let (console, own_console) = match opts.console_socket.as_deref() {
        Some(path) => (Some(crate::console::connect(path)?), None),
        None if terminal => {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()
                .map_err(|e| Error::Other(format!("console socketpair: {e}")))?;
            (Some(theirs), Some(ours))
        }
        None => (None, None),
    };
    let cgroup_path = cgroups::path_for(spec, &opts.id);
    let resources = resources_for(spec, opts.rootless);
    let cgroup = match delegation::decide(&cgroup_path, opts.rootless, resources.as_ref())? {
        Decision::Skip(_) => Cgroup::none(0),
        Decision::Manage => {
            // Recorded before the cgroup exists: a create killed before it saved its state
            // leaves this, and `delete --force` removes the cgroup from it.
            if let Some(dir) = &cleanup.dir {
                dir.record_cgroup(&cgroup_path)?;
            }
            Cgroup::open(&cgroup_path, opts.systemd_cgroup, &opts.id)?
        }
    };
    if opts.foreground && plan.two_stage {
        // The init will be a grandchild: let it be reparented to us, so `run` can wait.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("set child subreaper", e))?;
    }
    let (parent_ch, child_ch) = channel::pair()?;

    let pid =
        match clone_process(plan.clone_flags).map_err(|e| Error::sys("clone container init", e))? {
            Forked::Child => {
                drop(parent_ch);
                child::init(child::Args {
                    spec,
                    rootfs: &bundle.rootfs,
                    bundle: &bundle.dir,
                    plan: &plan,
                    caps: caps.as_ref(),
                    seccomp: seccomp.as_ref(),
                    channel: child_ch,
                    fifo,
                    console,
                    lock_fd,
                    opts,
                })
            }
            Forked::Parent(pid) => pid.as_raw(),
        };
    drop(child_ch);
    drop(fifo);
    drop(console);
    cleanup.pids.push(pid);

    // The limits are applied while the init mounts (it runs no container code before
    // `start`); placing it first keeps its cgroup namespace rooted at its cgroup.
    let prefetch = resources.as_ref().and_then(|_| cgroup.prefetch());
    let no_cgroup = cgroup.is_none();
    let cgroup = &cleanup.cgroup.insert((cgroup, cgroup_path.clone())).0;
    cgroup.enter(pid, resources.as_ref())?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| Error::Other(format!("process.oomScoreAdj {adj}: {e}")))?;
    }
    if plan.new_user && !plan.two_stage {
        idmap::write(pid, spec)?;
    }
    parent_ch.send(&Msg::Proceed)?; // sync 1
                                    // The limits go on once the init has made its mounts and device nodes (a devices
                                    // cgroup that denies mknod would stop it), before any hook or container code runs:
                                    // at the first of sync 2, 2a or 3, as runc sets them at procReady.
    let mut pending_limits = Some(prefetch);

    let mut init_pid = pid;
    let mut saved = Saved {
        id: opts.id.clone(),
        pid,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        owner: crate::user::name_of(nix::unistd::geteuid().as_raw()),
        cgroup_path: cgroup_path.clone(),
        no_cgroup,
        config: spec.clone(),
    };
    loop {
        let (msg, fd) = match parent_ch.recv_with_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        if matches!(
            msg,
            Some(Msg::RunCreateRuntimeHooks | Msg::SeccompListener | Msg::Created)
        ) {
            if let Some(prefetch) = pending_limits.take() {
                cgroup.limit(resources.as_ref(), prefetch)?;
            }
        }
        match msg {
            Some(Msg::MapIds) => {
                // sync 1a
                idmap::write(pid, spec)?;
                parent_ch.send(&Msg::Proceed)?;
            }
            Some(Msg::InitPid(p)) => {
                // sync 1b: the first stage exits; the init is its child.
                init_pid = p;
                cleanup.pids.insert(0, p);
                let _ = waitpid(Pid::from_raw(pid), None);
                cleanup.pids.retain(|&x| x != pid);
            }
            Some(Msg::RunCreateRuntimeHooks) => {
                // sync 2
                saved.pid = init_pid;
                // runtime-tools expects "created" in the state the create-time hooks read.
                let state = state::hook_state_json(&saved, Status::Created);
                if let Some(h) = spec.hooks() {
                    hooks::run_all("prestart", h.prestart().as_ref(), &state)?;
                    hooks::run_all("createRuntime", h.create_runtime().as_ref(), &state)?;
                }
                parent_ch.send(&Msg::HooksDone(state))?;
            }
            Some(Msg::SeccompListener) => {
                // sync 2a
                let fd =
                    fd.ok_or_else(|| Error::Other("sync: seccomp listener without fd".into()))?;
                saved.pid = init_pid;
                send_seccomp_listener(seccomp_cfg, &saved, init_pid, fd)?;
            }
            Some(Msg::Created) => break, // sync 3
            Some(Msg::Error(e)) => return Err(Error::Init(e)),
            Some(m) => return Err(Error::Other(format!("sync: unexpected {m:?} from init"))),
            None => return Err(Error::Other(init_death(pid))),
        }
    }

    saved.pid = init_pid;
    saved.pid_start = state::proc_stat(init_pid)
        .map(|(_, s)| s)
        .ok_or_else(|| Error::Other("container init died during create".into()))?;
    let dir = cleanup
        .dir
        .as_ref()
        .ok_or_else(|| Error::Other("state dir lost".into()))?;
    dir.save(&saved)?;
    if let Some(p) = &opts.pid_file {
        write_atomic(p, init_pid.to_string().as_bytes())?;
    }
    parent_ch.send(&Msg::Ack)?; // sync 3 answer
                                // The init clears its parent-death signal, then closes its end.
    while parent_ch.recv()?.is_some() {}

    cleanup.pids.clear();
    let (cgroup, _) = cleanup
        .cgroup
        .take()
        .ok_or_else(|| Error::Other("cgroup handle lost".into()))?;
    if let Some(dir) = cleanup.dir.take() {
        drop(dir); // releases the lock
    }
    Ok(Created {
        pid: init_pid,
        console: own_console,
        cgroup,
        saved,
    })
}

/// The config's resources; rootless without device rules, which only root can apply
/// (runc ignores them there too; the user namespace keeps the container from mknod).
fn resources_for(spec: &oci_spec::runtime::Spec, rootless: bool) -> Option<LinuxResources> {
    let mut r = spec.linux().as_ref()?.resources().clone()?;
    if rootless && r.devices().is_some() {
        tracing::debug!("rootless: linux.resources.devices not applied");
        r.set_devices(None);
    }
    Some(r)
}

/// Hand the notify listener to `linux.seccomp.listenerPath` with the container's state.
fn send_seccomp_listener(
    cfg: Option<&oci_spec::runtime::LinuxSeccomp>,
    saved: &Saved,
    pid: i32,
    fd: OwnedFd,
) -> Result<()> {
    let cfg = cfg.ok_or_else(|| Error::Other("seccomp listener without linux.seccomp".into()))?;
    let path = cfg.listener_path().as_ref().ok_or_else(|| {
        Error::Config("linux.seccomp.listenerPath: required with SCMP_ACT_NOTIFY".into())
    })?;
    let state: oci_spec::runtime::State =
        serde_json::from_str(&state::hook_state_json(saved, Status::Creating))
            .map_err(|e| Error::Other(format!("seccomp listener state: {e}")))?;
    crate::seccomp::send_listener(
        path,
        &state,
        pid,
        cfg.listener_metadata().as_deref(),
        fd.as_fd(),
    )
    .map_err(|e| Error::Other(format!("linux.seccomp.listenerPath: {e}")))
}

fn check_terminal(terminal: bool, opts: &CreateOptions) -> Result<()> {
    match (terminal, opts.console_socket.is_some()) {
        (true, false) if opts.foreground => Ok(()),
        (true, false) => Err(Error::Config(
            "process.terminal is true: --console-socket is required".into(),
        )),
        (false, true) => Err(Error::Config(
            "--console-socket was given but process.terminal is false".into(),
        )),
        _ => Ok(()),
    }
}

/// Why the init went away without a word: its exit status.
fn init_death(pid: i32) -> String {
    match waitpid(Pid::from_raw(pid), None) {
        Ok(s) => format!("container init exited during create: {s:?}"),
        Err(e) => format!("container init went away during create: {e}"),
    }
}
