//! Faults: a runtime command (create, start, exec) or the container's init SIGKILLed at
//! each stage of the lifecycle leaves state that `delete --force` cleans completely (no
//! state dir, cgroup in any hierarchy, mount under the test dir or process); a create
//! killed before it recorded anything leaves nothing at all.
//!
//! The runtime is stopped at a known stage by something that blocks, never by timing: a
//! hook that waits for a release file ([`Gate`]), a config.json that is a fifo, a console
//! socket whose backlog is full, or a paused container (exec). A cgroup frozen ahead of
//! time no longer stops create: it is refused (cgroups.rs
//! `create_in_a_frozen_cgroup_is_refused`), as runc does.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use integration::{cgroup, leftovers, wait_until, Bundle, Ctx};
use serde_json::{json, Value};

/// Who gets the SIGKILL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    /// The runtime command that is blocked at the stage.
    Runtime,
    /// The container's init (or the half-made process in its place).
    Init,
}

const VICTIMS: [Victim; 2] = [Victim::Runtime, Victim::Init];

/// A runtime command running in the background, its stderr kept in a file.
struct Bg {
    child: Child,
    stderr: fs::File,
    what: String,
}

impl Bg {
    fn spawn(ctx: &Ctx, args: &[&str]) -> Bg {
        let stderr = tempfile::tempfile().expect("stderr file");
        let child = ctx
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.try_clone().expect("dup stderr file"))
            .spawn()
            .expect("spawn the runtime");
        Bg {
            child,
            stderr,
            what: args.join(" "),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL (a no-op if it has exited already) and reap.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for it to exit by itself; returns whether it succeeded and its stderr.
    fn wait(mut self) -> (bool, String) {
        let mut ok = false;
        wait_until(&format!("`{}` to exit", self.what), || {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    ok = st.success();
                    true
                }
                Ok(None) => false,
                Err(_) => true,
            }
        });
        (ok, runtime_stderr(&self))
    }
}

/// A hook that stops the runtime at its stage: it saves the state it reads on stdin,
/// announces itself (`<name>.in`), and waits until `<name>.release` appears or its parent
/// (the runtime, or the init for hooks that run in the container) is gone. It writes its
/// pid (`<name>.pid`), so the test can wait for a hook on the host to be gone too.
struct Gate {
    base: PathBuf,
}

impl Gate {
    fn new(ctx: &Ctx, name: &str) -> Gate {
        Gate {
            base: ctx.mkdir("gates").join(name),
        }
    }

    /// `b` with the gate's hook of `kind`, and the gates dir bound at its own path: a
    /// startContainer hook runs in the container's root and finds its files there.
    fn add_to(&self, b: Bundle, kind: &str) -> Bundle {
        let dir = self.base.parent().expect("gates dir").to_path_buf();
        b.bind(&dir, dir.to_str().expect("utf-8 path"))
            .hook(kind, self.hook())
    }

    fn file(&self, ext: &str) -> PathBuf {
        let mut p = self.base.clone().into_os_string();
        p.push(format!(".{ext}"));
        PathBuf::from(p)
    }

    fn hook(&self) -> Value {
        let f = |e| self.file(e).display().to_string();
        let script = format!(
            "cat > {st}; echo $$ > {pid}; touch {inn}; \
             while [ ! -e {rel} ] && kill -0 $PPID 2>/dev/null; do sleep 0.02; done",
            st = f("state"),
            pid = f("pid"),
            inn = f("in"),
            rel = f("release"),
        );
        json!({ "path": "/bin/sh", "args": ["sh", "-c", script] })
    }

    fn wait_in(&self, runtime: &mut Bg) {
        wait_until(&format!("{} to run", self.base.display()), || {
            self.file("in").exists() || runtime.exited()
        });
        assert!(
            self.file("in").exists(),
            "`{}` exited before its hook ran: {}",
            runtime.what,
            runtime_stderr(runtime)
        );
    }

    fn release(&self) {
        fs::write(self.file("release"), "").expect("write release file");
    }

    /// Until a hook on the host (its pid is the host's) has exited.
    fn wait_out(&self) {
        let pid: i32 = fs::read_to_string(self.file("pid"))
            .expect("hook pid")
            .trim()
            .parse()
            .expect("hook pid is a number");
        wait_until(&format!("{} to return", self.base.display()), || {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for whoever inherited it.
            stat.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(true)
        });
    }

    /// The init's pid, from the state the hook was given.
    fn init_pid(&self) -> i32 {
        let text = fs::read_to_string(self.file("state")).expect("hook state");
        let v: Value = serde_json::from_str(&text).expect("hook state is JSON");
        v["pid"].as_i64().expect("state.pid") as i32
    }
}

