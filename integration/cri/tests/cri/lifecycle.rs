//! Pod and container lifecycle: sandbox status, stop and remove, exit codes,
//! graceful and forced stop, restart attempts, and nothing left behind.

use k8s_cri::v1::*;

use crate::harness::{env, eventually, Cri, Ctr, Pod};

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purpose: its resources are released.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn pod_sandbox_run_status_stop_remove() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "sandbox");
    let r = cri.sandbox_status(&pod.id).expect("PodSandboxStatus");
    let st = r.status.expect("status");
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(st.metadata.as_ref().unwrap().name, pod.name);
    assert_eq!(st.runtime_handler, env().handler);
    let ns = st.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(ns.network, NamespaceMode::Node as i32, "host network");
    // The sandbox's process is the pause binary, in the host's network namespace.
    let pid = pod.sandbox_pid();
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmd.trim_end_matches('\0'), "/pause");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap()
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap(),
        std::fs::read_link("/proc/self/ns/ipc").unwrap(),
        "the pod has its own IPC namespace"
    );
    let list = cri.ok(
        "ListPodSandbox",
        cri.runtime()
            .list_pod_sandbox(ListPodSandboxRequest::default()),
    );
    assert!(list.items.iter().any(|p| p.id == pod.id));

    cri.ok(
        "StopPodSandbox",
        cri.runtime().stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        }),
    );
    let st = cri.sandbox_status(&pod.id).unwrap().status.unwrap();
    assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
    eventually("the pause process is gone", || !alive(pid));
    // finish: RemovePodSandbox (after a second, idempotent stop).
    let id = pod.id.clone();
    pod.finish();
    let e = cri
        .sandbox_status(&id)
        .expect_err("status of a removed pod");
    assert!(e.message().contains("NotFound"), "{e}");
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn container_exit_code_reason_and_times() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "exit");
    let ok = pod.run(Ctr::sh("ok", "echo fine"));
    let bad = pod.run(Ctr::sh("bad", "echo failing >&2; exit 3"));
    let s = pod.wait_exited(&ok);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
    let s = pod.wait_exited(&bad);
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
    // finished_at is the shim's exit time, started_at containerd's after
    // the start returned: a quick process may finish "before" it started.
    let times = (s.created_at, s.started_at, s.finished_at);
    assert!(
        times.0 > 0 && times.1 >= times.0 && times.2 >= times.0,
        "created, started, finished: {times:?}"
    );
    cri.remove_container(&ok).expect("RemoveContainer");
    let e = cri
        .container_status(&ok)
        .expect_err("status of a removed container");
    assert!(e.message().contains("NotFound"), "{e}");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn graceful_and_forced_stop() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "stop");
    // Exits 0 on SIGTERM (a graceful shutdown).
    let polite = pod.run(Ctr::sh(
        "polite",
        "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done",
    ));
    // pid 1 without a SIGTERM handler ignores it: only the SIGKILL after the
    // grace period ends it.
    let stubborn = pod.run(Ctr::args("stubborn", &["sleep", "100000"]));
    eventually("polite is ready", || pod.log("polite", 0).contains("ready"));
    cri.stop_container(&polite, 30).expect("StopContainer");
    let s = pod.status(&polite);
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 0, "graceful: exited on SIGTERM ({})", s.reason);
    assert!(pod.log("polite", 0).contains("bye"));
    let pid = pod.pid(&stubborn);
    cri.stop_container(&stubborn, 1).expect("StopContainer");
    let s = pod.status(&stubborn);
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 137, "forced: SIGKILL after the grace period");
    assert!(!alive(pid));
    // Stopping a stopped container is fine (kubelet retries).
    cri.stop_container(&stubborn, 1)
        .expect("second StopContainer");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn restart_attempts() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "restart");
    // The kubelet restarts a failed container as a new one, attempt + 1, in
    // the same pod; the old one stays until garbage-collected.
    let script = "echo run-$ATTEMPT; [ -e /tmp/ok ] || { touch /tmp/ok; exit 1; }; exit 0";
    let mut ids = Vec::new();
    for attempt in 0..3u32 {
        let mut c = Ctr::sh("app", script).attempt(attempt);
        c.config.envs.push(KeyValue {
            key: "ATTEMPT".into(),
            value: attempt.to_string(),
        });
        let id = pod.run(c);
        let s = pod.wait_exited(&id);
        // Each attempt has a fresh rootfs: /tmp/ok never survives.
        assert_eq!(s.exit_code, 1, "attempt {attempt}");
        assert_eq!(s.metadata.unwrap().attempt, attempt);
        assert!(pod.log("app", attempt).contains(&format!("run-{attempt}")));
        ids.push(id);
    }
    let list = cri.ok(
        "ListContainers",
        cri.runtime().list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod.id.clone(),
                ..Default::default()
            }),
        }),
    );
    let mut attempts: Vec<u32> = list
        .containers
        .iter()
        .map(|c| c.metadata.as_ref().unwrap().attempt)
        .collect();
    attempts.sort();
    assert_eq!(attempts, [0, 1, 2]);
    // The name of a live attempt is taken.
    let dup = pod.try_create(Ctr::sh("app", "true").attempt(2));
    assert!(dup.is_err(), "a second attempt 2 was created");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn nothing_left_after_remove_pod_sandbox() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "teardown");
    let running = pod.run(Ctr::args("running", &["sleep", "100000"]));
    let exited = pod.run(Ctr::sh("exited", "exit 0"));
    let _created = pod.create(Ctr::sh("created", "sleep 100000"));
    pod.wait_exited(&exited);
    // An exec still running when the pod goes away (a probe in flight).
    let _ = cri.call(
        "Exec",
        cri.runtime().exec(ExecRequest {
            container_id: running.clone(),
            cmd: vec!["sleep".into(), "100000".into()],
            stdout: true,
            ..Default::default()
        }),
    );
    pod.sh(&running, "sleep 100000 >/dev/null 2>&1 & echo started");
    // The leak check sees this pod's processes, mounts, cgroups and state.
    let seen = crate::harness::leaks::leftovers(&pod.id, &pod.container_ids(), &pod.cgroup_parent);
    for kind in ["process", "mount", "cgroup", "state dir"] {
        assert!(
            seen.iter().any(|l| l.starts_with(kind)),
            "no {kind} seen of a live pod: {seen:#?}"
        );
    }
    // RemovePodSandbox without a StopPodSandbox first must stop everything.
    cri.ok(
        "RemovePodSandbox",
        cri.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        }),
    );
    pod.finish();
}
