//! Namespaces (runtime-tools: linux_ns_*, ns path joins, user ns mappings).

use std::path::Path;
use std::process::Command;

use integration::{wait_until, Ctx};

const KINDS: &[(&str, &str)] = &[
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("mount", "mnt"),
    ("cgroup", "cgroup"),
];

fn host_ns(proc_name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{proc_name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn container_ns(
    ctx: &Ctx,
    edit: impl FnOnce(integration::Bundle) -> integration::Bundle,
) -> Vec<(String, String)> {
    let script = KINDS
        .iter()
        .map(|(_, p)| format!("echo {p} $(readlink /proc/self/ns/{p});"))
        .collect::<String>();
    let out = ctx.sh_in(&script, edit).ok();
    out.stdout
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

#[test]
fn every_configured_namespace_is_new() {
    let ctx = Ctx::new();
    for (p, ns) in container_ns(&ctx, |b| b) {
        assert_ne!(ns, host_ns(&p), "{p} namespace is new");
    }
}

#[test]
fn omitted_namespaces_are_shared_with_the_host() {
    let ctx = Ctx::new();
    // no hostname: setting one needs a private UTS namespace
    let seen = container_ns(&ctx, |b| {
        b.without_namespace("network")
            .without_namespace("ipc")
            .without_namespace("uts")
            .with(|s| {
                s.as_object_mut()
                    .unwrap()
                    .remove("hostname")
                    .map(|_| ())
                    .unwrap_or(())
            })
    });
    for (p, ns) in seen {
        if ["net", "ipc", "uts"].contains(&p.as_str()) {
            assert_eq!(ns, host_ns(&p), "{p} shared with the host");
        } else {
            assert_ne!(ns, host_ns(&p), "{p} still new");
        }
    }
}

#[test]
fn namespace_path_joins_an_existing_namespace() {
    let ctx = Ctx::new();
    // A holder process in new net, ipc and uts namespaces.
    let holder = ctx
        .spawn_helper(Command::new("unshare").args(["--net", "--ipc", "--uts", "sleep", "1000"]));
    let ns_of = |p: &str| {
        std::fs::read_link(format!("/proc/{holder}/ns/{p}"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    wait_until("the holder to unshare", || {
        !ns_of("net").is_empty() && ns_of("net") != host_ns("net") && ns_of("uts") != host_ns("uts")
    });
    let seen = container_ns(&ctx, |b| {
        b.namespace(
            "network",
            Some(Path::new(&format!("/proc/{holder}/ns/net"))),
        )
        .namespace("ipc", Some(Path::new(&format!("/proc/{holder}/ns/ipc"))))
        .namespace("uts", Some(Path::new(&format!("/proc/{holder}/ns/uts"))))
        .with(|s| {
            s.as_object_mut()
                .unwrap()
                .remove("hostname")
                .map(|_| ())
                .unwrap_or(())
        })
    });
    for (p, ns) in seen {
        if ["net", "ipc", "uts"].contains(&p.as_str()) {
            assert_eq!(ns, ns_of(&p), "{p} joined the holder's");
        }
    }
}

#[test]
fn joining_another_containers_namespaces() {
    let ctx = Ctx::new();
    let first = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &first);
    let pid = ctx.pid(&id);
    let seen = container_ns(&ctx, |b| {
        b.namespace("ipc", Some(Path::new(&format!("/proc/{pid}/ns/ipc"))))
            .namespace("network", Some(Path::new(&format!("/proc/{pid}/ns/net"))))
    });
    for (p, ns) in seen {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{p}"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        match p.as_str() {
            "ipc" | "net" => assert_eq!(ns, theirs, "{p} joined"),
            "pid" | "uts" | "mnt" => assert_ne!(ns, theirs, "{p} own"),
            _ => {}
        }
    }
}

#[test]
fn bad_namespace_path_fails_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .namespace("network", Some(Path::new("/proc/self/no-such-ns")));
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().contains("no-such-ns"),
        "the error names the path: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

fn userns_bundle(ctx: &Ctx) -> integration::Bundle {
    ctx.bundle().namespace("user", None).with(|s| {
        s["linux"]["uidMappings"] =
            serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        s["linux"]["gidMappings"] =
            serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    })
}

#[test]
fn user_namespace_mappings() {
    let ctx = Ctx::new();
    let b = userns_bundle(&ctx).args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let pid = ctx.pid(&id);
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let gid_map = std::fs::read_to_string(format!("/proc/{pid}/gid_map")).unwrap();
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(&uid_map), "0 100000 65536");
    assert_eq!(norm(&gid_map), "0 100000 65536");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "100000"),
        "host sees uid 100000: {uid_line}"
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap()
    );
}

/// Bind sources that the user namespace's root cannot reach (0700, the host's root's)
/// are opened by the runtime before the container enters it, as runc does: they mount,
/// and `exec` sees them.
#[test]
fn user_namespace_binds_sources_its_root_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = Ctx::new();
    let mut b = userns_bundle(&ctx).args(&["/bin/sleep", "1000"]);
    for n in 1..=2 {
        let outer = ctx.mkdir(&format!("inaccessible-{n}"));
        std::fs::create_dir(outer.join("dir")).unwrap();
        std::fs::write(outer.join("dir/foo.txt"), "x").unwrap();
        std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700)).unwrap();
        b = b.mount(serde_json::json!({
            "source": outer.join("dir"), "destination": format!("/tmp/mount-{n}"),
            "options": ["bind"]
        }));
    }
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.rt(&[
        "exec",
        &id,
        "stat",
        "/tmp/mount-1/foo.txt",
        "/tmp/mount-2/foo.txt",
    ])
    .ok();
}

