//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope of the slice linux.cgroupsPath names ("slice:prefix:name"), which `systemctl`
//! shows with the resources as unit properties; update goes through systemd; delete
//! stops the scope. Needs systemd as PID 1 (the systemd VM tier of hack/test.sh, on pure
//! cgroup v2 and on a hybrid v1 hierarchy); skipped elsewhere unless
//! CAPSA_REQUIRE_SYSTEMD=1. On v1 the scope is in every hierarchy systemd manages
//! (name=systemd, memory, cpu, pids, devices, blkio) and the runtime puts the container at
//! the same path in the others (freezer, cpuset...), as runc does.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::cgroup::{self, controller_dir, existing_dirs};
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
    /// The cgroup's path in each hierarchy ("/system.slice/capsa-it-ID.scope").
    rel: String,
    b: Bundle,
}

impl Scoped {
    /// The scope's directory of controller `ctrl` ("memory", "freezer", "name=systemd"):
    /// the unified one on pure v2.
    fn dir(&self, ctrl: &str) -> PathBuf {
        controller_dir(ctrl, &self.rel)
    }
}

fn v1() -> bool {
    !cgroup::is_unified()
}

fn scoped(ctx: &Ctx, args: &[&str]) -> Scoped {
    let id = ctx.id();
    let b = ctx
        .bundle()
        .args(args)
        .linux("cgroupsPath", json!(format!("system.slice:capsa-it:{id}")));
    let unit = format!("capsa-it-{id}.scope");
    let rel = format!("/system.slice/{unit}");
    Scoped { id, unit, rel, b }
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
    // in every hierarchy: those systemd manages and those the runtime wrote itself
    let left = existing_dirs(&s.rel);
    assert!(left.is_empty(), "left behind: {left:?}");
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
    if v1() {
        // systemd's own hierarchies and those of the cgroupfs code (all but rdma and misc,
        // which neither runtime uses), and on a hybrid host the cgroup2 one
        let mut seen = Vec::new();
        for line in host_view.lines() {
            let mut it = line.splitn(3, ':');
            let (_, ctrls, path) = (it.next(), it.next().unwrap(), it.next().unwrap());
            if matches!(ctrls, "rdma" | "misc") {
                continue;
            }
            assert_eq!(path, s.rel, "{ctrls} of the init: {host_view}");
            seen.push(ctrls);
        }
        for want in ["name=systemd", "memory", "pids", "devices", "freezer"] {
            assert!(
                seen.iter().any(|c| c.split(',').any(|c| c == want)),
                "{want} in {host_view}"
            );
        }
    } else {
        assert_eq!(
            host_view.trim(),
            format!("0::{}", s.rel),
            "the init's cgroup is the scope"
        );
    }

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
    let procs = file(&s.dir("name=systemd"), "cgroup.procs");
    assert!(
        procs.lines().any(|l| l == exec_pid.to_string()),
        "exec'd {exec_pid} in the scope: {procs}"
    );

    ctx.rt(&["pause", &s.id]).ok();
    assert_eq!(ctx.status(&s.id), "paused");
    if v1() {
        assert_eq!(file(&s.dir("freezer"), "freezer.state"), "FROZEN");
    } else {
        assert_eq!(file(&s.dir("freezer"), "cgroup.freeze"), "1");
    }
    ctx.rt(&["resume", &s.id]).ok();
    assert_eq!(ctx.status(&s.id), "running");

    ctx.delete_force(&s.id).ok();
    assert_gone(&ctx, &s);
}

/// What a resource looks like as a unit property and in the cgroup files, which differ
/// between v2 (MemoryMax, memory.max...) and v1 (MemoryLimit, memory.limit_in_bytes...).
struct Expect<'a> {
    prop: (&'a str, &'a str),
    file: (&'a str, &'a str, &'a str),
}

#[track_caller]
fn check(s: &Scoped, want: &[Expect]) {
    for w in want {
        let (name, value) = w.prop;
        assert_eq!(show(&s.unit, name), value, "unit property {name}");
        let (ctrl, f, value) = w.file;
        assert_eq!(file(&s.dir(ctrl), f), value, "{ctrl} {f}");
    }
}

