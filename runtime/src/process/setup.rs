//! The last steps of a container process before execve, the same for the init and for an
//! exec'd process: its session and terminal, rlimits, working directory, no runtime
//! descriptor across exec, then LSM labels, capabilities, user, no_new_privs and seccomp.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Process;

use super::prepare::ProcessPlan;
use crate::channel::{Channel, Msg};
use crate::error::SysContext;
use crate::seccomp::CompiledFilter;
use crate::syscall::Syscall;
use crate::{console, lsm, rlimits, user, Error, Result};

/// A process ready to exec: all that is left is a late seccomp filter and execve.
pub struct Ready<'f> {
    exe: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    late_seccomp: Option<&'f CompiledFilter>,
}

/// Everything from setsid to the command's path; a seccomp listener goes to the parent
/// on the way (sync 2a). `pty` is the terminal's peer, made by `console::setup`.
pub fn prepare<'f>(
    process: &Process,
    plan: &'f ProcessPlan,
    pty: Option<OwnedFd>,
    preserve_fds: i32,
    ch: &Channel,
    sys: &dyn Syscall,
) -> Result<Ready<'f>> {
    sys.setsid().ctx(|| "setsid".into())?;
    if let Some(pty) = pty {
        console::attach(pty)?;
    }
    own_stdio(process.user().uid(), sys)?;
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default(), sys)?;
    // The process starts with the default action for every signal, as runc's do: Rust's
    // runtime made capsa ignore SIGPIPE, and an ignored signal stays ignored across exec.
    sys.default_signal(nix::sys::signal::Signal::SIGPIPE)
        .ctx(|| "reset SIGPIPE".into())?;
    let cwd = process.cwd();
    sys.chdir(cwd)
        .ctx(|| format!("process.cwd {}", cwd.display()))?;
    // CVE-2024-21626: no descriptor of the runtime may reach the container. Everything
    // above stdio and the --preserve-fds ones is closed on exec (set now, before a seccomp
    // filter could forbid close_range; whatever we open later is close-on-exec already).
    sys.cloexec_from(3 + preserve_fds)
        .ctx(|| "mark fds close-on-exec".into())?;
    let late_seccomp = switch_user(process, plan, ch, sys)?;
    let env = environment(process);
    let (exe, argv) = resolve_command(process, &env)?;
    let env = env
        .into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect();
    Ok(Ready {
        exe,
        argv,
        env,
        late_seccomp,
    })
}

impl Ready<'_> {
    /// Load a filter that would wait for execve now: startContainer hooks run under the
    /// container's filter (runc), and they run before the exec.
    pub fn load_seccomp_now(&mut self, sys: &dyn Syscall) -> Result<()> {
        match self.late_seccomp.take() {
            Some(filter) => filter.load_with(sys).map(drop).map_err(Error::Seccomp),
            None => Ok(()),
        }
    }
}

/// A late seccomp filter, then execve; returns only the error. Nothing of ours runs
/// filtered but the exec itself (and startContainer hooks, see `load_seccomp_now`).
pub fn exec(ready: Ready, sys: &dyn Syscall) -> Error {
    if let Some(filter) = ready.late_seccomp {
        if let Err(e) = filter.load_with(sys) {
            return Error::Seccomp(e);
        }
    }
    let errno = sys.execve(&ready.exe, &ready.argv, &ready.env);
    Error::Exec {
        path: ready.exe.to_string_lossy().into_owned(),
        errno,
    }
}

/// The process' stdio (its pty, or pipes and files made outside the container) goes to
/// its user, as runc's fixStdioPermissions does, so a non-root process can reopen it
/// (/dev/stdout, `$(tty)`); the group (the pty's tty group) stays. /dev/null is left
/// alone, and a descriptor we may not chown (another user namespace, a read-only /dev)
/// is left as it is.
fn own_stdio(uid: u32, sys: &dyn Syscall) -> Result<()> {
    use nix::sys::stat::{fstat, stat};
    let null = stat("/dev/null").ok().map(|s| s.st_rdev);
    for fd in 0..3 {
        let Ok(st) = fstat(fd) else { continue };
        let is_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && Some(st.st_rdev) == null;
        if st.st_uid == uid || is_null {
            continue;
        }
        match sys.fchown_fd(fd, nix::unistd::Uid::from_raw(uid)) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(Error::sys(format!("chown stdio fd {fd} to uid {uid}"), e)),
        }
    }
    Ok(())
}

/// LSM labels, capabilities, user, no_new_privs, and seccomp where it must come early.
/// Returns the filter to load right before execve when it can wait that long.
///
/// seccomp needs CAP_SYS_ADMIN or no_new_privs: without noNewPrivileges it is loaded
/// before the user switch, while we are root; with it, at the very end. A filter with
/// NOTIFY rules is loaded before `Created`, so its listener can still reach the parent.
fn switch_user<'f>(
    process: &Process,
    plan: &'f ProcessPlan,
    ch: &Channel,
    sys: &dyn Syscall,
) -> Result<Option<&'f CompiledFilter>> {
    lsm::apply(process, sys)?;
    let nnp = process.no_new_privileges().unwrap_or(false);
    let seccomp = plan.seccomp.as_ref();
    if !nnp {
        if let Some(f) = seccomp {
            load_seccomp(f, ch, sys)?;
        }
    }
    if let Some(caps) = &plan.caps {
        caps.limit_bounding(sys)?;
    }
    sys.set_keepcaps(true).ctx(|| "keep capabilities".into())?;
    user::switch(process.user(), sys)?;
    sys.set_keepcaps(false).ctx(|| "drop keepcaps".into())?;
    // No process.capabilities: none at all (the bounding set is left as it is).
    plan.caps.unwrap_or_default().apply(sys)?;
    if nnp {
        sys.set_no_new_privs()
            .ctx(|| "process.noNewPrivileges".into())?;
        match seccomp {
            Some(f) if f.has_notify() => load_seccomp(f, ch, sys)?,
            Some(f) => return Ok(Some(f)),
            None => {}
        }
    }
    Ok(None)
}

