//! checkpoint and restore through CRIU (runc's commands and flags). Each container counts
//! into a file of a bind-mounted host directory: after a restore the count goes on from
//! where it stopped (1, 2, ... n, n+1, ...), where a restarted process would begin at 1
//! again. CRIU works on the kernel of the VM tier (hack/test.sh), not on every host: see
//! `criu::usable`.

use std::io::Write;
use std::path::{Path, PathBuf};

use integration::console::{read_master, ConsoleSocket};
use integration::criu::{self, counter_script, numbers, quiet};
use integration::{wait_until, Bundle, Ctx};

/// A counter container, started detached with stdio CRIU can dump; returns its bundle
/// and the host file it counts into.
fn counting(ctx: &Ctx, id: &str) -> (Bundle, PathBuf) {
    let out = ctx.mkdir(&format!("out-{id}"));
    let b = ctx
        .bundle()
        .bind(&out, "/out")
        .sh(&counter_script("/out/count"));
    b.write();
    quiet(ctx, &["run", "-d", "--bundle", b.dir.to_str().unwrap(), id]).ok();
    let file = out.join("count");
    wait_until("the counter to reach 3", || numbers(&file).len() >= 3);
    (b, file)
}

/// The numbers are 1, 2, ... with no gap and no restart.
#[track_caller]
fn assert_continuous(file: &Path) {
    let n = numbers(file);
    let want: Vec<u64> = (1..=n.len() as u64).collect();
    assert_eq!(
        n,
        want,
        "the count restarted or skipped: {}",
        file.display()
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn restore(ctx: &Ctx, id: &str, b: &Bundle, images: &Path, extra: &[&str]) {
    let work = ctx.path(&format!("restore-work-{id}"));
    let mut args = vec![
        "restore",
        "-d",
        "--bundle",
        s(&b.dir),
        "--image-path",
        s(images),
        "--work-path",
        s(&work),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    let out = quiet(ctx, &args);
    assert!(
        out.success(),
        "restore failed: {out}\n--- restore.log ---\n{}",
        std::fs::read_to_string(work.join("restore.log")).unwrap_or_default()
    );
}

#[track_caller]
fn checkpoint(ctx: &Ctx, id: &str, images: &Path, extra: &[&str]) {
    let work = ctx.path(&format!("dump-work-{id}"));
    let mut args = vec![
        "checkpoint",
        "--image-path",
        s(images),
        "--work-path",
        s(&work),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    let out = ctx.rt(&args);
    assert!(
        out.success(),
        "checkpoint failed: {out}\n--- dump.log ---\n{}",
        std::fs::read_to_string(work.join("dump.log")).unwrap_or_default()
    );
}

#[test]
fn checkpoint_and_restore_resume_the_process() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let (b, count) = counting(&ctx, &id);
    assert_eq!(ctx.status(&id), "running");
    let images = ctx.path("images");
    checkpoint(&ctx, &id, &images, &[]);
    // runc's "checkpointed": the container is gone, its image stays.
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    assert!(images.join("inventory.img").exists());
    let stopped_at = numbers(&count).len();

    restore(&ctx, &id, &b, &images, &[]);
    assert_eq!(ctx.status(&id), "running");
    wait_until("the count to go on", || {
        numbers(&count).len() > stopped_at + 3
    });
    assert_continuous(&count);
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn leave_running_keeps_it_running_and_its_image_restores_elsewhere() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let (b, count) = counting(&ctx, &id);
    let pid = ctx.pid(&id);
    let images = ctx.path("images");
    checkpoint(&ctx, &id, &images, &["--leave-running"]);
    assert_eq!(ctx.status(&id), "running");
    assert_eq!(ctx.pid(&id), pid, "the same process runs on");
    let at = numbers(&count).len();
    wait_until("the count to go on", || numbers(&count).len() > at + 3);
    assert_continuous(&count);

    // The image under a new id, beside the original still running (a migration's
    // restore), from a bundle whose /out is another directory and whose cgroup is
    // another: the restored process appends to a new file, from where the dump was.
    let out2 = ctx.mkdir("out-restored");
    let b2 = ctx
        .bundle()
        .bind(&out2, "/out")
        .sh(&counter_script("/out/count"));
    b2.write();
    let id2 = ctx.id();
    restore(&ctx, &id2, &b2, &images, &[]);
    let count2 = out2.join("count");
    wait_until("the restored count", || numbers(&count2).len() >= 3);
    let n = numbers(&count2);
    assert!(
        n[0] > 1,
        "the restored process counts on from the dump: {n:?}"
    );
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {n:?}");

    // In its own cgroup, not the one it was dumped from: the original's delete (which
    // kills what is left in its cgroup) leaves it running.
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", ctx.pid(&id2))).unwrap();
    let in_cgroup = |b: &integration::Bundle| {
        let suffix = format!(":{}", b.cgroups_path());
        cg.lines().any(|l| l.ends_with(&suffix))
    };
    if !in_cgroup(&b2)
        && ctx.rt.runc_deviation(
            "restore under a new id on cgroup v2 puts the processes back in the cgroup they \
             were dumped from (no CRIU cgroup root given on v2)",
        )
    {
        ctx.delete_force(&id2).ok();
        ctx.delete_force(&id).ok();
    } else {
        assert!(
            in_cgroup(&b2) && !in_cgroup(&b),
            "restored into {cg}, want {}",
            b2.cgroups_path()
        );
        ctx.delete_force(&id).ok();
        // (assert_nothing_left would count the restored one: the test's own process)
        let left = integration::cgroup::existing_dirs(&b.cgroups_path());
        assert!(left.is_empty(), "the original's cgroup left: {left:?}");
        ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
        assert_eq!(
            ctx.status(&id2),
            "running",
            "the original's delete killed it"
        );
        let at2 = numbers(&count2).len();
        wait_until("the restored count to go on", || {
            numbers(&count2).len() > at2 + 3
        });
        ctx.delete_force(&id2).ok();
    }
    ctx.assert_nothing_left(&id, &b);
    ctx.assert_nothing_left(&id2, &b2);
}

#[test]
fn pre_dump_then_dump_then_restore() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let (b, count) = counting(&ctx, &id);
    let parent = ctx.path("images/parent");
    checkpoint(&ctx, &id, &parent, &["--pre-dump"]);
    assert_eq!(ctx.status(&id), "running", "a pre-dump leaves it running");
    assert!(parent.join("inventory.img").exists() || parent.read_dir().unwrap().count() > 0);

    let images = ctx.path("images/final");
    std::fs::create_dir_all(&images).unwrap();
    checkpoint(&ctx, &id, &images, &["--parent-path", "../parent"]);
    assert!(
        images.join("parent").symlink_metadata().is_ok(),
        "the dump links its parent images"
    );
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    let at = numbers(&count).len();
    restore(&ctx, &id, &b, &images, &[]);
    wait_until("the count to go on", || numbers(&count).len() > at + 3);
    assert_continuous(&count);
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn bad_parent_path_is_refused_before_anything() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let (b, _) = counting(&ctx, &id);
    let images = ctx.path("images");
    for parent in [s(&ctx.path("parent")).to_string(), "../parent".to_string()] {
        let out = ctx
            .rt(&[
                "checkpoint",
                "--parent-path",
                &parent,
                "--image-path",
                s(&images),
                &id,
            ])
            .fails();
        assert!(out.all().contains("--parent-path"), "{out}");
        assert_eq!(ctx.status(&id), "running");
    }
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn restore_under_a_new_id() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let (b, count) = counting(&ctx, &id);
    let images = ctx.path("images");
    checkpoint(&ctx, &id, &images, &[]);
    let at = numbers(&count).len();
    let id2 = ctx.id();
    restore(&ctx, &id2, &b, &images, &[]);
    assert_eq!(ctx.status(&id2), "running");
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    let listed = ctx.rt(&["list", "-q"]).ok();
    assert_eq!(listed.out(), id2, "only the new id is listed");
    wait_until("the count to go on", || numbers(&count).len() > at + 3);
    assert_continuous(&count);
    ctx.delete_force(&id2).ok();
    ctx.assert_nothing_left(&id2, &b);
}

/// A TCP connection between two processes of the container: without --tcp-established
/// the dump is refused and the container runs on; with it the same connection (`nc -l`
/// accepts one) carries the count on after the restore. The container shares the host's
/// network namespace, where CRIU locks each connection with iptables until the restore
/// (a restored namespace of its own is empty, as with runc: `--empty-ns network`).
#[test]
fn open_tcp_connection_with_tcp_established() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let out = ctx.mkdir("out");
    // Port 47321 (0xB8D9). The server's stdin never ends (busybox nc exits at its EOF).
    let script = "tail -f /dev/null | nc -l -p 47321 > /out/recv & \
        until grep -qE ':B8D9 [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6; do sleep 0.05; done; \
        i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done | nc 127.0.0.1 47321";
    let b = ctx
        .bundle()
        .bind(&out, "/out")
        .without_namespace("network")
        .sh(script);
    b.write();
    let id = ctx.id();
    quiet(&ctx, &["run", "-d", "--bundle", s(&b.dir), &id]).ok();
    let recv = out.join("recv");
    wait_until("numbers over the connection", || numbers(&recv).len() >= 3);

    let images = ctx.path("images");
    let refused = ctx
        .rt(&["checkpoint", "--image-path", s(&images), &id])
        .fails();
    if !ctx
        .rt
        .runc_deviation("runc's error does not say why CRIU refused (see dump.log)")
    {
        assert!(refused.all().contains("tcp-established"), "{refused}");
    }
    assert_eq!(
        ctx.status(&id),
        "running",
        "a refused dump leaves it running"
    );

    let images = ctx.path("images-tcp");
    checkpoint(&ctx, &id, &images, &["--tcp-established"]);
    let at = numbers(&recv).len();
    restore(&ctx, &id, &b, &images, &["--tcp-established"]);
    wait_until("numbers over the restored connection", || {
        numbers(&recv).len() > at + 3
    });
    assert_continuous(&recv);
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

/// A terminal container (--console-socket) checkpointed with --shell-job: after the
/// restore a new pty master arrives on the new console socket and carries the same
/// process' output and input.
#[test]
fn terminal_container_with_shell_job() {
    if !criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let sock = ConsoleSocket::listen(&ctx.path("console1.sock"));
    let b = ctx.bundle().terminal(true).sh(
        "i=0; while true; do i=$((i+1)); echo n=$i; if read -t 1 l; then echo got:$l; fi; done",
    );
    b.write();
    let id = ctx.id();
    quiet(
        &ctx,
        &[
            "run",
            "-d",
            "--console-socket",
            s(&sock.path),
            "--bundle",
            s(&b.dir),
            &id,
        ],
    )
    .ok();
    let master = sock.master();
    let before = read_master(master.try_clone().unwrap(), Some("n=2\r\n"));
    assert!(before.contains("n=1"), "{before:?}");

    let images = ctx.path("images");
    checkpoint(&ctx, &id, &images, &["--shell-job"]);
    drop(master);
    let sock2 = ConsoleSocket::listen(&ctx.path("console2.sock"));
    restore(
        &ctx,
        &id,
        &b,
        &images,
        &["--shell-job", "--console-socket", s(&sock2.path)],
    );
    let mut master2 = sock2.master();
    master2.write_all(b"hello-again\n").unwrap();
    let mut after = read_master(master2.try_clone().unwrap(), Some("got:hello-again"));
    // The count line that follows the answer.
    let next = |text: &str| {
        let tail = &text[text.find("got:hello-again")?..];
        tail.lines()
            .find_map(|l| l.trim().strip_prefix("n=")?.parse::<u64>().ok())
    };
    for _ in 0..20 {
        if next(&after).is_some() {
            break;
        }
        after.push_str(&read_master(master2.try_clone().unwrap(), Some("\n")));
    }
    assert!(
        next(&after).is_some_and(|n| n > 2),
        "the restored process counts on (not from 1): {after:?}"
    );
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

/// No CRIU needed: an unknown id fails as every command does, and makes nothing.
#[test]
fn checkpoint_of_an_unknown_id_fails_and_makes_nothing() {
    let ctx = Ctx::new();
    let images = ctx.path("images");
    let out = ctx.rt(&["checkpoint", "--image-path", s(&images), "nosuch"]);
    ctx.assert_not_exist(out, "nosuch");
    assert!(
        !images.exists(),
        "no image dir for a container that is not there"
    );
}

/// A restore whose images are missing fails, leaving no state, cgroup or mount.
#[test]
fn restore_without_images_fails_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "100"]);
    b.write();
    let id = ctx.id();
    let out = quiet(
        &ctx,
        &[
            "restore",
            "-d",
            "--bundle",
            s(&b.dir),
            "--image-path",
            s(&ctx.path("no-images")),
            &id,
        ],
    );
    assert!(!out.success(), "{out}");
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    ctx.assert_nothing_left(&id, &b);
}

