//! rlimits (runtime-tools: linux_rlimits / process_rlimits).

use integration::Ctx;

#[test]
fn rlimits_are_applied() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("ulimit -Sn; ulimit -Hn; ulimit -Sc; ulimit -Hc; grep 'Max processes' /proc/self/limits", |b| {
            b.rlimit("RLIMIT_NOFILE", 512, 1024).rlimit("RLIMIT_CORE", 0, 4096 * 1024).rlimit("RLIMIT_NPROC", 77, 88)
        })
        .ok();
    let l: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(l[0], "512", "{out}");
    assert_eq!(l[1], "1024", "{out}");
    assert_eq!(l[2], "0", "{out}");
    // busybox ulimit -c counts 1024-byte blocks
    assert_eq!(l[3], "4096", "{out}");
    assert_eq!(
        l[4].split_whitespace().collect::<Vec<_>>()[2..4],
        ["77", "88"],
        "{out}"
    );
}

#[test]
fn unknown_rlimit_fails_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().rlimit("RLIMIT_BOGUS", 1, 1);
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().contains("RLIMIT_BOGUS"),
        "the error names the rlimit: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
}
