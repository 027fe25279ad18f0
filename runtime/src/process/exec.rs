//! `capsa exec`: a new process inside a running (or created) container. A first child
//! joins every namespace of the container's init (user first) and forks the process
//! (pid and time namespaces apply to children), which gets the process' capabilities,
//! rlimits, user, no_new_privs and seccomp as the init did (`setup`). The parent's side
//! is `sync::drive` with `ExecSteps`; the first child's side is `first_stage`.
//!
//! | # | parent                                 | first child              | process                   |
//! |---|----------------------------------------|--------------------------|---------------------------|
//! | 0 | put the first child in the cgroup      | non-dumpable → `Ready`   |                           |
//! | 1 | → `Proceed`                            | setns all, fork          |                           |
//! |1b | reap the first child → `Proceed`       | `InitPid`, exit          | waits for that `Proceed`  |
//! |2a | (NOTIFY) hand the fd to listenerPath   |                          | seccomp → `SeccompListener` |
//! | 3 | pid file → `Ack`                       |                          | pty, cwd, rlimits, user, caps → `Created`; exec |

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::prepare::{self, ProcessPlan};
use super::sync::{self, Shape, Steps};
use super::{setup, stage};
use crate::cgroups::sub::SubCgroups;
use crate::cgroups::Cgroup;
use crate::channel::{self, Channel, Msg};
use crate::container::Container;
use crate::error::SysContext;
use crate::state::Saved;
use crate::syscall::{exit_now, Forked, Linux, Syscall};
use crate::utils::write_atomic;
use crate::{console, Error, Result};

pub struct ExecOptions {
    pub process: Process,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Foreground: we will wait for the process, so it must come back to us.
    pub foreground: bool,
    /// `--cgroup`: sub-cgroups of the container's to join instead of its own.
    pub sub_cgroups: Option<SubCgroups>,
}

/// Start the process; returns its pid (host view) and, for a terminal in the foreground
/// without --console-socket, our end of the console socket (the pty master arrives on
/// it). The container's lock is released before the fork (see `exec_with`).
pub fn exec(c: Container, opts: &ExecOptions) -> Result<(i32, Option<UnixStream>)> {
    exec_with(c, opts, &Linux)
}

fn exec_with(
    c: Container,
    opts: &ExecOptions,
    sys: &dyn Syscall,
) -> Result<(i32, Option<UnixStream>)> {
    let init = c.live_pid().ok_or_else(|| Error::BadStatus {
        id: c.id().into(),
        status: "stopped".into(),
        what: "cannot exec in a stopped container".into(),
    })?;
    let process = &opts.process;
    let seccomp = c
        .saved
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref());
    let plan = ProcessPlan::new(process, seccomp)?;
    let terminal = process.terminal().unwrap_or(false);
    prepare::check_terminal(terminal, opts.console_socket.as_deref(), opts.foreground)?;
    let namespaces = open_namespaces(&c, init)?;
    let consoles = prepare::console_sockets(terminal, opts.console_socket.as_deref())?;
    let cgroup = c.cgroup()?;
    // Everything exec reads of the container is in hand: let go of its lock now. The new
    // process freezes in a paused container's cgroup (`--ignore-paused`) until `resume`,
    // and `resume` (like `delete`) needs the lock: nobody may wait on a lock whose holder
    // waits on a frozen process.
    let saved = c.release();
    if opts.foreground {
        sys.set_child_subreaper()
            .ctx(|| "set child subreaper".into())?;
    }
    let (ch, child_ch) = channel::pair()?;
    let first = match sys
        .clone_process(CloneFlags::empty())
        .ctx(|| "fork exec process".into())?
    {
        Forked::Child => {
            drop(ch);
            let err = match run_child(
                &child_ch,
                &namespaces,
                process,
                &plan,
                consoles.child,
                opts,
                sys,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child_ch.send(&Msg::Error(err.to_string()));
            exit_now(if matches!(err, Error::Exec { .. }) {
                127
            } else {
                1
            })
        }
        Forked::Parent(p) => p.as_raw(),
    };
    drop((child_ch, namespaces, consoles.child));
    let mut steps = ExecSteps {
        cgroup: &cgroup,
        sub_cgroups: opts.sub_cgroups.as_ref(),
        saved: &saved,
        pid_file: opts.pid_file.as_ref(),
        first,
        pid: None,
    };
    let shape = Shape {
        ready_first: true,
        forks: true,
        seccomp_listener: plan.seccomp_listener(),
        ..Shape::default()
    };
    match sync::drive(&ch, shape, first, &mut steps) {
        Ok(pid) => Ok((pid, consoles.ours)),
        Err(e) => {
            steps.kill();
            Err(match e {
                Error::PeerGone { .. } => {
                    Error::ProcessGone("exec: the process went away while starting".into())
                }
                e => e,
            })
        }
    }
}

