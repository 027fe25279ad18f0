//! cgroups (runtime-tools: linux_cgroups_*): placement at cgroupsPath, every
//! resource written where the host keeps it (v1 controller hierarchies, or
//! the unified one on pure v2), memory and pids limits enforced for real.
//! This file also runs inside the pure cgroup v2 VM (hack/cgv2-tests.sh).

use integration::cgroup::{self, controller_dir, is_unified};
use integration::{Bundle, Ctx};
use serde_json::json;

/// create + start `b`; returns the id.
fn running(ctx: &Ctx, b: &Bundle) -> String {
    let id = ctx.id();
    ctx.create_start(&id, b);
    id
}

fn read(ctrl: &str, b: &Bundle, file: &str) -> String {
    cgroup::read(&controller_dir(ctrl, &b.cgroups_path()), file)
}

#[test]
fn placed_at_cgroups_path() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = running(&ctx, &b);
    let pid = ctx.pid(&id);
    for ctrl in ["memory", "pids", "cpu"] {
        let dir = controller_dir(ctrl, &b.cgroups_path());
        assert!(
            cgroup::procs(&dir).contains(&pid),
            "init {pid} in {}",
            dir.display()
        );
    }
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        host_view.lines().any(|l| l.ends_with(&b.cgroups_path())),
        "{host_view}"
    );
    ctx.delete_force(&id).ok();
    assert!(
        cgroup::existing_dirs(&b.cgroups_path()).is_empty(),
        "cgroup removed by delete"
    );
}

#[test]
fn memory_limit_is_written_and_seen_inside() {
    let ctx = Ctx::new();
    let limit: u64 = 96 * 1024 * 1024;
    let inside = if is_unified() {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let b = ctx
        .bundle()
        .resources(
            "memory",
            json!({ "limit": limit, "reservation": limit / 2 }),
        )
        .sh(&format!("cat {inside}; sleep 1000"));
    running(&ctx, &b);
    if is_unified() {
        assert_eq!(read("memory", &b, "memory.max"), limit.to_string());
        assert_eq!(read("memory", &b, "memory.low"), (limit / 2).to_string());
    } else {
        assert_eq!(
            read("memory", &b, "memory.limit_in_bytes"),
            limit.to_string()
        );
        assert_eq!(
            read("memory", &b, "memory.soft_limit_in_bytes"),
            (limit / 2).to_string()
        );
    }
    let out = ctx
        .run(
            &ctx.bundle()
                .resources("memory", json!({ "limit": limit }))
                .sh(&format!("cat {inside}")),
        )
        .ok();
    assert_eq!(
        out.out(),
        limit.to_string(),
        "the container sees its own limit"
    );
}

#[test]
fn memory_limit_is_enforced_by_the_oom_killer() {
    let ctx = Ctx::new();
    let limit: u64 = 64 * 1024 * 1024;
    let b = ctx
        .bundle()
        .resources("memory", json!({ "limit": limit, "swap": limit }))
        // dd allocates a 512 MiB buffer and fills it from /dev/zero: the kernel
        // faults its pages in fast (a per-byte loop is slow in the TCG VM).
        .sh("exec dd if=/dev/zero of=/dev/null bs=536870912 count=1");
    let b = if cgroup::is_unified()
        || std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    {
        b
    } else {
        b.with(|s| {
            s["linux"]["resources"]["memory"]
                .as_object_mut()
                .unwrap()
                .remove("swap")
                .map(|_| ())
                .unwrap_or(())
        })
    };
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    let events = if is_unified() {
        read("memory", &b, "memory.events")
    } else {
        read("memory", &b, "memory.oom_control")
    };
    let kills: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        kills >= 1,
        "the OOM killer acted in the container's cgroup: {events}"
    );
    ctx.delete(&id).ok();

    let out = ctx.run(&b);
    assert_eq!(out.code(), Some(137), "killed by SIGKILL: {out}");
    assert!(
        !out.stderr.contains("records in"),
        "dd never completed: {out}"
    );
}

#[test]
fn pids_limit_is_written() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("pids", json!({ "limit": 42 }))
        .args(&["/bin/sleep", "1000"]);
    running(&ctx, &b);
    assert_eq!(read("pids", &b, "pids.max"), "42");
}

