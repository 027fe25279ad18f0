//! containerd's own runc shim (containerd-shim-runc-v2) driving the runtime
//! under test: `ctr ... --runc-binary <runtime>` against a private containerd
//! (hack/containerd-env.sh), on a busybox image built locally.
//! The shim calls the runtime as it calls runc (`--root
//! /run/containerd/runc/<ns> --log <bundle>/log.json --log-format json`), so
//! these tests hold the runtime to what the shim expects of runc: foreground
//! and terminal runs, exec (with and without a terminal), pause/resume, ps,
//! metrics, kill (also `--all`) and delete.
//!
//! Needs containerd, ctr and `script` (util-linux; installed by
//! hack/test-deps.sh); skipped when they are missing outside CI, and when
//! CAPSA_TEST_CONTAINERD=0. Every test has its own containerd, namespace and
//! cgroup parent; the guards delete its tasks and containers, stop containerd
//! and remove the cgroups, also when an assertion failed.
//! A command whose output a test reads sleeps 0.3 s after writing it: ctr 1.6 closes
//! its fifos as soon as it has the exit (task.Delete: io.Close before io.Wait), and the
//! Go shim tells the exit without waiting for its copy of the output, so on a loaded
//! machine the last output of a command that exits at once is lost (seen in CI under
//! load for `ctr run --rm`; capsa's own shim waits for the output, docs/shim.md).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;

use integration::poll::{try_wait_until, HANG_GUARD};
use integration::runtime::{run_cmd, run_quiet, workspace_dir, Out};
use integration::{cgroup, image, Ctx};

/// The repository's private containerd set-up.
fn containerd_env() -> PathBuf {
    workspace_dir().join("hack/containerd-env.sh")
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn available() -> bool {
    if std::env::var("CAPSA_TEST_CONTAINERD").as_deref() == Ok("0") {
        integration::skip("CAPSA_TEST_CONTAINERD=0");
        return false;
    }
    let ok = have("containerd")
        && have("ctr")
        && have("containerd-shim-runc-v2")
        && have("script")
        && containerd_env().is_file();
    if !ok {
        // In CI hack/test-deps.sh installs them: a missing piece there is a failure.
        assert!(
            std::env::var("CI").is_err(),
            "containerd, ctr, containerd-shim-runc-v2, script or containerd-env.sh missing in CI"
        );
        integration::skip("containerd/ctr not installed (bash hack/test-deps.sh)");
    }
    ok
}

/// A private containerd, stopped (tasks killed, containers deleted) on drop.
struct Containerd {
    dir: PathBuf,
    sock: String,
    script: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let script = containerd_env();
        let out = run_cmd(
            Command::new("bash")
                .arg(&script)
                .arg("start")
                .env("CTRD_DIR", dir),
        )
        .ok();
        let sock = out
            .stdout
            .trim()
            .lines()
            .last()
            .expect("socket path printed")
            .to_string();
        Containerd {
            dir: dir.to_path_buf(),
            sock,
            script,
        }
    }

    fn cmd(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.args(["-a", &self.sock, "-n", ns]).args(args);
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        run_quiet(
            Command::new("bash")
                .arg(&self.script)
                .arg("stop")
                .env("CTRD_DIR", &self.dir),
        );
    }
}

/// One test's containerd world: its containerd, a namespace of its own with
/// the busybox image imported, and the containers it made. Dropping it
/// resumes, kills and deletes them before containerd stops; the Ctx (dropped
/// last) then removes the test's cgroup parent.
struct World {
    ctrd: Containerd,
    ns: String,
    image: String,
    rt: String,
    ids: Mutex<Vec<String>>,
    ctx: Ctx,
}

impl World {
    fn new() -> World {
        let ctx = Ctx::new();
        // Socket paths must stay short: the test's temp dir is under /tmp.
        let ctrd = Containerd::start(&ctx.mkdir("ctrd"));
        let ns = format!("capsa-it-{}", ctx.tag);
        let image = format!("localhost/capsa-it-busybox:{}", ctx.tag);
        let tar = image::busybox_docker_archive(&ctx.mkdir("image"), &image);
        let w = World {
            ctrd,
            ns,
            image,
            rt: ctx
                .rt
                .path
                .to_str()
                .expect("utf-8 runtime path")
                .to_string(),
            ids: Mutex::new(Vec::new()),
            ctx,
        };
        w.ctr(&["images", "import", tar.to_str().unwrap()]).ok();
        w
    }

