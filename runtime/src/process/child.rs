//! The container's init, from the fork to execve. One function, top to bottom, in the
//! order the spec requires; `// sync N` matches `parent::create`.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::prctl;
use oci_spec::runtime::{Process, Spec};

use super::CreateOptions;
use crate::capabilities::Sets;
use crate::channel::{Channel, Msg};
use crate::error::SysContext;
use crate::namespaces::{self, Plan};
use crate::rootfs::{self, paths, RootfsContext};
use crate::seccomp::CompiledFilter;
use crate::syscall::{clone_process, exit_now, Forked};
use crate::{console, hooks, rlimits, user, Error, Result};

pub struct Args<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub plan: &'a Plan,
    pub caps: Option<&'a Sets>,
    pub seccomp: Option<&'a CompiledFilter>,
    pub channel: Channel,
    pub fifo: OwnedFd,
    pub console: Option<UnixStream>,
    pub lock_fd: i32,
    pub opts: &'a CreateOptions,
}

/// Never returns: the init execs the container's process or exits with an error sent to
/// the parent.
pub fn init(args: Args) -> ! {
    match run(&args) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = args.channel.send(&Msg::Error(e.to_string()));
            exit_now(1)
        }
    }
}

fn run(a: &Args) -> Result<Infallible> {
    let ch = &a.channel;
    let spec = a.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process: missing".into()))?;
    // Die with `capsa create`.
    prctl::set_pdeathsig(nix::sys::signal::SIGKILL).ctx(|| "set parent death signal".into())?;
    // A non-dumpable process' /proc files belong to root: an unprivileged parent (or its
    // newuidmap) could not write our id maps. Stay dumpable until they are written.
    if !a.plan.new_user {
        set_non_dumpable()?;
    }
    // The state dir lock belongs to `capsa create`, not to the init that outlives it.
    let _ = nix::unistd::close(a.lock_fd);
    ch.expect(Msg::Proceed)?; // sync 1
    if a.plan.new_user && !a.plan.two_stage {
        set_non_dumpable()?;
        become_userns_root()?;
    }

    if a.plan.two_stage {
        a.plan.join_all()?;
        a.plan.unshare_new()?;
        if a.plan.new_user {
            ch.send(&Msg::MapIds)?; // sync 1a
            ch.expect(Msg::Proceed)?;
            set_non_dumpable()?;
            become_userns_root()?;
        }
        namespaces::write_time_offsets(spec)?;
        if a.plan.fork_init {
            match clone_process(0).ctx(|| "fork the init".into())? {
                Forked::Parent(pid) => {
                    ch.send(&Msg::InitPid(pid.as_raw()))?; // sync 1b
                    exit_now(0);
                }
                Forked::Child => set_non_dumpable()?,
            }
        }
    } else {
        a.plan.join_all()?;
    }
    if a.plan.new_cgroup {
        namespaces::unshare_cgroup()?;
    }
    if !a.opts.no_new_keyring {
        // Not fatal where keyrings are unavailable (e.g. blocked by a host seccomp policy).
        // Named after the container, as runc does.
        let name = CString::new(a.opts.id.as_str()).unwrap_or_default();
        if let Err(e) = crate::syscall::join_new_session_keyring(&name) {
            tracing::debug!("new session keyring: {e}");
        }
    }

    let ctx = RootfsContext {
        spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        in_userns: a.plan.new_user
            || a.plan
                .joins
                .iter()
                .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::User),
        new_cgroupns: a.plan.new_cgroup,
    };
    rootfs::prepare(&ctx)?;
    rootfs::mount_all(&ctx)?;
    let hooks = spec.hooks().as_ref();
    let mut state = String::new();
    let wants_hooks = hooks.is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|x| x.as_ref().is_some_and(|v| !v.is_empty()))
    });
    if wants_hooks {
        ch.send(&Msg::RunCreateRuntimeHooks)?; // sync 2
        match ch.recv()? {
            Some(Msg::HooksDone(s)) => state = s,
            Some(Msg::Error(e)) => return Err(Error::Init(e)),
            m => return Err(Error::Other(format!("sync: expected HooksDone, got {m:?}"))),
        }
        hooks::run_all(
            "createContainer",
            hooks.and_then(|h| h.create_container().as_ref()),
            &state,
        )?;
    }
    rootfs::pivot(a.rootfs, a.opts.no_pivot)?;
    create_cwd(process)?;

    let pty = match a.console.as_ref() {
        Some(sock) => {
            let size = process
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16));
            let sock = sock
                .try_clone()
                .map_err(|e| Error::Other(format!("console socket: {e}")))?;
            Some(console::setup(sock, size, true)?)
        }
        None => None,
    };
    set_identity(spec)?;
    rootfs::finalize(spec)?;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    if let Some(pty) = pty {
        console::attach(pty)?;
    }
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).ctx(|| format!("process.cwd {}", cwd.display()))?;
    // CVE-2024-21626: no descriptor of the runtime may reach the container. Everything
    // above stdio and the --preserve-fds ones is closed on exec (set now, before a seccomp
    // filter could forbid close_range; whatever we open later is close-on-exec already).
    crate::syscall::cloexec_from(3 + a.opts.preserve_fds)
        .ctx(|| "mark fds close-on-exec".into())?;
    let late_seccomp = switch_user(process, a.caps, a.seccomp, ch)?;
    let env = environment(process);
    let (exe, argv) = resolve_command(process, &env)?;

    ch.send(&Msg::Created)?; // sync 3
    ch.expect(Msg::Ack)?;
    prctl::set_pdeathsig(None).ctx(|| "clear parent death signal".into())?;
    // Closing our end tells the parent we no longer depend on it.
    let _ = nix::unistd::close(ch.raw_fd());

    wait_for_start(&a.fifo)?;
    if wants_hooks {
        hooks::run_all(
            "startContainer",
            hooks.and_then(|h| h.start_container().as_ref()),
            &state,
        )?;
    }
    exec_process(&exe, &argv, env, late_seccomp)
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

