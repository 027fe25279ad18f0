//! Hooks (runtime-tools: hooks, hooks_stdin, hook timeouts/failure): every
//! kind runs at its point of the lifecycle with the state JSON on stdin, its
//! args and env; timeout and failure are errors that leave nothing behind.

use std::path::Path;

use integration::{Bundle, Ctx};
use serde_json::{json, Value};

const HOST_SH: &str = "/bin/sh";

/// A hook (run by the host's /bin/sh) saving its stdin, argv and env in `dir`.
fn recorder(dir: &Path, name: &str) -> Value {
    let d = dir.display();
    json!({
        "path": HOST_SH,
        "args": ["sh", "-c", format!("cat > {d}/{name}.json; echo \"$0 $1\" > {d}/{name}.args; echo \"$HOOK_VAR\" > {d}/{name}.env"), "first", "second"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("HOOK_VAR={name}-env")]
    })
}

/// A host hook running `script`, with the test's tag in its environment so
/// the guard finds anything it leaves running.
fn host_hook(ctx: &Ctx, script: &str) -> Value {
    json!({ "path": HOST_SH, "args": ["sh", "-c", script], "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("CAPSA_TEST_TAG={}", ctx.tag)] })
}

fn read_state(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name} hook ran: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} got state JSON on stdin ({e}): {text:?}"))
}

fn hooked_bundle(ctx: &Ctx, out: &Path) -> Bundle {
    // startContainer runs in the container: its path resolves in the rootfs
    // and it writes through a bind mount.
    ctx.bundle()
        .bind(out, "/hooks")
        .hook("prestart", recorder(out, "prestart"))
        .hook("createRuntime", recorder(out, "createRuntime"))
        .hook("createContainer", recorder(out, "createContainer"))
        .hook(
            "startContainer",
            json!({ "path": "/bin/sh", "args": ["sh", "-c", "cat > /hooks/startContainer.json; echo \"$HOOK_VAR\" > /hooks/startContainer.env"],
                    "env": ["HOOK_VAR=startContainer-env"] }),
        )
        .hook("poststart", recorder(out, "poststart"))
        .hook("poststop", recorder(out, "poststop"))
        .with(|s| s["annotations"] = json!({ "org.capsa.hooks": "yes" }))
        .args(&["/bin/sleep", "1000"])
}

#[test]
fn every_hook_runs_in_order_with_state_on_stdin() {
    let ctx = Ctx::new();
    let out = ctx.mkdir("hooks");
    let b = hooked_bundle(&ctx, &out);
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    for h in ["prestart", "createRuntime", "createContainer"] {
        let st = read_state(&out, h);
        assert_eq!(st["id"], id.as_str(), "{h}: {st}");
        assert_eq!(
            st["bundle"].as_str(),
            Some(b.dir.to_str().unwrap()),
            "{h}: {st}"
        );
        let pid_ok = st["pid"].as_i64() == Some(ctx.pid(&id) as i64);
        if !(pid_ok
            || h == "createContainer"
                && ctx.rt.runc_deviation(
                    "createContainer hook state has the pid inside the container (1)",
                ))
        {
            panic!(
                "{h} sees the init pid as the host does ({}): {st}",
                ctx.pid(&id)
            );
        }
        assert!(st["ociVersion"].is_string(), "{h}: {st}");
        // runtime-tools (hooks_stdin) and the spec's lifecycle: create-time
        // hooks run after the environment is made (step 2), so "created".
        let status_ok = st["status"] == "created";
        assert!(
            status_ok
                || st["status"] == "creating"
                    && ctx
                        .rt
                        .runc_deviation("create-time hooks see status \"creating\""),
            "{h}: {st}"
        );
        assert_eq!(
            st["annotations"]["org.capsa.hooks"], "yes",
            "{h} sees the annotations: {st}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{h}.env")))
                .unwrap()
                .trim(),
            format!("{h}-env")
        );
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{h}.args")))
                .unwrap()
                .trim(),
            "first second"
        );
    }
    for h in ["startContainer", "poststart", "poststop"] {
        if h == "poststart"
            && ctx.rt.runc_deviation(
                "poststart hooks run at create, not after start (fixed in runc 1.2)",
            )
        {
            std::fs::remove_file(out.join("poststart.json")).unwrap();
            continue;
        }
        assert!(
            !out.join(format!("{h}.json")).exists(),
            "{h} ran before its time"
        );
    }
    ctx.start(&id).ok();
    let st = read_state(&out, "startContainer");
    assert_eq!(st["status"], "created", "startContainer: {st}");
    assert_eq!(
        std::fs::read_to_string(out.join("startContainer.env"))
            .unwrap()
            .trim(),
        "startContainer-env"
    );
    if !out.join("poststart.json").exists()
        && ctx.rt.runc_deviation("poststart hooks ran at create")
    {
    } else {
        let st = read_state(&out, "poststart");
        assert_eq!(st["status"], "running", "poststart: {st}");
    }
    assert!(
        !out.join("poststop.json").exists(),
        "poststop before delete"
    );

    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    let st = read_state(&out, "poststop");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "stopped", "poststop: {st}");
    ctx.assert_nothing_left(&id, &b);
}

