//! Where a container's cgroups are: one directory per v1 controller (hybrid
//! and legacy hosts) or one unified v2 directory. Found from the init's
//! /proc/<pid>/cgroup and the host's cgroup mounts; the shim only reads them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub enum Cgroup {
    /// controller name → directory
    V1(HashMap<String, PathBuf>),
    V2(PathBuf),
}

fn unified_root() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// v1 mounts: (controllers from the super options, mount root, mount point).
fn v1_mounts() -> Vec<(Vec<String>, String, PathBuf)> {
    capsa_linux::mountinfo::read()
        .into_iter()
        .filter(|m| m.fstype == "cgroup")
        .map(|m| {
            let ctrls = m.super_options.split(',').map(str::to_string).collect();
            (ctrls, m.root, PathBuf::from(m.mount_point))
        })
        .collect()
}

pub fn of_pid(pid: u32) -> Result<Cgroup> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(Error::io(format!("read cgroups of pid {pid}")))?;
    if unified_root() {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| Error::Other(format!("pid {pid} has no cgroup v2 path")))?;
        return Ok(Cgroup::V2(
            Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')),
        ));
    }
    let mounts = v1_mounts();
    let mut dirs = HashMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        for ctrl in ctrls
            .split(',')
            .filter(|c| !c.is_empty() && !c.starts_with("name="))
        {
            let Some((_, root, mnt)) = mounts.iter().find(|(c, _, _)| c.iter().any(|x| x == ctrl))
            else {
                continue;
            };
            let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
            dirs.insert(ctrl.to_string(), mnt.join(rel.trim_start_matches('/')));
        }
    }
    Ok(Cgroup::V1(dirs))
}

impl Cgroup {
    /// The directory of a v1 controller, or the v2 directory.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        match self {
            Cgroup::V1(d) => d.get(controller).map(PathBuf::as_path),
            Cgroup::V2(p) => Some(p),
        }
    }
}

pub fn read_string(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A single number; "max" reads as `max`.
pub fn read_u64(dir: &Path, file: &str, max: u64) -> u64 {
    read_string(dir, file)
        .map(|s| {
            let s = s.trim();
            if s == "max" {
                max
            } else {
                s.parse().unwrap_or(0)
            }
        })
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
pub fn read_kv(dir: &Path, file: &str) -> HashMap<String, u64> {
    read_string(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}
