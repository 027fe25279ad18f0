//! `capsa exec`: a new process inside a running (or created) container. It joins every
//! namespace of the container's init (user first), its cgroup, and gets the process'
//! capabilities, rlimits, user, no_new_privs and seccomp, like the init did.
//!
//! | # | parent (`exec`)                        | first child            | process (grandchild)      |
//! |---|----------------------------------------|------------------------|---------------------------|
//! | 1 | join the child to the cgroup → `Proceed` | setns all, fork       |                           |
//! |1b | note `InitPid(pid)`                    | `InitPid`, exit        | (pid/time ns apply here)  |
//! | 3 | pid file → `Ack`                       |                        | pty, cwd, rlimits, user, caps → `Created`; exec |

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use nix::sys::prctl;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::child::{environment, exec_process, resolve_command, switch_user};
use crate::capabilities::Sets;
use crate::cgroups::Cgroup;
use crate::channel::{self, Channel, Msg};
use crate::error::SysContext;
use crate::seccomp::CompiledFilter;
use crate::state::Container;
use crate::syscall::{clone_process, exit_now, Forked};
use crate::utils::write_atomic;
use crate::{console, rlimits, Error, Result};

pub struct ExecOptions {
    pub process: Process,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Foreground: we will wait for the process, so it must come back to us.
    pub foreground: bool,
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

/// Start the process; returns its pid (host view) and, for a terminal in the foreground
/// without --console-socket, our end of the console socket (the pty master arrives on it).
pub fn exec(c: &Container, opts: &ExecOptions) -> Result<(i32, Option<UnixStream>)> {
    let init = c.live_pid().ok_or_else(|| Error::BadStatus {
        id: c.id().into(),
        status: "stopped".into(),
        what: "cannot exec in a stopped container".into(),
    })?;
    let process = &opts.process;
    match (
        process.terminal().unwrap_or(false),
        opts.console_socket.is_some(),
    ) {
        (true, false) if !opts.foreground => {
            return Err(Error::Config(
                "exec -d with a terminal needs --console-socket".into(),
            ))
        }
        (false, true) => {
            return Err(Error::Config(
                "exec: --console-socket given without --tty".into(),
            ))
        }
        _ => {}
    }
    rlimits::validate(process.rlimits().as_deref().unwrap_or_default())?;
    crate::lsm::check(process)?;
    let caps = process
        .capabilities()
        .as_ref()
        .map(Sets::from_spec)
        .transpose()?;
    let seccomp = c
        .saved
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::compile)
        .transpose()
        .map_err(|e| Error::Config(e.to_string()))?;
    let namespaces = open_namespaces(c, init)?;
    let (console, own_console) = match opts.console_socket.as_deref() {
        Some(path) => (Some(console::connect(path)?), None),
        None if process.terminal().unwrap_or(false) => {
            let (ours, theirs) =
                UnixStream::pair().map_err(|e| Error::Other(format!("console socketpair: {e}")))?;
            (Some(theirs), Some(ours))
        }
        None => (None, None),
    };
    let cgroup = Cgroup::of(&c.saved, false)?;
    if opts.foreground {
        prctl::set_child_subreaper(true).ctx(|| "set child subreaper".into())?;
    }
    let (parent_ch, child_ch) = channel::pair()?;
    let first = match clone_process(0).ctx(|| "fork exec process".into())? {
        Forked::Child => {
            drop(parent_ch);
            // The state dir lock belongs to `capsa exec`, not to a process that may sit
            // frozen in a paused container's cgroup (and so block `delete -f`): closed
            // before the parent moves us there (sync 0).
            let _ = nix::unistd::close(c.dir.lock_fd());
            let res = first_stage(
                &child_ch,
                &namespaces,
                process,
                caps.as_ref(),
                seccomp.as_ref(),
                console,
                opts,
            );
            if let Err(e) = res {
                let _ = child_ch.send(&Msg::Error(e.to_string()));
            }
            exit_now(1)
        }
        Forked::Parent(p) => p,
    };
    drop(child_ch);
    drop(namespaces);
    let kill_first = |pid: Pid| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
        let _ = waitpid(pid, None);
    };
    if let Err(e) = parent_ch
        .expect(Msg::Ready) // sync 0
        .and_then(|()| cgroup.enter(first.as_raw(), None))
    {
        kill_first(first);
        return Err(e);
    }
    parent_ch.send(&Msg::Proceed)?; // sync 1
    let mut pid = 0;
    loop {
        match parent_ch.recv()? {
            Some(Msg::InitPid(p)) => {
                // sync 1b
                pid = p;
                let _ = waitpid(first, None);
            }
            Some(Msg::Created) => break, // sync 3
            Some(Msg::Error(e)) => {
                let _ = waitpid(first, None);
                return Err(Error::Init(e));
            }
            Some(m) => return Err(Error::Other(format!("exec sync: unexpected {m:?}"))),
            None => {
                let _ = waitpid(first, None);
                return Err(Error::Other(
                    "exec: the process went away while starting".into(),
                ));
            }
        }
    }
    if let Some(p) = &opts.pid_file {
        if let Err(e) = write_atomic(p, pid.to_string().as_bytes()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            return Err(e);
        }
    }
    parent_ch.send(&Msg::Ack)?;
    Ok((pid, own_console))
}

