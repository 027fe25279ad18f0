//! The host's cgroup hierarchies (v1 controllers, hybrid, or pure v2), the
//! paths of a test's cgroups in them, and their removal. Only cgroups under a
//! test's own parent are ever touched; mounts are only read.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::poll::try_wait_until;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// v1: the controllers (and `name=` option) it carries; v2: empty.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// Every cgroup hierarchy mounted in our mount namespace, once each.
pub fn hierarchies() -> Vec<Hierarchy> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("");
        let _source = r.next();
        let opts = r.next().unwrap_or("");
        let mount = PathBuf::from(left.split_whitespace().nth(4).unwrap_or(""));
        let h = match fstype {
            "cgroup2" => Hierarchy {
                mount,
                controllers: vec![],
                v2: true,
            },
            "cgroup" => Hierarchy {
                mount,
                controllers: opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .filter(|o| {
                        ![
                            "nosuid",
                            "nodev",
                            "noexec",
                            "relatime",
                            "clone_children",
                            "noprefix",
                            "xattr",
                            "cpuset_v2_mode",
                        ]
                        .contains(o)
                    })
                    .map(str::to_string)
                    .collect(),
                v2: false,
            },
            _ => continue,
        };
        if !out.iter().any(|o| o.mount == h.mount) {
            out.push(h);
        }
    }
    out
}

/// Whether /sys/fs/cgroup itself is cgroup v2 (a pure v2 host).
pub fn is_unified() -> bool {
    hierarchies()
        .iter()
        .any(|h| h.v2 && h.mount == Path::new("/sys/fs/cgroup"))
}

/// The directory of `cgroups_path` for controller `ctrl` (e.g. "memory",
/// "pids"), on v1 in that controller's hierarchy, on pure v2 in the unified one.
pub fn controller_dir(ctrl: &str, cgroups_path: &str) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    if is_unified() {
        return Path::new("/sys/fs/cgroup").join(rel);
    }
    let h = hierarchies()
        .into_iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == ctrl))
        .unwrap_or_else(|| panic!("no cgroup v1 hierarchy with the {ctrl} controller"));
    h.mount.join(rel)
}

/// Reads a cgroup file, trimmed.
pub fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// Every directory of `cgroups_path` (and below it) that exists in any hierarchy.
pub fn existing_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    hierarchies()
        .into_iter()
        .map(|h| h.mount.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// Pids listed in a cgroup directory's cgroup.procs.
pub fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in the subtree of `parent` (a test's own cgroup
/// parent, e.g. `/capsa-test-123-4`) and removes its directories, deepest
/// first, in every hierarchy. Best effort: used from Drop, never panics.
pub fn remove_tree(parent: &str) {
    assert_test_parent(parent);
    for top in existing_dirs(parent) {
        for d in subtree_deepest_first(&top) {
            remove_one(&d);
        }
    }
    remove_plain_dirs(parent);
}

/// Removes the plain directories named `parent` that sit in /sys/fs/cgroup's
/// own tmpfs, where a controller is not mounted: podman's conmon makes
/// `<controller>/<parent>/conmon` for every controller it knows (hugetlb,
/// net_cls, perf_event...) whether or not the host mounts it. They are empty
/// directories with the `tasks` file conmon writes its pid to, never cgroups.
fn remove_plain_dirs(parent: &str) {
    let rel = parent.trim_start_matches('/');
    for top in plain_controller_dirs() {
        let _ = fs::remove_dir_all(top.join(rel));
    }
}

/// The directories right under /sys/fs/cgroup that no cgroup hierarchy is
/// mounted on: plain directories of the tmpfs there (checked with statfs, so
/// a cgroup file system is never walked as a plain tree).
fn plain_controller_dirs() -> Vec<PathBuf> {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    let mounts: Vec<PathBuf> = hierarchies().into_iter().map(|h| h.mount).collect();
    let Ok(rd) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| !mounts.contains(p))
        .filter(|p| statfs(p).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC))
        .collect()
}

/// Removes the test parents (`/capsa-test-<pid>-<n>`) left by test processes
/// that are gone, e.g. killed by a timeout before their guards ran. Only
/// subtrees with no process in them are touched, and nothing is killed: a
/// parent whose pid lives in another pid namespace is left alone that way.
pub fn remove_stale_parents() {
    for top in plain_controller_dirs() {
        for dir in stale_parents(&top) {
            let _ = fs::remove_dir_all(dir);
        }
    }
    for top in hierarchies().into_iter().map(|h| h.mount) {
        for dir in stale_parents(&top) {
            let dirs = subtree_deepest_first(&dir);
            if dirs.iter().any(|d| !procs(d).is_empty()) {
                continue;
            }
            for d in dirs {
                let _ = fs::remove_dir(&d);
            }
        }
    }
}

/// The test parents right under `top` whose test process is gone.
fn stale_parents(top: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(top) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            test_parent_pid(&e.file_name().to_string_lossy()).is_some_and(|pid| !pid_exists(pid))
        })
        .map(|e| e.path())
        .collect()
}

fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a test parent's name `capsa-test-<pid>-<n>`.
fn test_parent_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("capsa-test-")?.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// `top` and every directory below it, deepest first (empty if `top` is
/// missing).
fn subtree_deepest_first(top: &Path) -> Vec<PathBuf> {
    if !top.is_dir() {
        return Vec::new();
    }
    let mut dirs = Vec::new();
    collect_dirs(top, &mut dirs);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs
}

/// Guards against ever removing anything but a test cgroup.
fn assert_test_parent(parent: &str) {
    let name = parent.trim_start_matches('/');
    assert!(
        name.starts_with("capsa-test-") && !name.contains('/') && !name.contains(".."),
        "refusing to remove cgroup {parent}: not a test parent"
    );
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

fn remove_one(dir: &Path) {
    // A frozen v1 cgroup would keep its processes from dying.
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    try_wait_until(Duration::from_secs(20), || {
        for pid in procs(dir) {
            // SAFETY: kill(2) with a pid read from the test's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match fs::remove_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => true,
            Err(_) => false,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::test_parent_pid;

    #[test]
    fn test_parent_names() {
        assert_eq!(test_parent_pid("capsa-test-123-4"), Some(123));
        assert_eq!(test_parent_pid("capsa-test-123"), None);
        assert_eq!(test_parent_pid("capsa-test-x-4"), None);
        assert_eq!(test_parent_pid("capsa-test-123-4-5"), None);
        assert_eq!(test_parent_pid("user.slice"), None);
    }
}
