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
use crate::syscall::{exit_now, Syscall};
use crate::{console, hooks, Error, Result};

pub struct Args<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a Plan,
    pub process: &'a ProcessPlan,
    pub channel: Channel,
    /// The exec fifo: `start` writes to it.
    pub fifo: OwnedFd,
    pub console: Option<UnixStream>,
    pub bind_sources: &'a rootfs::BindSources,
    pub host_mounts: &'a [capsa_linux::mountinfo::MountEntry],
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
    tracing::debug!("init: closing the pipe to signal completion");
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
    tracing::debug!("init: set-up starts (runc: child process in init())");
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
    if a.plan.new_net() {
        // As runc (its "loopback" network) and crun: a new network namespace has lo
        // down, and programs expect 127.0.0.1 to answer.
        sys.loopback_up()
            .ctx(|| "bring up lo in the new network namespace".into())?;
    }

    let ctx = RootfsContext {
        spec,
        rootfs: &a.bundle.rootfs,
        bundle: &a.bundle.dir,
        in_userns: a.plan.in_userns() || a.opts.caller_in_userns,
        new_cgroupns: a.plan.new_cgroup,
        bind_sources: a.bind_sources,
        host_mounts: a.host_mounts,
        sys,
    };
    rootfs::prepare(&ctx)?;
    rootfs::mount_all(&ctx)?;
    ch.send(&Msg::Mounted)?; // sync 2
    let hook_state = ch.expect_hooks_done()?;
    // createContainer hooks run from the rootfs, as in runc (they use relative paths).
    sys.chdir(&a.bundle.rootfs)
        .ctx(|| format!("chdir {}", a.bundle.rootfs.display()))?;
    run_hooks("createContainer", spec, hook_state.as_deref(), |h| {
        h.create_container().as_ref()
    })?;
    rootfs::pivot(&a.bundle.rootfs, a.opts.no_pivot, sys)?;
    rootfs::reopen_dev_null()?;
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
fn start(fifo: &OwnedFd, hooks: Option<&Hooks>, mut w: Waiting, sys: &dyn Syscall) -> Error {
    if let Err(e) = wait_for_start(fifo) {
        return e;
    }
    if let (Some(state), Some(h)) = (&w.hook_state, hooks) {
        let start_hooks = h.start_container().as_ref().filter(|v| !v.is_empty());
        if start_hooks.is_some() {
            // The hooks run in the container: under its seccomp filter, as in runc.
            if let Err(e) = w.exec.load_seccomp_now(sys) {
                return e;
            }
        }
        if let Err(e) = hooks::run_all("startContainer", start_hooks, state) {
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
                .map_err(|e| Error::io("create process.cwd", cwd, e))
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
                .map_err(|errno| Error::ProcWrite {
                    field: format!("linux.sysctl {k}"),
                    path,
                    errno,
                })?;
        }
    }
    Ok(())
}

