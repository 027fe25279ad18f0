//! create (runtime-tools: create, pidfile; issue 3 section 2 flags).

use integration::Ctx;

#[test]
fn create_defaults_bundle_to_cwd() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    b.write();
    let id = ctx.id();
    let mut cmd = ctx.cmd(&["create", &id]);
    cmd.current_dir(&b.dir);
    integration::runtime::run_cmd(&mut cmd).ok();
    assert_eq!(ctx.status(&id), "created");
    assert_eq!(
        ctx.state(&id)["bundle"].as_str(),
        Some(b.dir.to_str().unwrap())
    );
}

#[test]
fn create_short_bundle_flag() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    b.write();
    let id = ctx.id();
    ctx.rt(&["create", "-b", b.dir.to_str().unwrap(), &id]).ok();
    assert_eq!(ctx.status(&id), "created");
}

#[test]
fn create_with_no_pivot() {
    let ctx = Ctx::new();
    let out_dir = ctx.mkdir("out");
    let b = ctx
        .bundle()
        .bind(&out_dir, "/out")
        .sh("ls / > /out/ls; echo $$ > /out/pid");
    let id = ctx.id();
    ctx.create_with(&id, &b, &["--no-pivot"]).ok();
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    let ls = std::fs::read_to_string(out_dir.join("ls")).expect("ls output");
    assert!(
        ls.lines().any(|l| l == "bin") && ls.lines().any(|l| l == "out"),
        "the rootfs is /: {ls}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("pid")).unwrap().trim(),
        "1"
    );
}

/// Puts this thread (and so the runtime it spawns) in a new session keyring
/// named `name` that only its possessors can see.
fn join_private_session_keyring(name: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_SETPERM: libc::c_long = 5;
    const POSSESSOR_ALL: libc::c_long = 0x3f00_0000;
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: keyctl(2) JOIN_SESSION_KEYRING reads a NUL-terminated name.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            cname.as_ptr(),
        )
    };
    assert!(
        serial > 0,
        "join session keyring: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: keyctl(2) SETPERM takes two integers.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, POSSESSOR_ALL) };
    assert_eq!(r, 0, "setperm: {}", std::io::Error::last_os_error());
}

/// /proc/keys as the container sees it (unmasked), created with `extra` flags.
fn keys_inside(ctx: &Ctx, extra: &[&str]) -> String {
    let out_dir = ctx.mkdir(&format!("keys{}", extra.len()));
    let b = ctx
        .bundle()
        .bind(&out_dir, "/out")
        .with(|s| s["linux"]["maskedPaths"] = serde_json::json!([]))
        .sh("cat /proc/keys > /out/keys");
    let id = ctx.id();
    ctx.create_with(&id, &b, extra).ok();
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    std::fs::read_to_string(out_dir.join("keys")).expect("keys")
}

#[test]
fn new_session_keyring_unless_no_new_keyring() {
    let ctx = Ctx::new();
    // The caller's session keyring, visible only to who possesses it.
    let name = format!("capsa-it-{}", ctx.tag);
    join_private_session_keyring(&name);
    let keys = keys_inside(&ctx, &["--no-new-keyring"]);
    assert!(
        keys.contains(&name),
        "--no-new-keyring keeps the caller's session keyring:\n{keys}"
    );
    let keys = keys_inside(&ctx, &[]);
    assert!(
        !keys.contains(&name),
        "by default the container gets a session keyring of its own:\n{keys}"
    );
}

#[test]
fn preserve_fds_passes_extra_fds() {
    use std::os::fd::AsRawFd;
    let ctx = Ctx::new();
    let out_dir = ctx.mkdir("out");
    let b = ctx.bundle().bind(&out_dir, "/out").sh("cat <&3 > /out/fd3");
    let id = ctx.id();
    let src = ctx.path("fd3-source");
    std::fs::write(&src, "through fd 3\n").unwrap();
    let f = std::fs::File::open(&src).unwrap();
    let raw = f.as_raw_fd();
    b.write();
    let mut cmd = ctx.cmd(&[
        "create",
        "--preserve-fds",
        "1",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    // SAFETY: pre_exec runs in the forked child before exec; dup2 is
    // async-signal-safe. It makes the file fd 3 of the runtime.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly then.
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    integration::runtime::run_cmd(&mut cmd).ok();
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("fd3")).unwrap(),
        "through fd 3\n"
    );
}

#[test]
fn no_host_fd_leaks_into_the_container() {
    let ctx = Ctx::new();
    // Only 0, 1, 2 (and the fd ls itself opens) may be open in the process.
    let out = ctx.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '");
    let fds: Vec<u32> = out
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert!(
        fds.iter().all(|&f| f <= 3),
        "unexpected fds in the container: {out}"
    );
    let cwd = ctx.sh("readlink /proc/1/cwd");
    assert_eq!(cwd.trim(), "/");
}

/// --no-pivot leaves the host's root under the chroot; its full /proc would let a process
/// that makes user and pid namespaces mount a new procfs without the container's masks.
/// runc detaches the host's procfs and sysfs first: that mount is refused.
#[test]
fn no_pivot_does_not_expose_the_hosts_proc() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .args(&[
            "unshare",
            "-mrpf",
            "sh",
            "-c",
            "mount -t proc none /proc && echo proc-mounted",
        ])
        .with(|s| {
            for set in ["bounding", "permitted", "effective"] {
                s["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!("CAP_SETFCAP"));
            }
        });
    b.write();
    let id = ctx.id();
    let out = ctx.rt(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(!out.stdout.contains("proc-mounted"), "{out}");
    assert!(out.all().contains("mount: permission denied"), "{out}");
}
