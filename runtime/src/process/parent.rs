//! `capsa create`, the parent's side: check everything, make the state dir, the exec fifo
//! and the cgroup, clone the init, then drive it through its sync points (`sync::drive`),
//! doing at each what `CreateSteps` says. Any error undoes all of it (`Cleanup`).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use super::prepare::{self, process_of, ProcessPlan};
use super::sync::{self, Shape, Steps};
use super::{child, idmap, CreateOptions};
use crate::cgroups::delegation::{self, Decision};
use crate::cgroups::{self, Cgroup, Prefetch};
use crate::channel;
use crate::error::SysContext;
use crate::namespaces::Plan;
use crate::rootfs;
use crate::spec::Bundle;
use crate::state::{self, ContainerDir, Saved, Status};
use crate::syscall::{Forked, Linux, Syscall};
use crate::utils::write_atomic;
use crate::{hooks, Error, Result};

/// What `create` leaves to its caller.
pub struct Created {
    pub pid: i32,
    /// `run` in the foreground with a terminal and no --console-socket: our end of the
    /// console socket, on which the pty master arrives.
    pub console: Option<UnixStream>,
    /// The container's cgroup, for a `run` that deletes the container when it exits.
    pub cgroup: Cgroup,
    /// What was saved in state.json, so `run` need not read it back.
    pub saved: Saved,
}

/// Create the container; returns with its init waiting for `start`.
pub fn create(opts: &CreateOptions) -> Result<Created> {
    create_with(opts, &Linux)
}

fn create_with(opts: &CreateOptions, sys: &dyn Syscall) -> Result<Created> {
    let bundle = Bundle::load(&opts.bundle)?;
    let spec = &bundle.spec;
    let plan = Plan::from_spec(spec)?;
    let process = process_of(spec)?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let process_plan = ProcessPlan::new(process, seccomp)?;
    let terminal = process.terminal().unwrap_or(false);
    prepare::check_terminal(terminal, opts.console_socket.as_deref(), opts.foreground)?;

    let mut cleanup = Cleanup::new(ContainerDir::create(&opts.root, &opts.id)?);
    let fifo = make_exec_fifo(&cleanup)?;
    let consoles = prepare::console_sockets(terminal, opts.console_socket.as_deref())?;
    let cgroup_path = cgroups::path_for(spec, &opts.id, opts.systemd_cgroup)?;
    let resources = resources_for(spec, opts.rootless);
    // Read once: the cgroup's v1 hierarchies and the init's cgroup mounts come from it.
    let host_mounts = capsa_linux::mountinfo::read();
    let cgroup = open_cgroup(
        &cleanup,
        &host_mounts,
        &cgroup_path,
        opts,
        resources.as_ref(),
    )?;
    // Rootless, the sources are the caller's own, and open_tree needs privilege.
    let bind_sources = match plan.new_user && !opts.rootless {
        true => rootfs::BindSources::open(spec, &bundle.dir)?,
        false => rootfs::BindSources::default(),
    };
    if opts.foreground && plan.two_stage {
        // The init will be a grandchild: let it be reparented to us, so `run` can wait.
        sys.set_child_subreaper()
            .ctx(|| "set child subreaper".into())?;
    }
    let (ch, child_ch) = channel::pair()?;

    let first = match sys
        .clone_process(plan.clone_flags)
        .ctx(|| "clone the container's init".into())?
    {
        Forked::Child => {
            drop(ch);
            // The state dir lock belongs to `capsa create`, not to the init outliving it.
            if let Some(dir) = cleanup.dir.take() {
                dir.close_in_child();
            }
            child::init(child::Args {
                bundle: &bundle,
                plan: &plan,
                process: &process_plan,
                channel: child_ch,
                fifo,
                console: consoles.child,
                bind_sources: &bind_sources,
                host_mounts: &host_mounts,
                opts,
                sys,
            })
        }
        Forked::Parent(pid) => pid.as_raw(),
    };
    drop((child_ch, fifo, consoles.child, bind_sources));
    cleanup.pids.push(first);
    let no_cgroup = cgroup.is_none();
    cleanup.cgroup = Some((cgroup, cgroup_path.clone()));

    let shape = Shape {
        ready_first: false,
        child_maps_ids: plan.two_stage && plan.new_user,
        forks: plan.fork_init,
        mounts: true,
        seccomp_listener: process_plan.seccomp_listener(),
    };
    let mut steps = CreateSteps {
        spec,
        plan: &plan,
        resources: resources.as_ref(),
        prefetch: None,
        saved: Saved::new(opts, &bundle, first, cgroup_path, no_cgroup),
        cleanup: &mut cleanup,
        pid_file: opts.pid_file.as_ref(),
        sys,
    };
    let pid = match sync::drive(&ch, shape, first, &mut steps) {
        Ok(pid) => pid,
        Err(Error::PeerGone { .. }) => return Err(init_death(first)),
        Err(e) => return Err(e),
    };
    let saved = steps.saved;
    // The init clears its parent-death signal, then closes its end.
    while ch.recv()?.is_some() {}
    tracing::debug!("{}: created, init {pid}", opts.id);
    let (cgroup, _) = cleanup.disarm();
    Ok(Created {
        pid,
        console: consoles.ours,
        cgroup,
        saved,
    })
}

