//! sysctl (runtime-tools: linux_sysctl).

use integration::Ctx;

#[test]
fn namespaced_sysctls_are_set_inside_only() {
    let ctx = Ctx::new();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let want_shm = if host_shm.trim() == "1" { "0" } else { "1" };
    let out = ctx
        .sh_in("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced", |b| {
            b.linux("sysctl", serde_json::json!({ "net.ipv4.ip_forward": want_fwd, "kernel.shm_rmid_forced": want_shm }))
        })
        .ok();
    assert_eq!(out.stdout, format!("{want_fwd}\n{want_shm}\n"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_shm
    );
}

#[test]
fn non_namespaced_sysctl_is_refused() {
    let ctx = Ctx::new();
    let host = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let b = ctx
        .bundle()
        .linux("sysctl", serde_json::json!({ "vm.swappiness": "7" }));
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().contains("vm.swappiness"),
        "the error names the sysctl: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap(),
        host
    );
}
