//! maskedPaths, readonlyPaths and a read-only root (runtime-tools:
//! linux_masked_paths, linux_readonly_paths, root_readonly_true/false).

use integration::Ctx;
use serde_json::json;

#[test]
fn default_masked_paths_read_empty() {
    let ctx = Ctx::new();
    // Only the default masked paths this host has: a file reads empty, a
    // directory lists empty.
    let mut script = String::new();
    let mut checked = Vec::new();
    for p in integration::spec::DEFAULT_MASKED {
        let host = std::path::Path::new(p);
        if host.is_dir() {
            script.push_str(&format!("echo {p} $(ls -A {p} | wc -l);"));
        } else if host.exists() {
            script.push_str(&format!("echo {p} $(wc -c < {p});"));
        } else {
            continue;
        }
        checked.push(*p);
    }
    assert!(
        checked.len() >= 3,
        "enough masked paths exist here: {checked:?}"
    );
    let out = ctx.sh(&script);
    let want: String = checked.iter().map(|p| format!("{p} 0\n")).collect();
    assert_eq!(out, want);
}

#[test]
fn masked_file_and_directory_of_the_rootfs() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    std::fs::write(b.rootfs().join("secret"), "top secret\n").unwrap();
    std::fs::create_dir(b.rootfs().join("secretdir")).unwrap();
    std::fs::write(b.rootfs().join("secretdir/inner"), "also secret\n").unwrap();
    let b = b
        .with(|s| {
            let m = s["linux"]["maskedPaths"].as_array_mut().unwrap();
            m.push(json!("/secret"));
            m.push(json!("/secretdir"));
            m.push(json!("/does/not/exist"));
        })
        .sh("cat /secret; echo end-file; ls -A /secretdir; echo end-dir; cat /secretdir/inner 2>/dev/null || echo unreadable");
    let out = ctx.run(&b).ok();
    assert_eq!(out.stdout, "end-file\nend-dir\nunreadable\n", "{out}");
    // the host's files are untouched
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("secret")).unwrap(),
        "top secret\n"
    );
}

#[test]
fn readonly_paths_are_not_writable() {
    let ctx = Ctx::new();
    let b = ctx.bundle();
    std::fs::create_dir(b.rootfs().join("rodir")).unwrap();
    let b = b
        .with(|s| s["linux"]["readonlyPaths"].as_array_mut().unwrap().push(json!("/rodir")))
        .sh("touch /rodir/x 2>&1 || echo ro-dir; echo x > /proc/sys/kernel/domainname 2>/dev/null || echo ro-proc; touch /tmp/ok && echo rw-tmp; grep ' /rodir ' /proc/self/mountinfo");
    let out = ctx.run(&b).ok();
    assert!(out.stdout.contains("Read-only file system"), "{out}");
    assert!(out.stdout.contains("ro-dir\nro-proc\nrw-tmp\n"), "{out}");
    let line = out.stdout.lines().last().unwrap();
    let m = integration::mountinfo::parse(line);
    assert!(m[0].has_opt("ro"), "{line}");
}

#[test]
fn readonly_root() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in(
            "touch /x 2>&1 || echo ro-root; touch /dev/shm/ok && echo rw-shm",
            |b| b.readonly_root(true),
        )
        .ok();
    assert!(
        out.stdout.contains("Read-only file system") && out.stdout.contains("ro-root\nrw-shm"),
        "{out}"
    );
    let out = ctx
        .sh_in("touch /x && echo rw-root", |b| b.readonly_root(false))
        .ok();
    assert_eq!(out.out(), "rw-root");
}
