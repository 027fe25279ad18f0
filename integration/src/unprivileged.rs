//! The unprivileged test user `capsa-rootless` (hack/test-deps.sh makes it; so does
//! [`user`] when it is missing), with subordinate ids SUB_START..SUB_START+SUB_SIZE for
//! newuidmap: the rootless tests run the runtime, or podman, as this user.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub const USER: &str = "capsa-rootless";
/// The subordinate ids of USER in /etc/subuid and /etc/subgid.
pub const SUB_START: u32 = 400_000;
pub const SUB_SIZE: u32 = 65_536;

pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// USER, created (with its subordinate ranges) when missing.
pub fn user() -> &'static User {
    static USER_ONCE: OnceLock<User> = OnceLock::new();
    USER_ONCE.get_or_init(|| {
        if !Command::new("id")
            .arg("-u")
            .arg(USER)
            .output()
            .expect("run id")
            .status
            .success()
        {
            let st = Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home"])
                .args([
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .status()
                .expect("run useradd");
            assert!(st.success(), "useradd {USER}");
        }
        for f in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
                let sep = if text.is_empty() || text.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                std::fs::write(f, format!("{text}{sep}{USER}:{SUB_START}:{SUB_SIZE}\n"))
                    .unwrap_or_else(|e| panic!("add {USER} to {f}: {e}"));
            }
        }
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .arg(flag)
                .arg(USER)
                .output()
                .expect("run id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("id prints a number")
        };
        User {
            uid: id("-u"),
            gid: id("-g"),
        }
    })
}

/// `chown -R` to `u`.
pub fn chown_r(path: &Path, u: &User) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", u.uid, u.gid))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown -R {}", path.display());
}
