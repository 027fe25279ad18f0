//! start (runtime-tools: start).

use integration::{wait_until, Ctx};

#[test]
fn start_runs_the_process_once() {
    let ctx = Ctx::new();
    let out_dir = ctx.mkdir("out");
    let b = ctx
        .bundle()
        .bind(&out_dir, "/out")
        .sh("echo ran >> /out/log; sleep 1000");
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    ctx.start(&id).ok();
    wait_until("the process to write its mark", || {
        out_dir.join("log").exists()
    });
    assert_eq!(ctx.status(&id), "running");
    // starting a running container is an error and does not run it again
    ctx.start(&id).fails();
    assert_eq!(
        std::fs::read_to_string(out_dir.join("log")).unwrap(),
        "ran\n"
    );
}

#[test]
fn start_of_a_stopped_container_fails() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/true"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    ctx.start(&id).fails();
    assert_eq!(ctx.status(&id), "stopped");
}

#[test]
fn start_of_an_unknown_id_fails() {
    let ctx = Ctx::new();
    let id = ctx.id();
    ctx.assert_not_exist(ctx.start(&id), &id);
}

#[test]
fn missing_executable_fails_create() {
    // runc looks the process up at create, so the client sees the error
    // before start; nothing may be left behind.
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/no/such/binary"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().contains("/no/such/binary"),
        "the error names the binary: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn args_are_looked_up_in_path() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("", |b| b.args(&["echo", "found", "in", "PATH"]))
        .ok();
    assert_eq!(out.out(), "found in PATH");
}