/// Block until `capsa start` writes to the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let fifo_err = |e| Error::io("read", crate::state::EXEC_FIFO, e);
    let mut f = std::fs::File::from(fifo.try_clone().map_err(fifo_err)?);
    let mut b = [0u8; 1];
    loop {
        match f.read(&mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(Error::ProcessGone("exec fifo closed before start".into())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fifo_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The init's sequence through the recording fake: the real `set_up` against a
    //! scripted parent, in a thread of the test (nothing is mounted, nothing forked).

    use nix::mount::MsFlags;
    use nix::sched::CloneFlags;

    use super::*;
    use crate::channel::pair;
    use crate::process::sync;
    use crate::syscall::fake::{in_order, Call, Recorder};

    /// A bundle in a temp dir with `linux` merged into a small config.
    fn bundle(t: &Path, linux: serde_json::Value, extra: serde_json::Value) -> Bundle {
        let rootfs = t.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        let src = t.join("shared");
        std::fs::create_dir_all(&src).unwrap();
        let mut config = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "box",
            "process": {
                "args": ["/bin/sh", "-c", "true"], "cwd": "/",
                "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0},
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "mode=755"]},
                {"destination": "/data", "type": "bind", "source": src,
                 "options": ["rbind", "ro"]}
            ],
            "linux": linux
        });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        std::fs::write(t.join("config.json"), config.to_string()).unwrap();
        Bundle::load(t).unwrap()
    }

    fn opts() -> CreateOptions {
        CreateOptions {
            id: "ut".into(),
            ..CreateOptions::default()
        }
    }

    /// Runs `set_up` with the fake against `parent`, a script of the parent's side.
    fn run_init(
        b: &Bundle,
        parent: impl FnOnce(Channel) + Send + 'static,
    ) -> (Result<()>, Vec<Call>) {
        run_init_with(b, &opts(), Recorder::default(), parent)
    }

    /// [`run_init`] with these options and this (perhaps failing) fake.
    fn run_init_with(
        b: &Bundle,
        opts: &CreateOptions,
        sys: Recorder,
        parent: impl FnOnce(Channel) + Send + 'static,
    ) -> (Result<()>, Vec<Call>) {
        let plan = Plan::from_spec(&b.spec).unwrap();
        let process = process_of(&b.spec).unwrap();
        let seccomp = b.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let process_plan = ProcessPlan::new(process, seccomp).unwrap();
        let (ours, theirs) = pair().unwrap();
        let parent = std::thread::spawn(move || parent(theirs));
        let fifo: OwnedFd = tempfile::tempfile().unwrap().into();
        let host_mounts = capsa_linux::mountinfo::read();
        let a = Args {
            bundle: b,
            plan: &plan,
            process: &process_plan,
            channel: ours,
            fifo,
            console: None,
            bind_sources: &Default::default(),
            host_mounts: &host_mounts,
            opts,
            sys: &sys,
        };
        let res = set_up(&a).map(drop);
        drop(a);
        parent.join().unwrap();
        (res, sys.calls())
    }

    fn index(calls: &[Call], what: &str, pred: impl Fn(&Call) -> bool) -> usize {
        calls
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no {what} in {calls:#?}"))
    }

    #[test]
    fn a_joined_network_namespace_keeps_its_interfaces_as_they_are() {
        let t = tempfile::tempdir().unwrap();
        let b = bundle(
            t.path(),
            serde_json::json!({
                "namespaces": [{"type": "mount"}, {"type": "uts"},
                               {"type": "network", "path": "/proc/self/ns/net"}]
            }),
            serde_json::json!({}),
        );
        let (res, calls) = run_init(&b, |ch| {
            let steps = &mut Script::default();
            let shape = sync::Shape {
                mounts: true,
                ..Default::default()
            };
            sync::drive(&ch, shape, 1, steps).unwrap();
        });
        res.unwrap();
        assert!(
            calls.iter().any(|c| matches!(c, Call::Setns { .. })),
            "{calls:#?}"
        );
        assert!(!calls.contains(&Call::LoopbackUp), "{calls:#?}");
    }

    #[test]
    fn the_init_sequence_in_the_order_the_spec_requires() {
        let t = tempfile::tempdir().unwrap();
        let b = bundle(
            t.path(),
            serde_json::json!({
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"},
                               {"type": "uts"}, {"type": "network"}],
                "maskedPaths": ["/proc/version"],
                "readonlyPaths": ["/proc/sys"],
                "sysctl": {"net.ipv4.ip_forward": "1"},
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
            }),
            serde_json::json!({}),
        );
        let rootfs = b.rootfs.clone();
        let (res, calls) = run_init(&b, |ch| {
            let steps = &mut Script::default();
            let shape = sync::Shape {
                mounts: true,
                ..Default::default()
            };
            assert_eq!(sync::drive(&ch, shape, 1, steps).unwrap(), 1);
            assert_eq!(steps.0, ["place", "mounted", "created"]);
        });
        res.unwrap();
        let at = |p: &Path| {
            let p = p.to_string_lossy().into_owned();
            move |c: &Call| matches!(c, Call::Mount { target, .. } if *target == p)
        };
        let sysctl = |c: &Call| {
            matches!(c, Call::WriteProc { path, value }
                if path == "/proc/sys/net/ipv4/ip_forward" && value == "1")
        };
        let order = in_order(
            &calls,
            &[
                ("pdeathsig", &|c| {
                    *c == Call::Pdeathsig(Some(Signal::SIGKILL))
                }),
                ("non-dumpable", &|c| *c == Call::Dumpable(false)),
                ("cgroup ns", &|c| {
                    *c == Call::Unshare(CloneFlags::CLONE_NEWCGROUP)
                }),
                ("keyring", &|c| *c == Call::SessionKeyring("ut".into())),
                ("lo up", &|c| *c == Call::LoopbackUp),
                ("/ rslave", &at(Path::new("/"))),
                ("the rootfs bind", &at(&rootfs)),
                ("proc", &at(&rootfs.join("proc"))),
                ("/dev tmpfs", &at(&rootfs.join("dev"))),
                ("the bind mount", &at(&rootfs.join("data"))),
                ("mknod", &|c| matches!(c, Call::Mknod { .. })),
                ("pivot_root", &|c| matches!(c, Call::PivotRoot { .. })),
                ("hostname", &|c| *c == Call::Hostname("box".into())),
                ("sysctl", &sysctl),
                ("the masked path", &at(Path::new("/proc/version"))),
                ("root read-only", &at(Path::new("/"))),
                ("setsid", &|c| *c == Call::Setsid),
                ("rlimit", &|c| matches!(c, Call::Rlimit { soft: 64, .. })),
                ("cwd", &|c| *c == Call::Chdir("/".into())),
                ("cloexec", &|c| *c == Call::CloexecFrom(3)),
                ("setuid", &|c| *c == Call::Setresuid(0)),
                ("capset", &|c| matches!(c, Call::SetCaps { .. })),
                ("pdeathsig cleared", &|c| *c == Call::Pdeathsig(None)),
            ],
        );
        // The rootfs is made private to the host before anything is mounted in it.
        let Call::Mount { flags, .. } = &calls[order[5]] else {
            unreachable!()
        };
        assert_eq!(*flags, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        // The bind mount is remounted read-only; the root last of all.
        let remounts: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, flags, .. } if flags.contains(MsFlags::MS_REMOUNT) => {
                    Some(target.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            remounts.first(),
            Some(&rootfs.join("data").to_string_lossy().into_owned())
        );
        assert_eq!(remounts.last().map(String::as_str), Some("/"));
        // /dev/fuse is made as asked, with the mode exactly the config's.
        assert!(calls
            .iter()
            .any(|c| matches!(c, Call::Mknod { path, dev, perm: 0o666, .. }
            if *path == rootfs.join("dev/fuse").to_string_lossy()
                && *dev == nix::sys::stat::makedev(10, 229))));
    }

    #[test]
    fn two_stages_map_ids_then_fork_the_init() {
        let t = tempfile::tempdir().unwrap();
        let b = bundle(
            t.path(),
            serde_json::json!({
                "namespaces": [{"type": "user"}, {"type": "pid"}, {"type": "mount"},
                               {"type": "uts"}, {"type": "network", "path": "/proc/self/ns/net"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
            }),
            serde_json::json!({}),
        );
        let (res, calls) = run_init(&b, |ch| {
            // sync 1, 1a (MapIds), 1b (the answer the forked init waits for), 2, 3
            ch.send(&Msg::Proceed).unwrap();
            ch.expect(Msg::MapIds).unwrap();
            ch.send(&Msg::Proceed).unwrap();
            ch.send(&Msg::Proceed).unwrap();
            ch.expect(Msg::Mounted).unwrap();
            ch.send(&Msg::HooksDone(None)).unwrap();
            ch.expect(Msg::Created).unwrap();
            ch.send(&Msg::Ack).unwrap();
        });
        res.unwrap();
        let setns = index(&calls, "setns", |c| matches!(c, Call::Setns(_)));
        let unshare = index(&calls, "unshare", |c| {
            *c == Call::Unshare(
                CloneFlags::CLONE_NEWUSER
                    | CloneFlags::CLONE_NEWPID
                    | CloneFlags::CLONE_NEWNS
                    | CloneFlags::CLONE_NEWUTS,
            )
        });
        let root = index(&calls, "setuid 0", |c| *c == Call::Setresuid(0));
        let fork = index(&calls, "fork", |c| *c == Call::Clone(CloneFlags::empty()));
        let mount = index(&calls, "a mount", |c| matches!(c, Call::Mount { .. }));
        assert!(
            setns < unshare && unshare < root && root < fork && fork < mount,
            "{calls:#?}"
        );
        // Dumpable until the maps are written: not before `become_userns_root`.
        let dumpable = index(&calls, "non-dumpable", |c| *c == Call::Dumpable(false));
        assert!(dumpable > unshare, "{calls:#?}");
    }

    #[test]
    fn a_failed_mount_is_reported_with_its_index_and_nothing_after_runs() {
        let t = tempfile::tempdir().unwrap();
        let b = bundle(
            t.path(),
            serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "uts"}]}),
            serde_json::json!({}),
        );
        let plan = Plan::from_spec(&b.spec).unwrap();
        let process_plan = ProcessPlan::new(process_of(&b.spec).unwrap(), None).unwrap();
        let (ours, theirs) = pair().unwrap();
        let sys = Recorder::default();
        let proc_target = b.rootfs.join("proc").to_string_lossy().into_owned();
        sys.fail_when(move |c| {
            matches!(c, Call::Mount { target, .. } if *target == proc_target)
                .then_some(nix::errno::Errno::EPERM)
        });
        let opts = opts();
        let a = Args {
            bundle: &b,
            plan: &plan,
            process: &process_plan,
            channel: ours,
            fifo: tempfile::tempfile().unwrap().into(),
            console: None,
            bind_sources: &Default::default(),
            host_mounts: &[],
            opts: &opts,
            sys: &sys,
        };
        theirs.send(&Msg::Proceed).unwrap();
        let e = set_up(&a).err().expect("the mount fails").to_string();
        assert!(
            e.starts_with("mounts[0] (/proc)") && e.contains("EPERM"),
            "{e}"
        );
        assert!(!sys
            .calls()
            .iter()
            .any(|c| matches!(c, Call::PivotRoot { .. })));
        // Nothing was sent after sync 1: the parent hears of the failure from `init`.
        drop(a);
        assert!(theirs.recv().unwrap().is_none());
    }

    /// The parent's side of a create without a user namespace of its own: sync 1, 2, 3.
    fn plain_parent(ch: Channel) {
        let steps = &mut Script::default();
        let shape = sync::Shape {
            mounts: true,
            ..Default::default()
        };
        let _ = sync::drive(&ch, shape, 1, steps);
    }

    fn no_userns_bundle(t: &Path, devices: serde_json::Value) -> Bundle {
        bundle(
            t,
            serde_json::json!({
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}],
                "devices": devices
            }),
            serde_json::json!({}),
        )
    }

    /// The binds of host device nodes: (source as the descriptor names it, target).
    fn device_binds(calls: &[Call], rootfs: &Path) -> Vec<(String, String)> {
        let dev = rootfs.join("dev").to_string_lossy().into_owned();
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source: Some(s),
                    target,
                    flags,
                    ..
                } if *flags == MsFlags::MS_BIND && target.starts_with(&dev) => {
                    Some((s.clone(), target.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_a_user_namespace_we_did_not_make_devices_are_bound_not_made() {
        let t = tempfile::tempdir().unwrap();
        let b = no_userns_bundle(
            t.path(),
            serde_json::json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]),
        );
        let opts = CreateOptions {
            caller_in_userns: true,
            ..opts()
        };
        let (res, calls) = run_init_with(&b, &opts, Recorder::default(), plain_parent);
        res.unwrap();
        assert!(
            !calls.iter().any(|c| matches!(c, Call::Mknod { .. })),
            "no mknod: {calls:#?}"
        );
        let binds = device_binds(&calls, &b.rootfs);
        let dev = |n: &str| b.rootfs.join("dev").join(n).to_string_lossy().into_owned();
        for n in ["null", "zero", "full", "random", "urandom", "tty"] {
            assert!(
                binds.contains(&(format!("/dev/{n}"), dev(n))),
                "/dev/{n} bound from the host: {binds:?}"
            );
        }
    }

    #[test]
    fn mknod_refused_falls_back_to_the_hosts_node() {
        let t = tempfile::tempdir().unwrap();
        let b = no_userns_bundle(t.path(), serde_json::json!([]));
        let sys = Recorder::default();
        sys.fail_when(|c| matches!(c, Call::Mknod { .. }).then_some(nix::errno::Errno::EPERM));
        let (res, calls) = run_init_with(&b, &opts(), sys, plain_parent);
        res.unwrap();
        let binds = device_binds(&calls, &b.rootfs);
        let null = b.rootfs.join("dev/null").to_string_lossy().into_owned();
        assert!(
            binds.contains(&("/dev/null".to_string(), null)),
            "{binds:?}"
        );
    }

    #[test]
    fn a_host_node_that_is_not_the_configs_device_is_refused_and_nothing_left() {
        let t = tempfile::tempdir().unwrap();
        // /dev/null on the host is 1:3, not 1:5.
        let b = no_userns_bundle(
            t.path(),
            serde_json::json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]),
        );
        let opts = CreateOptions {
            caller_in_userns: true,
            ..opts()
        };
        let (res, calls) = run_init_with(&b, &opts, Recorder::default(), plain_parent);
        let e = res.expect_err("a wrong device").to_string();
        assert!(
            e.contains("linux.devices (/dev/null)") && e.contains("c 1:3"),
            "{e}"
        );
        let null = b.rootfs.join("dev/null");
        assert!(
            !device_binds(&calls, &b.rootfs)
                .iter()
                .any(|(_, t)| *t == null.to_string_lossy()),
            "{calls:#?}"
        );
        assert!(
            !null.exists(),
            "no empty file left where the device was to be"
        );
    }

    /// The parent's steps, by name only.
    #[derive(Default)]
    struct Script(Vec<&'static str>);

    impl sync::Steps for Script {
        fn place(&mut self, _: i32) -> Result<()> {
            self.0.push("place");
            Ok(())
        }
        fn map_ids(&mut self, _: i32) -> Result<()> {
            self.0.push("map_ids");
            Ok(())
        }
        fn forked(&mut self, _: i32, _: i32) -> Result<()> {
            self.0.push("forked");
            Ok(())
        }
        fn mounted(&mut self, _: i32) -> Result<Option<String>> {
            self.0.push("mounted");
            Ok(None)
        }
        fn seccomp_listener(&mut self, _: i32, _: OwnedFd) -> Result<()> {
            self.0.push("listener");
            Ok(())
        }
        fn created(&mut self, _: i32) -> Result<()> {
            self.0.push("created");
            Ok(())
        }
    }
}
