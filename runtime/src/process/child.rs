//! The container's init, from the clone to execve, top to bottom in the order the spec
//! requires; `// sync N` matches `parent::create` (the protocol is in `channel`).

use std::ffi::CString;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::signal::Signal;
use oci_spec::runtime::{Hooks, Process, Spec};

use super::prepare::{process_of, ProcessPlan};
use super::{setup, stage, CreateOptions};
use crate::channel::{Channel, Msg};
use crate::error::SysContext;
use crate::namespaces::{self, Plan};
use crate::rootfs::{self, RootfsContext};
use crate::spec::Bundle;
use crate::syscall::{exit_now, proc_write_failure, Syscall};
use crate::{console, hooks, Error, Result};

pub struct Args<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a Plan,
    pub process: &'a ProcessPlan,
    pub channel: Channel,
    /// The exec fifo: `start` writes to it.
    pub fifo: OwnedFd,
    pub console: Option<UnixStream>,
    pub opts: &'a CreateOptions,
    pub sys: &'a dyn Syscall,
}

/// Never returns: the init execs the container's process or exits. Until `create` has
/// its answer, errors go to it over the channel; after that, nobody listens but the
/// container's stderr.
pub fn init(a: Args) -> ! {
    let ready = match set_up(&a) {
        Ok(ready) => ready,
        Err(e) => {
            let _ = a.channel.send(&Msg::Error(e.to_string()));
            exit_now(1)
        }
    };
    // Closing our end tells `create` it may go: we no longer depend on it.
    drop(a.channel);
    let err = start(&a.fifo, a.bundle.spec.hooks().as_ref(), ready, a.sys);
    eprintln!("capsa: {err}");
    exit_now(if matches!(err, Error::Exec { .. }) {
        127
    } else {
        1
    })
}

/// What the init holds once `create` has returned: the process to exec and the state for
/// the startContainer hooks.
pub struct Waiting<'a> {
    exec: setup::Ready<'a>,
    hook_state: Option<String>,
}

/// The init sequence up to `create`'s answer (sync 3).
fn set_up<'a>(a: &Args<'a>) -> Result<Waiting<'a>> {
    let (ch, sys, spec) = (&a.channel, a.sys, &a.bundle.spec);
    let process = process_of(spec)?;
    // Die with `capsa create`.
    sys.set_pdeathsig(Some(Signal::SIGKILL))
        .ctx(|| "set parent death signal".into())?;
    // A non-dumpable process' /proc files belong to root: an unprivileged parent (or its
    // newuidmap) could not write our id maps. Stay dumpable until they are written.
    if !a.plan.new_user {
        set_non_dumpable(sys)?;
    }
    ch.expect(Msg::Proceed)?; // sync 1: in the cgroup, ids mapped
    enter_namespaces(a)?; // sync 1a, 1b
                          // Only now: the cgroup namespace is rooted at the cgroup the init was placed in.
    if a.plan.new_cgroup {
        namespaces::unshare_cgroup(sys)?;
    }
    if !a.opts.no_new_keyring {
        join_session_keyring(&a.opts.id, sys);
    }

    let ctx = RootfsContext {
        spec,
        rootfs: &a.bundle.rootfs,
        bundle: &a.bundle.dir,
        in_userns: a.plan.in_userns(),
        new_cgroupns: a.plan.new_cgroup,
        sys,
    };
    rootfs::prepare(&ctx)?;
    rootfs::mount_all(&ctx)?;
    ch.send(&Msg::Mounted)?; // sync 2
    let hook_state = ch.expect_hooks_done()?;
    run_hooks("createContainer", spec, hook_state.as_deref(), |h| {
        h.create_container().as_ref()
    })?;
    rootfs::pivot(&a.bundle.rootfs, a.opts.no_pivot, sys)?;
    create_cwd(process)?;
    let pty = open_terminal(process, a.console.as_ref(), sys)?;
    set_identity(spec, sys)?;
    rootfs::finalize(spec, sys)?;
    let exec = setup::prepare(process, a.process, pty, a.opts.preserve_fds, ch, sys)?;

    ch.send(&Msg::Created)?; // sync 3
    ch.expect(Msg::Ack)?;
    sys.set_pdeathsig(None)
        .ctx(|| "clear parent death signal".into())?;
    Ok(Waiting { exec, hook_state })
}

/// After `create`: wait for `start`, run the startContainer hooks, exec.
fn start(fifo: &OwnedFd, hooks: Option<&Hooks>, w: Waiting, sys: &dyn Syscall) -> Error {
    if let Err(e) = wait_for_start(fifo) {
        return e;
    }
    if let (Some(state), Some(h)) = (&w.hook_state, hooks) {
        if let Err(e) = hooks::run_all("startContainer", h.start_container().as_ref(), state) {
            return e;
        }
    }
    setup::exec(w.exec, sys)
}

