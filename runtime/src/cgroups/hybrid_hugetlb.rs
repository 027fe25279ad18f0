//! Hybrid hosts (v1 controllers plus a cgroup2 mount) may keep hugetlb only on the cgroup2
//! mount, where libcgroups' v1 manager does not look. There the runtime does what it does
//! on any v2 hierarchy: delegate the controller down the container's path
//! (`+hugetlb` in each ancestor's cgroup.subtree_control), create the container's cgroup,
//! write the limits and move the init in.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxHugepageLimit;

use crate::{Error, Result};

const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Cgroup(format!(
        "linux.resources.hugepageLimits: {what} {}: {e}",
        path.display()
    ))
}

/// Whether the cgroup2 mount offers hugetlb. Where no v1 hierarchy has it (the caller
/// knows that from its own read of the mount table), this is the hybrid path.
pub fn on_unified_mount() -> bool {
    std::fs::read_to_string(Path::new(UNIFIED).join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "hugetlb"))
}

fn dir(cgroup_path: &Path) -> PathBuf {
    Path::new(UNIFIED).join(cgroup_path.strip_prefix("/").unwrap_or(cgroup_path))
}

pub fn apply(cgroup_path: &Path, pid: i32, limits: &[LinuxHugepageLimit]) -> Result<()> {
    let mut cur = PathBuf::from(UNIFIED);
    for comp in cgroup_path
        .strip_prefix("/")
        .unwrap_or(cgroup_path)
        .components()
    {
        let ctl = cur.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&ctl).map_err(|e| err("read", &ctl, e))?;
        if !enabled.split_whitespace().any(|c| c == "hugetlb") {
            std::fs::write(&ctl, "+hugetlb").map_err(|e| err("enable hugetlb in", &ctl, e))?;
        }
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(err("create", &cur, e))
            }
            _ => {}
        }
    }
    for l in limits {
        let f = cur.join(format!("hugetlb.{}.max", l.page_size()));
        std::fs::write(&f, l.limit().to_string()).map_err(|e| err("write", &f, e))?;
    }
    let procs = cur.join("cgroup.procs");
    std::fs::write(&procs, pid.to_string()).map_err(|e| err("add init to", &procs, e))
}

/// Remove the container's cgroup on the cgroup2 mount if it has one.
pub fn remove(cgroup_path: &Path) {
    let d = dir(cgroup_path);
    if d.exists() {
        if let Err(e) = std::fs::remove_dir(&d) {
            tracing::warn!("remove {}: {e}", d.display());
        }
    }
}
