//! rlimits (runtime-tools: linux_rlimits / process_rlimits).

use integration::Ctx;

fn limits_line<'a>(limits: &'a str, name: &str) -> Vec<&'a str> {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in {limits}"));
    line[name.len()..].split_whitespace().take(2).collect()
}

#[test]
fn rlimits_are_applied() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("ulimit -Sn; ulimit -Hn; cat /proc/self/limits", |b| {
            b.rlimit("RLIMIT_NOFILE", 512, 1024)
                .rlimit("RLIMIT_CORE", 0, 4096 * 1024)
                .rlimit("RLIMIT_NPROC", 77, 88)
        })
        .ok();
    let l: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(l[0], "512", "{out}");
    assert_eq!(l[1], "1024", "{out}");
    assert_eq!(limits_line(&out.stdout, "Max open files"), ["512", "1024"]);
    assert_eq!(
        limits_line(&out.stdout, "Max core file size"),
        ["0", "4194304"]
    );
    assert_eq!(limits_line(&out.stdout, "Max processes"), ["77", "88"]);
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