    /// `ctr -a SOCK -n NS args...`
    fn ctr(&self, args: &[&str]) -> Out {
        run_cmd(&mut self.ctrd.cmd(&self.ns, args))
    }

    /// A new container id (cleaned up by the guard) and its cgroups path
    /// under the test's parent.
    fn id(&self, name: &str) -> (String, String) {
        let id = format!("{}-{name}", self.ctx.tag);
        self.ids.lock().unwrap().push(id.clone());
        let cg = format!("{}/{id}", self.ctx.cg_parent);
        (id, cg)
    }

    /// `ctr run` arguments up to and including the container id.
    fn run_args<'a>(&'a self, flags: &[&'a str], id: &'a str, cg: &'a str) -> Vec<&'a str> {
        let mut a = vec!["run"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["--runc-binary", &self.rt, "--cgroup", cg, &self.image, id]);
        a
    }

    /// `ctr run -d` of `cmd`, waited for until its task is RUNNING; returns
    /// the id, the cgroups path and the init pid.
    fn run_detached(&self, name: &str, flags: &[&str], cmd: &[&str]) -> (String, String, i32) {
        let (id, cg) = self.id(name);
        let mut args = self.run_args(flags, &id, &cg);
        args.insert(1, "-d");
        args.extend_from_slice(cmd);
        self.ctr(&args).ok();
        integration::wait_until("the task to be RUNNING", || {
            self.task_status(&id).as_deref() == Some("RUNNING")
        });
        let pid = self.task_pid(&id);
        (id, cg, pid)
    }

    /// The task's line of `ctr tasks ls`: TASK PID STATUS.
    fn task_row(&self, id: &str) -> Option<Vec<String>> {
        let out = self.ctr(&["tasks", "ls"]).ok();
        out.stdout
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.first().map(String::as_str) == Some(id))
    }

    fn task_status(&self, id: &str) -> Option<String> {
        self.task_row(id).and_then(|r| r.get(2).cloned())
    }

    #[track_caller]
    fn task_pid(&self, id: &str) -> i32 {
        let row = self.task_row(id).expect("the task is listed");
        row[1].parse().expect("the task's pid is a number")
    }

    /// `ctr tasks ps ID`: (pid, exec id or "" for init) per process.
    fn task_ps(&self, id: &str) -> Vec<(i32, String)> {
        let out = self.ctr(&["tasks", "ps", id]).ok();
        out.stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (pid, info) = l.trim().split_once(char::is_whitespace)?;
                let pid = pid.parse().ok()?;
                // INFO is `-` for init, `&ProcessDetails{ExecID:NAME,...}` for an exec
                let exec = info
                    .split_once("ExecID:")
                    .and_then(|(_, r)| r.split([',', '}']).next())
                    .unwrap_or("")
                    .to_string();
                Some((pid, exec))
            })
            .collect()
    }

    /// Deletes the task and the container, asserting both succeed.
    #[track_caller]
    fn delete(&self, id: &str) -> Out {
        let out = self.ctr(&["tasks", "delete", id]).ok();
        self.ctr(&["containers", "delete", id]).ok();
        out
    }

    /// `ctr args...` on a terminal (through `script`), for `-t`.
    fn ctr_on_pty(&self, args: &[&str]) -> PtyCtr {
        let mut line = vec!["ctr", "-a", &self.ctrd.sock, "-n", &self.ns];
        line.extend_from_slice(args);
        PtyCtr::spawn(&line)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Best effort, never panicking: a paused task must be thawed before
        // SIGKILL can end it.
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in &ids {
            for args in [
                &["tasks", "resume", id][..],
                &["tasks", "kill", "--all", "-s", "SIGKILL", id],
            ] {
                run_quiet(&mut self.ctrd.cmd(&self.ns, args));
            }
            // the task may take a moment to stop after SIGKILL
            try_wait_until(HANG_GUARD, || {
                run_quiet(&mut self.ctrd.cmd(&self.ns, &["tasks", "delete", "-f", id]))
                    || !self.task_listed(id)
            });
            run_quiet(&mut self.ctrd.cmd(&self.ns, &["containers", "delete", id]));
        }
        // The shim's --root for the namespace: gone if empty.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ns));
    }
}

impl World {
    /// Whether `ctr tasks ls` lists `id`; false when ctr fails. Never panics.
    fn task_listed(&self, id: &str) -> bool {
        self.ctrd
            .cmd(&self.ns, &["tasks", "ls", "-q"])
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == id)
            })
            .unwrap_or(false)
    }
}