#[test]
fn fork_past_pids_max_fails() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("pids", json!({ "limit": 24 }))
        .sh("i=0; while [ $i -lt 64 ]; do sleep 1000 & i=$((i+1)); done; echo all-forked");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    let events = read("pids", &b, "pids.events");
    let max_hits: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(max_hits >= 1, "forks were refused at pids.max: {events}");
    ctx.delete(&id).ok();

    let out = ctx.run(&b);
    assert!(
        !out.success() && !out.stdout.contains("all-forked"),
        "{out}"
    );
    assert!(
        out.stderr.contains("can't fork")
            || out.stderr.contains("Resource temporarily unavailable"),
        "{out}"
    );
}

#[test]
fn cpu_shares_quota_period() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources(
            "cpu",
            json!({ "shares": 512, "quota": 50000, "period": 100000 }),
        )
        .args(&["/bin/sleep", "1000"]);
    running(&ctx, &b);
    if is_unified() {
        // Two shares -> weight conversions are in use: runc <= 1.2's linear
        // one, and the one crun and later runc use (maps 1024 to 100).
        let shares = 512f64;
        let linear = 1 + ((512 - 2) * 9999) / 262142;
        let l = shares.log2();
        let quadratic = 10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0).ceil() as u64;
        let weight: u64 = read("cpu", &b, "cpu.weight").parse().unwrap();
        assert!(
            weight == linear || weight == quadratic,
            "cpu.weight {weight}: {linear} or {quadratic}"
        );
        assert_eq!(read("cpu", &b, "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read("cpu", &b, "cpu.shares"), "512");
        assert_eq!(read("cpu", &b, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", &b, "cpu.cfs_period_us"), "100000");
    }
}

#[test]
fn cpuset() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("cpu", json!({ "cpus": "0", "mems": "0" }))
        .sh("grep Cpus_allowed_list /proc/self/status; sleep 1000");
    running(&ctx, &b);
    assert_eq!(read("cpuset", &b, "cpuset.cpus"), "0");
    assert_eq!(read("cpuset", &b, "cpuset.mems"), "0");
    let out = ctx
        .run(
            &ctx.bundle()
                .resources("cpu", json!({ "cpus": "0" }))
                .sh("grep Cpus_allowed_list /proc/self/status"),
        )
        .ok();
    assert!(
        out.out().ends_with("\t0") || out.out().ends_with(" 0"),
        "{out}"
    );
}

/// The major:minor of a real block device here, if any (a VM on 9p has none).
fn block_device() -> Option<(u64, u64)> {
    let rd = std::fs::read_dir("/sys/block").ok()?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
            continue;
        }
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let (a, b) = dev.trim().split_once(':')?;
        return Some((a.parse().ok()?, b.parse().ok()?));
    }
    None
}

#[test]
fn block_io_throttle() {
    let ctx = Ctx::new();
    let Some((major, minor)) = block_device() else {
        integration::skip("no block device on this host");
        return;
    };
    let b = ctx
        .bundle()
        .resources("blockIO", json!({ "throttleReadBpsDevice": [ { "major": major, "minor": minor, "rate": 1048576 } ] }))
        .args(&["/bin/sleep", "1000"]);
    running(&ctx, &b);
    if is_unified() {
        let io = read("io", &b, "io.max");
        assert!(
            io.contains(&format!("{major}:{minor} rbps=1048576")),
            "{io}"
        );
    } else {
        let v = read("blkio", &b, "blkio.throttle.read_bps_device");
        assert_eq!(v, format!("{major}:{minor} 1048576"));
    }
}

