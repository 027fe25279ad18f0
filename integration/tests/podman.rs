//! podman driving the runtime (`podman --runtime <runtime>`): run, run -it, exec, top,
//! pause/unpause, update, kill, stop, rm, and a `podman build` whose RUN step goes through
//! the runtime. A private podman set-up per test (hack/podman-env.sh with its
//! own PODMAN_DIR, vfs storage) and a busybox image built locally. Skipped outside CI when
//! podman is missing, and when CAPSA_TEST_PODMAN=0.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::runtime::{run_cmd, workspace_dir, Out};
use integration::{image, Ctx};

const IMAGE: &str = "localhost/capsa-test-busybox:latest";

struct Podman {
    dir: PathBuf,
    runtime: PathBuf,
    /// The test's own cgroup parent (the Ctx guard removes it), so podman's containers and
    /// conmon never land in, nor leave behind, the host-wide libpod_parent.
    cgroup_parent: String,
}

impl Podman {
    /// None (test skipped) when podman is not installed and we are not in CI.
    fn new(ctx: &Ctx) -> Option<Podman> {
        if std::env::var("CAPSA_TEST_PODMAN").as_deref() == Ok("0") {
            integration::skip("CAPSA_TEST_PODMAN=0");
            return None;
        }
        let have = Command::new("podman").arg("--version").output().is_ok();
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "podman is missing (hack/test-deps.sh installs it)"
            );
            integration::skip("podman not installed");
            return None;
        }
        let p = Podman {
            dir: ctx.mkdir("podman"),
            runtime: ctx.rt.path.clone(),
            cgroup_parent: ctx.cg_parent.clone(),
        };
        let work = ctx.mkdir("image");
        let archive = image::busybox_docker_archive(&work, IMAGE);
        p.sh(&format!("podman load -q -i {}", archive.display()))
            .ok();
        Some(p)
    }

    /// `script` in bash with the private podman's environment; `$P` is podman with our runtime.
    fn sh(&self, script: &str) -> Out {
        let env = workspace_dir().join("hack/podman-env.sh");
        run_cmd(
            Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "set -e; eval \"$(bash {})\"; P=\"podman --runtime {}\"; CGP={}; {script}",
                    env.display(),
                    self.runtime.display(),
                    self.cgroup_parent
                ))
                .env("PODMAN_DIR", &self.dir)
                .env("PODMAN_DRIVER", "vfs"),
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.sh("$P rm -af -t 0 >/dev/null 2>&1 || true; podman system reset --force >/dev/null 2>&1 || true");
    }
}

fn workdir(p: &Podman) -> &Path {
    &p.dir
}

#[test]
fn run_exec_top_pause_update_kill() {
    let ctx = Ctx::new();
    let Some(p) = Podman::new(&ctx) else { return };
    let out = p.sh(&format!(
        "$P run --cgroup-parent $CGP --rm {IMAGE} sh -c 'echo hello; exit 3'"
    ));
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stdout.contains("hello"), "{out}");

    p.sh(&format!(
        "$P run --cgroup-parent $CGP -d --name c1 {IMAGE} sleep 1000"
    ))
    .ok();
    let out = p.sh("$P exec c1 sh -c 'echo in-exec; exit 4'");
    assert_eq!(out.code(), Some(4), "{out}");
    assert!(out.stdout.contains("in-exec"), "{out}");
    let out = p.sh("$P top c1").ok();
    assert!(out.stdout.contains("sleep 1000"), "{out}");
    p.sh("$P pause c1").ok();
    let out = p.sh("$P inspect -f '{{.State.Status}}' c1").ok();
    assert_eq!(out.stdout.trim(), "paused", "{out}");
    p.sh("$P unpause c1").ok();
    p.sh("$P update --memory 64m c1").ok();
    let out = p.sh("$P exec c1 sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'").ok();
    assert_eq!(out.stdout.trim(), (64u64 << 20).to_string(), "{out}");
    p.sh("$P kill c1 >/dev/null").ok();
    p.sh("$P rm -f c1 >/dev/null").ok();
    p.sh(&format!(
        "$P run --cgroup-parent $CGP -d --name c2 {IMAGE} sleep 1000 >/dev/null; $P stop -t 1 c2 >/dev/null"
    ))
    .ok();
    let out = p.sh("$P inspect -f '{{.State.Status}}' c2").ok();
    assert_eq!(out.stdout.trim(), "exited", "{out}");
    assert!(workdir(&p).exists());
}

#[test]
fn run_interactive_terminal() {
    let ctx = Ctx::new();
    let Some(p) = Podman::new(&ctx) else { return };
    // script(1) gives podman a terminal; the shell reads our line through it.
    let out = p.sh(&format!(
        "(sleep 1; printf 'echo tty:$(tty)\\nexit 5\\n') | script -qec \"$P run --cgroup-parent $CGP -it --rm {IMAGE} sh\" /dev/null"
    ));
    assert!(out.stdout.contains("tty:/dev/pts/"), "{out}");
    assert_eq!(out.code(), Some(5), "{out}");
}