/// The namespaces the clone did not give: none more on the fast path; on the two-stage
/// path the first stage joins, unshares, has its ids mapped (sync 1a) and forks the init
/// (sync 1b), since pid and time namespaces apply to children only.
fn enter_namespaces(a: &Args) -> Result<()> {
    let (plan, ch, sys) = (a.plan, &a.channel, a.sys);
    if !plan.two_stage {
        if plan.new_user {
            become_userns_root(sys)?;
        }
        return plan.join_all(sys);
    }
    plan.join_all(sys)?;
    plan.unshare_new(sys)?;
    if plan.new_user {
        ch.send(&Msg::MapIds)?; // sync 1a
        ch.expect(Msg::Proceed)?;
        become_userns_root(sys)?;
    }
    namespaces::write_time_offsets(&a.bundle.spec, sys)?;
    if plan.fork_init {
        stage::fork_process(ch, sys)?; // sync 1b
        set_non_dumpable(sys)?;
    }
    Ok(())
}

/// Not fatal where keyrings are unavailable (e.g. blocked by a host seccomp policy).
/// Named after the container, as runc does.
fn join_session_keyring(id: &str, sys: &dyn Syscall) {
    let name = CString::new(id).unwrap_or_default();
    if let Err(e) = sys.join_session_keyring(&name) {
        tracing::debug!("new session keyring: {e}");
    }
}

fn run_hooks(
    kind: &str,
    spec: &Spec,
    state: Option<&str>,
    which: impl Fn(&Hooks) -> Option<&Vec<oci_spec::runtime::Hook>>,
) -> Result<()> {
    match (state, spec.hooks().as_ref()) {
        (Some(state), Some(h)) => hooks::run_all(kind, which(h), state),
        _ => Ok(()),
    }
}

/// Creates a missing `process.cwd` (0755, as root), as runc does: containerd and
/// Kubernetes pass an image's or a pod's working directory that the image may lack.
/// After pivot_root, so the path resolves inside the container's root; before
/// `rootfs::finalize`, which may make the root read-only. Only `exec` refuses a
/// missing cwd (runc too).
fn create_cwd(process: &Process) -> Result<()> {
    let cwd = process.cwd();
    match std::fs::symlink_metadata(cwd) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(cwd)
                .map_err(|e| Error::Other(format!("create process.cwd {}: {e}", cwd.display())))
        }
        // Anything else (a file, a dangling link) is for chdir to judge.
        _ => Ok(()),
    }
}

/// The terminal, made inside the container (after pivot_root: its /dev/ptmx, its
/// /dev/console).
fn open_terminal(
    process: &Process,
    socket: Option<&UnixStream>,
    sys: &dyn Syscall,
) -> Result<Option<OwnedFd>> {
    let Some(socket) = socket else {
        return Ok(None);
    };
    let size = process
        .console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16));
    console::setup(socket, size, true, sys).map(Some)
}

/// Nobody may ptrace us or read our memory until exec (CVE-2019-5736).
fn set_non_dumpable(sys: &dyn Syscall) -> Result<()> {
    sys.set_dumpable(false).ctx(|| "set non-dumpable".into())
}

/// In a new user namespace our host uid is not mapped: once the maps are written, become
/// its root, so what we create (tmpfs, devices, mount points) is owned by a mapped id.
fn become_userns_root(sys: &dyn Syscall) -> Result<()> {
    set_non_dumpable(sys)?;
    sys.setresgid(nix::unistd::Gid::from_raw(0))
        .ctx(|| "setgid 0 in the user namespace".into())?;
    sys.setresuid(nix::unistd::Uid::from_raw(0))
        .ctx(|| "setuid 0 in the user namespace".into())
}

/// hostname, domainname, sysctls: after pivot_root, so /proc is the container's.
fn set_identity(spec: &Spec, sys: &dyn Syscall) -> Result<()> {
    if let Some(h) = spec.hostname() {
        sys.sethostname(h).ctx(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname() {
        sys.setdomainname(d).ctx(|| format!("domainname {d:?}"))?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            sys.write_proc(Path::new(&path), v.as_bytes())
                .map_err(|e| {
                    Error::Other(format!(
                        "linux.sysctl {k}: {path}: {}",
                        proc_write_failure(e)
                    ))
                })?;
        }
    }
    Ok(())
}

/// Block until `capsa start` writes to the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut f = std::fs::File::from(
        fifo.try_clone()
            .map_err(|e| Error::Other(format!("exec fifo: {e}")))?,
    );
    let mut b = [0u8; 1];
    loop {
        match f.read(&mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(Error::Other("exec fifo closed before start".into())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Other(format!("read exec fifo: {e}"))),
        }
    }
}
