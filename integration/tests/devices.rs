//! /dev: default devices and symlinks, the config's devices, device cgroup
//! rules (runtime-tools: linux_devices, default devices, device cgroup).

use integration::cgroup;
use integration::Ctx;
use serde_json::json;
use std::path::Path;

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

/// mknod of a node with /dev/fuse's numbers in /dev, and an attempt to open it.
const FUSE: &str =
    "mknod /dev/capsa-fuse c 10 229 && (exec 3</dev/capsa-fuse) 2>&1 && echo opened; echo done";

#[test]
fn device_cgroup_denies_what_is_not_allowed() {
    let ctx = Ctx::new();
    // A node with /dev/fuse's numbers (10:229), which is in no runtime's
    // default allow list: opening it is EPERM under a deny-all rule, and
    // anything but EPERM (success, or ENODEV without fuse) once allowed.
    // The node is made in /dev, the runtime's tmpfs: a rootfs on a nodev
    // file system (the cgroup v2 VM's /tmp) would refuse it for that reason.
    let script = FUSE;
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

/// The numbers of a real disk of this host (the first of /sys/block that is not a loop,
/// ram or zram device), if any.
fn host_disk() -> Option<(u32, u32)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    let dev = std::fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (ma, mi) = dev.trim().split_once(':')?;
    Some((ma.parse().ok()?, mi.parse().ok()?))
}

/// A loop device of the host over a 1 MiB file of the test, detached on drop: a disk
/// that surely exists (the cgroup v2 VM has no block device of its own).
struct Loop(String);

impl Loop {
    fn new(ctx: &Ctx) -> Option<Loop> {
        let img = ctx.path("disk.img");
        std::fs::write(&img, vec![b'D'; 1 << 20]).ok()?;
        if !Path::new("/dev/loop-control").exists() {
            // a modular loop driver is not loaded until its first use (the v2 VM)
            let _ = std::process::Command::new("modprobe").arg("loop").status();
        }
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .ok()?;
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !dev.is_empty()).then_some(Loop(dev))
    }

    fn numbers(&self) -> Option<(u32, u32)> {
        let name = self.0.rsplit('/').next()?;
        let dev = std::fs::read_to_string(format!("/sys/block/{name}/dev")).ok()?;
        let (ma, mi) = dev.trim().split_once(':')?;
        Some((ma.parse().ok()?, mi.parse().ok()?))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

/// The regression test of the cgroup v2 gap: a container with CAP_MKNOD (in docker's
/// and podman's default set, and in the default config) may make a node of a host disk
/// (runc's defaults allow mknod of anything), but must not open it: a loop device of the
/// host (which exists: without device rules, as capsa on cgroup v2 before its eBPF
/// filter, the container reads it), this host's first real disk where it has one, and
/// 8:0 (sda).
#[test]
fn cap_mknod_cannot_open_a_host_disk() {
    let ctx = Ctx::new();
    let lo = Loop::new(&ctx);
    let mut disks: Vec<(u32, u32)> = lo.as_ref().and_then(Loop::numbers).into_iter().collect();
    disks.extend(host_disk());
    if !disks.contains(&(8, 0)) {
        disks.push((8, 0));
    }
    for (ma, mi) in disks {
        let script = format!(
            "mknod /dev/capsa-disk b {ma} {mi} && echo made; \
             (exec 3</dev/capsa-disk && head -c 512 <&3 | wc -c) 2>&1 && echo opened; \
             (exec 3<>/dev/capsa-disk) 2>&1 && echo opened-rw; echo done"
        );
        made_but_never_opened(&ctx.sh(&script), &format!("a host disk's node b {ma}:{mi}"));
    }
}

/// The output of a script that made a host device's node (echo made) and tried two opens
/// of it (each echoing opened… on success): made with CAP_MKNOD, and both opens refused by
/// the device cgroup (EPERM).
fn made_but_never_opened(out: &str, node: &str) {
    assert!(out.contains("made\n"), "mknod of {node} (CAP_MKNOD): {out}");
    assert!(
        !out.contains("opened"),
        "{node} was opened in the container: {out}"
    );
    assert_eq!(
        out.matches("Operation not permitted").count(),
        2,
        "the device cgroup refuses {node} (EPERM): {out}"
    );
}

/// The host's console (c 5:1) is in no default rule (runc's AllowedDevices has no such
/// entry; capsa on cgroup v1 and with systemd allowed it until 2026-12): a container with
/// CAP_MKNOD may make the node but not open it, so it cannot read or write the host's
/// console. A container with a terminal gets its pty slave (136:*) at /dev/console.
/// The open is made by a subshell, never a session leader: it could not take the console
/// as its controlling terminal even where the open succeeded.
#[test]
fn the_host_console_cannot_be_opened() {
    let ctx = Ctx::new();
    let out = ctx.sh("mknod /dev/capsa-console c 5 1 && echo made; \
         (exec 3</dev/capsa-console) 2>&1 && echo opened; \
         (exec 3>/dev/capsa-console) 2>&1 && echo opened-w; echo done");
    made_but_never_opened(&out, "the host's console c 5:1");
}

/// Device rules outlive `update`: runc sets the container's own rules again on every
/// update (on cgroup v2 a new filter attached, the old one detached), and they are not
/// something `update` changes, whatever `--resources` says (capsa as runc).
#[test]
fn device_rules_hold_across_update() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let probe = |when: &str| {
        let script = FUSE.replace("mknod", "rm -f /dev/capsa-fuse; mknod");
        let out = ctx.rt(&["exec", &id, "/bin/sh", "-c", &script]).ok().stdout;
        assert!(
            out.contains("Operation not permitted") && !out.contains("opened"),
            "{when}: 10:229 must stay denied: {out}"
        );
        // what the defaults allow still works
        ctx.rt(&[
            "exec",
            &id,
            "/bin/sh",
            "-c",
            "echo x > /dev/null && head -c 1 /dev/zero",
        ])
        .ok();
    };
    probe("after create");
    ctx.rt(&["update", "--pids-limit", "42", &id]).ok();
    probe("after an update of pids");
    let res = ctx.path("res.json");
    let allow = json!({ "devices": [
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm" }
    ]});
    std::fs::write(&res, allow.to_string()).unwrap();
    ctx.rt(&["update", "--resources", res.to_str().unwrap(), &id])
        .ok();
    probe("after an update whose --resources allow it");
    ctx.rt(&["update", "--memory", "64m", &id]).ok();
    probe("after an update of memory");
}

/// A config without `linux.resources` still gets the default rules, deny by default (a
/// cgroup v1 devices directory starts with its parent's allow-all; cgroup v2 has no rules
/// without a filter).
#[test]
fn no_linux_resources_still_denies() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in(FUSE, |b| {
            b.with(|s| {
                s["linux"].as_object_mut().unwrap().remove("resources");
            })
        })
        .ok();
    assert!(
        out.stdout.contains("Operation not permitted") && !out.stdout.contains("opened"),
        "10:229 without linux.resources: {out}"
    );
}
