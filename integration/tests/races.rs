//! The pid race of a process forked by a first stage (issue 12): the first stage reports
//! the pid of the process it forks, and the process reports that it is ready, on one
//! channel. Delaying the return of clone(2) in the first stage (strace's fault injection)
//! lets the process run ahead; the runtime must still report its real pid, never 0, for
//! `exec` (a kubelet's probes) and for a `create` that joins another container's pid
//! namespace (shareProcessNamespace, `kubectl debug --target`).

use std::process::{Command, Stdio};

use integration::runtime::run_cmd;
use integration::{wait_until, Ctx};

/// strace running the runtime's `args`, each clone(2) held 200 ms before it returns.
/// strace follows every process the runtime makes, the container's included.
fn with_delayed_clone(ctx: &Ctx, args: &[&str]) -> Command {
    let rt = ctx.cmd(args);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"])
        .args(["-e", "trace=clone", "-e", "inject=clone:delay_exit=200000"])
        .arg(rt.get_program())
        .args(rt.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The command line of `pid`, words joined by spaces.
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
fn exec_reports_its_process_pid_when_the_process_runs_ahead() {
    let ctx = Ctx::new();
    let id = ctx.id();
    ctx.create_start(&id, &ctx.bundle().args(&["/bin/sleep", "1000"]));
    for round in 0..3 {
        let pidfile = ctx.path(&format!("exec{round}.pid"));
        let marker = format!("{}", 4000 + round);
        let pf = pidfile.to_str().unwrap();
        // strace lives as long as the detached process it follows: the test's guard
        // kills it, and the process goes with the container.
        ctx.spawn_helper(&mut with_delayed_clone(
            &ctx,
            &["exec", "-d", "--pid-file", pf, &id, "sleep", &marker],
        ));
        wait_until("exec -d writes its pid file", || {
            std::fs::read_to_string(&pidfile).is_ok_and(|s| !s.is_empty())
        });
        let text = std::fs::read_to_string(&pidfile).unwrap();
        let pid: i32 = text.parse().expect("the pid file holds a number");
        assert!(pid > 0, "round {round}: exec reported pid {pid}");
        // The pid file may come before the process' execve (runc and capsa both write it
        // at their last sync point): the reported pid becomes the exec'd process, which a
        // first stage's or the runtime's pid never does.
        let want = format!("sleep {marker}");
        wait_until(
            &format!("round {round}: pid {pid} becomes the exec'd process ({want})"),
            || cmdline(pid) == want,
        );
    }
    // In the foreground, the status is the process' own (strace returns the runtime's).
    let out = run_cmd(&mut with_delayed_clone(
        &ctx,
        &["exec", &id, "sh", "-c", "exit 7"],
    ));
    assert_eq!(out.code(), Some(7), "{out}");
}

#[test]
fn create_in_another_pid_namespace_reports_its_init() {
    let ctx = Ctx::new();
    let holder = ctx.id();
    ctx.create_start(&holder, &ctx.bundle().args(&["/bin/sleep", "1000"]));
    let ns = std::path::PathBuf::from(format!("/proc/{}/ns/pid", ctx.pid(&holder)));
    let id = ctx.id();
    let b = ctx
        .bundle()
        .args(&["/bin/sleep", "2000"])
        .namespace("pid", Some(&ns));
    b.write();
    let dir = b.dir.to_str().unwrap().to_string();
    // strace follows the init too, until the test's guard kills it.
    ctx.spawn_helper(&mut with_delayed_clone(
        &ctx,
        &["create", "--bundle", &dir, &id],
    ));
    wait_until("create saves the state", || {
        ctx.rt(&["state", &id]).success()
    });
    let state = ctx.state(&id);
    let pid = state["pid"].as_i64().unwrap_or(0) as i32;
    assert_eq!(state["status"], "created", "{state}");
    assert!(pid > 0, "state reports pid {pid}: {state}");
    ctx.start(&id).ok();
    ctx.wait_status(&id, "running");
    assert_eq!(ctx.pid(&id), pid);
    // `start` may return before the exec (runc's does).
    wait_until("the reported pid execs the container's process", || {
        cmdline(pid) == "/bin/sleep 2000"
    });
}
