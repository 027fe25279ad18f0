//! Rootless podman driving the runtime (issue 18): podman run by the unprivileged test
//! user, so the runtime runs as uid 0 of a user namespace it did not make, without
//! `--root`, with no right to mknod and no cgroup of its own (harness:
//! integration/src/user_podman.rs). Every test passes against runc too.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use integration::unprivileged::{SUB_SIZE, SUB_START};
use integration::user_podman::UserPodman;
use integration::{cgroup, Ctx};

/// The first line of a /proc/PID/uid_map as (inside, outside, size).
fn first_map_line(text: &str) -> Vec<u32> {
    text.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect()
}

/// `run`: root of the user's namespace, podman's maps, the host's device nodes bound in
/// (mknod is refused) and usable, the exit status back.
fn check_run(p: &UserPodman) {
    let out = p.sh("$P run --rm $IMAGE sh -c 'id -u; cat /proc/self/uid_map; \
         stat -c %t:%T /dev/null /dev/zero /dev/urandom; echo x > /dev/null; \
         head -c 4 /dev/zero | wc -c; exit 3'");
    assert_eq!(out.code(), Some(3), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    assert_eq!(first_map_line(lines[1]), [0, p.user.uid, 1], "{out}");
    let map2: Vec<u32> = lines[2]
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(map2, [1, SUB_START, SUB_SIZE], "{out}");
    assert_eq!(&lines[3..6], ["1:3", "1:5", "1:9"], "{out}");
    assert_eq!(lines[6].trim(), "4", "{out}");
}

#[test]
fn run_is_root_of_the_users_namespace_with_devices_bound() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    check_run(&p);
    // --network host: the host's interfaces (here: no slirp4netns, /dev/net/tun refused).
    let out = p
        .sh("$P run --rm --network host $IMAGE cat /proc/net/dev")
        .ok();
    let host = std::fs::read_to_string("/proc/net/dev").expect("read /proc/net/dev");
    let names = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&out.stdout), names(&host), "{out}");
}

/// `run -d`, `exec` (status, `-d`), `logs`, `top`, `kill` + `wait`, `stop`, `rm` (the
/// runtime's state dir gone). Returns the first container's id.
fn check_detached(p: &UserPodman) -> String {
    let id = p
        .sh("$P run -d --name c1 $IMAGE sh -c 'echo started; exec sleep 1000'")
        .ok()
        .stdout
        .trim()
        .to_string();
    // The runtime keeps its state under the user's XDG_RUNTIME_DIR.
    let state = p.runtime_root().join(&id);
    assert!(state.is_dir(), "no state dir {}", state.display());
    let out = p.sh("$P exec c1 sh -c 'echo in-exec; id -u; exit 4'");
    assert_eq!(out.code(), Some(4), "{out}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["in-exec", "0"],
        "{out}"
    );
    let out = p
        .sh("$P exec -d c1 sleep 999 && $P exec c1 ps -o args")
        .ok();
    assert!(out.stdout.contains("sleep 999"), "{out}");
    let out = p.sh("$P logs c1").ok();
    assert_eq!(out.stdout.trim(), "started", "{out}");
    let out = p.sh("$P top c1").ok();
    assert!(out.stdout.contains("sleep 1000"), "{out}");
    // SIGKILL (sleep is the namespace's init: other signals it ignores).
    let out = p.sh("$P kill c1 >/dev/null && $P wait c1").ok();
    assert_eq!(out.stdout.trim(), "137", "killed by SIGKILL: {out}");
    let out = p.sh("$P inspect -f '{{.State.Status}}' c1").ok();
    assert_eq!(out.stdout.trim(), "exited", "{out}");
    p.sh("$P rm c1").ok();
    assert!(!state.exists(), "state dir left: {}", state.display());

    p.sh("$P run -d --name c2 $IMAGE sleep 1000 >/dev/null; $P stop -t 1 c2 >/dev/null")
        .ok();
    let out = p.sh("$P inspect -f '{{.State.Status}}' c2").ok();
    assert_eq!(out.stdout.trim(), "exited", "{out}");
    p.sh("$P rm c2 >/dev/null").ok();
    id
}

#[test]
fn detached_exec_logs_top_stop_rm() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    check_detached(&p);
}