/// The first child: join the namespaces, fork the process (pid and time namespaces only
/// apply to children), report its pid, exit.
fn first_stage(
    ch: &Channel,
    namespaces: &[(LinuxNamespaceType, OwnedFd)],
    process: &Process,
    caps: Option<&Sets>,
    seccomp: Option<&CompiledFilter>,
    console: Option<UnixStream>,
    opts: &ExecOptions,
) -> Result<()> {
    prctl::set_pdeathsig(nix::sys::signal::SIGKILL).ctx(|| "set parent death signal".into())?;
    // CVE-2019-5736: nothing in the container may open /proc/<us>/exe while we are capsa.
    prctl::set_dumpable(false).ctx(|| "set non-dumpable".into())?;
    ch.send(&Msg::Ready)?; // sync 0
    ch.expect(Msg::Proceed)?; // sync 1
    for (t, fd) in namespaces {
        setns(fd, CloneFlags::from_bits_retain(*t as libc::c_int))
            .ctx(|| format!("join the container's {t} namespace"))?;
    }
    match clone_process(0).ctx(|| "fork exec process".into())? {
        Forked::Parent(p) => {
            ch.send(&Msg::InitPid(p.as_raw()))?; // sync 1b
            exit_now(0)
        }
        Forked::Child => {}
    }
    prctl::set_dumpable(false).ctx(|| "set non-dumpable".into())?;
    let err = match run_process(ch, process, caps, seccomp, console, opts) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ch.send(&Msg::Error(err.to_string()));
    exit_now(1)
}

fn run_process(
    ch: &Channel,
    process: &Process,
    caps: Option<&Sets>,
    seccomp: Option<&CompiledFilter>,
    console: Option<UnixStream>,
    opts: &ExecOptions,
) -> Result<std::convert::Infallible> {
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    if let Some(sock) = console {
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        let peer = console::setup(sock, size, false)?;
        console::attach(peer)?;
    }
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).ctx(|| format!("process.cwd {}", cwd.display()))?;
    // CVE-2024-21626: only stdio and --preserve-fds reach the process.
    crate::syscall::cloexec_from(3 + opts.preserve_fds).ctx(|| "mark fds close-on-exec".into())?;
    let late_seccomp = switch_user(process, caps, seccomp, ch)?;
    let env = environment(process);
    let (exe, argv) = resolve_command(process, &env)?;
    ch.send(&Msg::Created)?; // sync 3
    ch.expect(Msg::Ack)?;
    let _ = nix::unistd::close(ch.raw_fd());
    exec_process(&exe, &argv, env, late_seccomp)
}