/// The parent's side of each sync point of `create`.
struct CreateSteps<'a> {
    spec: &'a Spec,
    plan: &'a Plan,
    resources: Option<&'a LinuxResources>,
    /// libcgroups' manager, opened on a thread while the init mounts.
    prefetch: Option<Prefetch>,
    saved: Saved,
    cleanup: &'a mut Cleanup,
    pid_file: Option<&'a PathBuf>,
    sys: &'a dyn Syscall,
}

impl CreateSteps<'_> {
    fn cgroup(&self) -> &Cgroup {
        &self.cleanup.cgroup.as_ref().expect("set before the sync").0
    }
}

impl Steps for CreateSteps<'_> {
    /// sync 1: the cgroup first, so the init's cgroup namespace is rooted there.
    fn place(&mut self, child: i32) -> Result<()> {
        self.prefetch = self.cgroup().prefetch(self.resources);
        self.cgroup().enter(child, self.resources)?;
        if let Some(adj) = process_of(self.spec)?.oom_score_adj() {
            let path = format!("/proc/{child}/oom_score_adj");
            self.sys
                .write_proc(Path::new(&path), adj.to_string().as_bytes())
                .map_err(|errno| Error::ProcWrite {
                    field: format!("process.oomScoreAdj {adj}"),
                    path,
                    errno,
                })?;
        }
        if self.plan.new_user && !self.plan.two_stage {
            idmap::write(child, self.spec, self.sys)?;
        }
        Ok(())
    }

    fn map_ids(&mut self, child: i32) -> Result<()> {
        idmap::write(child, self.spec, self.sys)
    }

    fn forked(&mut self, first: i32, pid: i32) -> Result<()> {
        self.cleanup.pids.insert(0, pid);
        let _ = waitpid(Pid::from_raw(first), None);
        self.cleanup.pids.retain(|&p| p != first);
        self.saved.pid = pid;
        Ok(())
    }

    /// sync 2: the mounts and device nodes exist, so a devices cgroup may now deny mknod;
    /// no hook and no container code has run yet (runc's procReady point).
    fn mounted(&mut self, pid: i32) -> Result<Option<String>> {
        let prefetch = self.prefetch.take();
        self.cgroup().limit(self.resources, prefetch)?;
        let Some(h) = self
            .spec
            .hooks()
            .as_ref()
            .filter(|h| hooks::any_for_create(h))
        else {
            return Ok(None);
        };
        self.saved.pid = pid;
        // runtime-tools expects "created" in the state the create-time hooks read.
        let state = state::hook_state_json(&self.saved, Status::Created);
        hooks::run_all("prestart", h.prestart().as_ref(), &state)?;
        hooks::run_all("createRuntime", h.create_runtime().as_ref(), &state)?;
        Ok(Some(state))
    }

    fn seccomp_listener(&mut self, pid: i32, listener: OwnedFd) -> Result<()> {
        self.saved.pid = pid;
        let seccomp = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref());
        send_seccomp_listener(seccomp, &self.saved, pid, listener)
    }

    /// sync 3: the state (with the init's start time, to tell it from a reused pid) and
    /// the pid file, each written atomically.
    fn created(&mut self, pid: i32) -> Result<()> {
        self.saved.pid = pid;
        self.saved.pid_start = state::proc_stat(pid)
            .map(|(_, start)| start)
            .ok_or_else(|| Error::ProcessGone("container init died during create".into()))?;
        self.cleanup.dir()?.save(&self.saved)?;
        if let Some(p) = self.pid_file {
            write_atomic(p, pid.to_string().as_bytes())?;
        }
        Ok(())
    }
}