/// The parent's side of each sync point of `exec`.
struct ExecSteps<'a> {
    cgroup: &'a Cgroup,
    sub_cgroups: Option<&'a SubCgroups>,
    saved: &'a Saved,
    pid_file: Option<&'a PathBuf>,
    first: i32,
    /// The process, once the first child reported it.
    pid: Option<i32>,
}

impl ExecSteps<'_> {
    /// A failed exec leaves no process behind.
    fn kill(&self) {
        for pid in self.pid.into_iter().chain([self.first]) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = waitpid(Pid::from_raw(self.first), None);
    }
}

impl Steps for ExecSteps<'_> {
    fn place(&mut self, child: i32) -> Result<()> {
        match self.sub_cgroups {
            Some(sub) => self.cgroup.enter_sub(child, sub),
            None => self.cgroup.enter(child, None),
        }
    }

    fn map_ids(&mut self, _: i32) -> Result<()> {
        unreachable!("exec joins the container's user namespace, it makes none")
    }

    fn forked(&mut self, first: i32, pid: i32) -> Result<()> {
        self.pid = Some(pid);
        let _ = waitpid(Pid::from_raw(first), None);
        Ok(())
    }

    fn mounted(&mut self, _: i32) -> Result<Option<String>> {
        unreachable!("exec mounts nothing")
    }

    fn seccomp_listener(&mut self, pid: i32, listener: OwnedFd) -> Result<()> {
        let seccomp = self
            .saved
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref());
        super::parent::send_seccomp_listener(seccomp, self.saved, pid, listener)
    }

    fn created(&mut self, pid: i32) -> Result<()> {
        match self.pid_file {
            Some(p) => write_atomic(p, pid.to_string().as_bytes()),
            None => Ok(()),
        }
    }
}

/// The first child, then (after the fork) the process: never returns but by an error.
fn run_child(
    ch: &Channel,
    namespaces: &[(LinuxNamespaceType, OwnedFd)],
    process: &Process,
    plan: &ProcessPlan,
    console: Option<UnixStream>,
    opts: &ExecOptions,
    sys: &dyn Syscall,
) -> Result<std::convert::Infallible> {
    first_stage(ch, namespaces, sys)?;
    // The process, in every namespace of the container.
    tracing::debug!("exec: set-up starts (runc: child process in init())");
    let pty = match &console {
        Some(sock) => {
            let size = process
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16));
            Some(console::setup(sock, size, false, sys)?)
        }
        None => None,
    };
    let ready = setup::prepare(process, plan, pty, opts.preserve_fds, ch, sys)?;
    ch.send(&Msg::Created)?; // sync 3
    ch.expect(Msg::Ack)?;
    tracing::debug!("exec: about to exec (runc: setns_init: about to exec)");
    Err(setup::exec(ready, sys))
}

/// sync 0 to 1b: join the namespaces and fork the process; returns in the process.
fn first_stage(
    ch: &Channel,
    namespaces: &[(LinuxNamespaceType, OwnedFd)],
    sys: &dyn Syscall,
) -> Result<()> {
    sys.set_pdeathsig(Some(Signal::SIGKILL))
        .ctx(|| "set parent death signal".into())?;
    // CVE-2019-5736: nothing in the container may open /proc/<us>/exe while we are capsa.
    sys.set_dumpable(false).ctx(|| "set non-dumpable".into())?;
    ch.send(&Msg::Ready)?; // sync 0
    ch.expect(Msg::Proceed)?; // sync 1
    for (t, fd) in namespaces {
        use std::os::fd::AsFd;
        sys.setns(fd.as_fd(), CloneFlags::from_bits_retain(*t as libc::c_int))
            .ctx(|| format!("join the container's {t} namespace"))?;
    }
    stage::fork_process(ch, sys)?; // sync 1b
    sys.set_dumpable(false).ctx(|| "set non-dumpable".into())
}

/// The container's namespaces, opened from its init before any setns (user first).
fn open_namespaces(c: &Container, pid: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut out = Vec::new();
    let namespaces = c
        .saved
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut types: Vec<LinuxNamespaceType> = namespaces.iter().map(|n| n.typ()).collect();
    types.sort_by_key(|t| *t != LinuxNamespaceType::User);
    for t in types {
        let name = match t {
            LinuxNamespaceType::Mount => "mnt",
            LinuxNamespaceType::Network => "net",
            LinuxNamespaceType::Pid => "pid",
            LinuxNamespaceType::Ipc => "ipc",
            LinuxNamespaceType::Uts => "uts",
            LinuxNamespaceType::User => "user",
            LinuxNamespaceType::Cgroup => "cgroup",
            LinuxNamespaceType::Time => "time",
        };
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        let path = format!("/proc/{pid}/ns/{name}");
        // Joining a namespace we are already in is an error for user namespaces: skip it.
        if ours.is_some() && std::fs::read_link(&path).ok() == ours {
            continue;
        }
        let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        out.push((t, OwnedFd::from(f)));
    }
    Ok(out)
}
