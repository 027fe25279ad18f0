//! hostname and domainname (runtime-tools: linux_uts / hostname).

use integration::Ctx;

#[test]
fn hostname_is_set() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("hostname; cat /proc/sys/kernel/hostname", |b| {
            b.hostname("capsa-box")
        })
        .ok();
    assert_eq!(out.stdout, "capsa-box\ncapsa-box\n");
}

#[test]
fn domainname_is_set() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("cat /proc/sys/kernel/domainname", |b| {
            b.with(|s| s["domainname"] = serde_json::json!("capsa.example"))
        })
        .ok();
    assert_eq!(out.out(), "capsa.example");
}

#[test]
fn host_hostname_is_untouched() {
    let ctx = Ctx::new();
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    ctx.sh_in("true", |b| b.hostname("not-the-host")).ok();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
}