/// A command running on a pseudo-terminal: `script -qfec CMD /dev/null`,
/// whose stdin we write and whose stdout (the terminal's output) we read.
struct PtyCtr {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Receiver<Vec<u8>>,
    seen: String,
}

impl PtyCtr {
    fn spawn(argv: &[&str]) -> PtyCtr {
        let line = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn script");
        let mut stdout = child.stdout.take().expect("script's stdout");
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        PtyCtr {
            stdin: child.stdin.take(),
            child,
            output,
            seen: String::new(),
        }
    }

    /// Reads the terminal until `needle` has appeared; panics if the output
    /// ends or nothing comes within the hang guard.
    fn wait_for(&mut self, needle: &str) {
        while !self.seen.contains(needle) {
            match self.output.recv_timeout(HANG_GUARD) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(e) => panic!(
                    "waiting for {needle:?} on the terminal ({e:?}); got {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Types `text` on the terminal.
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).expect("write to script");
        stdin.flush().expect("flush");
    }

    /// Waits for the command to end: its exit status and all it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let mut status = None;
        let done = try_wait_until(HANG_GUARD, || {
            status = self.child.try_wait().expect("wait for script");
            status.is_some()
        });
        if !done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("the terminal command hung; output {:?}", self.seen);
        }
        loop {
            match self.output.recv_timeout(HANG_GUARD) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the terminal output never ended"),
            }
        }
        self.stdin.take();
        (
            status.and_then(|s| s.code()),
            std::mem::take(&mut self.seen),
        )
    }
}

impl Drop for PtyCtr {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether every process of the cgroup is frozen, as the kernel reports it
/// (v1: freezer.state FROZEN; v2: cgroup.events `frozen 1`).
fn cgroup_frozen(cg: &str) -> bool {
    if cgroup::is_unified() {
        let dir = cgroup::controller_dir("freezer", cg);
        cgroup::read(&dir, "cgroup.events")
            .lines()
            .any(|l| l.trim() == "frozen 1")
    } else {
        cgroup::read(&cgroup::controller_dir("freezer", cg), "freezer.state") == "FROZEN"
    }
}

/// Pids in the cgroup (v1: the pids hierarchy), sorted.
fn cgroup_pids(cg: &str) -> Vec<i32> {
    let mut p = cgroup::procs(&cgroup::controller_dir("pids", cg));
    p.sort();
    p
}

/// The State line of /proc/PID/status, e.g. "S (sleeping)".
fn proc_state(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[test]
fn ctr_run_through_the_runc_shim() {
    if !available() {
        return;
    }
    let w = World::new();
    for (script, code) in [
        ("echo hello-from-ctr; sleep 0.3; exit 7", 7),
        (
            "echo second-run; cat /proc/self/cgroup >/dev/null; sleep 0.3",
            0,
        ),
    ] {
        let (id, cg) = w.id(&format!("ctr{code}"));
        let mut args = w.run_args(&["--rm"], &id, &cg);
        args.extend_from_slice(&["sh", "-c", script]);
        let out = w.ctr(&args);
        assert_eq!(
            out.code(),
            Some(code),
            "ctr run returns the process' exit status: {out}"
        );
        let want = script
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("echo ")
            .to_string();
        assert!(out.stdout.contains(&want), "output reaches ctr: {out}");
    }
    // --rm deleted everything: no container or task is left
    let tasks = w.ctr(&["tasks", "ls", "-q"]).ok();
    assert_eq!(tasks.out(), "", "{tasks}");
    let containers = w.ctr(&["containers", "ls", "-q"]).ok();
    assert_eq!(containers.out(), "", "{containers}");
}

#[test]
fn ctr_run_with_a_terminal() {
    if !available() {
        return;
    }
    let w = World::new();
    let (id, cg) = w.id("tty");
    let mut args = w.run_args(&["-t", "--rm"], &id, &cg);
    args.push("sh");
    let mut term = w.ctr_on_pty(&args);
    term.wait_for("# ");
    // computed in the container, so the echo of what we type cannot match
    term.send("tty; [ -t 0 ] && [ -t 1 ] && echo on-a-tty-$((6*7)); exit 4\r");
    let (code, seen) = term.finish();
    assert_eq!(
        code,
        Some(4),
        "ctr run -t returns the shell's status: {seen:?}"
    );
    assert!(
        seen.contains("on-a-tty-42"),
        "stdin and stdout are the terminal: {seen:?}"
    );
    assert!(
        seen.contains("/dev/pts/"),
        "the terminal is a pty: {seen:?}"
    );
    let tasks = w.ctr(&["tasks", "ls", "-q"]).ok();
    assert_eq!(tasks.out(), "", "--rm removed the task: {tasks}");
    assert!(
        cgroup::existing_dirs(&cg).is_empty(),
        "the container's cgroup is gone"
    );
}

#[test]
fn ctr_task_exec_without_and_with_a_terminal() {
    if !available() {
        return;
    }
    let w = World::new();
    let (id, _cg, _) = w.run_detached("exec", &["--env", "FROM_RUN=run-env"], &["sleep", "1000"]);

    // Without a terminal: output, exit status, the container's env, cwd, user.
    let out = w.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "plain",
        &id,
        "sh",
        "-c",
        "echo env=$FROM_RUN cwd=$(pwd) uid=$(id -u) gid=$(id -g); [ -t 1 ] || echo no-tty; sleep 0.3; exit 3",
    ]);
    assert_eq!(
        out.code(),
        Some(3),
        "exec returns the process' status: {out}"
    );
    assert!(
        out.stdout.contains("env=run-env cwd=/ uid=0 gid=0") && out.stdout.contains("no-tty"),
        "{out}"
    );
    let out = w
        .ctr(&[
            "tasks",
            "exec",
            "--exec-id",
            "user",
            "--cwd",
            "/tmp",
            "--user",
            "tester",
            &id,
            "sh",
            "-c",
            "echo cwd=$(pwd) uid=$(id -u) gid=$(id -g); sleep 0.3",
        ])
        .ok();
    assert!(
        out.stdout.contains("cwd=/tmp uid=1000 gid=1000"),
        "--cwd and --user reach the process: {out}"
    );
    let out = w.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "missing",
        &id,
        "/no/such/binary",
    ]);
    assert!(!out.success(), "exec of a missing binary fails: {out}");

    // With a terminal: interactive, on a pty, exit status back.
    let mut term = w.ctr_on_pty(&["tasks", "exec", "-t", "--exec-id", "tty", &id, "sh"]);
    term.wait_for("# ");
    term.send("tty; [ -t 0 ] && echo exec-tty-$((3*5)) env=$FROM_RUN; exit 6\r");
    let (code, seen) = term.finish();
    assert_eq!(
        code,
        Some(6),
        "exec -t returns the shell's status: {seen:?}"
    );
    assert!(seen.contains("exec-tty-15 env=run-env"), "{seen:?}");
    assert!(seen.contains("/dev/pts/"), "the exec has a pty: {seen:?}");

    // Only init is left: the exec'd processes are gone.
    let ps = w.task_ps(&id);
    assert_eq!(ps.len(), 1, "only init is left: {ps:?}");
    w.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]).ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    w.delete(&id);
}

