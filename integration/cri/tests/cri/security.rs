//! Security contexts as a pod spec sets them: runAsUser/Group, supplemental
//! groups, no_new_privs, dropped capabilities, RuntimeDefault seccomp,
//! read-only rootfs, privileged.

use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::*;

use crate::harness::{Cri, Ctr, Pod, PodOpts};

/// A field of /proc/self/status as the container's process sees it.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

fn mask(status: &str, key: &str) -> u64 {
    u64::from_str_radix(&status_field(status, key), 16).expect("hex mask")
}

const CAP_CHOWN: u32 = 0;
const CAP_NET_RAW: u32 = 13;

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn user_group_and_supplemental_groups() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "user");
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]).security(|sc| {
        sc.run_as_user = Some(Int64Value { value: 1000 });
        sc.run_as_group = Some(Int64Value { value: 3000 });
        sc.supplemental_groups = vec![4000, 5000];
    }));
    let st = pod.sh(&id, "cat /proc/self/status");
    assert_eq!(status_field(&st, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&st, "Gid"), "3000\t3000\t3000\t3000");
    let groups = status_field(&st, "Groups");
    let groups: Vec<&str> = groups.split_whitespace().collect();
    for g in ["4000", "5000"] {
        assert!(groups.contains(&g), "groups {groups:?}");
    }
    // The container's own process too, not only the exec.
    let init = std::fs::read_to_string(format!("/proc/{}/status", pod.pid(&id))).unwrap();
    assert_eq!(status_field(&init, "Uid"), "1000\t1000\t1000\t1000");
    // A non-root user cannot write where root owns.
    let (code, _, _) = pod.exec(&id, &["touch", "/bin/x"]);
    assert_ne!(code, 0);
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn no_new_privs_dropped_capabilities_and_runtime_default_seccomp() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "confined");
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]).security(|sc| {
        sc.no_new_privs = true;
        sc.capabilities = Some(Capability {
            drop_capabilities: vec!["NET_RAW".into(), "CHOWN".into()],
            ..Default::default()
        });
        sc.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            ..Default::default()
        });
    }));
    let st = pod.sh(&id, "cat /proc/self/status");
    assert_eq!(status_field(&st, "NoNewPrivs"), "1");
    assert_eq!(status_field(&st, "Seccomp"), "2", "a seccomp filter");
    let eff = mask(&st, "CapEff");
    assert_eq!(eff & (1 << CAP_NET_RAW), 0, "NET_RAW dropped: {eff:x}");
    assert_eq!(eff & (1 << CAP_CHOWN), 0, "CHOWN dropped: {eff:x}");
    assert_ne!(
        eff & (1 << 1),
        0,
        "DAC_OVERRIDE kept (containerd's default set)"
    );
    // The drop is enforced: root cannot chown a file it does not own.
    let (code, _, err) = pod.exec(&id, &["sh", "-c", "touch /tmp/f && chown 1 /tmp/f"]);
    assert_ne!(code, 0, "chown without CAP_CHOWN");
    assert!(err.contains("Operation not permitted"), "{err}");
    // RuntimeDefault refuses what it lists, e.g. unshare without CAP_SYS_ADMIN.
    let (code, _, _) = pod.exec(&id, &["unshare", "-m", "true"]);
    assert_ne!(code, 0, "unshare -m under RuntimeDefault");
    // Without a profile the container is unconfined (containerd 1.6).
    let plain = pod.run(Ctr::args("plain", &["sleep", "100000"]));
    let st = pod.sh(&plain, "cat /proc/self/status");
    assert_eq!(status_field(&st, "Seccomp"), "0");
    assert_eq!(status_field(&st, "NoNewPrivs"), "0");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn read_only_rootfs() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "rofs");
    let id =
        pod.run(Ctr::args("app", &["sleep", "100000"]).security(|sc| sc.readonly_rootfs = true));
    let (code, _, err) = pod.exec(&id, &["touch", "/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    // /dev/shm and the pod's /etc/hosts etc. stay as the pod gives them.
    pod.sh(&id, "touch /dev/shm/ok");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn privileged() {
    let cri = Cri::connect();
    let pod = Pod::with(
        &cri,
        "priv",
        PodOpts {
            privileged: true,
            ..Default::default()
        },
    );
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]).security(|sc| sc.privileged = true));
    let st = pod.sh(&id, "cat /proc/self/status");
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        mask(&st, "CapEff"),
        mask(&host, "CapBnd"),
        "every capability the host allows"
    );
    assert_eq!(status_field(&st, "Seccomp"), "0");
    // The host's devices, and /sys writable.
    let host_devs = std::fs::read_dir("/dev").unwrap().count();
    let devs = pod.sh(&id, "ls /dev | wc -l");
    let n: usize = devs.trim().parse().unwrap();
    assert!(
        n * 2 > host_devs,
        "{n} devices inside, {host_devs} on the host"
    );
    let mounts = pod.sh(&id, "cat /proc/mounts");
    assert!(
        mounts.lines().any(|l| l.starts_with("sysfs /sys sysfs rw")),
        "{mounts}"
    );
    // Mounting works in a privileged container.
    pod.sh(
        &id,
        "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && umount /mnt/t",
    );
    pod.finish();
}
