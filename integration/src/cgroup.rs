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
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        // deepest first
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            remove_one(&d);
        }
    }
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