#[test]
fn ctr_task_ps_lists_the_exec_processes() {
    if !available() {
        return;
    }
    let w = World::new();
    let (id, cg, init) = w.run_detached("ps", &[], &["sleep", "1000"]);
    for (exec, secs) in [("first", "1001"), ("second", "1002")] {
        w.ctr(&["tasks", "exec", "-d", "--exec-id", exec, &id, "sleep", secs])
            .ok();
    }
    let mut ps = Vec::new();
    integration::wait_until("ps to list three processes", || {
        ps = w.task_ps(&id);
        ps.len() == 3
    });
    let mut pids: Vec<i32> = ps.iter().map(|p| p.0).collect();
    pids.sort();
    assert_eq!(
        pids,
        cgroup_pids(&cg),
        "ps lists the cgroup's processes: {ps:?}"
    );
    for (exec, want) in [
        ("", "sleep 1000"),
        ("first", "sleep 1001"),
        ("second", "sleep 1002"),
    ] {
        let pid = ps
            .iter()
            .find(|p| p.1 == exec)
            .unwrap_or_else(|| panic!("exec {exec:?} in ps: {ps:?}"))
            .0;
        // runc returns from `exec -d` before its `runc init` has exec'd the process
        integration::wait_until(
            &format!("pid {pid} of exec {exec:?} to be `{want}`"),
            || cmdline(pid) == want,
        );
        if exec.is_empty() {
            assert_eq!(pid, init, "init's pid is the task's");
        }
    }
    w.ctr(&["tasks", "kill", "--all", "-s", "SIGKILL", &id])
        .ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    w.delete(&id);
}