/// `run -it` and `exec -it` (script(1) gives podman a terminal): conmon's console socket
/// gets the pty, the shell reads our lines through it, its exit status comes back.
#[test]
fn run_and_exec_with_a_terminal() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    let out = p.sh(
        "(sleep 1; printf 'echo tty:$(tty):$(id -u)\\nexit 5\\n') | \
         script -qec \"$P run -it --rm $IMAGE sh\" /dev/null",
    );
    assert!(out.stdout.contains("tty:/dev/pts/0:0"), "{out}");
    assert_eq!(out.code(), Some(5), "{out}");
    p.sh("$P run -d --name t $IMAGE sleep 1000 >/dev/null").ok();
    let out = p.sh("(sleep 1; printf 'echo tty:$(tty)\\nexit 6\\n') | \
         script -qec \"$P exec -it t sh\" /dev/null");
    assert!(out.stdout.contains("tty:/dev/pts/"), "{out}");
    assert_eq!(out.code(), Some(6), "{out}");
    p.sh("$P rm -f -t 0 t >/dev/null").ok();
}

/// A pod: podman's infra container (catatonit, an image podman builds itself) holds the
/// namespaces, and the pod's containers join them by path (`linux.namespaces[].path`), as
/// root of podman's user namespace.
#[test]
fn pod_containers_join_the_infra_namespaces() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    p.sh("$P pod create --name pod1 --hostname podhost >/dev/null")
        .ok();
    p.sh("$P run -d --pod pod1 --name a $IMAGE sh -c 'echo from-a > /dev/shm/x; exec sleep 1000' >/dev/null")
        .ok();
    // uts (the pod's hostname) and ipc (a's /dev/shm file) are the infra's.
    let out = p
        .sh("$P run --rm --pod pod1 $IMAGE sh -c 'hostname; cat /dev/shm/x; readlink /proc/1/ns/ipc'")
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..2], ["podhost", "from-a"], "{out}");
    let a = p.sh("$P exec a readlink /proc/self/ns/ipc").ok();
    assert_eq!(lines[2], a.stdout.trim(), "same ipc namespace: {out} {a}");
    p.sh("$P pod rm -f -t 0 pod1 >/dev/null").ok();
    let left: Vec<_> = std::fs::read_dir(p.runtime_root())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left: {left:?}");
}

/// `--userns=keep-id` and `--uidmap`: the owners of a bind-mounted dir of the user's as
/// seen inside, and of what is made there as seen on the host.
fn check_keep_id(p: &UserPodman) {
    let share = p.mkdir("share");
    std::fs::write(share.join("theirs"), "x").expect("write");
    integration::unprivileged::chown_r(&share, p.user);
    let (u, g) = (p.user.uid, p.user.gid);
    // keep-id: the user is itself inside, and sees its own files as its own.
    let out = p
        .sh(&format!(
            "$P run --rm --userns=keep-id -v {}:/share $IMAGE sh -c \
             'id -u; id -g; stat -c %u:%g /share/theirs; touch /share/made-inside'",
            share.display()
        ))
        .ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [u.to_string(), g.to_string(), format!("{u}:{g}")],
        "{out}"
    );
    let m = std::fs::metadata(share.join("made-inside")).expect("made inside");
    assert_eq!((m.uid(), m.gid()), (u, g));
    // --uidmap 0:1:1000: root inside is podman's uid 1, the user's first subordinate id.
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = p
        .sh(&format!(
            "$P run --rm --uidmap 0:1:1000 --gidmap 0:1:1000 -v {}:/share $IMAGE sh -c \
             'cat /proc/self/uid_map; mkdir /share/by-root'",
            share.display()
        ))
        .ok();
    // (the map as seen inside names podman's namespace's ids)
    assert_eq!(first_map_line(&out.stdout), [0, 1, 1000], "{out}");
    let m = std::fs::metadata(share.join("by-root")).expect("made by root inside");
    assert_eq!(m.uid(), SUB_START, "{out}");
}

#[test]
fn keep_id_and_uidmap_give_the_users_files_their_owner() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    check_keep_id(&p);
}

/// `podman build` whose RUN step goes through the runtime (root, the host's /dev/null).
fn check_build(p: &UserPodman) {
    let dir = p.mkdir("build");
    std::fs::write(
        dir.join("Containerfile"),
        "FROM localhost/capsa-test-busybox:latest\n\
         RUN echo built > /built.txt && id -u >> /built.txt && stat -c %t:%T /dev/null >> /built.txt\n",
    )
    .expect("write Containerfile");
    // The runtime's debug log (`--debug --log FILE`: podman's --runtime-flag passes them to
    // the runtime of the RUN steps) shows the step went through the runtime under test.
    let log = p.home.join("build-runtime.log");
    p.sh(&format!(
        "$P build -q --no-cache --network none --runtime-flag debug --runtime-flag log={} -t localhost/built:1 {}",
        log.display(),
        dir.display()
    ))
    .ok();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!logged.is_empty(), "no runtime log at {}", log.display());
    if p.is_capsa() {
        assert!(
            logged.contains("init: set-up starts"),
            "not capsa's: {logged}"
        );
    }
    let out = p.sh("$P run --rm localhost/built:1 cat /built.txt").ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["built", "0", "1:3"],
        "{out}"
    );
}

