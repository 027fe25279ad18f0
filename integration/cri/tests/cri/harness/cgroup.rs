//! The host's cgroup mounts (v1, hybrid or pure v2), a process's cgroup
//! files and the removal of a test's cgroup parent.

use std::path::{Path, PathBuf};

/// A cgroup hierarchy: its mount point and (v1) its controllers.
pub struct Hierarchy {
    pub mount: PathBuf,
    /// v1 controllers of the mount; empty for cgroup2.
    pub controllers: Vec<String>,
}

pub fn hierarchies() -> Vec<Hierarchy> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount = pre.split_whitespace().nth(4).unwrap_or_default();
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or_default();
        let opts = post.nth(1).unwrap_or_default();
        let controllers = match fstype {
            "cgroup2" => Vec::new(),
            "cgroup" => opts
                .split(',')
                .filter(|o| !o.contains('=') && !matches!(*o, "rw" | "ro"))
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        out.push(Hierarchy {
            mount: mount.into(),
            controllers,
        });
    }
    out
}

/// Whether the host runs cgroup v2 alone (the VM) rather than v1/hybrid.
pub fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The path of `file` in the cgroup of `pid` for `controller` (v1) or in
/// its cgroup2 directory (v2: the controller is ignored).
pub fn file_of(pid: i32, controller: &str, file: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    if unified() {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("cgroup2 path");
        return Path::new("/sys/fs/cgroup")
            .join(path.trim_start_matches('/'))
            .join(file);
    }
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            let h = hierarchies()
                .into_iter()
                .find(|h| h.controllers.iter().any(|c| c == controller))
                .unwrap_or_else(|| panic!("no {controller} hierarchy mounted"));
            return h.mount.join(path.trim_start_matches('/')).join(file);
        }
    }
    panic!("pid {pid} has no {controller} cgroup: {text}")
}

pub fn read(pid: i32, controller: &str, file: &str) -> String {
    let p = file_of(pid, controller, file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The directories below `rel` (a cgroup parent) in any hierarchy.
pub fn children(rel: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for h in hierarchies() {
        let dir = h.mount.join(rel.trim_start_matches('/'));
        if let Ok(rd) = std::fs::read_dir(&dir) {
            found.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    found
}

/// Removes `rel` in every hierarchy: kills what is left in it, then rmdir
/// deepest first. Only for the tests' own parents (`capsa-cri-test-*`).
pub fn remove(rel: &str) {
    assert!(rel.contains("capsa-cri-test-"), "not a test cgroup: {rel}");
    for h in hierarchies() {
        let dir = h.mount.join(rel.trim_start_matches('/'));
        if dir.exists() {
            remove_dir(&dir);
        }
    }
}

fn remove_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dir(&e.path());
            }
        }
    }
    for _ in 0..100 {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                kill9(pid);
            }
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// SIGKILL through kill(1): the tests keep no `unsafe`.
fn kill9(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}
