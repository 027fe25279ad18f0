//! Malformed config.json (issue 7): wrong JSON types, values out of range, invalid names and
//! paths. Each is refused by `create` with exit status 1 and nothing left behind; capsa's
//! error names the field (`process.user.uid`, `mounts[7].destination`). runc's messages
//! differ, so for runc only the exit status and the clean-up are checked; where runc accepts
//! the config, that is a known deviation and the container is deleted.
//! (errors.rs covers truncated JSON, missing files, empty args, a missing rootfs.)

use integration::{Bundle, Ctx, Out};
use serde_json::json;

/// A placeholder replaced by raw JSON text that serde_json::Value cannot hold (2^64).
const RAW: &str = "@@capsa-raw@@";

/// Writes `b`'s config with the placeholder string replaced by `raw`, then runs create.
fn create_raw(ctx: &Ctx, id: &str, b: &Bundle, raw: &str) -> Out {
    let text = serde_json::to_string_pretty(&b.spec).expect("serialise spec");
    let quoted = format!("\"{RAW}\"");
    assert!(text.contains(&quoted), "the bundle holds the placeholder");
    std::fs::write(b.config_path(), text.replace(&quoted, raw)).expect("write config.json");
    let dir = b.dir.to_string_lossy().into_owned();
    ctx.rt(&["create", "--bundle", &dir, id])
}

/// Exit 1, no crash, nothing left; capsa's error names config.json and `field`.
#[track_caller]
fn check_refused(ctx: &Ctx, id: &str, b: &Bundle, out: Out, field: &str) {
    let out = out.fails();
    for crash in ["panicked", "RUST_BACKTRACE", "goroutine "] {
        assert!(!out.all().contains(crash), "no crash output: {out}");
    }
    if ctx.rt.is_capsa() {
        assert!(
            out.stderr.contains("config.json"),
            "names config.json: {out}"
        );
        assert!(
            out.stderr.contains(field),
            "the error names {field:?}: {out}"
        );
    }
    ctx.assert_nothing_left(id, b);
}

#[track_caller]
fn refused(ctx: &Ctx, b: &Bundle, field: &str) {
    let id = ctx.id();
    let out = ctx.create(&id, b);
    check_refused(ctx, &id, b, out, field);
}

#[track_caller]
fn refused_raw(ctx: &Ctx, b: &Bundle, raw: &str, field: &str) {
    let id = ctx.id();
    let out = create_raw(ctx, &id, b, raw);
    check_refused(ctx, &id, b, out, field);
}

/// Refused by capsa; runc 1.1 accepts it (`why`): then its container is deleted.
#[track_caller]
fn refused_runc_accepts(ctx: &Ctx, b: &Bundle, field: &str, why: &str) {
    let id = ctx.id();
    let out = ctx.create(&id, b);
    if out.success() && ctx.rt.runc_deviation(why) {
        ctx.delete_force(&id).ok();
        ctx.assert_nothing_left(&id, b);
        return;
    }
    check_refused(ctx, &id, b, out, field);
}

/// `b` with `ns` appended to linux.namespaces, and its index there.
fn with_namespace(b: Bundle, ns: serde_json::Value) -> (Bundle, usize) {
    let i = b.spec["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .len();
    let b = b.with(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(ns)
    });
    (b, i)
}

fn mounts(b: &Bundle) -> usize {
    b.spec["mounts"].as_array().expect("mounts").len()
}

#[test]
fn args_of_the_wrong_type() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .with(|s| s["process"]["args"] = json!("/bin/true"));
    refused(&ctx, &b, "process.args");
    let b = ctx
        .bundle()
        .with(|s| s["process"]["args"] = json!(["/bin/true", 7]));
    refused(&ctx, &b, "process.args[1]");
}

#[test]
fn uid_a_string() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .with(|s| s["process"]["user"]["uid"] = json!("0"));
    refused(&ctx, &b, "process.user.uid");
}

#[test]
fn uid_beyond_32_bits() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .with(|s| s["process"]["user"]["uid"] = json!(1u64 << 32));
    refused(&ctx, &b, "process.user.uid");
    let b = ctx
        .bundle()
        .with(|s| s["process"]["user"]["gid"] = json!(-1));
    refused(&ctx, &b, "process.user.gid");
}

#[test]
fn rlimit_beyond_64_bits() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "hard": RAW, "soft": 1024 }]);
    });
    refused_raw(&ctx, &b, "18446744073709551616", "process.rlimits[0].hard");
}

#[test]
fn terminal_not_a_bool() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .with(|s| s["process"]["terminal"] = json!("yes"));
    refused(&ctx, &b, "process.terminal");
}

