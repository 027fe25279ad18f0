//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope of the slice linux.cgroupsPath names ("slice:prefix:name"), which `systemctl`
//! shows with the resources as unit properties; update goes through systemd; delete
//! stops the scope. Needs systemd as PID 1 (the systemd VM tier of hack/test.sh); skipped
//! elsewhere unless CAPSA_REQUIRE_SYSTEMD=1.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{wait_until, Bundle, Ctx};
use serde_json::json;

fn systemd_runs() -> bool {
    if Path::new("/run/systemd/system").is_dir() {
        return true;
    }
    let why = "systemd is not PID 1 here (no /run/systemd/system)";
    if std::env::var("CAPSA_REQUIRE_SYSTEMD").as_deref() == Ok("1") {
        panic!("CAPSA_REQUIRE_SYSTEMD=1 but {why}");
    }
    integration::skip(why);
    false
}

/// A container of the systemd driver: its unit, and where systemd puts its cgroup.
struct Scoped {
    id: String,
    unit: String,
    dir: PathBuf,
    b: Bundle,
}

fn scoped(ctx: &Ctx, args: &[&str]) -> Scoped {
    let id = ctx.id();
    let b = ctx
        .bundle()
        .args(args)
        .linux("cgroupsPath", json!(format!("system.slice:capsa-it:{id}")));
    let unit = format!("capsa-it-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    Scoped { id, unit, dir, b }
}

fn sd(ctx: &Ctx, args: &[&str]) -> integration::Out {
    let mut all = vec!["--systemd-cgroup"];
    all.extend_from_slice(args);
    ctx.rt(&all)
}

fn create(ctx: &Ctx, s: &Scoped) {
    s.b.write();
    sd(
        ctx,
        &["create", "--bundle", s.b.dir.to_str().unwrap(), &s.id],
    )
    .ok();
}

/// `systemctl show -p NAME --value UNIT`.
fn show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("run systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `systemctl status UNIT`: its exit status (0 active, 3 inactive, 4 no such unit) and text.
fn status(unit: &str) -> (i32, String) {
    let out = Command::new("systemctl")
        .args(["status", "--no-pager", unit])
        .output()
        .expect("run systemctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[track_caller]
fn assert_gone(ctx: &Ctx, s: &Scoped) {
    let (code, text) = status(&s.unit);
    assert_ne!(code, 0, "the scope is still active after delete: {text}");
    assert!(!s.dir.exists(), "{} left behind", s.dir.display());
    ctx.assert_nothing_left(&s.id, &s.b);
}

#[test]
fn the_scope_lives_and_goes_with_the_container() {
    if !systemd_runs() {
        return;
    }
    let ctx = Ctx::new();
    let s = scoped(&ctx, &["/bin/sleep", "1000"]);
    create(&ctx, &s);
    let pid = ctx.pid(&s.id);
    let (code, text) = status(&s.unit);
    assert_eq!(code, 0, "systemctl status of {}: {text}", s.unit);
    assert!(
        text.contains(&pid.to_string()),
        "the init is in the scope: {text}"
    );
    assert_eq!(show(&s.unit, "Slice"), "system.slice");
    assert_eq!(show(&s.unit, "Delegate"), "yes");
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        host_view.trim(),
        format!("0::/system.slice/{}", s.unit),
        "the init's cgroup is the scope"
    );

    ctx.start(&s.id).ok();
    assert_eq!(ctx.status(&s.id), "running");
    let out = ctx.rt(&["exec", &s.id, "echo", "hello"]).ok();
    assert_eq!(out.out(), "hello");
    // An exec'd process joins the same scope.
    let pid_file = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &s.id,
        "sleep",
        "1000",
    ])
    .ok();
    let exec_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let procs = file(&s.dir, "cgroup.procs");
    assert!(
        procs.lines().any(|l| l == exec_pid.to_string()),
        "exec'd {exec_pid} in the scope: {procs}"
    );

    ctx.rt(&["pause", &s.id]).ok();
    assert_eq!(ctx.status(&s.id), "paused");
    assert_eq!(file(&s.dir, "cgroup.freeze"), "1");
    ctx.rt(&["resume", &s.id]).ok();
    assert_eq!(ctx.status(&s.id), "running");

    ctx.delete_force(&s.id).ok();
    assert_gone(&ctx, &s);
}

#[test]
fn resources_become_unit_properties_and_files() {
    if !systemd_runs() {
        return;
    }
    let ctx = Ctx::new();
    let mut s = scoped(&ctx, &["/bin/sleep", "1000"]);
    s.b =
        s.b.resources("memory", json!({ "limit": 64 << 20 }))
            .resources("pids", json!({ "limit": 42 }))
            .resources(
                "cpu",
                json!({ "shares": 1024, "quota": 50000, "period": 100000 }),
            );
    create(&ctx, &s);
    assert_eq!(show(&s.unit, "MemoryMax"), (64u64 << 20).to_string());
    assert_eq!(show(&s.unit, "TasksMax"), "42");
    assert_eq!(show(&s.unit, "CPUWeight"), "39");
    assert_eq!(show(&s.unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(show(&s.unit, "DevicePolicy"), "strict");
    assert_eq!(file(&s.dir, "memory.max"), (64u64 << 20).to_string());
    assert_eq!(file(&s.dir, "pids.max"), "42");
    assert_eq!(file(&s.dir, "cpu.max"), "50000 100000");

    sd(
        &ctx,
        &[
            "update",
            "--memory",
            "128M",
            "--pids-limit",
            "77",
            "--cpu-quota",
            "20000",
            &s.id,
        ],
    )
    .ok();
    assert_eq!(show(&s.unit, "MemoryMax"), (128u64 << 20).to_string());
    assert_eq!(show(&s.unit, "TasksMax"), "77");
    assert_eq!(show(&s.unit, "CPUQuotaPerSecUSec"), "200ms");
    assert_eq!(file(&s.dir, "memory.max"), (128u64 << 20).to_string());
    assert_eq!(file(&s.dir, "pids.max"), "77");
    assert_eq!(file(&s.dir, "cpu.max"), "20000 100000");

    ctx.delete_force(&s.id).ok();
    assert_gone(&ctx, &s);
}

#[test]
fn a_container_that_exits_is_deleted_with_its_scope() {
    if !systemd_runs() {
        return;
    }
    let ctx = Ctx::new();
    let s = scoped(&ctx, &["/bin/true"]);
    create(&ctx, &s);
    ctx.start(&s.id).ok();
    ctx.wait_status(&s.id, "stopped");
    ctx.delete(&s.id).ok();
    wait_until("the scope to go", || status(&s.unit).0 != 0);
    assert_gone(&ctx, &s);
}

#[test]
fn bad_cgroups_path_names_the_field_and_leaves_nothing() {
    if !systemd_runs() {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let b = ctx
        .bundle()
        .args(&["/bin/true"])
        .linux("cgroupsPath", json!("/not/systemd/form"));
    b.write();
    let out = sd(&ctx, &["create", "--bundle", b.dir.to_str().unwrap(), &id]).fails();
    assert!(out.all().contains("slice:prefix:name"), "{out}");
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
}

#[test]
fn run_in_the_foreground_leaves_no_scope() {
    if !systemd_runs() {
        return;
    }
    let ctx = Ctx::new();
    let s = scoped(&ctx, &["/bin/sh", "-c", "echo in-scope"]);
    s.b.write();
    let out = sd(&ctx, &["run", "--bundle", s.b.dir.to_str().unwrap(), &s.id]).ok();
    assert_eq!(out.out(), "in-scope");
    wait_until("the scope to go", || status(&s.unit).0 != 0);
    assert_gone(&ctx, &s);
}
