//! /dev: default devices and symlinks, the config's devices, device cgroup
//! rules (runtime-tools: linux_devices, default devices, device cgroup).

use integration::{cgroup, Ctx};
use serde_json::json;

#[test]
fn default_devices() {
    let ctx = Ctx::new();
    let out = ctx
        .sh("for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done");
    let want = "/dev/null character special file 1:3\n/dev/zero character special file 1:5\n\
                /dev/full character special file 1:7\n/dev/random character special file 1:8\n\
                /dev/urandom character special file 1:9\n/dev/tty character special file 5:0\n";
    assert_eq!(out, want);
    ctx.sh("echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c");
}

#[test]
fn default_symlinks() {
    let ctx = Ctx::new();
    let out = ctx.sh("for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done");
    assert_eq!(
        out,
        "fd /proc/self/fd\nstdin /proc/self/fd/0\nstdout /proc/self/fd/1\nstderr /proc/self/fd/2\nptmx pts/ptmx\n"
    );
}

#[test]
fn config_devices_are_created() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("stat -c '%F %t:%T %a %u %g' /dev/capsa-null; echo hi > /dev/capsa-null && echo writable", |b| {
            b.linux(
                "devices",
                json!([{ "path": "/dev/capsa-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 5 }]),
            )
            .resources("devices", json!([
                { "allow": false, "access": "rwm" },
                { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }
            ]))
        })
        .ok();
    assert_eq!(
        out.stdout,
        "character special file 1:3 640 1000 5\nwritable\n"
    );
}

#[test]
fn device_cgroup_denies_what_is_not_allowed() {
    let ctx = Ctx::new();
    // A node with /dev/fuse's numbers (10:229), which is in no runtime's
    // default allow list: opening it is EPERM under a deny-all rule, and
    // anything but EPERM (success, or ENODEV without fuse) once allowed.
    let script = "mknod /tmp/fuse c 10 229 && (exec 3</tmp/fuse) 2>&1 && echo opened; echo done";
    let denied = ctx.sh(script);
    assert!(
        denied.contains("Operation not permitted"),
        "device cgroup denies 10:229: {denied}"
    );
    let allowed = ctx
        .sh_in(script, |b| {
            b.resources(
                "devices",
                json!([
                    { "allow": false, "access": "rwm" },
                    { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm" }
                ]),
            )
        })
        .ok();
    assert!(
        !allowed.stdout.contains("Operation not permitted"),
        "allowed by the config: {allowed}"
    );
    if !cgroup::is_unified() {
        // v1 lets us read the rules back; no wildcard allow may be there.
        let id = ctx.id();
        let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
        ctx.create(&id, &b).ok();
        let list = cgroup::read(
            &cgroup::controller_dir("devices", &b.cgroups_path()),
            "devices.list",
        );
        assert!(
            !list.lines().any(|l| l.starts_with("a ")),
            "no allow-all rule: {list}"
        );
        assert!(
            list.lines().any(|l| l == "c 1:3 rwm"),
            "/dev/null allowed: {list}"
        );
        assert!(
            !list.lines().any(|l| l.starts_with("c 10:229")),
            "fuse not allowed: {list}"
        );
    }
}