#[test]
fn user_namespace_root_inside() {
    let ctx = Ctx::new();
    let out = ctx
        .run(&userns_bundle(&ctx).sh("cat /proc/self/uid_map; id -u; id -g"))
        .ok();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(lines[1], "0");
    assert_eq!(lines[2], "0");
}

#[test]
fn time_namespace_offsets() {
    let ctx = Ctx::new();
    if !ctx.requires("time") {
        return; // runc 1.1 has no time namespace support
    }
    let out = ctx
        .sh_in("cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime", |b| {
            b.namespace("time", None).linux(
                "timeOffsets",
                serde_json::json!({ "boottime": { "secs": 86400000, "nanosecs": 0 }, "monotonic": { "secs": 86400000, "nanosecs": 0 } }),
            )
        })
        .ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["monotonic", "86400000", "0"]),
        "{out}"
    );
    let uptime: u64 = out.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(
        uptime >= 86400000,
        "uptime shows the boottime offset: {out}"
    );
}

#[test]
fn cgroup_namespace_root_is_the_container_cgroup() {
    let ctx = Ctx::new();
    let out = ctx.sh("cat /proc/self/cgroup");
    for l in out.lines() {
        assert!(
            l.ends_with(":/"),
            "every hierarchy rooted at the container's cgroup: {out}"
        );
    }
}

/// IFF_UP of the container's lo, from sysfs (mounted in the container's network namespace).
fn lo_is_up(ctx: &Ctx, b: integration::Bundle) -> bool {
    let out = ctx.run(&b.sh("cat /sys/class/net/lo/flags")).ok();
    let flags = out.stdout.trim().trim_start_matches("0x");
    u32::from_str_radix(flags, 16).unwrap_or_else(|_| panic!("lo flags: {out}")) & 1 == 1
}

#[test]
fn a_new_network_namespace_has_lo_up() {
    // runc (its "loopback" network) and crun bring lo up: 127.0.0.1 must answer.
    let ctx = Ctx::new();
    assert!(lo_is_up(&ctx, ctx.bundle()), "lo is up");
    assert!(
        lo_is_up(&ctx, userns_bundle(&ctx)),
        "lo is up in a user namespace too"
    );
}