/// What the background command wrote to stderr so far.
fn runtime_stderr(bg: &Bg) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = bg.stderr.try_clone().expect("dup stderr file");
    let mut s = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut s);
    s
}

fn sigkill(pid: i32) {
    // Never 1: that would be the host's init (a pid from inside the container).
    assert!(pid > 1, "no pid to kill: {pid}");
    // SAFETY: kill(2) of a process of this test (its runtime command or container init).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn create_bg(ctx: &Ctx, id: &str, b: &Bundle, extra: &[&str]) -> Bg {
    let dir = b.dir.to_string_lossy().into_owned();
    let mut args = vec!["create", "--bundle", &dir];
    args.extend_from_slice(extra);
    args.push(id);
    Bg::spawn(ctx, &args)
}

/// After the fault: `delete --force` succeeds and nothing of the container is left.
#[track_caller]
fn force_delete_leaves_nothing(ctx: &Ctx, id: &str, b: &Bundle) {
    let out = ctx.delete_force(id);
    assert!(out.success(), "delete --force after the fault: {out}");
    let mut found = leftovers::of_container(ctx, id, b);
    if !found.cgroups.is_empty()
        && ctx
            .rt
            .runc_deviation("runc 1.1 leaves the cgroup of a create killed half-way")
    {
        found.cgroups.clear();
    }
    if found
        .processes
        .iter()
        .any(|(_, cmd)| cmd.contains("runc init"))
        && ctx.rt.runc_deviation(
            "runc 1.1 leaves `runc init` (and the hook it runs) of a create killed in a \
             createContainer hook: it has no parent-death signal then and no state to find",
        )
    {
        found.processes.clear();
    }
    assert!(found.is_empty(), "left behind: {found:#?}");
    if ctx.rt.is_capsa() {
        ctx.assert_nothing_left(id, b);
    }
}

/// Kills `victim` while `create` waits in the hook of `kind`, then cleans up.
fn create_killed_in_hook(kind: &str, victim: Victim) {
    let ctx = Ctx::new();
    let gate = Gate::new(&ctx, kind);
    let b = gate.add_to(ctx.bundle().args(&["/bin/sleep", "1000"]), kind);
    b.write();
    let id = ctx.id();
    let mut create = create_bg(&ctx, &id, &b, &[]);
    gate.wait_in(&mut create);
    assert!(
        !cgroup::existing_dirs(&b.cgroups_path()).is_empty(),
        "the cgroup exists while create runs its {kind} hook"
    );
    let host_hook = kind != "createContainer";
    match victim {
        Victim::Runtime => {
            create.kill();
            // A hook on the host outlives the runtime only until it sees its parent gone;
            // one in the container dies with the init (it was in its pid namespace).
            if host_hook {
                gate.wait_out();
            }
        }
        Victim::Init => {
            let pid = gate.init_pid();
            if pid == 1
                && ctx.rt.runc_deviation(
                    "runc 1.1 gives createContainer hooks the init's pid in its own pid \
                     namespace (1), not the host's",
                )
            {
                let dir = cgroup::controller_dir("pids", &b.cgroups_path());
                cgroup::procs(&dir).into_iter().for_each(sigkill);
            } else {
                sigkill(pid);
            }
            gate.release();
            let (ok, err) = create.wait();
            assert!(!ok, "create succeeds although its init was killed: {err}");
            if host_hook {
                gate.wait_out();
            }
        }
    }
    force_delete_leaves_nothing(&ctx, &id, &b);
}

#[test]
fn create_killed_in_prestart_hook() {
    for v in VICTIMS {
        create_killed_in_hook("prestart", v);
    }
}

#[test]
fn create_killed_in_create_runtime_hook() {
    for v in VICTIMS {
        create_killed_in_hook("createRuntime", v);
    }
}

#[test]
fn create_killed_in_create_container_hook() {
    for v in VICTIMS {
        create_killed_in_hook("createContainer", v);
    }
}

