//! Capabilities and noNewPrivileges (runtime-tools: process_capabilities*, linux_process_nonewprivileges).

use integration::caps::{all_known_mask, mask, status_field, NAMES};
use integration::spec::DEFAULT_CAPS;
use integration::Ctx;
use serde_json::json;

fn status(ctx: &Ctx, edit: impl FnOnce(integration::Bundle) -> integration::Bundle) -> String {
    ctx.sh_in("cat /proc/self/status", edit).ok().stdout
}

#[test]
fn default_capability_sets() {
    let ctx = Ctx::new();
    let st = status(&ctx, |b| b);
    let m = mask(DEFAULT_CAPS);
    assert_eq!(status_field(&st, "CapEff"), m, "CapEff");
    assert_eq!(status_field(&st, "CapPrm"), m, "CapPrm");
    assert_eq!(status_field(&st, "CapBnd"), m, "CapBnd");
    assert_eq!(
        status_field(&st, "CapInh"),
        0,
        "CapInh stays empty unless asked"
    );
    assert_eq!(status_field(&st, "CapAmb"), 0, "CapAmb");
}

#[test]
fn each_of_the_five_sets() {
    // For root the kernel makes the effective set equal the permitted one
    // at execve (and noNewPrivileges keeps permitted within what the
    // runtime set), so effective == permitted here; the other three differ.
    let ctx = Ctx::new();
    let st = status(&ctx, |b| {
        b.caps(json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SETPCAP"],
            "permitted": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_ADMIN"],
            "effective": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_ADMIN"],
            "inheritable": ["CAP_KILL", "CAP_CHOWN"],
            "ambient": ["CAP_KILL"]
        }))
    });
    assert_eq!(
        status_field(&st, "CapBnd"),
        mask(&[
            "CAP_KILL",
            "CAP_CHOWN",
            "CAP_NET_ADMIN",
            "CAP_SYS_ADMIN",
            "CAP_SETPCAP"
        ])
    );
    assert_eq!(
        status_field(&st, "CapPrm"),
        mask(&["CAP_KILL", "CAP_CHOWN", "CAP_NET_ADMIN"])
    );
    assert_eq!(
        status_field(&st, "CapEff"),
        mask(&["CAP_KILL", "CAP_CHOWN", "CAP_NET_ADMIN"])
    );
    assert_eq!(
        status_field(&st, "CapInh"),
        mask(&["CAP_KILL", "CAP_CHOWN"])
    );
    assert_eq!(status_field(&st, "CapAmb"), mask(&["CAP_KILL"]));
}

#[test]
fn every_capability() {
    let ctx = Ctx::new();
    let known = all_known_mask();
    let names: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| known & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    let st = status(&ctx, |b| {
        b.caps(json!({ "bounding": names, "permitted": names, "effective": names }))
    });
    assert_eq!(status_field(&st, "CapBnd"), known);
    assert_eq!(status_field(&st, "CapEff"), known);
}

#[test]
fn no_capabilities() {
    let ctx = Ctx::new();
    let st = status(&ctx, |b| b.caps(json!({})));
    for f in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(status_field(&st, f), 0, "{f}");
    }
}

#[test]
fn capabilities_of_a_non_root_user() {
    // A non-root process keeps capabilities across execve only through the
    // ambient set (which needs them inheritable and permitted too).
    let ctx = Ctx::new();
    let set = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let st = status(&ctx, |b| {
        b.user(json!({ "uid": 1000, "gid": 1000 })).caps(json!({
            "bounding": set, "permitted": set, "effective": set, "inheritable": set, "ambient": set
        }))
    });
    assert_eq!(status_field(&st, "CapEff"), mask(&set));
    assert_eq!(status_field(&st, "CapPrm"), mask(&set));
    assert_eq!(status_field(&st, "CapAmb"), mask(&set));
    assert!(
        st.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("1000")),
        "{st}"
    );

    // without ambient: nothing effective after execve
    let st = status(&ctx, |b| {
        b.user(json!({ "uid": 1000, "gid": 1000 }))
            .caps(json!({ "bounding": set, "permitted": set, "effective": set }))
    });
    assert_eq!(status_field(&st, "CapEff"), 0);
    assert_eq!(status_field(&st, "CapBnd"), mask(&set));
}

#[test]
fn dropped_capability_is_enforced() {
    let ctx = Ctx::new();
    // Without CAP_CHOWN (and DAC/FOWNER) root cannot chown a file.
    let caps = ["CAP_KILL"];
    let out = ctx.sh_in("touch /tmp/f && chown 1000 /tmp/f", |b| {
        b.caps(json!({ "bounding": caps, "permitted": caps, "effective": caps }))
    });
    assert!(!out.success(), "chown without CAP_CHOWN: {out}");
    assert!(out.stderr.contains("not permitted"), "{out}");
    ctx.sh("touch /tmp/f && chown 1000 /tmp/f");
}

#[test]
fn no_new_privileges() {
    let ctx = Ctx::new();
    let on = status(&ctx, |b| {
        b.with(|s| s["process"]["noNewPrivileges"] = json!(true))
    });
    let off = status(&ctx, |b| {
        b.with(|s| s["process"]["noNewPrivileges"] = json!(false))
    });
    let nnp = |st: &str| {
        st.lines()
            .find(|l| l.starts_with("NoNewPrivs:"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
    };
    assert_eq!(nnp(&on).as_deref(), Some("1"));
    assert_eq!(nnp(&off).as_deref(), Some("0"));
}

#[test]
fn unknown_capability_fails_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().caps(json!({ "bounding": ["CAP_BOGUS"], "effective": ["CAP_BOGUS"], "permitted": ["CAP_BOGUS"] }));
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    if out.success() {
        // runc 1.1 ignores unknown capabilities with a warning.
        assert!(
            !ctx.rt.is_capsa(),
            "capsa must refuse an unknown capability: {out}"
        );
        integration::skip("runc ignores unknown capability names");
        return;
    }
    let out = out.fails();
    assert!(
        out.all().contains("CAP_BOGUS"),
        "the error names the capability: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

/// A capability the config asks for that the runtime itself does not hold (run here with
/// CAP_WAKE_ALARM out of its bounding set) cannot be granted: create fails naming it, as
/// runc and crun do, and leaves nothing; never a container with less than its config.
#[test]
fn a_capability_the_runtime_lacks_is_an_error() {
    let ctx = Ctx::new();
    let b = ctx.bundle().caps(json!({
        "bounding": ["CAP_WAKE_ALARM", "CAP_KILL"],
        "effective": ["CAP_WAKE_ALARM", "CAP_KILL"],
        "permitted": ["CAP_WAKE_ALARM", "CAP_KILL"]
    }));
    b.write();
    let id = ctx.id();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--bounding-set", "-wake_alarm"])
        .arg(&ctx.rt.path)
        .arg("--root")
        .arg(&ctx.root)
        .args(["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let out = integration::runtime::run_cmd(&mut cmd).fails();
    if ctx.rt.is_capsa() {
        assert!(out.all().contains("CAP_WAKE_ALARM"), "{out}");
    }
    ctx.assert_nothing_left(&id, &b);
}
