//! Resources: limits set at create and by UpdateContainerResources, read
//! back from the container's cgroup (v1 on a hybrid host, v2 in the VM);
//! the OOMKilled reason; ContainerStats and PodSandboxStats.

use k8s_cri::v1::*;

use crate::harness::{cgroup, eventually, Cri, Ctr, Pod};

const MIB: i64 = 1024 * 1024;

/// (memory limit, "quota period", cpu weight or shares) as the cgroup says.
fn limits(pid: i32) -> (String, String, String) {
    if cgroup::unified() {
        let max = cgroup::read(pid, "cpu", "cpu.max");
        (
            cgroup::read(pid, "memory", "memory.max"),
            max,
            cgroup::read(pid, "cpu", "cpu.weight"),
        )
    } else {
        let quota = cgroup::read(pid, "cpu", "cpu.cfs_quota_us");
        let period = cgroup::read(pid, "cpu", "cpu.cfs_period_us");
        (
            cgroup::read(pid, "memory", "memory.limit_in_bytes"),
            format!("{quota} {period}"),
            cgroup::read(pid, "cpu", "cpu.shares"),
        )
    }
}

/// The cgroup v2 cpu.weight of CRI's cpu shares, by either mapping in use:
/// runc <= 1.2's linear one (1024 -> 39) or crun's and runc >= 1.3's, which
/// keeps the default at the default (1024 -> 100).
fn v2_weights(shares: u64) -> [u64; 2] {
    let linear = 1 + (shares - 2) * 9999 / 262142;
    let l = (shares as f64).log2();
    let curved = 10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0).ceil() as u64;
    [linear, curved]
}

fn assert_limits(pid: i32, memory: &str, quota_period: &str, shares: u64) {
    let (mem, cpu, weight) = limits(pid);
    assert_eq!((mem.as_str(), cpu.as_str()), (memory, quota_period));
    let weight: u64 = weight.parse().expect("a number");
    if cgroup::unified() {
        assert!(
            v2_weights(shares).contains(&weight),
            "cpu.weight {weight} for shares {shares} (either of {:?})",
            v2_weights(shares)
        );
    } else {
        assert_eq!(weight, shares, "cpu.shares");
    }
}

#[test]
fn weight_mappings() {
    assert_eq!(v2_weights(512), [20, 59]);
    assert_eq!(v2_weights(1024), [39, 100]);
    assert_eq!(v2_weights(2), [1, 1]);
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn resources_and_update_read_back_from_the_cgroup() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "res");
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]).resources(|r| {
        r.memory_limit_in_bytes = 64 * MIB;
        r.cpu_period = 100_000;
        r.cpu_quota = 50_000;
        r.cpu_shares = 512;
        r.cpuset_cpus = "0".into();
    }));
    let pid = pod.pid(&id);
    assert_limits(pid, "67108864", "50000 100000", 512);
    assert_eq!(cgroup::read(pid, "cpuset", "cpuset.cpus"), "0");
    // The container sits in its pod's cgroup parent.
    let mem = cgroup::file_of(pid, "memory", "x");
    assert!(
        mem.display().to_string().contains(&pod.cgroup_parent),
        "{} not under {}",
        mem.display(),
        pod.cgroup_parent
    );

    cri.ok(
        "UpdateContainerResources",
        cri.runtime()
            .update_container_resources(UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(LinuxContainerResources {
                    memory_limit_in_bytes: 96 * MIB,
                    cpu_period: 100_000,
                    cpu_quota: 20_000,
                    cpu_shares: 1024,
                    ..Default::default()
                }),
                ..Default::default()
            }),
    );
    assert_limits(pid, "100663296", "20000 100000", 1024);
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn oom_killed_reason() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "oom");
    // The shell holds 256 MiB of output in a variable.
    let id = pod.run(
        Ctr::sh(
            "hog",
            "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived",
        )
        .resources(|r| r.memory_limit_in_bytes = 32 * MIB),
    );
    let s = pod.wait_exited(&id);
    assert_eq!(s.reason, "OOMKilled", "exit {} {s:?}", s.exit_code);
    assert_ne!(s.exit_code, 0);
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn container_and_pod_stats() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "stats");
    // Burns some CPU and holds some memory (the shell's variable: it must not
    // exec its last command), then idles.
    let id = pod.run(Ctr::sh(
        "app",
        "x=$(head -c 4000000 /dev/zero | tr '\\0' a); i=0; \
         while [ $i -lt 20000 ]; do i=$((i+1)); done; echo warm; sleep 100000; echo $x",
    ));
    eventually("the container warmed up", || {
        pod.log("app", 0).contains("warm")
    });
    let s = cri
        .ok(
            "ContainerStats",
            cri.runtime().container_stats(ContainerStatsRequest {
                container_id: id.clone(),
            }),
        )
        .stats
        .expect("stats");
    assert_eq!(s.attributes.as_ref().unwrap().id, id);
    let cpu = s.cpu.unwrap().usage_core_nano_seconds.unwrap().value;
    let mem = s.memory.unwrap().working_set_bytes.unwrap().value;
    assert!(cpu > 0, "cpu {cpu}");
    assert!(mem > 1_000_000, "working set {mem}");
    assert!(s.writable_layer.is_some(), "writable layer usage");

    let ps = cri
        .ok(
            "PodSandboxStats",
            cri.runtime().pod_sandbox_stats(PodSandboxStatsRequest {
                pod_sandbox_id: pod.id.clone(),
            }),
        )
        .stats
        .expect("pod stats");
    assert_eq!(ps.attributes.as_ref().unwrap().id, pod.id);
    let linux = ps.linux.expect("linux pod stats");
    let pcpu = linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value;
    let pmem = linux.memory.unwrap().working_set_bytes.unwrap().value;
    assert!(pcpu >= cpu, "pod cpu {pcpu} >= container cpu {cpu}");
    assert!(pmem > 0, "pod working set {pmem}");
    assert!(
        linux
            .containers
            .iter()
            .any(|c| c.attributes.as_ref().unwrap().id == id),
        "the container in the pod's stats"
    );
    let list = cri.ok(
        "ListContainerStats",
        cri.runtime()
            .list_container_stats(ListContainerStatsRequest {
                filter: Some(ContainerStatsFilter {
                    pod_sandbox_id: pod.id.clone(),
                    ..Default::default()
                }),
            }),
    );
    assert_eq!(list.stats.len(), 1);
    pod.finish();
}
