//! Faults: a runtime command killed half-way leaves state that `delete --force` cleans
//! completely (no state dir, cgroup, mount or process).

use integration::cgroup;
use integration::{wait_until, Ctx};

#[test]
fn create_killed_during_set_up_is_cleaned_by_delete_force() {
    let ctx = Ctx::new();
    let marks = ctx.mkdir("marks");
    let mark = marks.join("in-hook");
    // The prestart hook runs while the init sits in its cgroup, half made: kill create then.
    let b = ctx.bundle().args(&["true"]).hook(
        "prestart",
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}; while :; do sleep 0.1; done", mark.display())]
        }),
    );
    b.write();
    let id = ctx.id();
    let dir = b.dir.to_string_lossy().into_owned();
    let mut create = ctx
        .cmd(&["create", "--bundle", &dir, &id])
        .spawn()
        .expect("create");
    wait_until("create reached its prestart hook", || mark.exists());
    assert!(
        !cgroup::existing_dirs(&b.cgroups_path()).is_empty(),
        "the cgroup exists mid-create"
    );
    create.kill().unwrap();
    let _ = create.wait();
    // The hook is create's child, not the container's: end its loop as a test helper.
    let _ = std::process::Command::new("pkill")
        .args(["-f", &format!("touch {}", mark.display())])
        .status();
    let out = ctx.delete_force(&id);
    assert!(
        out.success(),
        "delete --force of a half-made container: {out}"
    );
    if ctx.rt.is_capsa() {
        ctx.assert_nothing_left(&id, &b);
    } else if !cgroup::existing_dirs(&b.cgroups_path()).is_empty() {
        ctx.rt
            .runc_deviation("runc 1.1 leaves the cgroup of a killed create");
    }
}