/// The last step of the init and of `exec`: a late seccomp filter, then execve. If execve
/// fails the parent is gone already: stderr is all that is left to tell, and 127 the status.
pub(super) fn exec_process(
    exe: &CString,
    argv: &[CString],
    env: Vec<String>,
    late_seccomp: Option<&CompiledFilter>,
) -> Result<Infallible> {
    let env: Vec<CString> = env
        .into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect();
    if let Some(filter) = late_seccomp {
        // Nothing of ours runs filtered but the exec itself.
        filter
            .load()
            .map_err(|e| Error::Other(format!("linux.seccomp: {e}")))?;
    }
    let err = crate::syscall::execve(exe, argv, &env);
    eprintln!("capsa: exec {exe:?}: {err}");
    exit_now(127)
}

/// Nobody may ptrace us or read our memory until exec (CVE-2019-5736).
fn set_non_dumpable() -> Result<()> {
    prctl::set_dumpable(false).ctx(|| "set non-dumpable".into())
}

/// In a new user namespace our host uid is not mapped: become its root, so what we create
/// (tmpfs, devices, mount points) is owned by a mapped id.
fn become_userns_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "setgid 0 in the user namespace".into())?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .ctx(|| "setuid 0 in the user namespace".into())
}

/// hostname, domainname, sysctls: after pivot_root, so /proc is the container's.
fn set_identity(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h).ctx(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname() {
        crate::syscall::set_domainname(d).ctx(|| format!("domainname {d:?}"))?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            paths::write_proc(&path, v)
                .map_err(|e| Error::Other(format!("linux.sysctl {k}: {e}")))?;
        }
    }
    Ok(())
}

/// Capabilities, user, no_new_privs, and seccomp where it must come early. Returns the
/// filter to load right before execve when it can wait that long.
///
/// seccomp needs CAP_SYS_ADMIN or no_new_privs: without noNewPrivileges it is loaded
/// before the user switch, while we are root; with it, at the very end. A filter with NOTIFY rules is
/// loaded before `Created`, so its listener fd can still reach the parent.
pub(super) fn switch_user<'f>(
    process: &Process,
    caps: Option<&Sets>,
    seccomp: Option<&'f CompiledFilter>,
    ch: &Channel,
) -> Result<Option<&'f CompiledFilter>> {
    crate::lsm::apply(process)?;
    let nnp = process.no_new_privileges().unwrap_or(false);
    if !nnp {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN: load it while we are root.
        if let Some(f) = seccomp {
            load_seccomp(f, ch)?;
        }
    }
    if let Some(c) = caps {
        c.limit_bounding()?;
    }
    prctl::set_keepcaps(true).ctx(|| "keep capabilities".into())?;
    user::switch(process.user())?;
    prctl::set_keepcaps(false).ctx(|| "drop keepcaps".into())?;
    match caps {
        Some(c) => c.apply()?,
        None => Sets::empty().apply()?,
    }
    if nnp {
        prctl::set_no_new_privs().ctx(|| "process.noNewPrivileges".into())?;
        match seccomp {
            Some(f) if f.has_notify() => load_seccomp(f, ch)?,
            Some(f) => return Ok(Some(f)),
            None => {}
        }
    }
    Ok(None)
}

fn load_seccomp(filter: &CompiledFilter, ch: &Channel) -> Result<()> {
    let listener = filter
        .load()
        .map_err(|e| Error::Other(format!("linux.seccomp: {e}")))?;
    if let Some(fd) = listener {
        ch.send_fd(&Msg::SeccompListener, fd.as_fd())?; // sync 2a
    }
    Ok(())
}

pub(super) fn environment(process: &Process) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_of(process.user().uid())));
    }
    env
}

/// args[0] through the container's PATH, checked now so a typo fails `create`.
pub(super) fn resolve_command(
    process: &Process,
    env: &[String],
) -> Result<(CString, Vec<CString>)> {
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Config("process.args: must not be empty".into()))?;
    let exe = if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        std::fs::metadata(&p)
            .map_err(|e| Error::Other(format!("exec: {arg0:?}: stat {arg0}: {e}")))?;
        p
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(arg0))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| {
                Error::Other(format!(
                    "exec: {arg0:?}: executable file not found in $PATH"
                ))
            })?
    };
    let cstr = |s: &str| {
        CString::new(s)
            .map_err(|_| Error::Config(format!("process.args: {s:?} contains a NUL byte")))
    };
    let argv = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    Ok((cstr(&exe.to_string_lossy())?, argv))
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
