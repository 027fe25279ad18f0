//! The container's directory in each cgroup v1 hierarchy, found with one read of
//! /proc/self/mountinfo. Placing a process and removing the cgroup need nothing more;
//! libcgroups' v1 manager, which reads the mount table and /proc/self/cgroup once for
//! each of its twelve controllers (~1 ms per open), is only opened for what needs its
//! controllers: limits, stats, freezing.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::rootfs::mountinfo;
use crate::{Error, Result};

/// The v1 controllers libcgroups manages (a hierarchy with none of them, such as
/// name=systemd, is not the container's business).
pub(super) const CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

struct Hierarchy {
    mount: PathBuf,
    /// The container's directory in it.
    dir: PathBuf,
    controllers: Vec<String>,
}

pub struct V1Dirs {
    dirs: Vec<Hierarchy>,
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cgroup(format!("{what} {}: {e}", path.display()))
}

impl V1Dirs {
    /// The directories of cgroup `path` (relative to each hierarchy's root).
    pub fn find(path: &Path) -> V1Dirs {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut dirs: Vec<Hierarchy> = Vec::new();
        for m in mountinfo::parse(&text) {
            if m.fstype != "cgroup" {
                continue;
            }
            let controllers: Vec<String> = m
                .super_options
                .split(',')
                .filter(|o| CONTROLLERS.contains(o))
                .map(String::from)
                .collect();
            // A hierarchy mounted twice is one hierarchy.
            if controllers.is_empty() || dirs.iter().any(|h| h.controllers == controllers) {
                continue;
            }
            let mount = PathBuf::from(&m.mount_point);
            dirs.push(Hierarchy {
                dir: mount.join(rel),
                mount,
                controllers,
            });
        }
        V1Dirs { dirs }
    }

    /// Create the directories and move `pid` into each.
    pub fn place(&self, pid: i32) -> Result<()> {
        for h in &self.dirs {
            let dir = &h.dir;
            std::fs::create_dir_all(dir).map_err(|e| err("create", dir, e))?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                fill_cpuset(&h.mount, dir)?;
            }
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string()).map_err(|e| err("write", &procs, e))?;
        }
        Ok(())
    }

    /// Whether some v1 hierarchy has `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.dir_of(controller).is_some()
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    /// Every process in the cgroup and its descendants (read from the devices hierarchy, or
    /// the first one, as runc does).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self
            .dir_of("devices")
            .or_else(|| self.dirs.first().map(|h| h.dir.as_path()))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        collect_pids(dir, &mut out);
        out
    }

    /// Thaw a frozen cgroup (a frozen task cannot die).
    pub fn thaw(&self) {
        if let Some(dir) = self.dir_of("freezer") {
            let state = dir.join("freezer.state");
            if std::fs::read_to_string(&state).is_ok_and(|s| s.trim() != "THAWED") {
                let _ = std::fs::write(&state, "THAWED");
            }
        }
    }

    /// Kill what is left and remove every directory, deepest first. Fails while dying
    /// tasks still keep one busy; the caller retries.
    pub fn remove(&self) -> Result<()> {
        for Hierarchy { dir, .. } in &self.dirs {
            if !dir.exists() {
                continue;
            }
            let mut found = Vec::new();
            collect_pids(dir, &mut found);
            for pid in found {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            remove_tree(dir).map_err(|e| err("remove", dir, e))?;
        }
        Ok(())
    }
}

/// A new cpuset cgroup starts with no cpus and no mems, and takes no task until it has
/// them: copy them down from the parent at each level that is still empty.
fn fill_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut parent = mount.to_path_buf();
    for c in rel.components() {
        let child = parent.join(c);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = child.join(file);
            let cur = std::fs::read_to_string(&mine).map_err(|e| err("read", &mine, e))?;
            if cur.trim().is_empty() {
                let theirs = parent.join(file);
                let v = std::fs::read_to_string(&theirs).map_err(|e| err("read", &theirs, e))?;
                std::fs::write(&mine, v.trim()).map_err(|e| err("write", &mine, e))?;
            }
        }
        parent = child;
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// rmdir `dir` after its sub-cgroups (cgroupfs directories hold only control files,
/// which go with the rmdir).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
