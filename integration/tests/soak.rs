//! Soak: many create/start/delete cycles leave nothing on the host (mounts, cgroups,
//! processes, descriptors on the test's files, state dirs) and the runtime's memory
//! does not grow. CAPSA_SOAK_CYCLES sets the number of cycles (default 1000).
//!
//! Every cycle runs a foreground `run` of /bin/true (create, start, wait, delete in one
//! command) whose peak RSS (getrusage of the child, from wait4) is recorded; every other
//! cycle also runs `create`, `start` and `delete --force` of a sleeping container as
//! separate commands (state files, locks, the exec fifo). The RSS of cycle 10 and of the last
//! cycle are compared with a generous ratio: a leak check, not a performance figure.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

use integration::{leftovers, Ctx};

fn cycles() -> usize {
    std::env::var("CAPSA_SOAK_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
        .max(11)
}

/// Runs `cmd` to completion and returns its status and peak RSS in KiB (ru_maxrss of
/// wait4: the child's, or its reaped descendants' if larger).
// The child is reaped by wait4 itself, which std's Child cannot do with a rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (ExitStatus, i64) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the runtime");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child, with valid pointers to locals. The Child
    // handle is dropped afterwards without waiting, so the pid is reaped once.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    (ExitStatus::from_raw(status), ru.ru_maxrss)
}

/// What the whole test left: no container, no cgroup under its parent, no mount or
/// process of its own, no descriptor on its files, an empty state root.
#[track_caller]
fn assert_host_clean(ctx: &Ctx, after: usize) {
    let states: Vec<_> = std::fs::read_dir(&ctx.root)
        .expect("read the state root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        states.is_empty(),
        "after {after} cycles, state dirs: {states:?}"
    );
    let cgs = leftovers::cgroups_below(&ctx.cg_parent);
    assert!(cgs.is_empty(), "after {after} cycles, cgroups: {cgs:?}");
    let mounts = leftovers::mounts_under(&ctx.dir);
    assert!(
        mounts.is_empty(),
        "after {after} cycles, mounts: {mounts:?}"
    );
    let procs = leftovers::processes(&ctx.tag, ctx.cg_parent.trim_start_matches('/'));
    assert!(
        procs.is_empty(),
        "after {after} cycles, processes: {procs:?}"
    );
    let fds = leftovers::fds_under(&ctx.dir);
    assert!(
        fds.is_empty(),
        "after {after} cycles, open descriptors: {fds:?}"
    );
}

#[test]
fn create_start_delete_cycles_leave_nothing_and_do_not_grow() {
    let ctx = Ctx::new();
    let n = cycles();
    let long = ctx.bundle().args(&["/bin/sleep", "1000"]);
    long.write();
    let short = ctx.bundle().args(&["/bin/true"]);
    short.write();
    let long_dir = long.dir.to_string_lossy().into_owned();
    let short_dir = short.dir.to_string_lossy().into_owned();
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .count();
    let mut rss = Vec::with_capacity(n);
    for i in 1..=n {
        // One id per container, deleted here (a failure half-way leaves them to the
        // guard's cgroup and process sweep).
        if i % 2 == 1 {
            let id = format!("{}-soak{i}", ctx.tag);
            ctx.rt(&["create", "--bundle", &long_dir, &id]).ok();
            ctx.rt(&["start", &id]).ok();
            let out = ctx.rt(&["delete", "--force", &id]);
            assert!(out.success(), "cycle {i}: {out}");
        }

        let run_id = format!("{}-soakrun{i}", ctx.tag);
        let (st, kib) = run_measured(&mut ctx.cmd(&["run", "--bundle", &short_dir, &run_id]));
        if !st.success() {
            ctx.delete_force(&run_id);
            panic!("cycle {i}: `run` of /bin/true: {st}");
        }
        rss.push(kib);
        if i % 250 == 0 {
            assert_host_clean(&ctx, i);
        }
    }
    assert_host_clean(&ctx, n);
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .count();
    let (at10, last) = (rss[9], rss[n - 1]);
    eprintln!(
        "soak: {n} cycles; peak RSS of `run`: cycle 10 {at10} KiB, cycle {n} {last} KiB, \
         max {} KiB; host mount table {mounts_before} -> {mounts_after} lines",
        rss.iter().max().unwrap_or(&0)
    );
    assert!(
        (last as f64) < (at10 as f64) * 1.5,
        "the runtime's peak RSS grew from {at10} KiB (cycle 10) to {last} KiB (cycle {n})"
    );
}
