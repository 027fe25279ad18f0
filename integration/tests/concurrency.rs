//! Commands on one id serialise (issue 3 section 4): racing creates, starts
//! and deletes give one winner, consistent state, and nothing left behind.

use std::sync::{Arc, Barrier};

use integration::{runtime::run_cmd, Ctx, Out};

/// Runs `n` copies of the runtime command built by `args(i)` at once.
fn race(ctx: &Ctx, n: usize, args: impl Fn(usize) -> Vec<String>) -> Vec<Out> {
    let barrier = Arc::new(Barrier::new(n));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let a = args(i);
                let barrier = Arc::clone(&barrier);
                let mut cmd = ctx.cmd(&a.iter().map(String::as_str).collect::<Vec<_>>());
                s.spawn(move || {
                    barrier.wait();
                    run_cmd(&mut cmd)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer thread"))
            .collect()
    })
}

#[test]
fn racing_creates_of_one_id_have_one_winner() {
    let ctx = Ctx::new();
    let id = ctx.id();
    let bundles: Vec<_> = (0..6)
        .map(|_| ctx.bundle().args(&["/bin/sleep", "1000"]))
        .collect();
    for b in &bundles {
        b.write();
    }
    let outs = race(&ctx, bundles.len(), |i| {
        vec![
            "create".into(),
            "--bundle".into(),
            bundles[i].dir.to_string_lossy().into_owned(),
            id.clone(),
        ]
    });
    let winners: Vec<usize> = outs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.success())
        .map(|(i, _)| i)
        .collect();
    if winners.len() != 1
        && ctx.rt.runc_deviation("racing creates of one id are not serialised (all may fail: `exec fifo already exists`, `unable to store init state`)")
    {
        return; // the guard's delete --force cleans up
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {outs:#?}");
    for (i, o) in outs.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(o.code(), Some(1), "{o}");
            assert!(
                integration::cgroup::existing_dirs(&bundles[i].cgroups_path()).is_empty(),
                "loser {i} left a cgroup"
            );
        }
    }
    let st = ctx.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(
        st["bundle"].as_str(),
        Some(bundles[winners[0]].dir.to_str().unwrap())
    );
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &bundles[winners[0]]);
}

#[test]
fn racing_starts_run_the_process_once() {
    let ctx = Ctx::new();
    if ctx.rt.runc_deviation(
        "racing starts of one id hang: a losing `runc start` blocks on exec.fifo forever",
    ) {
        return;
    }
    let out = ctx.mkdir("out");
    let b = ctx
        .bundle()
        .bind(&out, "/out")
        .sh("echo ran >> /out/log; sleep 1000");
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    let outs = race(&ctx, 4, |_| vec!["start".into(), id.clone()]);
    let ok = outs.iter().filter(|o| o.success()).count();
    assert_eq!(ok, 1, "exactly one start wins: {outs:#?}");
    integration::wait_until("the process to run", || out.join("log").exists());
    assert_eq!(ctx.status(&id), "running");
    assert_eq!(std::fs::read_to_string(out.join("log")).unwrap(), "ran\n");
}

#[test]
fn racing_force_deletes_all_return_and_remove_it() {
    let ctx = Ctx::new();
    let b = ctx.bundle().sh("sleep 1000 & sleep 1000");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let outs = race(&ctx, 5, |_| {
        vec!["delete".into(), "--force".into(), id.clone()]
    });
    assert!(outs.iter().any(|o| o.success()), "{outs:#?}");
    for o in &outs {
        assert!(
            o.success() || o.all().contains("does not exist"),
            "a losing delete says the container is gone: {o}"
        );
    }
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn state_during_racing_kill_and_delete_is_consistent() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let outs = race(&ctx, 6, |i| match i % 3 {
        0 => vec!["delete".into(), "--force".into(), id.clone()],
        1 => vec!["kill".into(), id.clone(), "KILL".into()],
        _ => vec!["state".into(), id.clone()],
    });
    for (i, o) in outs.iter().enumerate() {
        if i % 3 == 2 && o.success() {
            let st: serde_json::Value = serde_json::from_str(&o.stdout)
                .unwrap_or_else(|e| panic!("state during a race is whole JSON ({e}): {o}"));
            assert!(
                ["running", "stopped"].contains(&st["status"].as_str().unwrap_or("")),
                "{o}"
            );
        }
    }
    ctx.assert_nothing_left(&id, &b);
}

