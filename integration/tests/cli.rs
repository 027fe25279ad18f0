//! The command line beyond the lifecycle: `features`, `spec`, `--version`,
//! `--help` (what containerd, podman and users call).

use integration::Ctx;
use serde_json::Value;

#[test]
fn features_is_the_oci_features_json() {
    let ctx = Ctx::new();
    let out = ctx.rt(&["features"]).ok();
    let f: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features is JSON ({e}): {out}"));
    assert!(
        f["ociVersionMin"].is_string() && f["ociVersionMax"].is_string(),
        "{f}"
    );
    let hooks: Vec<&str> = f["hooks"]
        .as_array()
        .expect("hooks array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "hook {h} in {hooks:?}");
    }
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .expect("mountOptions array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for o in [
        "ro", "rbind", "nosuid", "nodev", "noexec", "rprivate", "rslave", "rshared",
    ] {
        assert!(opts.contains(&o), "mount option {o} in {opts:?}");
    }
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"] {
        assert!(ns.contains(&n), "namespace {n} in {ns:?}");
    }
    if ctx.rt.is_capsa() {
        assert!(
            ns.contains(&"time"),
            "capsa supports the time namespace: {ns:?}"
        );
        assert!(opts.contains(&"rro"), "capsa supports rro: {opts:?}");
    }
    assert!(
        f["linux"]["capabilities"]
            .as_array()
            .map(|c| c.len() >= 38)
            .unwrap_or(false),
        "capabilities listed: {f}"
    );
    assert!(
        f["linux"]["cgroup"]["v1"].is_boolean() && f["linux"]["cgroup"]["v2"].is_boolean(),
        "cgroup: {f}"
    );
}

#[test]
fn spec_writes_a_config_that_runs() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let dir = b.dir.to_str().unwrap().to_string();
    ctx.rt(&["spec", "--bundle", &dir]).ok();
    let text = std::fs::read_to_string(b.config_path()).expect("spec wrote config.json");
    let mut spec: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(
        spec["ociVersion"].is_string()
            && spec["process"]["args"].is_array()
            && spec["mounts"].is_array(),
        "{spec}"
    );
    assert_eq!(spec["root"]["path"], "rootfs");
    // as generated, except: no terminal, a command that prints, and our cgroup
    spec["process"]["terminal"] = Value::Bool(false);
    spec["process"]["args"] = serde_json::json!(["/bin/echo", "spec-ok"]);
    spec["linux"]["cgroupsPath"] = Value::String(b.cgroups_path());
    std::fs::write(b.config_path(), spec.to_string()).unwrap();
    let id = ctx.id();
    let out = ctx.rt(&["run", "--bundle", &dir, &id]).ok();
    assert_eq!(out.out(), "spec-ok");
}

/// `spec` gives a cgroup namespace only on a pure cgroup v2 host, as runc: on a v1 or
/// hybrid host the container sees the host's cgroup paths (runc 1.1 never adds one).
#[test]
fn spec_cgroup_namespace_only_on_cgroup_v2() {
    let ctx = Ctx::new();
    let dir = ctx.mkdir("specdir");
    ctx.rt(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let cgroupns = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup");
    if integration::cgroup::is_unified() {
        assert!(cgroupns || !ctx.rt.is_capsa(), "{spec}");
    } else {
        assert!(!cgroupns, "{spec}");
    }
}

#[test]
fn spec_refuses_to_overwrite() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    b.write();
    let before = std::fs::read_to_string(b.config_path()).unwrap();
    let out = ctx.rt(&["spec", "--bundle", b.dir.to_str().unwrap()]);
    assert!(!out.success(), "{out}");
    assert!(out.all().contains("config.json"), "{out}");
    assert_eq!(std::fs::read_to_string(b.config_path()).unwrap(), before);
}

/// runc's shape, which scripts parse: `<name> version X.Y.Z`, `commit: ...`,
/// `spec: X.Y.Z`, for `--version` and `-v`.
#[test]
fn version_in_runcs_shape() {
    let ctx = Ctx::new();
    for flag in ["--version", "-v"] {
        let out = ctx.rt(&[flag]).ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        let semver = |s: &str| {
            let v: Vec<&str> = s.split(['.', '+', '-', '~']).take(3).collect();
            v.len() == 3 && v.iter().all(|n| n.parse::<u32>().is_ok())
        };
        let name = if ctx.rt.is_capsa() { "capsa" } else { "runc" };
        let first = lines.first().copied().unwrap_or_default();
        let v = first.strip_prefix(&format!("{name} version "));
        assert!(v.is_some_and(semver), "first line: {out}");
        assert!(
            lines.get(1).is_some_and(|l| l.starts_with("commit:")),
            "{out}"
        );
        let spec = lines.get(2).and_then(|l| l.strip_prefix("spec: "));
        assert!(spec.is_some_and(semver), "{out}");
    }
}

/// Every command has its help (`-h` and `--help`, exit 0, naming the command), and an
/// unknown one is an error.
#[test]
fn help_for_every_command() {
    let ctx = Ctx::new();
    for cmd in [
        "create", "start", "run", "state", "list", "kill", "delete", "exec", "pause", "resume",
        "events", "ps", "update", "features", "spec",
    ] {
        for flag in ["-h", "--help"] {
            let out = ctx.rt(&[cmd, flag]).ok();
            assert!(out.stdout.contains(cmd), "{out}");
        }
    }
    for flag in ["-h", "--help"] {
        let out = ctx.rt(&[flag]).ok();
        assert!(out.stdout.contains("exec"), "{out}");
    }
    let out = ctx.rt(&["foo", "-h"]);
    assert!(!out.success(), "{out}");
    // runc's words, which its own suite looks for.
    assert!(out.all().contains("No help topic for 'foo'"), "{out}");
}

#[test]
fn unknown_command_fails() {
    let ctx = Ctx::new();
    let out = ctx.rt(&["no-such-command"]);
    assert!(!out.success(), "{out}");
}
