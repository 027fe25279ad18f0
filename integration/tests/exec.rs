//! exec, ps, update (runc's command line beyond the lifecycle), observed from inside and
//! outside the container.

use integration::cgroup::{self, controller_dir, is_unified};
use integration::{wait_until, Ctx};

fn sleeping(ctx: &Ctx) -> (String, integration::Bundle) {
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    (id, b)
}

#[test]
fn exec_returns_the_exit_status() {
    let ctx = Ctx::new();
    let (id, _) = sleeping(&ctx);
    let out = ctx.rt(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
}

/// exec's own failures (a bad pid file, a missing command, an unknown container) exit
/// 255; the process' status is passed through as it is, 1 included.
#[test]
fn exec_failures_exit_255() {
    let ctx = Ctx::new();
    let (id, _) = sleeping(&ctx);
    assert_eq!(ctx.rt(&["exec", &id, "false"]).code(), Some(1));
    ctx.rt(&["exec", "--pid-file", "/non-existent/dir/pid", &id, "true"])
        .exec_fails();
    ctx.rt(&["exec", &id, "no-such-binary"]).exec_fails();
    ctx.rt(&["exec", "no-such-container-x", "true"])
        .exec_fails();
    assert_eq!(
        ctx.status(&id),
        "running",
        "a failed exec leaves the container"
    );
}

#[test]
fn exec_applies_user_env_cwd() {
    let ctx = Ctx::new();
    let (id, _) = sleeping(&ctx);
    let out = ctx
        .rt(&[
            "exec",
            "-e",
            "FOO=bar",
            "--cwd",
            "/tmp",
            "-u",
            "1000:1000",
            &id,
            "sh",
            "-c",
            "echo $FOO; pwd; id -u; id -g",
        ])
        .ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["bar", "/tmp", "1000", "1000"],
        "{out}"
    );
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup() {
    let ctx = Ctx::new();
    let (id, b) = sleeping(&ctx);
    let init = ctx.pid(&id);
    let pidfile = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .parse()
        .expect("pid file is a number");
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let a = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        let e = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(a, e, "{ns} namespace of the exec'd process");
    }
    let dir = controller_dir("pids", &b.cgroups_path());
    assert!(
        cgroup::procs(&dir).contains(&pid),
        "exec'd {pid} in {}",
        dir.display()
    );
    // Inside the pid namespace it is not pid 1, and it sees the init as pid 1.
    let out = ctx
        .rt(&["exec", &id, "sh", "-c", "echo $$; cat /proc/1/cmdline"])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_ne!(lines[0], "1", "{out}");
    assert!(lines[1].starts_with("/bin/sleep"), "{out}");
}

#[test]
fn exec_cap_adds_to_effective_never_inheritable() {
    let ctx = Ctx::new();
    let (id, _) = sleeping(&ctx);
    let out = ctx
        .rt(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            &id,
            "sh",
            "-c",
            "grep -E 'CapEff|CapInh' /proc/self/status",
        ])
        .ok();
    let field = |name: &str| {
        let l = out
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{out}"));
        u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_ne!(
        field("CapEff") & (1 << 21),
        0,
        "CAP_SYS_ADMIN effective: {out}"
    );
    assert_eq!(field("CapInh"), 0, "inheritable stays empty: {out}");
}

#[test]
fn exec_into_stopped_or_unknown_container_fails() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["true"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["exec", &id, "true"]).exec_fails();
    let out = ctx
        .rt(&["exec", "no-such-container-x", "true"])
        .exec_fails();
    if ctx.rt.is_capsa() {
        assert!(
            out.all()
                .contains("container \"no-such-container-x\" does not exist"),
            "{out}"
        );
    }
}

#[test]
fn exec_into_paused_needs_ignore_paused() {
    let ctx = Ctx::new();
    let (id, _) = sleeping(&ctx);
    ctx.rt(&["pause", &id]).ok();
    ctx.wait_status(&id, "paused");
    let out = ctx.rt(&["exec", &id, "true"]).exec_fails();
    assert!(
        out.all().contains("cannot exec in a paused container"),
        "{out}"
    );
    ctx.rt(&["resume", &id]).ok();
    ctx.wait_status(&id, "running");
    ctx.rt(&["exec", &id, "true"]).ok();
}

/// The container's processes as the freezer sees them (v1: its hierarchy; v2: the one).
fn freezer_procs(b: &integration::Bundle) -> Vec<i32> {
    let ctrl = if is_unified() { "pids" } else { "freezer" };
    cgroup::procs(&controller_dir(ctrl, &b.cgroups_path()))
}