/// A create killed while it reads config.json (a fifo here) has recorded nothing, and
/// leaves nothing.
#[test]
fn create_killed_before_recording_anything_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/true"]);
    nix::unistd::mkfifo(
        &b.config_path(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo config.json");
    let id = ctx.id();
    let mut create = create_bg(&ctx, &id, &b, &[]);
    // A non-blocking open for writing succeeds only once create opens it for reading.
    let mut writer: Option<fs::File> = None;
    wait_until("create to open config.json", || {
        writer = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(b.config_path())
            .ok();
        writer.is_some() || create.exited()
    });
    assert!(
        writer.is_some(),
        "create exited: {}",
        runtime_stderr(&create)
    );
    create.kill();
    drop(writer);
    assert!(
        !ctx.root.join(&id).exists(),
        "create recorded the container before reading its config"
    );
    ctx.assert_nothing_left(&id, &b);
    force_delete_leaves_nothing(&ctx, &id, &b);
}

/// A unix socket whose accept backlog is full: a blocking connect to it waits.
fn full_socket(path: &Path) -> (OwnedFd, OwnedFd) {
    use nix::sys::socket::{bind, connect, listen, socket, AddressFamily, Backlog, SockFlag};
    use nix::sys::socket::{SockType, UnixAddr};
    let addr = UnixAddr::new(path).expect("socket path");
    let l = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(std::os::fd::AsRawFd::as_raw_fd(&l), &addr).expect("bind");
    listen(&l, Backlog::new(0).expect("backlog")).expect("listen");
    let filler = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    connect(std::os::fd::AsRawFd::as_raw_fd(&filler), &addr).expect("connect the filler");
    (l, filler)
}

/// Whether some thread of `pid` is blocked in connect(2) (x86_64 syscall 42).
fn in_connect(pid: i32) -> bool {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    rd.flatten().any(|t| {
        fs::read_to_string(t.path().join("syscall"))
            .map(|s| s.split_whitespace().next() == Some("42"))
            .unwrap_or(false)
    })
}

/// create killed after it made its state dir but before the init exists: it is blocked
/// connecting to a --console-socket nobody accepts on.
#[test]
fn create_killed_before_the_init_exists() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]).terminal(true);
    b.write();
    let sock = ctx.path("console.sock");
    let _held = full_socket(&sock);
    let id = ctx.id();
    let sock_s = sock.to_string_lossy().into_owned();
    let mut create = create_bg(&ctx, &id, &b, &["--console-socket", &sock_s]);
    let pid = create.pid();
    wait_until("create to block connecting to the console socket", || {
        in_connect(pid) || create.exited()
    });
    if create.exited()
        && ctx.rt.runc_deviation(
            "runc's non-blocking connect fails at once (EAGAIN) on a full console socket",
        )
    {
        let _ = create.wait();
        force_delete_leaves_nothing(&ctx, &id, &b);
        return;
    }
    assert!(
        in_connect(pid),
        "create exited: {}",
        runtime_stderr(&create)
    );
    assert!(
        cgroup::existing_dirs(&b.cgroups_path()).is_empty(),
        "a cgroup exists before the init does"
    );
    create.kill();
    force_delete_leaves_nothing(&ctx, &id, &b);
}

fn thaw(dir: &Path) {
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
}

/// After create returned: `delete --force` of the created container, or of one whose
/// init was killed, leaves nothing.
#[test]
fn killed_after_create_returned() {
    for victim in VICTIMS {
        let ctx = Ctx::new();
        let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
        let id = ctx.id();
        ctx.create(&id, &b).ok();
        if victim == Victim::Init {
            sigkill(ctx.pid(&id));
            ctx.wait_status(&id, "stopped");
        }
        force_delete_leaves_nothing(&ctx, &id, &b);
    }
}

/// Kills `victim` while `start` waits in the hook of `kind`.
fn start_killed_in_hook(kind: &str, victim: Victim) {
    let ctx = Ctx::new();
    let gate = Gate::new(&ctx, kind);
    let b = gate.add_to(ctx.bundle().args(&["/bin/sleep", "1000"]), kind);
    let id = ctx.id();
    if kind == "poststart"
        && ctx
            .rt
            .runc_deviation("runc 1.1 runs poststart hooks in create, not in start")
    {
        return;
    }
    ctx.create(&id, &b).ok();
    let init = ctx.pid(&id);
    let mut start = Bg::spawn(&ctx, &["start", &id]);
    gate.wait_in(&mut start);
    let host_hook = kind == "poststart";
    match victim {
        Victim::Runtime => {
            // runc's start returns before its init runs startContainer hooks: then the
            // kill finds it gone, which is fine.
            start.kill();
            if host_hook {
                gate.wait_out();
            }
        }
        Victim::Init => {
            // The state's pid (the hook's is the namespace's own under runc).
            sigkill(init);
            gate.release();
            let _ = start.wait();
            if host_hook {
                gate.wait_out();
            }
        }
    }
    force_delete_leaves_nothing(&ctx, &id, &b);
}

#[test]
fn start_killed_in_start_container_hook() {
    for v in VICTIMS {
        start_killed_in_hook("startContainer", v);
    }
}