#[test]
fn ctr_task_pause_and_resume() {
    if !available() {
        return;
    }
    let w = World::new();
    // init counts in a file: frozen, the count stands still
    let (id, cg, pid) = w.run_detached(
        "pause",
        &[],
        &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >/tmp/n.new; mv /tmp/n.new /tmp/n; usleep 10000; done"],
    );
    let counter = PathBuf::from(format!("/proc/{pid}/root/tmp/n"));
    let count = || std::fs::read_to_string(&counter).unwrap_or_default();
    integration::wait_until("init to count", || !count().is_empty());
    w.ctr(&[
        "tasks",
        "exec",
        "-d",
        "--exec-id",
        "child",
        &id,
        "sleep",
        "1000",
    ])
    .ok();

    w.ctr(&["tasks", "pause", &id]).ok();
    assert_eq!(w.task_status(&id).as_deref(), Some("PAUSED"));
    assert!(cgroup_frozen(&cg), "the kernel reports the cgroup frozen");
    let frozen_at = count();
    let pids = cgroup_pids(&cg);
    // init's usleep/mv come and go; init and the exec are always there
    let exec_pid = w
        .task_ps(&id)
        .into_iter()
        .find(|p| p.1 == "child")
        .expect("the exec in ps")
        .0;
    assert!(
        pids.contains(&pid) && pids.contains(&exec_pid),
        "init {pid} and exec {exec_pid} in the frozen cgroup: {pids:?}"
    );
    if !cgroup::is_unified() {
        // the v1 freezer parks tasks in an uninterruptible sleep
        for p in &pids {
            assert!(
                proc_state(*p).starts_with('D'),
                "pid {p}: {}",
                proc_state(*p)
            );
        }
    }
    let out = w.ctr(&["tasks", "exec", "--exec-id", "intopaused", &id, "true"]);
    assert!(!out.success(), "exec into a paused task fails: {out}");
    assert_eq!(count(), frozen_at, "the count stood still while paused");

    w.ctr(&["tasks", "resume", &id]).ok();
    assert_eq!(w.task_status(&id).as_deref(), Some("RUNNING"));
    assert!(!cgroup_frozen(&cg), "the cgroup is thawed");
    integration::wait_until("init to count again", || count() != frozen_at);
    let out = w
        .ctr(&[
            "tasks",
            "exec",
            "--exec-id",
            "after",
            &id,
            "sh",
            "-c",
            "echo after-resume; sleep 0.3",
        ])
        .ok();
    assert!(out.stdout.contains("after-resume"), "{out}");

    w.ctr(&["tasks", "kill", "--all", "-s", "SIGKILL", &id])
        .ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    w.delete(&id);
}

/// The value of a `ctr tasks metrics` table row.
fn metric(table: &str, name: &str) -> Option<String> {
    table.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(name)).then(|| f.collect::<Vec<_>>().join(" "))
    })
}

#[test]
fn ctr_task_metrics() {
    if !available() {
        return;
    }
    let w = World::new();
    let (id, _cg, pid) = w.run_detached(
        "metrics",
        &["--memory-limit", "268435456"],
        // some memory and some CPU time to show
        &["sh", "-c", "x=$(seq 1 20000); while :; do sleep 1000; done"],
    );
    // Metrics once the shell has started its sleep (RUNNING comes before that).
    let sleeping = || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).is_ok_and(|c| {
            c.split_whitespace().any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
        })
    };
    integration::wait_until("the container's sleep", sleeping);
    let out = w.ctr(&["tasks", "metrics", &id]).ok();
    let m = &out.stdout;
    let num = |names: &[&str]| -> u64 {
        let v = names
            .iter()
            .find_map(|n| metric(m, n))
            .unwrap_or_else(|| panic!("none of {names:?} in the metrics: {out}"));
        v.parse()
            .unwrap_or_else(|e| panic!("{names:?} = {v:?} is not a number ({e}): {out}"))
    };
    // v1 names, then v2's
    let usage = num(&["memory.usage_in_bytes", "memory.usage"]);
    assert!(usage > 0, "memory usage > 0: {out}");
    let limit = num(&["memory.limit_in_bytes", "memory.usage_limit"]);
    assert_eq!(limit, 268435456, "the memory limit is the one set: {out}");
    assert!(
        num(&["cpuacct.usage", "cpu.usage_usec"]) > 0,
        "CPU time > 0: {out}"
    );
    assert!(num(&["pids.current"]) >= 2, "sh and its sleep: {out}");

    w.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]).ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    w.delete(&id);
}