/// 50 containers created at once by parallel `run -d` commands all end running, are all
/// deletable, and leave nothing.
#[test]
fn many_containers_at_once() {
    const N: usize = 50;
    let ctx = Ctx::new();
    let ids: Vec<String> = (0..N).map(|_| ctx.id()).collect();
    let bundles: Vec<_> = (0..N)
        .map(|_| ctx.bundle().args(&["/bin/sleep", "1000"]))
        .collect();
    for b in &bundles {
        b.write();
    }
    let outs = race(&ctx, N, |i| {
        vec![
            "run".into(),
            "-d".into(),
            "--bundle".into(),
            bundles[i].dir.to_string_lossy().into_owned(),
            ids[i].clone(),
        ]
    });
    for o in &outs {
        assert!(o.success(), "{o}");
    }
    let list = ctx.rt(&["list", "-q"]).ok();
    assert_eq!(list.stdout.lines().count(), N, "{list}");
    for id in &ids {
        let st = ctx.state(id);
        assert_eq!(st["status"], "running", "{id}: {st}");
        assert!(alive(st["pid"].as_i64().unwrap_or(0) as i32), "{id}: {st}");
    }
    let outs = race(&ctx, N, |i| {
        vec!["delete".into(), "--force".into(), ids[i].clone()]
    });
    for o in &outs {
        assert!(o.success(), "{o}");
    }
    for (id, b) in ids.iter().zip(&bundles) {
        ctx.assert_nothing_left(id, b);
    }
    let cgs = integration::leftovers::cgroups_below(&ctx.cg_parent);
    assert!(cgs.is_empty(), "cgroups left: {cgs:?}");
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: i32) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z'))
}

/// After a race on `id`, the container exists fully (state loads, a live init unless
/// stopped) or not at all (does not exist, nothing left). Returns whether it exists.
#[track_caller]
fn assert_whole_or_gone(ctx: &Ctx, id: &str, b: &integration::Bundle) -> bool {
    let out = ctx.rt(&["state", id]);
    if out.success() {
        let st: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state after a race is whole JSON ({e}): {out}"));
        let status = st["status"].as_str().unwrap_or("");
        assert!(
            ["created", "running", "stopped"].contains(&status),
            "status after a race: {out}"
        );
        // A live status names a live init, unless a racing kill got it since `state`
        // looked: then `state` says so now.
        if status != "stopped" && !alive(st["pid"].as_i64().unwrap_or(0) as i32) {
            assert_eq!(ctx.status(id), "stopped", "a dead init, yet {out}");
        }
        assert!(ctx.root.join(id).join("state.json").exists() || !ctx.rt.is_capsa());
        true
    } else {
        ctx.assert_not_exist(out, id);
        ctx.assert_nothing_left(id, b);
        false
    }
}

const ROUNDS: usize = 8;

#[test]
fn create_racing_force_delete_is_whole_or_gone() {
    let ctx = Ctx::new();
    for _ in 0..ROUNDS {
        let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
        b.write();
        let id = ctx.id();
        let dir = b.dir.to_string_lossy().into_owned();
        let outs = race(&ctx, 2, |i| match i {
            0 => vec!["create".into(), "--bundle".into(), dir.clone(), id.clone()],
            _ => vec!["delete".into(), "--force".into(), id.clone()],
        });
        assert!(outs[1].success(), "delete --force: {}", outs[1]);
        let exists = assert_whole_or_gone(&ctx, &id, &b);
        if exists {
            assert!(
                outs[0].success(),
                "a create that failed left it: {}",
                outs[0]
            );
        }
        ctx.delete_force(&id).ok();
        ctx.assert_nothing_left(&id, &b);
    }
}

#[test]
fn start_racing_force_delete_is_whole_or_gone() {
    let ctx = Ctx::new();
    for _ in 0..ROUNDS {
        let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
        let id = ctx.id();
        ctx.create(&id, &b).ok();
        let outs = race(&ctx, 2, |i| match i {
            0 => vec!["start".into(), id.clone()],
            _ => vec!["delete".into(), "--force".into(), id.clone()],
        });
        assert!(outs[1].success(), "delete --force: {}", outs[1]);
        // delete --force ran to the end, before or after start: the container is gone.
        assert!(!assert_whole_or_gone(&ctx, &id, &b), "{outs:#?}");
    }
}

#[test]
fn kill_racing_delete_is_whole_or_gone() {
    let ctx = Ctx::new();
    for _ in 0..ROUNDS {
        let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
        let id = ctx.id();
        ctx.create_start(&id, &b);
        let outs = race(&ctx, 2, |i| match i {
            0 => vec!["kill".into(), id.clone(), "KILL".into()],
            _ => vec!["delete".into(), id.clone()],
        });
        // delete without --force removes only a stopped container: whichever order,
        // the container is either deleted whole or still there, whole.
        if assert_whole_or_gone(&ctx, &id, &b) {
            assert!(
                !outs[1].success(),
                "delete succeeded yet it exists: {outs:#?}"
            );
            ctx.delete_force(&id).ok();
        }
        ctx.assert_nothing_left(&id, &b);
    }
}