#[test]
fn build_runs_its_run_step_through_the_runtime() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    check_build(&p);
}

#[test]
fn system_reset_leaves_nothing_of_the_runtime() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    p.sh("$P run -d --name r1 $IMAGE sleep 1000 >/dev/null; $P create --name r2 $IMAGE true >/dev/null")
        .ok();
    let root = p.runtime_root();
    assert!(std::fs::read_dir(&root).expect("runtime root").count() > 0);
    p.sh("podman system reset --force >/dev/null").ok();
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", root.display());
    // The container's process (its environment has the test's tag) is gone.
    let procs: Vec<_> = integration::leftovers::processes(&ctx.tag, &ctx.tag)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("sleep 1000"))
        .collect();
    assert!(procs.is_empty(), "{procs:?}");
}

#[test]
fn cgroups_disabled_and_no_conmon() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    let out = p
        .sh("$P run --rm --cgroups=no-conmon $IMAGE sh -c 'echo no-conmon'")
        .ok();
    assert_eq!(out.stdout.trim(), "no-conmon", "{out}");
    // podman passes --cgroup-manager disabled, which runc 1.1 lacks (podman refuses it).
    if ctx
        .rt
        .runc_lacks("--cgroup-manager (podman --cgroups=disabled)")
    {
        return;
    }
    let out = p
        .sh("$P run --rm --cgroups=disabled $IMAGE sh -c 'echo disabled'")
        .ok();
    assert_eq!(out.stdout.trim(), "disabled", "{out}");
}

/// The same checks as the tests above, with podman in a cgroup v2 subtree delegated to
/// the user (as systemd delegates a user's): the containers' cgroups inside it; then
/// podman's limits apply, `pause`/`unpause` freeze, `update` writes the limit, `rm`
/// removes the cgroup. Pure cgroup v2 only: run in the VM by hack/cgv2-tests.sh.
#[test]
fn delegated_cgroup_v2_run_exec_keep_id_build_limits_pause_update() {
    let ctx = Ctx::new();
    if !cgroup::is_unified() {
        integration::skip("needs a pure cgroup v2 host: runs in the VM (hack/cgv2-tests.sh)");
        return;
    }
    let Some(mut p) = UserPodman::new(&ctx) else {
        return;
    };
    let base = p.delegate_cgroup_v2();
    check_run(&p);
    check_keep_id(&p);
    check_build(&p);
    check_detached(&p);

    let id = p
        .sh("$P run -d --name lim --pids-limit 42 --memory 64m $IMAGE sleep 1000")
        .ok()
        .stdout
        .trim()
        .to_string();
    let dir = base.join(&id);
    assert!(dir.is_dir(), "no cgroup {}", dir.display());
    assert_eq!(cgroup::read(&dir, "pids.max"), "42");
    let out = p
        .sh("$P exec lim cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max")
        .ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["42", &(64u64 << 20).to_string()],
        "{out}"
    );
    p.sh("$P pause lim").ok();
    let out = p.sh("$P inspect -f '{{.State.Status}}' lim").ok();
    assert_eq!(out.stdout.trim(), "paused", "{out}");
    assert_eq!(cgroup::read(&dir, "cgroup.freeze"), "1");
    p.sh("$P unpause lim").ok();
    p.sh("$P update --memory 32m lim").ok();
    assert_eq!(cgroup::read(&dir, "memory.max"), (32u64 << 20).to_string());
    p.sh("$P stop -t 1 lim >/dev/null && $P rm lim >/dev/null")
        .ok();
    assert!(!dir.exists(), "cgroup left: {}", dir.display());
}

#[test]
fn slirp4netns_network_where_tun_is_allowed() {
    let ctx = Ctx::new();
    let Some(p) = UserPodman::new(&ctx) else {
        return;
    };
    // slirp4netns needs /dev/net/tun, which this host refuses to users (0600 root); the
    // VM's is 0666.
    if !p.sh("exec 3<>/dev/net/tun").success() {
        integration::skip("/dev/net/tun refused to the user: runs in the VM (hack/cgv2-tests.sh)");
        return;
    }
    let out = p
        .sh("$P run --rm --network slirp4netns $IMAGE sh -c 'ip -o -4 addr show; ip route'")
        .ok();
    // slirp4netns' defaults: the container is 10.0.2.100, its gateway 10.0.2.2.
    assert!(out.stdout.contains("10.0.2.100"), "{out}");
    assert!(out.stdout.contains("default via 10.0.2.2"), "{out}");
}
