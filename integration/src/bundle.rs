//! A bundle: a busybox-static rootfs and a config.json the test shapes through
//! a builder API (typed helpers for common edits, `with` for anything else).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::spec::default_spec;

/// The host's static busybox, the only binary the rootfs holds.
pub const BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Value,
}

fn applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .unwrap_or_else(|e| panic!("{BUSYBOX} --list: {e} (run hack/test-deps.sh)"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|a| !a.is_empty() && a != "busybox")
            .collect()
    })
}

/// Copy busybox in a separate `cp` process: if this (multi-threaded) test process held
/// the write fd, a sibling test's fork could inherit it until its exec, and exec of
/// this file inside the container would then fail with ETXTBSY.
fn copy_busybox(dest: &Path) {
    let st = std::process::Command::new("cp")
        .arg(BUSYBOX)
        .arg(dest)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp busybox into the rootfs");
}

/// Makes `rootfs` a busybox-static root: /bin/busybox (a copy, never a
/// hardlink: the container must not be able to change the host's binary),
/// a symlink per applet, the usual directories and a passwd/group with root
/// and an unprivileged user 1000.
pub fn make_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("mkdir rootfs/bin");
    copy_busybox(&bin.join("busybox"));
    for a in applets() {
        let _ = symlink("busybox", bin.join(a));
    }
    for d in [
        "proc",
        "dev",
        "sys",
        "tmp",
        "etc",
        "root",
        "home/tester",
        "shared",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755)).expect("chmod rootfs");
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:tester:/home/tester:/bin/sh\n",
    )
    .expect("write passwd");
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nwheel:x:10:\ntester:x:1000:\n",
    )
    .expect("write group");
}

impl Bundle {
    /// A new bundle in `dir` (created) with a busybox rootfs and the default
    /// config in the cgroup `cgroups_path`.
    pub fn new(dir: PathBuf, cgroups_path: &str) -> Bundle {
        make_rootfs(&dir.join("rootfs"));
        Bundle {
            dir,
            spec: default_spec(cgroups_path),
        }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Writes config.json (tests call this through `Ctx`, before each create).
    pub fn write(&self) {
        let text = serde_json::to_string_pretty(&self.spec).expect("serialise spec");
        fs::write(self.config_path(), text).expect("write config.json");
    }

    pub fn cgroups_path(&self) -> String {
        self.spec["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Any edit of the config.
    pub fn with(mut self, f: impl FnOnce(&mut Value)) -> Bundle {
        f(&mut self.spec);
        self
    }

    pub fn args(self, args: &[&str]) -> Bundle {
        self.with(|s| s["process"]["args"] = json!(args))
    }

    /// `/bin/sh -c script`.
    pub fn sh(self, script: &str) -> Bundle {
        self.args(&["/bin/sh", "-c", script])
    }

    pub fn env(self, var: &str) -> Bundle {
        self.with(|s| {
            s["process"]["env"]
                .as_array_mut()
                .expect("env array")
                .push(json!(var))
        })
    }

    pub fn cwd(self, cwd: &str) -> Bundle {
        self.with(|s| s["process"]["cwd"] = json!(cwd))
    }

    pub fn user(self, user: Value) -> Bundle {
        self.with(|s| s["process"]["user"] = user)
    }

    pub fn terminal(self, on: bool) -> Bundle {
        self.with(|s| s["process"]["terminal"] = json!(on))
    }

    pub fn hostname(self, name: &str) -> Bundle {
        self.with(|s| s["hostname"] = json!(name))
    }

    pub fn readonly_root(self, ro: bool) -> Bundle {
        self.with(|s| s["root"]["readonly"] = json!(ro))
    }

    /// Appends a mount.
    pub fn mount(self, m: Value) -> Bundle {
        self.with(|s| s["mounts"].as_array_mut().expect("mounts array").push(m))
    }

    /// Bind-mounts host `src` at `dest` (read-write).
    pub fn bind(self, src: &Path, dest: &str) -> Bundle {
        self.mount(json!({
            "destination": dest, "type": "bind", "source": src,
            "options": ["rbind", "rw"]
        }))
    }

    /// Sets `linux.<key>`.
    pub fn linux(self, key: &str, v: Value) -> Bundle {
        self.with(|s| s["linux"][key] = v)
    }

    /// Sets `linux.resources.<key>`.
    pub fn resources(self, key: &str, v: Value) -> Bundle {
        self.with(|s| s["linux"]["resources"][key] = v)
    }

    /// Replaces (or adds) the namespace of `ty`, optionally joining `path`.
    pub fn namespace(self, ty: &str, path: Option<&Path>) -> Bundle {
        self.with(|s| {
            let nss = s["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces array");
            nss.retain(|n| n["type"] != ty);
            let mut ns = json!({ "type": ty });
            if let Some(p) = path {
                ns["path"] = json!(p);
            }
            nss.push(ns);
        })
    }

    /// Removes the namespace of `ty` (the container shares the runtime's).
    pub fn without_namespace(self, ty: &str) -> Bundle {
        self.with(|s| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces array")
                .retain(|n| n["type"] != ty)
        })
    }

    /// Adds a hook of `kind` (prestart, createRuntime, ...).
    pub fn hook(self, kind: &str, hook: Value) -> Bundle {
        self.with(|s| {
            if s["hooks"][kind].is_null() {
                s["hooks"][kind] = json!([]);
            }
            s["hooks"][kind]
                .as_array_mut()
                .expect("hooks array")
                .push(hook)
        })
    }

    /// Sets every capability set (inheritable and ambient empty unless given).
    pub fn caps(self, sets: Value) -> Bundle {
        self.with(|s| s["process"]["capabilities"] = sets)
    }

    pub fn rlimit(self, ty: &str, soft: u64, hard: u64) -> Bundle {
        self.with(|s| {
            let rl = s["process"]["rlimits"]
                .as_array_mut()
                .expect("rlimits array");
            rl.retain(|r| r["type"] != ty);
            rl.push(json!({ "type": ty, "soft": soft, "hard": hard }));
        })
    }
}
