//! Nested: the runtime run inside a container of its own (issue 18). The outer container
//! has a user namespace (root inside is host uid OUTER_ROOT), so the inner runtime is uid
//! 0 of a user namespace it did not make: no mknod, no cgroup it may write, its state in
//! the outer rootfs. The outer gets every capability of its namespace and no masked or
//! read-only /proc paths (the kernel lets a user namespace mount procfs only where the
//! whole of it is visible; docker's and podman's nested set-ups unmask it the same way),
//! the runtime binary and the host's libraries bound in read-only.

use std::path::Path;

use integration::{Bundle, Ctx};
use serde_json::{json, Value};

/// Host uid and gid of the outer container's root.
const OUTER_ROOT: u32 = 300_000;

/// Every capability up to CAP_CHECKPOINT_RESTORE: the outer is root of its namespace.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn ro_bind(src: &Path, dest: &str) -> Value {
    json!({ "destination": dest, "type": "bind", "source": src,
            "options": ["rbind", "ro", "nosuid", "nodev"] })
}

/// An inner bundle at `/<name>` of the outer rootfs: the suite's config, with no cgroup
/// path (the inner runtime picks its default, as under rootless podman) and `args`.
fn inner_bundle(outer: &Bundle, name: &str, args: &[&str]) {
    let b = Bundle::new(outer.rootfs().join(name), "");
    let b = b.args(args).with(|s| {
        let linux = s["linux"].as_object_mut().expect("linux");
        linux.remove("cgroupsPath");
        linux.remove("resources");
    });
    b.write();
}

/// The outer container: a user namespace, all capabilities, /proc and /sys unmasked, the
/// runtime at /rt/<its name>, the host's /usr/lib (and lib64) for it, `script` to run.
fn outer(ctx: &Ctx, script: &str) -> Bundle {
    let rt_name = ctx
        .rt
        .path
        .file_name()
        .expect("runtime file name")
        .to_string_lossy()
        .into_owned();
    let b = ctx.bundle();
    let rootfs = b.rootfs();
    for d in ["rt", "usr/lib", "usr/lib64", "run", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir in outer rootfs");
    }
    std::fs::write(rootfs.join("rt").join(&rt_name), "").expect("bind target");
    for (link, to) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(to, rootfs.join(link)).expect("symlink");
    }
    let map = json!([{ "containerID": 0, "hostID": OUTER_ROOT, "size": 65536 }]);
    let caps = json!({ "bounding": ALL_CAPS, "effective": ALL_CAPS, "permitted": ALL_CAPS });
    let mut b = b
        .namespace("user", None)
        .linux("uidMappings", map.clone())
        .linux("gidMappings", map)
        .linux("maskedPaths", json!([]))
        .linux("readonlyPaths", json!([]))
        .caps(caps)
        .env(&format!("RT=/rt/{rt_name}"))
        .env(&format!("CAPSA_TEST_TAG={}", ctx.tag))
        .mount(ro_bind(&ctx.rt.path, &format!("/rt/{rt_name}")))
        .mount(ro_bind(Path::new("/usr/lib"), "/usr/lib"))
        .sh(script);
    if Path::new("/usr/lib64").is_dir() {
        b = b.mount(ro_bind(Path::new("/usr/lib64"), "/usr/lib64"));
    }
    b
}

/// Gives the outer rootfs (and the inner bundles in it) to the outer's root.
fn chown_to_outer_root(b: &Bundle) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{OUTER_ROOT}:{OUTER_ROOT}"))
        .arg(b.rootfs())
        .status()
        .expect("run chown");
    assert!(st.success(), "chown the outer rootfs");
}

#[test]
fn runtime_inside_its_own_container_runs_and_execs() {
    let ctx = Ctx::new();
    let script = "set -e
        $RT run --bundle /inner1 ic1
        $RT create --bundle /inner2 ic2 </dev/null >/dev/null 2>&1
        $RT state ic2 | grep -o '\"status\": *\"[a-z]*\"'
        $RT start ic2
        $RT exec ic2 sh -c 'echo in-exec $(id -u)'
        $RT kill ic2 KILL
        while $RT state ic2 | grep -q '\"running\"'; do sleep 0.1; done
        $RT delete ic2
        echo left: $($RT list -q | wc -l)";
    let b = outer(&ctx, script);
    inner_bundle(
        &b,
        "inner1",
        &[
            "/bin/sh",
            "-c",
            "id -u; head -1 /proc/self/uid_map; stat -c %t:%T /dev/null /dev/zero; \
             echo x > /dev/null; echo pid $$",
        ],
    );
    inner_bundle(&b, "inner2", &["/bin/sleep", "1000"]);
    chown_to_outer_root(&b);
    let out = ctx.run(&b).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root in the inner container: {out}");
    let map: Vec<u32> = lines[1]
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(map, [0, OUTER_ROOT, 65536], "the outer's namespace: {out}");
    assert_eq!(&lines[2..4], ["1:3", "1:5"], "device nodes bound: {out}");
    assert_eq!(lines[4], "pid 1", "{out}");
    let status = lines[5].split('"').nth(3).unwrap_or_default();
    assert_eq!(status, "created", "{out}");
    assert_eq!(&lines[6..], ["in-exec 0", "left: 0"], "{out}");
}
