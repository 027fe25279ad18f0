//! kill (runtime-tools: kill).

use integration::{wait_until, Ctx};

fn trapping(ctx: &Ctx, out: &std::path::Path) -> integration::Bundle {
    ctx.bundle()
        .bind(out, "/out")
        .sh("trap 'echo TERM > /out/sig; exit 0' TERM; echo ready > /out/ready; sleep 1000 & wait")
}

#[test]
fn kill_delivers_the_signal() {
    let ctx = Ctx::new();
    let out = ctx.mkdir("out");
    let b = trapping(&ctx, &out);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    wait_until("trap installed", || out.join("ready").exists());
    ctx.kill(&id, "TERM").ok();
    ctx.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(out.join("sig")).unwrap().trim(),
        "TERM"
    );
}

#[test]
fn kill_accepts_names_and_numbers() {
    let ctx = Ctx::new();
    for sig in ["SIGTERM", "15"] {
        let out = ctx.mkdir(&format!("out-{sig}"));
        let b = trapping(&ctx, &out);
        let id = ctx.id();
        ctx.create_start(&id, &b);
        wait_until("trap installed", || out.join("ready").exists());
        ctx.kill(&id, sig).ok();
        ctx.wait_status(&id, "stopped");
        assert_eq!(
            std::fs::read_to_string(out.join("sig")).unwrap().trim(),
            "TERM",
            "signal {sig}"
        );
    }
}

#[test]
fn default_signal_is_sigterm() {
    let ctx = Ctx::new();
    let out = ctx.mkdir("out");
    let b = trapping(&ctx, &out);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    wait_until("trap installed", || out.join("ready").exists());
    ctx.rt(&["kill", &id]).ok();
    ctx.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(out.join("sig")).unwrap().trim(),
        "TERM"
    );
}

#[test]
fn kill_all_reaches_every_process() {
    let ctx = Ctx::new();
    let b = ctx.bundle().sh("sleep 1000 & sleep 1000 & sleep 1000");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let cg = integration::cgroup::controller_dir("pids", &b.cgroups_path());
    wait_until("three sleeps and the shell", || {
        integration::cgroup::procs(&cg).len() >= 3
    });
    ctx.rt(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    wait_until("the cgroup to empty", || {
        integration::cgroup::procs(&cg).is_empty()
    });
}

/// Signal 0 checks without sending: on a running container, and with `--all` on a
/// stopped one, whose cgroup may still be there (runc's `kill -a ID 0`, which scripts use
/// to probe).
#[test]
fn kill_with_signal_0() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.kill(&id, "0").ok();
    assert_eq!(ctx.status(&id), "running");
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["kill", "--all", &id, "0"]).ok();
    ctx.delete(&id).ok();
}

#[test]
fn kill_of_a_created_container() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
}

#[test]
fn kill_of_an_unknown_id_fails() {
    let ctx = Ctx::new();
    let id = ctx.id();
    ctx.assert_not_exist(ctx.kill(&id, "KILL"), &id);
}

#[test]
fn kill_with_a_bad_signal_fails() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let out = ctx.kill(&id, "NOTASIGNAL").fails();
    assert!(out.all().to_lowercase().contains("signal"), "{out}");
    assert_eq!(ctx.status(&id), "running");
}