fn load_seccomp(filter: &CompiledFilter, ch: &Channel, sys: &dyn Syscall) -> Result<()> {
    let listener = filter.load_with(sys).map_err(Error::Seccomp)?;
    if let Some(fd) = listener {
        ch.send_fd(&Msg::SeccompListener, fd.as_fd())?; // sync 2a
    }
    Ok(())
}

fn environment(process: &Process) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_of(process.user().uid())));
    }
    env
}

/// args[0] through the container's PATH, checked now so a typo fails `create`.
fn resolve_command(process: &Process, env: &[String]) -> Result<(CString, Vec<CString>)> {
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Config("process.args: must not be empty".into()))?;
    let exe = if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        std::fs::metadata(&p).map_err(|e| Error::Command {
            arg0: arg0.clone(),
            reason: format!("stat {arg0}: {e}"),
        })?;
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
            .ok_or_else(|| Error::Command {
                arg0: arg0.clone(),
                reason: "executable file not found in $PATH".into(),
            })?
    };
    let cstr = |s: &str| {
        CString::new(s)
            .map_err(|_| Error::Config(format!("process.args: {s:?} contains a NUL byte")))
    };
    let argv = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    Ok((cstr(&exe.to_string_lossy())?, argv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::pair;
    use crate::syscall::fake::{in_order, Call, Recorder};

    fn process(json: serde_json::Value) -> Process {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_steps_before_exec_in_order() {
        let sys = Recorder::default();
        let p = process(serde_json::json!({
            "args": ["/bin/sh", "-c", "true"], "cwd": "/",
            "user": {"uid": 1000, "gid": 1000},
            "env": ["PATH=/bin", "HOME=/home/u"],
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                              "permitted": ["CAP_KILL"]}
        }));
        let seccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        let plan = ProcessPlan::new(&p, Some(&seccomp)).unwrap();
        let (ch, _peer) = pair().unwrap();
        let ready = prepare(&p, &plan, None, 2, &ch, &sys).unwrap();
        let err = exec(ready, &sys);
        assert!(
            matches!(err, Error::Exec { ref path, .. } if path == "/bin/sh"),
            "{err}"
        );
        let calls = sys.calls();
        let rlimit = |c: &Call| {
            matches!(
                c,
                Call::Rlimit {
                    soft: 10,
                    hard: 20,
                    ..
                }
            )
        };
        let sigpipe = |c: &Call| *c == Call::DefaultSignal(nix::sys::signal::Signal::SIGPIPE);
        in_order(
            &calls,
            &[
                ("setsid", &|c| *c == Call::Setsid),
                ("rlimit", &rlimit),
                ("SIGPIPE to default", &sigpipe),
                ("chdir", &|c| *c == Call::Chdir("/".into())),
                // 3 + --preserve-fds 2
                ("cloexec", &|c| *c == Call::CloexecFrom(5)),
                ("bounding", &|c| matches!(c, Call::DropBounding(_))),
                ("keepcaps", &|c| *c == Call::Keepcaps(true)),
                ("setgroups", &|c| matches!(c, Call::Setgroups(_))),
                ("setgid", &|c| *c == Call::Setresgid(1000)),
                ("setuid", &|c| *c == Call::Setresuid(1000)),
                ("keepcaps off", &|c| *c == Call::Keepcaps(false)),
                ("capset", &|c| matches!(c, Call::SetCaps { .. })),
                ("no_new_privs", &|c| *c == Call::NoNewPrivs),
                // with noNewPrivileges the filter waits until right before execve
                ("seccomp", &|c| matches!(c, Call::Seccomp { .. })),
                ("execve", &|c| matches!(c, Call::Execve { .. })),
            ],
        );
        assert_eq!(
            calls.last(),
            Some(&Call::Execve {
                path: "/bin/sh".into(),
                argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            })
        );
    }

    #[test]
    fn without_no_new_privs_seccomp_comes_while_still_root() {
        let sys = Recorder::default();
        let p = process(serde_json::json!({"args": ["/bin/sh"], "cwd": "/",
            "user": {"uid": 1, "gid": 1}}));
        let seccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        let plan = ProcessPlan::new(&p, Some(&seccomp)).unwrap();
        let (ch, _peer) = pair().unwrap();
        prepare(&p, &plan, None, 0, &ch, &sys).unwrap();
        let seccomp = sys.position("seccomp", |c| matches!(c, Call::Seccomp { .. }));
        let setuid = sys.position("setuid", |c| *c == Call::Setresuid(1));
        assert!(seccomp < setuid);
        assert!(!sys.calls().contains(&Call::NoNewPrivs));
    }

    #[test]
    fn a_missing_command_fails_before_created() {
        let sys = Recorder::default();
        let p = process(
            serde_json::json!({"args": ["no-such-command-anywhere"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}, "env": ["PATH=/nonexistent"]}),
        );
        let plan = ProcessPlan::new(&p, None).unwrap();
        let (ch, _peer) = pair().unwrap();
        let e = prepare(&p, &plan, None, 0, &ch, &sys).err().unwrap();
        assert!(e.to_string().contains("executable file not found"), "{e}");
    }
}