/// createContainer hooks run with the container's rootfs as their working directory
/// (runc): a hook using relative paths works on the rootfs.
#[test]
fn create_container_hooks_run_from_the_rootfs() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook("createContainer", host_hook(&ctx, "pwd > ./hook-cwd"))
        .args(&["/bin/true"]);
    ctx.run(&b).ok();
    let cwd =
        std::fs::read_to_string(b.rootfs().join("hook-cwd")).expect("the hook wrote ./hook-cwd");
    assert_eq!(
        std::fs::canonicalize(cwd.trim()).unwrap(),
        std::fs::canonicalize(b.rootfs()).unwrap()
    );
}

#[test]
fn hooks_of_a_kind_run_in_order() {
    let ctx = Ctx::new();
    let out = ctx.mkdir("hooks");
    let log = out.join("order");
    let step = |n: u32| json!({ "path": HOST_SH, "args": ["sh", "-c", format!("echo {n} >> {}", log.display())] });
    let b = ctx
        .bundle()
        .hook("prestart", step(1))
        .hook("prestart", step(2))
        .hook("prestart", step(3));
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "1\n2\n3\n");
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook(
            "prestart",
            json!({ "path": HOST_SH, "args": ["sh", "-c", "echo hook-said-no >&2; exit 7"] }),
        )
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().to_lowercase().contains("hook"),
        "the error names the hook: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook(
            "createRuntime",
            json!({ "path": HOST_SH, "args": ["sh", "-c", "exit 3"] }),
        )
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create(&id, &b).fails();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn hook_timeout_fails_create() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        // exec: the hook process itself is what the runtime must kill (runc
        // 1.1 hangs on a grandchild that keeps the hook's stdout open).
        .hook("prestart", {
            let mut h = host_hook(&ctx, "exec sleep 1000");
            h["timeout"] = json!(1);
            h
        })
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().to_lowercase().contains("timed out")
            || out.all().to_lowercase().contains("timeout"),
        "{out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn failing_poststart_hook_does_not_leave_a_running_container() {
    // Spec: a poststart hook error is logged, the operation goes on. runc
    // fails start and kills the container instead; both are acceptable, as
    // long as nothing hangs and the container can be deleted.
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook(
            "poststart",
            json!({ "path": HOST_SH, "args": ["sh", "-c", "exit 1"] }),
        )
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let created = ctx.create(&id, &b);
    if !created.success()
        && ctx
            .rt
            .runc_deviation("poststart hooks run (and fail) at create")
    {
        ctx.assert_nothing_left(&id, &b);
        return;
    }
    created.ok();
    let _ = ctx.start(&id);
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn failing_poststop_hook_does_not_fail_delete() {
    let ctx = Ctx::new();
    let out = ctx.mkdir("hooks");
    let b = ctx
        .bundle()
        .hook(
            "poststop",
            json!({ "path": HOST_SH, "args": ["sh", "-c", "exit 1"] }),
        )
        .hook("poststop", recorder(&out, "after"))
        .args(&["/bin/true"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    ctx.assert_nothing_left(&id, &b);
    // Spec: a failed poststop hook is a warning; the remaining hooks still run.
    let ran = out.join("after.json").exists();
    assert!(
        ran || ctx
            .rt
            .runc_deviation("a failed poststop hook stops the remaining ones"),
        "the second poststop hook ran"
    );
}

#[test]
fn run_runs_poststop_hooks() {
    let ctx = Ctx::new();
    let out = ctx.mkdir("hooks");
    let b = ctx
        .bundle()
        .hook("poststop", recorder(&out, "poststop"))
        .args(&["/bin/true"]);
    ctx.run(&b).ok();
    assert_eq!(read_state(&out, "poststop")["status"], "stopped");
}