#[test]
fn console_size_beyond_16_bits() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s["process"]["consoleSize"] = json!({ "height": 99_999_999_999u64, "width": 80 })
    });
    refused_runc_accepts(
        &ctx,
        &b,
        "process.consoleSize.height",
        "consoleSize beyond 65535 is accepted (and truncated to 16 bits with a terminal)",
    );
}

#[test]
fn memory_limit_2_pow_63() {
    let ctx = Ctx::new();
    let b = ctx.bundle().resources("memory", json!({ "limit": RAW }));
    refused_raw(
        &ctx,
        &b,
        "9223372036854775808",
        "linux.resources.memory.limit",
    );
}

#[test]
fn unknown_namespace_type() {
    let ctx = Ctx::new();
    let (b, i) = with_namespace(ctx.bundle(), json!({ "type": "bogus" }));
    refused(&ctx, &b, &format!("linux.namespaces[{i}].type"));
}

#[test]
fn duplicate_namespace() {
    let ctx = Ctx::new();
    let (b, i) = with_namespace(ctx.bundle(), json!({ "type": "pid" }));
    refused(&ctx, &b, &format!("linux.namespaces[{i}]"));
}

#[test]
fn mount_destination_relative() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let i = mounts(&b);
    let b = b.mount(json!({ "destination": "data", "type": "tmpfs", "source": "tmpfs" }));
    refused_runc_accepts(
        &ctx,
        &b,
        &format!("mounts[{i}].destination"),
        "a relative mount destination is accepted with a warning",
    );
}

#[test]
fn mount_destination_escaping_with_dotdot() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let i = mounts(&b);
    let b = b.mount(
        json!({ "destination": "/tmp/../../../etc/capsa-x", "type": "tmpfs", "source": "tmpfs" }),
    );
    refused_runc_accepts(
        &ctx,
        &b,
        &format!("mounts[{i}].destination"),
        "a destination with '..' is accepted and clamped to the rootfs",
    );
    assert!(
        !std::path::Path::new("/etc/capsa-x").exists(),
        "nothing made on the host"
    );
}

#[test]
fn root_missing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s.as_object_mut().unwrap().remove("root");
    });
    refused(&ctx, &b, "root");
}

#[test]
fn root_path_missing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s["root"].as_object_mut().unwrap().remove("path");
    });
    // runc takes the bundle dir itself as the rootfs and fails later, at exec
    refused(&ctx, &b, "root.path");
}

#[test]
fn device_of_an_unknown_type() {
    let ctx = Ctx::new();
    let b = ctx.bundle().linux(
        "devices",
        json!([{ "path": "/dev/capsa-x", "type": "z", "major": 1, "minor": 3 }]),
    );
    refused(&ctx, &b, "linux.devices[0].type");
}

#[test]
fn cwd_relative() {
    let ctx = Ctx::new();
    let b = ctx.bundle().cwd("tmp");
    refused(&ctx, &b, "process.cwd");
}

#[test]
fn oci_version_missing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s.as_object_mut().unwrap().remove("ociVersion");
    });
    refused_runc_accepts(
        &ctx,
        &b,
        "ociVersion",
        "a config without ociVersion is accepted",
    );
}

#[test]
fn trailing_data_after_the_config() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    b.write();
    // a second object after the config, as when a config is pasted twice
    let mut text = std::fs::read_to_string(b.config_path()).unwrap();
    text.push_str("\n{ \"ociVersion\": \"1.0.2\" }\n");
    std::fs::write(b.config_path(), text).unwrap();
    let id = ctx.id();
    let dir = b.dir.to_string_lossy().into_owned();
    let out = ctx.rt(&["create", "--bundle", &dir, &id]);
    if out.success()
        && ctx
            .rt
            .runc_deviation("data after the config's JSON object is ignored")
    {
        ctx.delete_force(&id).ok();
        ctx.assert_nothing_left(&id, &b);
        return;
    }
    check_refused(&ctx, &id, &b, out, "trailing characters");
}

#[test]
fn hook_timeout_not_above_zero() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook("prestart", json!({ "path": "/bin/true", "timeout": 0 }));
    refused_runc_accepts(
        &ctx,
        &b,
        "hooks.prestart[0].timeout",
        "a hook timeout of 0 is accepted",
    );
}

#[test]
fn hook_path_relative() {
    let ctx = Ctx::new();
    let b = ctx.bundle().hook("poststop", json!({ "path": "bin/true" }));
    refused_runc_accepts(
        &ctx,
        &b,
        "hooks.poststop[0].path",
        "a relative hook path is accepted",
    );
}

/// A `}` where an array element belongs: a syntax error, refused at once. The walk that
/// finds the field of a parse error once spun forever on it (found by the config fuzz
/// target), so `create` hung.
#[test]
fn brace_where_an_array_element_belongs() {
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s["process"]["args"] = json!(RAW);
    });
    refused_raw(&ctx, &b, "[\"sh\",\n }", "process.args");
}
