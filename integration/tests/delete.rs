//! delete (runtime-tools: delete).

use integration::{cgroup, Ctx};

#[test]
fn delete_removes_state_and_cgroup() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/true"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    assert!(!cgroup::existing_dirs(&b.cgroups_path()).is_empty() || ctx.root.join(&id).exists());
    ctx.delete(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let pid = ctx.pid(&id);
    ctx.delete(&id).fails();
    assert_eq!(ctx.status(&id), "running");
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
    integration::wait_until("the init to be gone", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(true)
    });
}

#[test]
fn delete_of_a_created_container() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    // runc deletes a created container without --force (its process never started)
    let out = ctx.delete(&id);
    if !out.success() {
        ctx.delete_force(&id).ok();
    }
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn delete_of_an_unknown_id_fails() {
    let ctx = Ctx::new();
    let id = ctx.id();
    ctx.assert_not_exist(ctx.delete(&id), &id);
}

#[test]
fn delete_force_of_an_unknown_id_succeeds() {
    // runc: `delete --force` of a missing container is not an error (clients
    // rely on it for idempotent cleanup).
    let ctx = Ctx::new();
    let id = ctx.id();
    ctx.delete_force(&id).ok();
}

#[test]
fn delete_force_kills_every_process() {
    let ctx = Ctx::new();
    let b = ctx.bundle().sh("sleep 1000 & sleep 1000 & sleep 1000");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let cg = cgroup::controller_dir("pids", &b.cgroups_path());
    integration::wait_until("the sleeps to start", || cgroup::procs(&cg).len() >= 3);
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}