#[test]
fn resources_become_unit_properties_and_files() {
    if !systemd_runs() {
        return;
    }
    let ctx = Ctx::new();
    let mut s = scoped(&ctx, &["/bin/sleep", "1000"]);
    s.b =
        s.b.resources(
            "memory",
            json!({ "limit": 64 << 20, "reservation": 32 << 20 }),
        )
        .resources("pids", json!({ "limit": 42 }))
        .resources(
            "cpu",
            json!({ "shares": 1024, "quota": 50000, "period": 100000, "cpus": "0" }),
        );
    create(&ctx, &s);
    let (m64, m32, m128) = (
        (64u64 << 20).to_string(),
        (32u64 << 20).to_string(),
        (128u64 << 20).to_string(),
    );
    if v1() {
        // runc's v1 properties (MemoryLimit, CPUShares, TasksMax, the CPU quota); the
        // memory reservation (soft limit) and the cpuset have none on v1 and are written
        // to the files of their hierarchies, cpuset one systemd does not manage.
        check(
            &s,
            &[
                Expect {
                    prop: ("MemoryLimit", &m64),
                    file: ("memory", "memory.limit_in_bytes", &m64),
                },
                Expect {
                    prop: ("TasksMax", "42"),
                    file: ("pids", "pids.max", "42"),
                },
                Expect {
                    prop: ("CPUShares", "1024"),
                    file: ("cpu", "cpu.shares", "1024"),
                },
                Expect {
                    prop: ("CPUQuotaPerSecUSec", "500ms"),
                    file: ("cpu", "cpu.cfs_quota_us", "50000"),
                },
            ],
        );
        assert_eq!(file(&s.dir("cpu"), "cpu.cfs_period_us"), "100000");
        assert_eq!(file(&s.dir("memory"), "memory.soft_limit_in_bytes"), m32);
        assert_eq!(file(&s.dir("cpuset"), "cpuset.cpus"), "0");
    } else {
        check(
            &s,
            &[
                Expect {
                    prop: ("MemoryMax", &m64),
                    file: ("memory", "memory.max", &m64),
                },
                Expect {
                    prop: ("MemoryLow", &m32),
                    file: ("memory", "memory.low", &m32),
                },
                Expect {
                    prop: ("TasksMax", "42"),
                    file: ("pids", "pids.max", "42"),
                },
                Expect {
                    prop: ("CPUQuotaPerSecUSec", "500ms"),
                    file: ("cpu", "cpu.max", "50000 100000"),
                },
                Expect {
                    prop: ("AllowedCPUs", "0"),
                    file: ("cpuset", "cpuset.cpus", "0"),
                },
            ],
        );
    }
    if !v1() {
        // shares 1024 as a weight: 39 by runc 1.1's linear conversion, 100 by the one of
        // crun and runc 1.3.2; either, but the same for systemd and in the file
        let weight = show(&s.unit, "CPUWeight");
        assert!(weight == "39" || weight == "100", "CPUWeight {weight}");
        assert_eq!(file(&s.dir("cpu"), "cpu.weight"), weight, "cpu.weight");
    }
    assert_eq!(show(&s.unit, "DevicePolicy"), "strict");

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
    if v1() {
        check(
            &s,
            &[
                Expect {
                    prop: ("MemoryLimit", &m128),
                    file: ("memory", "memory.limit_in_bytes", &m128),
                },
                Expect {
                    prop: ("TasksMax", "77"),
                    file: ("pids", "pids.max", "77"),
                },
                Expect {
                    prop: ("CPUQuotaPerSecUSec", "200ms"),
                    file: ("cpu", "cpu.cfs_quota_us", "20000"),
                },
            ],
        );
    } else {
        check(
            &s,
            &[
                Expect {
                    prop: ("MemoryMax", &m128),
                    file: ("memory", "memory.max", &m128),
                },
                Expect {
                    prop: ("TasksMax", "77"),
                    file: ("pids", "pids.max", "77"),
                },
                Expect {
                    prop: ("CPUQuotaPerSecUSec", "200ms"),
                    file: ("cpu", "cpu.max", "20000 100000"),
                },
            ],
        );
    }

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