#[test]
fn ctr_task_kill_and_delete() {
    if !available() {
        return;
    }
    let w = World::new();
    // The default signal (SIGTERM) reaches init, which traps it.
    let (id, cg, pid) = w.run_detached(
        "term",
        &[],
        &["sh", "-c", "trap 'exit 9' TERM; while :; do sleep 1; done"],
    );
    w.ctx.rt.runc_wait_for_exec(pid);
    w.ctr(&["tasks", "kill", &id]).ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    let out = w.delete(&id);
    assert!(
        out.all().contains("exit code 9"),
        "the trap's status: {out}"
    );
    assert!(
        cgroup::existing_dirs(&cg).is_empty(),
        "the container's cgroup is gone"
    );
    let out = w.ctr(&["tasks", "kill", &id]);
    assert!(!out.success(), "kill of a deleted task fails: {out}");

    // SIGKILL to init only: the task stops, the shim reports 137.
    let (id, cg, _) = w.run_detached("kill", &[], &["sleep", "1000"]);
    w.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]).ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    let out = w.delete(&id);
    assert!(out.all().contains("exit code 137"), "{out}");
    assert!(
        cgroup::existing_dirs(&cg).is_empty(),
        "the container's cgroup is gone"
    );
}

#[test]
fn ctr_task_kill_all_reaches_the_exec_processes() {
    if !available() {
        return;
    }
    let w = World::new();
    let (id, cg, _) = w.run_detached("killall", &[], &["sleep", "1000"]);
    for exec in ["one", "two"] {
        w.ctr(&[
            "tasks",
            "exec",
            "-d",
            "--exec-id",
            exec,
            &id,
            "sleep",
            "1001",
        ])
        .ok();
    }
    integration::wait_until("three processes in the cgroup", || {
        cgroup_pids(&cg).len() == 3
    });
    let pids = cgroup_pids(&cg);
    w.ctr(&["tasks", "kill", "--all", "-s", "SIGKILL", &id])
        .ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    integration::wait_until("every process of the container to be gone", || {
        cgroup_pids(&cg).is_empty()
            && pids
                .iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists())
    });
    w.delete(&id);
    assert!(
        cgroup::existing_dirs(&cg).is_empty(),
        "the container's cgroup is gone"
    );
    let tasks = w.ctr(&["tasks", "ls", "-q"]).ok();
    assert_eq!(tasks.out(), "", "{tasks}");
}

#[test]
fn ctr_run_creates_a_missing_cwd_and_reports_runtime_errors() {
    if !available() {
        return;
    }
    let w = World::new();
    // A working directory the image lacks is created (runc does: Kubernetes
    // pods and images rely on it), 0755, inside the container.
    let (id, cg) = w.id("cwd");
    let mut args = w.run_args(&["--rm", "--cwd", "/made/by/runtime"], &id, &cg);
    args.extend_from_slice(&[
        "sh",
        "-c",
        "echo cwd=$(pwd) mode=$(stat -c %a .); sleep 0.3",
    ]);
    let out = w.ctr(&args).ok();
    assert!(
        out.stdout.contains("cwd=/made/by/runtime mode=755"),
        "{out}"
    );

    // A failing create: the runtime's own error (read back by the shim from
    // its --log json file) reaches ctr, and nothing is left.
    let (id, cg) = w.id("enoent");
    let mut args = w.run_args(&["--rm"], &id, &cg);
    args.push("/no/such/binary");
    let out = w.ctr(&args);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("OCI runtime create failed") && out.stderr.contains("/no/such/binary"),
        "the runtime's error reaches ctr: {out}"
    );
    assert_eq!(w.ctr(&["containers", "ls", "-q"]).ok().out(), "");
    assert_eq!(w.ctr(&["tasks", "ls", "-q"]).ok().out(), "");
    integration::wait_until("the failed container's cgroup to be removed", || {
        cgroup::existing_dirs(&cg).is_empty()
    });

    // exec does not create its cwd (neither does runc): a clear error.
    let (id, _cg, _) = w.run_detached("execcwd", &[], &["sleep", "1000"]);
    let out = w.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "nocwd",
        "--cwd",
        "/no/such/dir",
        &id,
        "true",
    ]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("/no/such/dir"),
        "the error names the cwd: {out}"
    );
    w.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]).ok();
    integration::wait_until("the task to stop", || {
        w.task_status(&id).as_deref() == Some("STOPPED")
    });
    w.delete(&id);
}
