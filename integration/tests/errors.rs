//! Bad input (issue 3 section 4; runtime-tools: error cases): a clear error
//! naming what is wrong, exit status 1, and nothing left behind.

use integration::{Bundle, Ctx, Out};
use serde_json::json;

/// Exit 1, an error that names `what`, no crash output, nothing left.
#[track_caller]
fn rejected(ctx: &Ctx, id: &str, b: &Bundle, out: Out, what: &str) {
    let out = out.fails();
    assert!(out.all().contains(what), "the error names {what:?}: {out}");
    for crash in ["panicked", "RUST_BACKTRACE", "goroutine "] {
        assert!(!out.all().contains(crash), "no crash output: {out}");
    }
    ctx.assert_nothing_left(id, b);
}

#[test]
fn unknown_id_for_every_command() {
    let ctx = Ctx::new();
    let id = ctx.id();
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        ctx.assert_not_exist(ctx.rt(&args), &id);
    }
}

#[test]
fn taken_id() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    let pid = ctx.pid(&id);
    let b2 = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let out = ctx.create(&id, &b2).fails();
    assert!(out.all().contains("exists"), "{out}");
    if ctx.rt.is_capsa() {
        let want = format!("container \"{id}\" already exists");
        assert!(out.stderr.contains(&want), "expected `{want}`: {out}");
    }
    // the first container is untouched; the second left nothing
    let st = ctx.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    assert_eq!(st["bundle"].as_str(), Some(b.dir.to_str().unwrap()));
    assert!(
        integration::cgroup::existing_dirs(&b2.cgroups_path()).is_empty(),
        "no cgroup for the refused create"
    );
}

#[test]
fn invalid_config_json() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let id = ctx.id();
    std::fs::write(
        b.config_path(),
        "{ \"ociVersion\": \"1.2.0\", \"process\": ",
    )
    .unwrap();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = ctx.rt(&["create", "--bundle", &dir, &id]);
    if !out.all().contains("config.json")
        && ctx
            .rt
            .runc_deviation("a truncated config.json gives `unexpected EOF`, not naming the file")
    {
        out.fails();
        ctx.assert_nothing_left(&id, &b);
        return;
    }
    rejected(&ctx, &id, &b, out, "config.json");
}

#[test]
fn config_json_of_the_wrong_shape() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let id = ctx.id();
    let mut spec = b.spec.clone();
    spec["process"]["args"] = json!("not-an-array");
    std::fs::write(b.config_path(), serde_json::to_string(&spec).unwrap()).unwrap();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = ctx.rt(&["create", "--bundle", &dir, &id]).fails();
    assert!(
        out.all().contains("config.json") || out.all().contains("args"),
        "{out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn missing_config_json() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let id = ctx.id();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = ctx.rt(&["create", "--bundle", &dir, &id]);
    rejected(&ctx, &id, &b, out, "config.json");
}

#[test]
fn missing_bundle_dir() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let id = ctx.id();
    let gone = ctx.path("no-such-bundle");
    let out = ctx.rt(&["create", "--bundle", gone.to_str().unwrap(), &id]);
    rejected(&ctx, &id, &b, out, "no-such-bundle");
}

#[test]
fn empty_args() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| s["process"]["args"] = json!([]));
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    rejected(&ctx, &id, &b, out, "args");
}

#[test]
fn missing_rootfs() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .with(|s| s["root"]["path"] = json!("no-such-rootfs"));
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    rejected(&ctx, &id, &b, out, "no-such-rootfs");
}

#[test]
fn bind_mount_of_a_missing_source() {
    let ctx = Ctx::new();
    let missing = ctx.path("no-such-source");
    let b = ctx
        .bundle()
        .mount(json!({ "destination": "/data", "type": "bind", "source": missing, "options": ["rbind"] }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    rejected(&ctx, &id, &b, out, "no-such-source");
}

#[test]
fn mount_of_an_unknown_filesystem_type() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .mount(json!({ "destination": "/weird", "type": "nosuchfs", "source": "nosuchfs" }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    rejected(&ctx, &id, &b, out, "/weird");
}

#[test]
fn invalid_container_id() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    b.write();
    for bad in ["../escape", "with/slash", ""] {
        let out = ctx
            .rt(&["create", "--bundle", b.dir.to_str().unwrap(), bad])
            .fails();
        assert!(!out.all().contains("panicked"), "{out}");
    }
    assert!(
        !ctx.dir.join("escape").exists(),
        "nothing created outside the root"
    );
    let entries: Vec<_> = std::fs::read_dir(&ctx.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(entries.is_empty(), "nothing in the root: {entries:?}");
}

#[test]
fn unknown_command_line_flag() {
    let ctx = Ctx::new();
    let out = ctx.rt(&["create", "--no-such-flag", "x"]);
    assert!(!out.success(), "{out}");
    assert!(out.all().contains("no-such-flag"), "{out}");
}

#[test]
fn cwd_that_is_a_file() {
    let ctx = Ctx::new();
    let b = ctx.bundle().cwd("/etc/passwd");
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    rejected(&ctx, &id, &b, out, "/etc/passwd");
}

/// A security module the host does not run: refused before anything is made.
#[test]
fn apparmor_profile_without_apparmor() {
    let ctx = Ctx::new();
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
    {
        integration::skip("AppArmor is enabled on this host");
        return;
    }
    let b = ctx
        .bundle()
        .with(|c| c["process"]["apparmorProfile"] = "docker-default".into());
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    if !ctx.rt.is_capsa() {
        // runc 1.1 silently runs without the profile.
        ctx.delete_force(&id);
        return;
    }
    let out = out.fails();
    rejected(&ctx, &id, &b, out, "apparmorProfile");
}

/// --systemd-cgroup where systemd does not run: a clear error, no container.
#[test]
fn systemd_cgroup_without_systemd() {
    let ctx = Ctx::new();
    if std::path::Path::new("/run/systemd/system").exists() || !ctx.rt.is_capsa() {
        integration::skip("systemd runs here, or the runtime is not capsa");
        return;
    }
    let b = ctx.bundle();
    let id = ctx.id();
    b.write();
    let dir = b.dir.to_string_lossy().into_owned();
    let out = ctx
        .rt(&["--systemd-cgroup", "create", "--bundle", &dir, &id])
        .fails();
    rejected(&ctx, &id, &b, out, "systemd");
}
