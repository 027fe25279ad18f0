//! rootfsPropagation and mount propagation options (runtime-tools:
//! linux_rootfs_propagation_*, mounts propagation).

use std::path::Path;

use integration::{mountinfo, wait_until, Ctx};
use serde_json::json;

fn root_mount(ctx: &Ctx, prop: Option<&str>) -> mountinfo::Mount {
    let out = ctx
        .sh_in("cat /proc/self/mountinfo", |b| match prop {
            Some(p) => b.linux("rootfsPropagation", json!(p)),
            None => b,
        })
        .ok();
    mountinfo::find(&out.stdout, "/").unwrap_or_else(|| panic!("no / in {out}"))
}

#[test]
fn rootfs_propagation_shared() {
    let ctx = Ctx::new();
    let m = root_mount(&ctx, Some("shared"));
    assert!(m.shared(), "{m:?}");
}

#[test]
fn rootfs_propagation_slave() {
    let ctx = Ctx::new();
    let m = root_mount(&ctx, Some("slave"));
    assert!(!m.shared(), "{m:?}");
}

#[test]
fn rootfs_propagation_private() {
    let ctx = Ctx::new();
    let m = root_mount(&ctx, Some("private"));
    assert!(!m.shared() && !m.slave(), "{m:?}");
}

#[test]
fn rootfs_propagation_unbindable() {
    let ctx = Ctx::new();
    let m = root_mount(&ctx, Some("unbindable"));
    assert!(m.optional.iter().any(|o| o == "unbindable"), "{m:?}");
}

/// Makes `dir` a shared mount point of its own on the host (so mounts under
/// it can propagate into a container's rslave bind of it). The guard
/// unmounts it.
fn shared_host_dir(dir: &Path) {
    use nix::mount::{mount, MsFlags};
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .expect("bind dir on itself");
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .expect("make it shared");
}

fn propagation_seen(ctx: &Ctx, option: &str) -> bool {
    let vol = ctx.mkdir(&format!("vol-{option}"));
    shared_host_dir(&vol);
    std::fs::create_dir(vol.join("sub")).unwrap();
    let out = ctx.mkdir(&format!("out-{option}"));
    let b = ctx
        .bundle()
        .mount(json!({ "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", option] }))
        .bind(&out, "/out")
        .sh("echo ready > /out/ready; while ! grep -q ' /vol/sub ' /proc/self/mountinfo; do [ -e /out/stop ] && exit 0; sleep 0.1; done; echo seen > /out/seen");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    wait_until("container ready", || out.join("ready").exists());
    nix::mount::mount(
        Some("tmpfs"),
        &vol.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount tmpfs on the host");
    if option == "rprivate" {
        // Nothing must arrive; stop the watcher and check what it saw. (No
        // timed wait: a private mount cannot receive it later either.)
        std::fs::write(out.join("stop"), "").unwrap();
    }
    ctx.wait_status(&id, "stopped");
    nix::mount::umount2(&vol.join("sub"), nix::mount::MntFlags::MNT_DETACH).unwrap();
    out.join("seen").exists()
}

#[test]
fn rslave_bind_receives_host_mounts() {
    let ctx = Ctx::new();
    assert!(propagation_seen(&ctx, "rslave"));
}

#[test]
fn rprivate_bind_does_not_receive_host_mounts() {
    let ctx = Ctx::new();
    assert!(!propagation_seen(&ctx, "rprivate"));
}

#[test]
fn container_mounts_do_not_leak_to_the_host() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .linux("rootfsPropagation", json!("shared"))
        .mount(json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let leaked = integration::leftovers::mounts_under(&ctx.dir);
    assert!(
        leaked.is_empty(),
        "container mounts visible on the host: {leaked:?}"
    );
}
