//! The signal dispositions a container's process starts with: the defaults, as runc's
//! processes get them. An ignored signal stays ignored across execve, and a runtime that
//! ignores SIGPIPE for itself (Rust's runtime does) must not hand that to the container:
//! `yes | head -1` would then see EPIPE instead of dying.

use integration::Ctx;

/// The SigIgn mask of the process that prints /proc/self/status.
fn ignored(status: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap_or_else(|| panic!("no SigIgn in {status}"));
    u64::from_str_radix(hex.trim(), 16).expect("SigIgn is hex")
}

const SIGPIPE: u64 = 1 << (libc::SIGPIPE - 1);

#[test]
fn the_init_and_an_exec_start_with_sigpipe_at_its_default() {
    let ctx = Ctx::new();
    let out = ctx
        .run(&ctx.bundle().args(&["cat", "/proc/self/status"]))
        .ok();
    assert_eq!(
        ignored(&out.stdout) & SIGPIPE,
        0,
        "init ignores SIGPIPE: {out}"
    );

    let id = ctx.id();
    ctx.create_start(&id, &ctx.bundle().args(&["sleep", "1000"]));
    let out = ctx.rt(&["exec", &id, "cat", "/proc/self/status"]).ok();
    assert_eq!(
        ignored(&out.stdout) & SIGPIPE,
        0,
        "exec'd process ignores SIGPIPE: {out}"
    );
}