/// `exec --ignore-paused` into a paused container: its process freezes in the cgroup, and
/// a `resume` (which must not wait for anything exec holds) lets it run to the end.
#[test]
fn exec_ignore_paused_completes_after_resume() {
    let ctx = Ctx::new();
    let (id, b) = sleeping(&ctx);
    let init = ctx.pid(&id);
    ctx.rt(&["pause", &id]).ok();
    ctx.wait_status(&id, "paused");
    std::thread::scope(|s| {
        let exec = s.spawn(|| ctx.rt(&["exec", "--ignore-paused", &id, "echo", "ok"]));
        wait_until(
            "the exec's process to freeze in the container's cgroup",
            || freezer_procs(&b).iter().any(|&p| p != init) || exec.is_finished(),
        );
        ctx.rt(&["resume", &id]).ok();
        let out = exec.join().expect("exec thread").ok();
        assert_eq!(out.out(), "ok", "{out}");
    });
}

#[test]
fn ps_lists_init_and_exec_processes() {
    let ctx = Ctx::new();
    let (id, _) = sleeping(&ctx);
    let init = ctx.pid(&id);
    let pidfile = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "999",
    ])
    .ok();
    let exec_pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let out = ctx.rt(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i32> =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(pids.contains(&init) && pids.contains(&exec_pid), "{out}");
    let table = ctx.rt(&["ps", &id]).ok();
    assert!(
        table
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains("PID"),
        "{table}"
    );
    assert!(table.stdout.contains("sleep 999"), "{table}");
}

#[test]
fn update_changes_limits_in_the_cgroup() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("pids", serde_json::json!({ "limit": 100 }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.rt(&["update", "--pids-limit", "42", "--memory", "64m", &id])
        .ok();
    let pids = controller_dir("pids", &b.cgroups_path());
    assert_eq!(cgroup::read(&pids, "pids.max"), "42");
    let mem = controller_dir("memory", &b.cgroups_path());
    let file = if is_unified() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(cgroup::read(&mem, file), (64u64 << 20).to_string());
    let res = ctx.path("res.json");
    std::fs::write(&res, r#"{"pids":{"limit":17}}"#).unwrap();
    ctx.rt(&["update", "--resources", res.to_str().unwrap(), &id])
        .ok();
    wait_until("pids.max updated", || {
        cgroup::read(&pids, "pids.max") == "17"
    });
}

/// The host's view of a process' cgroup in the hierarchy whose controllers list (the
/// middle field of /proc/PID/cgroup) names `ctrl` ("" for cgroup2's `0::` line).
fn cgroup_of(pid: i32, ctrl: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let hit = if ctrl.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == ctrl)
        };
        hit.then(|| path.to_string())
    })
}

/// `exec -d --pid-file` of a sleeping process with `extra` flags; returns its pid.
fn exec_sleeper(ctx: &Ctx, id: &str, extra: &[&str]) -> i32 {
    let pidfile = ctx.path(&format!("exec-{}.pid", ctx.id()));
    let pf = pidfile.to_str().unwrap();
    let mut args = vec!["exec", "-d", "--pid-file", pf];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[id, "sleep", "1000"]);
    ctx.rt(&args).ok();
    std::fs::read_to_string(&pidfile)
        .unwrap()
        .parse()
        .expect("pid file is a number")
}

/// `exec --cgroup`: the process joins an existing sub-cgroup of the container's, named
/// per controller on v1 (`memory:sub`) or alone on v2; a path outside the container's
/// cgroup, a missing sub-cgroup or an unknown controller are exec's own failures.
#[test]
fn exec_cgroup_joins_a_sub_cgroup() {
    let ctx = Ctx::new();
    let (id, b) = sleeping(&ctx);
    let path = b.cgroups_path();
    let (ctrl, arg) = if is_unified() {
        ("", "sub")
    } else {
        ("memory", "memory:sub")
    };
    std::fs::create_dir(
        controller_dir(if ctrl.is_empty() { "pids" } else { ctrl }, &path).join("sub"),
    )
    .expect("mkdir the sub-cgroup");
    let pid = exec_sleeper(&ctx, &id, &["--cgroup", arg]);
    assert_eq!(cgroup_of(pid, ctrl), Some(format!("{path}/sub")), "{arg}");
    // "/" is the container's own cgroup.
    let pid = exec_sleeper(&ctx, &id, &["--cgroup", "/"]);
    assert_eq!(
        cgroup_of(pid, if ctrl.is_empty() { "" } else { "pids" }),
        Some(path.clone())
    );
    let out = ctx
        .rt(&["exec", "--cgroup", "..", &id, "true"])
        .exec_fails();
    assert!(out.all().contains(".. is not a sub cgroup path"), "{out}");
    let out = ctx
        .rt(&["exec", "--cgroup", "nonexistent", &id, "true"])
        .exec_fails();
    // runc's words, which scripts match.
    assert!(
        out.all().contains("adding pid") && out.all().contains("no such file"),
        "{out}"
    );
    if !is_unified() {
        ctx.rt(&["exec", "--cgroup", "whaaat:/", &id, "true"])
            .exec_fails();
    }
}