/// Undo a half-made container on any error: no process, cgroup or state dir is left.
struct Cleanup {
    dir: Option<ContainerDir>,
    cgroup: Option<(Cgroup, PathBuf)>,
    pids: Vec<i32>,
}

impl Cleanup {
    fn new(dir: ContainerDir) -> Cleanup {
        Cleanup {
            dir: Some(dir),
            cgroup: None,
            pids: Vec::new(),
        }
    }

    fn dir(&self) -> Result<&ContainerDir> {
        self.dir
            .as_ref()
            .ok_or_else(|| Error::Other("state dir lost".into()))
    }

    /// Success: keep everything; the state dir's lock is released.
    fn disarm(mut self) -> (Cgroup, PathBuf) {
        self.pids.clear();
        self.dir = None;
        self.cgroup.take().expect("set before the sync")
    }
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

/// The start barrier: the init blocks reading it until `start` writes.
fn make_exec_fifo(cleanup: &Cleanup) -> Result<OwnedFd> {
    let path = cleanup.dir()?.fifo_path();
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::sys(format!("mkfifo {}", path.display()), e))?;
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    Ok(fifo.into())
}

/// The container's cgroup, or none (rootless without delegation, or disabled).
fn open_cgroup(
    cleanup: &Cleanup,
    host_mounts: &[capsa_linux::mountinfo::MountEntry],
    path: &std::path::Path,
    opts: &CreateOptions,
    resources: Option<&LinuxResources>,
) -> Result<Cgroup> {
    let decision = if opts.cgroups_disabled {
        delegation::disabled(resources)?
    } else {
        delegation::decide(path, opts.rootless, resources)?
    };
    match decision {
        Decision::Skip(_) => Ok(Cgroup::none(0)),
        Decision::Manage => {
            // Recorded before the cgroup exists: a create killed before it saved its state
            // leaves this, and `delete --force` removes the cgroup from it.
            cleanup.dir()?.record_cgroup(path)?;
            let cgroup = Cgroup::open_in(host_mounts, path, opts.systemd_cgroup, &opts.id)?;
            cgroups::preflight::check(&cgroup, path)?;
            Ok(cgroup)
        }
    }
}

/// The config's resources; rootless without device rules, which only root can apply
/// (runc ignores them there too; the user namespace keeps the container from mknod).
pub(crate) fn resources_for(spec: &Spec, rootless: bool) -> Option<LinuxResources> {
    let mut r = spec.linux().as_ref()?.resources().clone()?;
    if rootless && r.devices().is_some() {
        tracing::debug!("rootless: linux.resources.devices not applied");
        r.set_devices(None);
    }
    Some(r)
}

/// Hand the notify listener to `linux.seccomp.listenerPath` with the container's state.
pub(super) fn send_seccomp_listener(
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

/// Why the init went away without a word: its exit status.
fn init_death(pid: i32) -> Error {
    Error::ProcessGone(match waitpid(Pid::from_raw(pid), None) {
        Ok(s) => format!("container init exited during create: {s:?}"),
        Err(e) => format!("container init went away during create: {e}"),
    })
}
