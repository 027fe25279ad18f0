//! `--cgroup-manager` (crun's global flag, which podman passes for `--cgroups=disabled`):
//! `disabled` gives the container no cgroup at all. runc 1.1 has no such flag.

use integration::{cgroup, Ctx};
use serde_json::json;

#[test]
fn disabled_makes_no_cgroup_and_refuses_limits() {
    let ctx = Ctx::new();
    if ctx.rt.runc_lacks("--cgroup-manager") {
        return;
    }
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    b.write();
    let id = ctx.id();
    let dir = b.dir.to_string_lossy().into_owned();
    ctx.rt(&[
        "--cgroup-manager",
        "disabled",
        "create",
        "--bundle",
        &dir,
        &id,
    ])
    .ok();
    let made = cgroup::existing_dirs(&b.cgroups_path());
    assert!(made.is_empty(), "no cgroup: {made:?}");
    ctx.start(&id).ok();
    let pid = ctx.state(&id)["pid"].as_i64().expect("pid");
    // The init stays in our cgroup, and what needs a cgroup says so.
    let ours = std::fs::read_to_string("/proc/self/cgroup").expect("our cgroup");
    let its = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("its cgroup");
    assert_eq!(its, ours);
    let out = ctx.rt(&["pause", &id]).fails();
    assert!(out.stderr.contains("has no cgroup"), "{out}");
    let out = ctx.rt(&["ps", "--format", "json", &id]).ok();
    assert!(out.stdout.contains(&pid.to_string()), "{out}");
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);

    let b = ctx
        .bundle()
        .resources("pids", json!({ "limit": 10 }))
        .args(&["/bin/true"]);
    b.write();
    let id = ctx.id();
    let dir = b.dir.to_string_lossy().into_owned();
    let out = ctx
        .rt(&["--cgroup-manager", "disabled", "run", "--bundle", &dir, &id])
        .fails();
    assert!(
        out.stderr.contains("pids") && out.stderr.contains("--cgroup-manager disabled"),
        "{out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

/// CVE-2019-5736: `create` re-execs from a sealed view of the binary, found by its
/// subcommand. A global flag's value (`--rootless true`, `--cgroup-manager disabled`, as
/// podman passes them) was taken for the subcommand, and the init ran from the binary on
/// disk.
#[test]
fn the_init_runs_from_the_sealed_binary_after_flags_with_values() {
    let ctx = Ctx::new();
    let mut flags: Vec<&[&str]> = vec![&["--rootless", "true"]];
    if ctx.rt.is_capsa() {
        flags.push(&["--cgroup-manager", "cgroupfs"]);
    }
    let on_disk = std::fs::canonicalize(&ctx.rt.path).expect("runtime path");
    for f in flags {
        let b = ctx.bundle().args(&["/bin/true"]);
        b.write();
        let id = ctx.id();
        let dir = b.dir.to_string_lossy().into_owned();
        let mut args = f.to_vec();
        args.extend(["create", "--bundle", &dir, &id]);
        ctx.rt(&args).ok();
        let pid = ctx.state(&id)["pid"].as_i64().expect("pid");
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the init's exe");
        assert_ne!(exe, on_disk, "{f:?}: the init runs from the binary on disk");
        ctx.delete_force(&id).ok();
    }
}
