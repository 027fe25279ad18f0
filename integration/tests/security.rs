//! Paths inside the rootfs are resolved inside it (the CVE family of
//! FIELD-NOTES.md "Security"), and pathological inputs neither hang nor leak.

use std::os::unix::fs::symlink;

use integration::{leftovers, Ctx};
use serde_json::json;

#[test]
fn proc_as_a_symlink_is_refused() {
    // CVE-2023-28642 / CVE-2025-54867: /proc of the image pointing elsewhere.
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let elsewhere = ctx.mkdir("elsewhere");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    symlink(&elsewhere, b.rootfs().join("proc")).unwrap();
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(out.all().contains("proc"), "the error names /proc: {out}");
    ctx.assert_nothing_left(&id, &b);
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing mounted or made outside"
    );
}

#[test]
fn mount_destination_symlink_stays_inside_the_rootfs() {
    // CVE-2021-30465 family: a destination that is an absolute symlink
    // resolves inside the rootfs, never on the host.
    let ctx = Ctx::new();
    let host_target = ctx.mkdir("host-target");
    let b = ctx.bundle();
    symlink(&host_target, b.rootfs().join("evil")).unwrap();
    let src = ctx.mkdir("src");
    std::fs::write(src.join("marker"), "from src\n").unwrap();
    let b = b
        .mount(json!({ "destination": "/evil", "type": "bind", "source": src, "options": ["rbind", "ro"] }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    // Refusing is fine too; what must never happen is a mount or a file on the host path.
    if out.success() {
        assert!(
            !leftovers::mounts_under(&host_target)
                .iter()
                .any(|m| m.contains("host-target")),
            "mounted on the host"
        );
    }
    assert!(
        std::fs::read_dir(&host_target).unwrap().next().is_none(),
        "host dir untouched"
    );
    assert!(
        leftovers::mounts_under(&ctx.dir).is_empty(),
        "no mount on the host"
    );
}

#[test]
fn huge_hook_error_output_does_not_deadlock_create() {
    // More than a pipe holds (64 KiB) of error output must not hang create.
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook("createRuntime", json!({ "path": "/bin/sh", "args": ["sh", "-c", "head -c 262144 /dev/zero | tr '\\\\0' e >&2; exit 1"] }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create(&id, &b).fails();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn tiny_memory_limit_neither_hangs_nor_leaks() {
    // The runtime's own init may not fit: create may fail, but cleanly.
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("memory", json!({ "limit": 2 * 1024 * 1024 }))
        .args(&["/bin/true"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    if out.success() {
        ctx.start(&id).ok();
        ctx.wait_status(&id, "stopped");
        ctx.delete(&id).ok();
    } else {
        out.fails();
    }
    ctx.assert_nothing_left(&id, &b);
}
