//! Mounts (runtime-tools: mounts, linux_mounts_*): types, options, order,
//! destinations created, bind ro, recursive read-only.

use integration::{mountinfo, Ctx};
use serde_json::json;

#[test]
fn default_mounts_are_present() {
    let ctx = Ctx::new();
    let out = ctx.sh("cat /proc/self/mountinfo");
    for (point, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let m = mountinfo::find(&out, point).unwrap_or_else(|| panic!("{point} mounted:\n{out}"));
        assert_eq!(m.fstype, fstype, "{point}");
    }
    let sys = mountinfo::find(&out, "/sys").unwrap();
    assert!(
        sys.has_opt("ro") && sys.has_opt("nosuid") && sys.has_opt("nodev") && sys.has_opt("noexec"),
        "{sys:?}"
    );
    let shm = mountinfo::find(&out, "/dev/shm").unwrap();
    assert!(
        shm.has_opt("nodev") && shm.has_opt("noexec") && shm.has_opt("size=65536k"),
        "{shm:?}"
    );
    assert!(
        mountinfo::parse(&out)
            .iter()
            .any(|m| m.mount_point.starts_with("/sys/fs/cgroup")),
        "cgroup filesystem mounted:\n{out}"
    );
}

/// A read-only /dev (runc#3248) is made read-only last: /dev/pts and the device nodes
/// still go into it, and it keeps its own flags.
#[test]
fn read_only_dev_still_gets_its_mounts_and_nodes() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in(
            "cat /proc/self/mountinfo; [ -c /dev/null ] && echo null-ok",
            |b| {
                b.with(|s| {
                    for m in s["mounts"].as_array_mut().unwrap() {
                        if m["destination"] == "/dev" {
                            m["options"].as_array_mut().unwrap().push(json!("ro"));
                        }
                    }
                })
            },
        )
        .ok();
    let dev = mountinfo::find(&out.stdout, "/dev").unwrap_or_else(|| panic!("{out}"));
    assert!(dev.has_opt("ro") && dev.has_opt("nosuid"), "{dev:?}");
    let pts = mountinfo::find(&out.stdout, "/dev/pts").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(pts.fstype, "devpts");
    assert!(out.stdout.contains("null-ok"), "{out}");
}

/// `tmpcopyup` (podman's `--read-only` and `--tmpfs`): the tmpfs starts with a copy of
/// the directory it covers (files with their modes and owners, subdirectories,
/// symlinks as symlinks), and what is written there stays out of the rootfs.
#[test]
fn tmpfs_copyup_starts_with_what_it_covers() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let data = b.rootfs().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), "from-the-image").unwrap();
    std::fs::set_permissions(
        data.join("sub/file"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(data.join("sub/file"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
    let b = b
        .mount(
            json!({ "destination": "/data", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "tmpcopyup"] }),
        )
        .sh(
            "grep ' /data ' /proc/self/mountinfo; cat /data/sub/file; echo; \
             stat -c '%a %u:%g' /data/sub/file; readlink /data/link; echo new > /data/new",
        );
    let out = ctx.run(&b).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let m = &mountinfo::parse(lines[0])[0];
    assert_eq!(m.fstype, "tmpfs", "{out}");
    assert_eq!(
        lines[1..4],
        ["from-the-image", "640 1000:1000", "/etc/passwd"],
        "{out}"
    );
    assert!(
        !data.join("new").exists(),
        "written to the tmpfs, not the rootfs"
    );
}

#[test]
fn tmpfs_with_options() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in(
            "grep ' /scratch ' /proc/self/mountinfo; stat -c %a /scratch",
            |b| {
                b.mount(
                    json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"] }),
                )
            },
        )
        .ok();
    let m = &mountinfo::parse(&out.stdout)[0];
    assert_eq!(m.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec", "size=1024k", "mode=700"] {
        assert!(m.has_opt(o), "{o} in {m:?}");
    }
    assert_eq!(out.stdout.lines().last(), Some("700"));
}

#[test]
fn bind_mount_read_only() {
    let ctx = Ctx::new();
    let data = ctx.mkdir("data");
    std::fs::write(data.join("file"), "from the host\n").unwrap();
    let out = ctx
        .sh_in("cat /data/file; touch /data/new 2>/dev/null || echo ro; grep ' /data ' /proc/self/mountinfo", |b| {
            b.mount(json!({ "destination": "/data", "type": "bind", "source": data, "options": ["bind", "ro"] }))
        })
        .ok();
    assert!(out.stdout.starts_with("from the host\nro\n"), "{out}");
    assert!(mountinfo::parse(&out.stdout)[0].has_opt("ro"), "{out}");
    assert!(!data.join("new").exists());
}

#[test]
fn bind_mount_read_write() {
    let ctx = Ctx::new();
    let data = ctx.mkdir("data");
    ctx.sh_in("echo written > /data/new", |b| b.bind(&data, "/data"))
        .ok();
    assert_eq!(
        std::fs::read_to_string(data.join("new")).unwrap(),
        "written\n"
    );
}

#[test]
fn bind_mount_of_a_file() {
    let ctx = Ctx::new();
    let f = ctx.path("single-file");
    std::fs::write(&f, "one file\n").unwrap();
    let out = ctx
        .sh_in("cat /etc/single", |b| {
            b.mount(json!({ "destination": "/etc/single", "type": "bind", "source": f, "options": ["bind", "ro"] }))
        })
        .ok();
    assert_eq!(out.stdout, "one file\n");
}

#[test]
fn mounts_are_made_in_order_and_destinations_created() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("grep -E ' /(a|a/b/c) ' /proc/self/mountinfo | cut -d' ' -f5", |b| {
            b.mount(json!({ "destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] }))
                .mount(json!({ "destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] }))
        })
        .ok();
    assert_eq!(
        out.stdout, "/a\n/a/b/c\n",
        "the second mount is inside the first: {out}"
    );
}

#[test]
fn mount_flags() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("grep ' /m ' /proc/self/mountinfo", |b| {
            b.mount(
                json!({ "destination": "/m", "type": "tmpfs", "source": "tmpfs",
                            "options": ["ro", "nosuid", "nodev", "noexec", "noatime"] }),
            )
        })
        .ok();
    let m = &mountinfo::parse(&out.stdout)[0];
    for o in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(m.has_opt(o), "{o} in {m:?}");
    }
}

#[test]
fn recursive_read_only_bind() {
    let ctx = Ctx::new();
    if !ctx.requires("rro") {
        return; // runc 1.1 has no rro (mount_setattr) support
    }
    let data = ctx.mkdir("data");
    std::fs::create_dir(data.join("sub")).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &data.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let out = ctx
        .sh_in("touch /data/x 2>/dev/null || echo ro-top; touch /data/sub/x 2>/dev/null || echo ro-sub", |b| {
            b.mount(json!({ "destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rro"] }))
        })
        .ok();
    assert_eq!(out.stdout, "ro-top\nro-sub\n");
}

#[test]
fn mqueue_and_devpts_work() {
    let ctx = Ctx::new();
    let out = ctx.sh("ls /dev/pts/ptmx && readlink /dev/ptmx");
    assert_eq!(out, "/dev/pts/ptmx\npts/ptmx\n");
}