#[test]
fn hugetlb_limit() {
    let ctx = Ctx::new();
    // Where the runtime keeps hugetlb: a v1 hierarchy, or (pure v2) the unified one.
    let v1 = cgroup::hierarchies()
        .iter()
        .any(|h| !h.v2 && h.controllers.iter().any(|c| c == "hugetlb"));
    if !v1 && !is_unified() {
        // This hybrid host has hugetlb only in its cgroup2 mount, where runc 1.1
        // does not manage it. capsa must (issue 3: hybrid hosts).
        if !ctx.rt.is_capsa() {
            integration::skip(
                "hugetlb only on the hybrid host's cgroup2 mount; runc 1.1 ignores it",
            );
            return;
        }
    }
    if !std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        integration::skip("no 2MB huge pages on this kernel");
        return;
    }
    let b = ctx
        .bundle()
        .resources(
            "hugepageLimits",
            json!([ { "pageSize": "2MB", "limit": 4194304 } ]),
        )
        .args(&["/bin/sleep", "1000"]);
    running(&ctx, &b);
    let dir = if v1 || is_unified() {
        controller_dir("hugetlb", &b.cgroups_path())
    } else {
        std::path::Path::new("/sys/fs/cgroup/unified")
            .join(b.cgroups_path().trim_start_matches('/'))
    };
    let file = if v1 {
        "hugetlb.2MB.limit_in_bytes"
    } else {
        "hugetlb.2MB.max"
    };
    assert_eq!(cgroup::read(&dir, file), "4194304");
}

#[test]
fn unified_resources() {
    let ctx = Ctx::new();
    if !is_unified() {
        integration::skip(
            "linux.resources.unified needs a cgroup v2 host (run hack/cgv2-tests.sh)",
        );
        return;
    }
    let b = ctx
        .bundle()
        .resources(
            "unified",
            json!({ "pids.max": "37", "memory.high": "50331648" }),
        )
        .args(&["/bin/sleep", "1000"]);
    running(&ctx, &b);
    assert_eq!(read("pids", &b, "pids.max"), "37");
    assert_eq!(read("memory", &b, "memory.high"), "50331648");
}

#[test]
fn cgroup_removed_when_create_fails() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("pids", json!({ "limit": 10 }))
        .args(&["/no/such/binary"]);
    let id = ctx.id();
    ctx.create(&id, &b).fails();
    ctx.assert_nothing_left(&id, &b);
}

/// The host's cgroup2 line (`0::PATH`) of a process.
fn unified_line(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap_or_default()
}

/// On a hybrid host (v1 controllers plus a cgroup2 mount) the container is placed in the
/// cgroup2 hierarchy too, as runc does: the init and an exec'd process read the
/// container's path on their `0::` line, and nothing is left there after delete.
#[test]
fn hybrid_host_places_in_cgroup2_too() {
    let hybrid = cgroup::hierarchies()
        .iter()
        .any(|h| h.v2 && h.mount == std::path::Path::new("/sys/fs/cgroup/unified"));
    if !hybrid {
        integration::skip("not a hybrid cgroup host");
        return;
    }
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = running(&ctx, &b);
    assert_eq!(unified_line(ctx.pid(&id)), b.cgroups_path(), "init");
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
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert_eq!(unified_line(pid), b.cgroups_path(), "exec");
    ctx.delete_force(&id).ok();
    assert!(
        cgroup::existing_dirs(&b.cgroups_path()).is_empty(),
        "cgroup removed by delete"
    );
}

/// A cgroup frozen before the container exists: `run -d` and `create` refuse it (the init
/// would freeze the moment it is placed, and the runtime wait for it for ever) and leave
/// nothing; runc's words are "container's cgroup unexpectedly frozen".
#[test]
fn create_in_a_frozen_cgroup_is_refused() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    b.write();
    let (dir, file, frozen, thawed) = if is_unified() {
        (
            controller_dir("pids", &b.cgroups_path()),
            "cgroup.freeze",
            "1",
            "0",
        )
    } else {
        (
            controller_dir("freezer", &b.cgroups_path()),
            "freezer.state",
            "FROZEN",
            "THAWED",
        )
    };
    std::fs::create_dir_all(&dir).expect("mkdir the cgroup");
    std::fs::write(dir.join(file), frozen).expect("freeze it");
    let dir_s = b.dir.to_str().unwrap().to_string();
    for cmd in ["run", "create"] {
        let id = ctx.id();
        let mut args = vec![cmd, "--bundle", dir_s.as_str()];
        if cmd == "run" {
            args.push("-d");
        }
        args.push(&id);
        let out = ctx.rt(&args).fails();
        assert!(out.all().contains("cgroup unexpectedly frozen"), "{out}");
        assert!(cgroup::procs(&dir).is_empty(), "{out}");
        ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    }
    let _ = std::fs::write(dir.join(file), thawed);
}