#[test]
fn build_runs_its_run_step_through_the_runtime() {
    let ctx = Ctx::new();
    let Some(p) = Podman::new(&ctx) else { return };
    let dir = ctx.mkdir("build");
    std::fs::write(
        dir.join("Containerfile"),
        format!("FROM {IMAGE}\nRUN echo built > /built.txt && id -u > /uid.txt\n"),
    )
    .unwrap();
    p.sh(&format!(
        "$P build -q --cgroup-parent $CGP --network host -t localhost/built:1 {}",
        dir.display()
    ))
    .ok();
    let out = p
        .sh("$P run --cgroup-parent $CGP --rm localhost/built:1 cat /built.txt /uid.txt")
        .ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["built", "0"],
        "{out}"
    );
}

/// `podman container checkpoint` then `restore` through the runtime (its `checkpoint` and,
/// through conmon, `restore`): the container's counter, appending to a file of a bind
/// mount, goes on from where it was (1, 2, ... n, n+1, never 1 again). Needs CRIU working
/// on the kernel: run in the cgroup v2 VM (hack/cgv2-tests.sh podman:checkpoint);
/// elsewhere skipped with the reason unless CAPSA_REQUIRE_CRIU=1.
#[test]
fn checkpoint_and_restore_through_podman() {
    if !integration::criu::usable() {
        return;
    }
    let ctx = Ctx::new();
    let Some(p) = Podman::new(&ctx) else { return };
    let out_dir = ctx.mkdir("counter");
    let file = out_dir.join("count");
    p.sh(&format!(
        "$P run --cgroup-parent $CGP -d --name ck -v {}:/out {IMAGE} sh -c '{}' >/dev/null",
        out_dir.display(),
        integration::criu::counter_script("/out/count")
    ))
    .ok();
    integration::wait_until("the counter to count", || {
        integration::criu::numbers(&file).len() >= 3
    });
    p.sh("$P container checkpoint ck >/dev/null").ok();
    let out = p.sh("$P inspect -f '{{.State.Status}}' ck").ok();
    assert_eq!(out.stdout.trim(), "exited", "checkpointed: {out}");
    let at_checkpoint = integration::criu::numbers(&file).len();
    p.sh("$P container restore ck >/dev/null").ok();
    let out = p.sh("$P inspect -f '{{.State.Status}}' ck").ok();
    assert_eq!(out.stdout.trim(), "running", "restored: {out}");
    integration::wait_until("the restored counter to go on", || {
        integration::criu::numbers(&file).len() > at_checkpoint + 3
    });
    p.sh("$P rm -f -t 0 ck >/dev/null").ok();
    let n = integration::criu::numbers(&file);
    let expected: Vec<u64> = (1..=n.len() as u64).collect();
    assert_eq!(n, expected, "the counter did not resume where it stopped");
}

/// `podman run --read-only` (root read-only; /tmp, /var/tmp, /run as tmpfs with
/// `tmpcopyup`) and `--tmpfs DIR` (also `tmpcopyup`): the tmpfs starts with what the image
/// has there. docker's `--tmpfs` (no copy-up there) is docker.rs'.
#[test]
fn run_read_only_and_tmpfs() {
    let ctx = Ctx::new();
    let Some(p) = Podman::new(&ctx) else { return };
    let out = p
        .sh(&format!(
            "$P run --cgroup-parent $CGP --rm --read-only {IMAGE} sh -c \
             'touch /nope 2>/dev/null || echo root-ro; echo hi > /tmp/x && cat /tmp/x'"
        ))
        .ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["root-ro", "hi"],
        "{out}"
    );
    let out = p
        .sh(&format!(
            "$P run --cgroup-parent $CGP --rm --tmpfs /etc {IMAGE} sh -c \
             'grep -c ^root: /etc/passwd; grep \" /etc \" /proc/mounts | cut -d\" \" -f3'"
        ))
        .ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["1", "tmpfs"],
        "{out}"
    );
}

/// `podman exec` into a container whose seccomp profile has a NOTIFY rule: the exec'd
/// process' listener reaches the agent (listenerPath) and the agent answers its syscalls.
#[test]
fn exec_with_a_seccomp_notify_agent() {
    let ctx = Ctx::new();
    let Some(p) = Podman::new(&ctx) else { return };
    let agent = integration::seccomp_agent::Agent::start(&ctx.path("agent.sock"), libc::ENOMEDIUM);
    let profile = ctx.path("seccomp.json");
    ctx.write(
        &profile,
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": agent.path,
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
        })
        .to_string(),
    );
    p.sh(&format!(
        "$P run --cgroup-parent $CGP -d --name n1 --security-opt seccomp={} {IMAGE} sleep 1000",
        profile.display()
    ))
    .ok();
    let out = p.sh("$P exec n1 mkdir /tmp/x");
    assert_ne!(out.code(), Some(0), "{out}");
    assert!(
        out.all().contains("No medium found"),
        "the agent's answer: {out}"
    );
    let states = agent.states();
    assert_eq!(states.len(), 2, "run's and exec's listeners: {states:?}");
    p.sh("$P rm -f n1 >/dev/null").ok();
}