#[test]
fn start_killed_in_poststart_hook() {
    for v in VICTIMS {
        start_killed_in_hook("poststart", v);
    }
}

/// A foreground `exec` killed (or the init killed) while the exec'd process runs.
#[test]
fn exec_killed_while_its_process_runs() {
    for victim in VICTIMS {
        let ctx = Ctx::new();
        let marks = ctx.mkdir("marks");
        let b = ctx
            .bundle()
            .bind(&marks, "/marks")
            .args(&["/bin/sleep", "1000"]);
        let id = ctx.id();
        ctx.create_start(&id, &b);
        let mut exec = Bg::spawn(
            &ctx,
            &[
                "exec",
                &id,
                "/bin/sh",
                "-c",
                "touch /marks/exec.in; exec sleep 1000",
            ],
        );
        wait_until("the exec'd process to run", || {
            marks.join("exec.in").exists() || exec.exited()
        });
        assert!(
            marks.join("exec.in").exists(),
            "exec exited: {}",
            runtime_stderr(&exec)
        );
        match victim {
            Victim::Runtime => exec.kill(),
            Victim::Init => {
                sigkill(ctx.pid(&id));
                // The exec'd process dies with the pid namespace; exec reports it.
                let _ = exec.wait();
            }
        }
        force_delete_leaves_nothing(&ctx, &id, &b);
    }
}

/// A detached exec killed while it is being set up: the container is paused, so the exec
/// (run with --ignore-paused) stops frozen the moment it joins the container's cgroup.
#[test]
fn detached_exec_killed_during_set_up() {
    for victim in VICTIMS {
        let ctx = Ctx::new();
        let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
        let id = ctx.id();
        ctx.create_start(&id, &b);
        let init = ctx.pid(&id);
        ctx.rt(&["pause", &id]).ok();
        let frozen = if cgroup::is_unified() {
            cgroup::controller_dir("pids", &b.cgroups_path())
        } else {
            cgroup::controller_dir("freezer", &b.cgroups_path())
        };
        let mut exec = Bg::spawn(
            &ctx,
            &["exec", "-d", "--ignore-paused", &id, "/bin/sleep", "1000"],
        );
        wait_until("the exec to join the frozen cgroup", || {
            cgroup::procs(&frozen).iter().any(|&p| p != init) || exec.exited()
        });
        assert!(
            cgroup::procs(&frozen).iter().any(|&p| p != init),
            "exec exited: {}",
            runtime_stderr(&exec)
        );
        match victim {
            Victim::Runtime => {
                exec.kill();
                // The frozen exec process must not keep the runtime's state open: with
                // capsa's state-dir lock in its hands, `delete` would wait on it forever.
                let held = leftovers::fds_under(&ctx.root);
                assert!(held.is_empty(), "frozen exec holds the state: {held:?}");
            }
            Victim::Init => {
                sigkill(init);
                // Someone resumes the container: the init dies; the exec fails, or wins
                // the race with the init's death and its process dies with the pid
                // namespace. Either way nothing may be left.
                thaw(&frozen);
                let _ = exec.wait();
            }
        }
        force_delete_leaves_nothing(&ctx, &id, &b);
    }
}

/// A hook that never looks at its parent still dies with a runtime killed while it waits
/// for it: nothing of the runtime's may run on after it.
#[test]
fn hook_dies_with_the_killed_runtime() {
    let ctx = Ctx::new();
    let pid_file = ctx.path("hook.pid");
    let b = ctx.bundle().args(&["/bin/true"]).hook(
        "createRuntime",
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {}.tmp && mv {0}.tmp {0} && exec sleep 1000", pid_file.display())],
        }),
    );
    b.write();
    let id = ctx.id();
    let mut create = create_bg(&ctx, &id, &b, &[]);
    wait_until("the hook to start", || pid_file.exists() || create.exited());
    assert!(
        pid_file.exists(),
        "create exited before its hook ran: {}",
        runtime_stderr(&create)
    );
    let hook: i32 = fs::read_to_string(&pid_file)
        .expect("hook pid")
        .trim()
        .parse()
        .expect("hook pid number");
    create.kill();
    let gone = || !Path::new(&format!("/proc/{hook}")).exists();
    if ctx.rt.is_capsa()
        || !ctx
            .rt
            .runc_deviation("runc 1.1's hooks outlive a killed runc")
    {
        wait_until("the hook to die with the runtime", gone);
    } else {
        sigkill(hook);
        wait_until("the hook to be killed", gone);
    }
    force_delete_leaves_nothing(&ctx, &id, &b);
}