/// A second container in the cgroup of a running one: created, with runc's warning.
#[test]
fn create_in_a_non_empty_cgroup_warns() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    running(&ctx, &b);
    let id = ctx.id();
    let out = ctx.create(&id, &b).ok();
    assert!(
        out.all().contains("container's cgroup is not empty"),
        "{out}"
    );
}

/// `update` takes every negative value runc takes: -1 lifts the memory, memory+swap,
/// cpu quota and pids limits.
#[test]
fn update_accepts_runcs_negative_values() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("memory", json!({ "limit": 64u64 << 20 }))
        .resources("cpu", json!({ "quota": 50000, "period": 100000 }))
        .resources("pids", json!({ "limit": 20 }))
        .args(&["/bin/sleep", "1000"]);
    let id = running(&ctx, &b);
    let mem = controller_dir("memory", &b.cgroups_path());
    let swap_file = if is_unified() {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    let mut args = vec![
        "update",
        "--memory",
        "-1",
        "--cpu-quota",
        "-1",
        "--pids-limit",
        "-1",
    ];
    if mem.join(swap_file).exists() {
        args.extend(["--memory-swap", "-1"]);
    }
    args.push(&id);
    ctx.rt(&args).ok();
    let unlimited = |v: &str| v == "max" || v.parse::<u64>().is_ok_and(|n| n > 1 << 60);
    let (limit, quota) = if is_unified() {
        (read("memory", &b, "memory.max"), read("cpu", &b, "cpu.max"))
    } else {
        (
            read("memory", &b, "memory.limit_in_bytes"),
            read("cpu", &b, "cpu.cfs_quota_us"),
        )
    };
    assert!(unlimited(&limit), "memory limit {limit}");
    assert!(
        quota == "-1" || quota.starts_with("max"),
        "cpu quota {quota}"
    );
    assert_eq!(read("pids", &b, "pids.max"), "max");
    if mem.join(swap_file).exists() {
        let swap = cgroup::read(&mem, swap_file);
        assert!(unlimited(&swap), "{swap_file} {swap}");
    }
}

/// v1: a shorter period under a parent's cpu limit. Written first, the period would be
/// refused (the old quota over the new period exceeds the parent's share); runc writes
/// the quota first and the period again, and so must every runtime.
#[test]
fn update_cpu_period_and_quota_under_a_parent_limit() {
    if is_unified() {
        integration::skip("cpu.cfs_* are cgroup v1 files");
        return;
    }
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("cpu", json!({ "quota": 50000, "period": 100000 }))
        .args(&["/bin/sleep", "1000"]);
    let id = running(&ctx, &b);
    let parent = controller_dir("cpu", &ctx.cg_parent);
    std::fs::write(parent.join("cpu.cfs_quota_us"), "50000").expect("limit the parent");
    // 60% over the parent's 50%: refused.
    ctx.rt(&["update", "--cpu-quota", "60000", &id]).fails();
    ctx.rt(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        &id,
    ])
    .ok();
    assert_eq!(read("cpu", &b, "cpu.cfs_quota_us"), "3000");
    assert_eq!(read("cpu", &b, "cpu.cfs_period_us"), "10000");
}