/// A criu binary that is not there: the error names it, the container runs on.
#[test]
fn missing_criu_is_named_and_changes_nothing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    b.write();
    let id = ctx.id();
    quiet(&ctx, &["run", "-d", "--bundle", s(&b.dir), &id]).ok();
    let out = ctx
        .rt(&[
            "--criu",
            "/nonexistent/criu",
            "checkpoint",
            "--image-path",
            s(&ctx.path("images")),
            &id,
        ])
        .fails();
    assert!(out.all().contains("/nonexistent/criu"), "{out}");
    if ctx.rt.is_capsa() {
        assert!(out.stderr.contains("CRIU 3.0 or newer"), "{out}");
    }
    assert_eq!(ctx.status(&id), "running");
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

/// The pids of `pid`'s descendants (CRIU under a checkpoint), deepest last.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the comm may hold spaces, the last ')' ends it
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut out = vec![];
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &(c, pp) in &parents {
            if pp == p {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// A checkpoint running in the background, killed with its CRIU when dropped.
struct Dump(std::process::Child);

impl Drop for Dump {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        for p in descendants(self.0.id()).into_iter().rev() {
            let _ = kill(nix::unistd::Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `--lazy-pages` checkpoint waits, its page server ready, until a restore has fetched
/// the memory pages: maybe for ever. Meanwhile the container's other commands answer:
/// `state`, `list`, and `delete --force` returns (runc's fails, "container init still
/// running", CRIU holding the init). capsa held the container's lock across the dump, so
/// they all hung; runc's own lazy-pages test, when CRIU's page server is late, deletes the
/// container in its teardown and hung there.
#[test]
fn a_pending_lazy_checkpoint_blocks_no_other_command() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    if !criu::usable() {
        return;
    }
    let lazy = Command::new("criu")
        .args(["check", "--feature", "uffd-noncoop"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !lazy {
        let why = "this kernel or criu has no lazy pages (uffd-noncoop)";
        if std::env::var("CAPSA_REQUIRE_CRIU").as_deref() == Ok("1") {
            panic!("CAPSA_REQUIRE_CRIU=1 but {why}");
        }
        integration::skip(why);
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id();
    let (b, _count) = counting(&ctx, &id);
    let images = ctx.path("images");
    let work = ctx.path("dump-work");
    let port = (40000 + std::process::id() % 20000).to_string();
    // CRIU writes one byte to --status-fd (here our pipe, as the checkpoint's stdout)
    // once its page server listens.
    let (status_r, status_w) = nix::unistd::pipe().unwrap();
    let dump = Command::new(&ctx.rt.path)
        .arg("--root")
        .arg(&ctx.root)
        .arg("--log")
        .arg(ctx.path("lazy-dump.log"))
        .args(["checkpoint", "--lazy-pages", "--page-server"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "--status-fd",
            "1",
            "--image-path",
            s(&images),
            "--work-path",
        ])
        .arg(&work)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(status_w))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the checkpoint");
    // The checkpoint and its CRIU end with the test, whatever happens.
    let dump = Dump(dump);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = tx.send(std::fs::File::from(status_r).read(&mut byte).ok());
    });
    let ready = rx.recv_timeout(integration::poll::HANG_GUARD);
    if ready != Ok(Some(1)) {
        drop(dump);
        panic!(
            "no page server ready ({ready:?})\n--- dump.log ---\n{}",
            std::fs::read_to_string(work.join("dump.log")).unwrap_or_default()
        );
    }
    // The dump waits for a lazy restore now. Each command answers (the harness' hang
    // guard fails one that does not).
    let out = ctx.rt(&["state", &id]).ok();
    assert!(out.out().contains(&id), "{out}");
    let out = ctx.rt(&["list", "-q"]).ok();
    assert!(out.out().lines().any(|l| l == id), "{out}");
    let deleted = ctx.rt(&["delete", "--force", &id]);
    assert!(
        deleted.success()
            || ctx.rt.runc_deviation(
                "delete --force of a container CRIU holds: container init still running"
            ),
        "{deleted}"
    );
    drop(dump);
    if !deleted.success() {
        ctx.delete_force(&id).ok();
    }
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    ctx.assert_nothing_left(&id, &b);
}
