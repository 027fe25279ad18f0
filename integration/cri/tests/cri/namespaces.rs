//! The pod's namespaces: containers share its IPC and (host) network
//! namespaces; a shared PID namespace (shareProcessNamespace); a debug
//! container in the PID namespace of another (NamespaceMode TARGET).

use k8s_cri::v1::*;

use crate::harness::{Cri, Ctr, Pod, PodOpts};

fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("ns/{kind} of {pid}: {e}"))
        .display()
        .to_string()
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn containers_share_the_pods_ipc_and_network_namespaces() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "share");
    let a = pod.run(Ctr::args("a", &["sleep", "100000"]));
    let b = pod.run(Ctr::args("b", &["sleep", "100000"]));
    let (sandbox, pa, pb) = (pod.sandbox_pid(), pod.pid(&a), pod.pid(&b));
    let me = std::process::id() as i32;
    for kind in ["ipc", "net", "uts"] {
        assert_eq!(ns(pa, kind), ns(sandbox, kind), "{kind} of a");
        assert_eq!(ns(pb, kind), ns(sandbox, kind), "{kind} of b");
    }
    assert_eq!(ns(pa, "net"), ns(me, "net"), "host network");
    assert_ne!(ns(pa, "ipc"), ns(me, "ipc"), "the pod's own IPC namespace");
    // Without shareProcessNamespace each container has its own pid namespace
    // and mount namespace.
    assert_ne!(ns(pa, "pid"), ns(pb, "pid"));
    assert_ne!(ns(pa, "mnt"), ns(pb, "mnt"));
    // Shared IPC for real: the pod's /dev/shm (POSIX shared memory) is one.
    pod.sh(&a, "echo from-a > /dev/shm/seg");
    assert_eq!(pod.sh(&b, "cat /dev/shm/seg"), "from-a\n");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn shared_pid_namespace() {
    let cri = Cri::connect();
    let pod = Pod::with(
        &cri,
        "sharepid",
        PodOpts {
            pid: NamespaceMode::Pod,
            ..Default::default()
        },
    );
    let a = pod.run(Ctr::args("a", &["sleep", "4242"]));
    let b = pod.run(Ctr::args("b", &["sleep", "100000"]));
    assert_eq!(ns(pod.pid(&a), "pid"), ns(pod.sandbox_pid(), "pid"));
    // From b: pause is pid 1 and a's sleep is there.
    let ps = pod.sh(&b, "ps -o pid,args");
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"));
    assert!(pid1.is_some_and(|l| l.contains("/pause")), "{ps}");
    assert!(ps.contains("sleep 4242"), "{ps}");
    // A container's exit leaves the pod (pause) alive; pause reaps it.
    pod.sh(
        &b,
        "kill $(ps -o pid,args | grep '[s]leep 4242' | awk '{print $1}')",
    );
    let s = pod.wait_exited(&a);
    assert_eq!(s.exit_code, 143, "a ended by SIGTERM");
    let st = cri.sandbox_status(&pod.id).unwrap().status.unwrap();
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn debug_container_targets_another() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "debug");
    let app = pod.run(Ctr::args("app", &["sleep", "4343"]));
    // `kubectl debug --target=app`: an ephemeral container in app's pid
    // namespace (the runtime joins an existing pid namespace).
    let dbg = pod.run(Ctr::args("debugger", &["sleep", "100000"]).security(|sc| {
        sc.namespace_options = Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Target as i32,
            ipc: NamespaceMode::Pod as i32,
            target_id: app.clone(),
            ..Default::default()
        })
    }));
    let (papp, pdbg) = (pod.pid(&app), pod.pid(&dbg));
    assert_eq!(ns(papp, "pid"), ns(pdbg, "pid"));
    let s = pod.status(&dbg);
    assert_eq!(s.state, ContainerState::ContainerRunning as i32, "{s:?}");
    let ps = pod.sh(&dbg, "ps -o pid,args");
    assert!(ps.contains("sleep 4343"), "{ps}");
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"));
    assert!(
        pid1.is_some_and(|l| l.contains("sleep 4343")),
        "app is pid 1: {ps}"
    );
    // The debugger can act on the target's processes.
    pod.sh(&dbg, "ls /proc/1/root/bin/sh >/dev/null");
    pod.finish();
}