/// v1: device rules are set as the minimal change. An `update` leaves a container's
/// devices cgroup as it is, also once the container made sub-cgroups of its own (where
/// the kernel refuses a redundant `a` rule with EINVAL), and the rules it denies stay
/// denied.
#[test]
fn update_keeps_device_rules_without_rewriting_them() {
    if is_unified() {
        integration::skip("devices.list is cgroup v1's");
        return;
    }
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources(
            "devices",
            json!([
                { "allow": false, "access": "rwm" },
                { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa" },
                { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }
            ]),
        )
        .args(&["/bin/sleep", "1000"]);
    let id = running(&ctx, &b);
    let dev = controller_dir("devices", &b.cgroups_path());
    let before = cgroup::read(&dev, "devices.list");
    assert!(
        !before.contains("a *:* rwm"),
        "a deny-default list: {before}"
    );
    assert!(!before.contains("c 1:11 "), "{before}");
    std::fs::create_dir(dev.join("sub")).expect("a sub-cgroup of the container's");
    // An update of a limit, and one with nothing but the device rules (`-r` of `{}`).
    let empty = ctx.path("empty.json");
    std::fs::write(&empty, "{}").expect("write empty.json");
    let empty = empty.to_str().unwrap();
    for _ in 0..3 {
        ctx.rt(&["update", "--pids-limit", "30", &id]).ok();
        ctx.rt(&["update", "-r", empty, &id]).ok();
    }
    assert_eq!(cgroup::read(&dev, "devices.list"), before);
}

/// v1/hybrid: `linux.resources.unified` holds cgroup v2 files: an error naming the field,
/// nothing left (runc: "invalid configuration").
#[test]
fn unified_on_a_v1_host_is_an_error() {
    if is_unified() {
        integration::skip("a cgroup v2 host applies linux.resources.unified");
        return;
    }
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("unified", json!({ "memory.min": "131072" }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(out.all().contains("unified"), "{out}");
    if ctx.rt.is_capsa() {
        assert!(out.all().contains("linux.resources.unified"), "{out}");
    }
    ctx.assert_nothing_left(&id, &b);
}

/// v1: blkio weights go to the files the kernel has (CFQ's, or BFQ's
/// `blkio.bfq.weight_device`); one the host has no file for is an error naming it,
/// never dropped.
#[test]
fn blkio_weights_written_or_refused() {
    if is_unified() {
        integration::skip("blkio.* are cgroup v1 files");
        return;
    }
    let Some((major, minor)) = block_device() else {
        integration::skip("no block device");
        return;
    };
    let ctx = Ctx::new();
    let probe = controller_dir("blkio", "/");
    let cases = [
        (
            "leafWeight",
            json!({ "leafWeight": 300 }),
            "blkio.leaf_weight",
        ),
        (
            "weightDevice",
            json!({ "weightDevice": [{ "major": major, "minor": minor, "weight": 444 }] }),
            if probe.join("blkio.weight").exists() {
                "blkio.weight_device"
            } else {
                "blkio.bfq.weight_device"
            },
        ),
    ];
    for (field, blkio, file) in cases {
        let b = ctx
            .bundle()
            .resources("blockIO", blkio)
            .args(&["/bin/sleep", "1000"]);
        let id = ctx.id();
        let out = ctx.create(&id, &b);
        if probe.join(file).exists() {
            out.ok();
            let v = read("blkio", &b, file);
            assert!(
                v.contains("300") || v.contains("444"),
                "{field}: {file} {v}"
            );
        } else {
            let out = out.fails();
            if ctx.rt.is_capsa() {
                assert!(out.all().contains(field), "{field}: {out}");
            }
            ctx.assert_nothing_left(&id, &b);
        }
    }
}

/// Containers created at the same moment under parents that do not exist yet (a pod's
/// first containers, as the CRI stress test has them) all get their cgroups: a parent
/// another create made first is not an error. libcgroups' v2 manager once failed one of
/// them with EEXIST in the VM.
#[test]
fn concurrent_creates_under_one_new_parent() {
    let ctx = Ctx::new();
    let parent = format!("{}/pod/a/b", ctx.cg_parent);
    let bundles: Vec<Bundle> = (0..4)
        .map(|k| {
            let path = format!("{parent}/c{k}");
            ctx.bundle()
                .args(&["/bin/sleep", "1000"])
                .with(|s| s["linux"]["cgroupsPath"] = json!(path))
        })
        .collect();
    let ids: Vec<String> = bundles.iter().map(|_| ctx.id()).collect();
    let ctx_ref = &ctx;
    let outs: Vec<_> = std::thread::scope(|s| {
        let creates: Vec<_> = bundles
            .iter()
            .zip(&ids)
            .map(|(b, id)| s.spawn(move || ctx_ref.create(id, b)))
            .collect();
        creates.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (out, id) in outs.iter().zip(&ids) {
        assert!(
            out.success(),
            "create {id} under the shared new parent: {out}"
        );
    }
    for (b, id) in bundles.iter().zip(&ids) {
        let pid = ctx.pid(id);
        let dir = controller_dir("pids", &b.cgroups_path());
        assert!(
            cgroup::procs(&dir).contains(&pid),
            "{id} in {}",
            dir.display()
        );
        ctx.delete_force(id).ok();
    }
}
