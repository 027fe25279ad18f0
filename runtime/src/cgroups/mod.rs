//! A thin adapter over libcgroups: where a container's cgroup lives, creating it with the
//! config's resources, placing the init in it, freezing, and removing it without leaks.
//! Works on cgroup v2 and on v1/hybrid hosts (libcgroups picks the manager).
//! Rootless, a container may have no cgroup at all (`delegation`): its handle is then
//! `Cgroup::none`, whose processes are found through the init's pid namespace.

use std::path::{Path, PathBuf};

use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::{Error, Result};

pub mod delegation;
mod hybrid_hugetlb;

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup path of a container: `linux.cgroupsPath`, else `/<id>` (as runc).
pub fn path_for(spec: &Spec, id: &str) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(format!("/{id}")))
}

pub struct Cgroup {
    /// None: the container has no cgroup of its own (rootless, not delegated).
    manager: Option<AnyCgroupManager>,
    /// The init, for a container without a cgroup (set by `enter_and_limit`).
    init: std::cell::Cell<i32>,
}

fn no_cgroup(what: &str) -> Error {
    Error::Cgroup(format!(
        "{what}: the container has no cgroup (it runs rootless without a delegated cgroup)"
    ))
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cgroup(format!("{what} {}: {e}", path.display()))
}

impl Cgroup {
    pub fn open(path: &Path, systemd: bool, id: &str) -> Result<Cgroup> {
        if systemd {
            let why = if Path::new("/run/systemd/system").exists() {
                "the systemd cgroup driver is not supported yet; use the cgroupfs driver"
            } else {
                "systemd is not running on this host (no /run/systemd/system)"
            };
            return Err(Error::Cgroup(format!("--systemd-cgroup: {why}")));
        }
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: path.to_path_buf(),
            systemd_cgroup: false,
            container_name: id.into(),
        })
        .map_err(|e| err("open", path, e))?;
        Ok(Cgroup {
            manager: Some(manager),
            init: Default::default(),
        })
    }

    /// The handle of a container without a cgroup, whose init is `init` (0: not yet).
    pub fn none(init: i32) -> Cgroup {
        Cgroup {
            manager: None,
            init: std::cell::Cell::new(init),
        }
    }

    /// The cgroup of an existing container, as `create` recorded it.
    pub fn of(saved: &crate::state::Saved, systemd: bool) -> Result<Cgroup> {
        if saved.no_cgroup {
            return Ok(Cgroup::none(saved.pid));
        }
        Cgroup::open(&saved.cgroup_path, systemd, &saved.id)
    }

    pub fn is_none(&self) -> bool {
        self.manager.is_none()
    }

    /// Place `pid` in the cgroup (created on demand) and apply the config's resources.
    pub fn enter_and_limit(
        &self,
        path: &Path,
        pid: i32,
        resources: Option<&LinuxResources>,
    ) -> Result<()> {
        let Some(manager) = &self.manager else {
            self.init.set(pid);
            return Ok(());
        };
        manager
            .add_task(Pid::from_raw(pid))
            .map_err(|e| err("add init to", path, e))?;
        if let Some(resources) = resources {
            let mut resources = resources.clone();
            let hugepages = resources.hugepage_limits().clone().unwrap_or_default();
            if !hugepages.is_empty() && !is_unified() && hybrid_hugetlb::applies() {
                hybrid_hugetlb::apply(path, pid, &hugepages)?;
                resources.set_hugepage_limits(None);
            }
            let opt = ControllerOpt {
                resources: &resources,
                disable_oom_killer: resources
                    .memory()
                    .as_ref()
                    .and_then(|m| m.disable_oom_killer())
                    .unwrap_or(false),
                oom_score_adj: None,
                freezer_state: None,
            };
            manager
                .apply(&opt)
                .map_err(|e| err("apply linux.resources to", path, e))?;
        }
        Ok(())
    }

    /// `capsa update`: apply new resources to the existing cgroup.
    pub fn update(&self, path: &Path, resources: &LinuxResources) -> Result<()> {
        let opt = ControllerOpt {
            resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager
            .as_ref()
            .ok_or_else(|| no_cgroup("update"))?
            .apply(&opt)
            .map_err(|e| err("update resources of", path, e))
    }

    pub fn stats(&self) -> Result<libcgroups::stats::Stats> {
        self.manager
            .as_ref()
            .ok_or_else(|| no_cgroup("stats"))?
            .stats()
            .map_err(|e| Error::Cgroup(format!("stats: {e}")))
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(manager) = &self.manager else {
            return Ok(pidns_members(self.init.get()));
        };
        Ok(manager
            .get_all_pids()
            .map_err(|e| Error::Cgroup(format!("list pids: {e}")))?
            .into_iter()
            .map(|p| p.as_raw())
            .collect())
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager
            .as_ref()
            .ok_or_else(|| no_cgroup("pause/resume"))?
            .freeze(state)
            .map_err(|e| Error::Cgroup(format!("freeze: {e}")))
    }

    /// Kill whatever is left (thawing first: a frozen task cannot die) and remove the cgroup,
    /// retrying while dying tasks keep it busy.
    pub fn destroy(&self, path: &Path) -> Result<()> {
        let Some(manager) = &self.manager else {
            for pid in self.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            }
            return Ok(());
        };
        if is_frozen(path) {
            let _ = self.freeze(false);
        }
        let mut last = None;
        for _ in 0..10 {
            if let Ok(pids) = self.pids() {
                for pid in pids {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                }
            }
            match manager.remove() {
                Ok(()) => {
                    if !is_unified() {
                        hybrid_hugetlb::remove(path);
                    }
                    return Ok(());
                }
                Err(e) => last = Some(e.to_string()),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(err("remove", path, last.unwrap_or_default()))
    }
}

/// Without a cgroup, the container's processes are those of the init's pid namespace
/// (when it has one of its own; else only the init is known).
fn pidns_members(init: i32) -> Vec<i32> {
    if init <= 0 {
        return Vec::new();
    }
    let ns_of = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(ns) = ns_of(&init.to_string()) else {
        return Vec::new();
    };
    if ns_of("self").as_ref() == Some(&ns) {
        return vec![init];
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![init];
    };
    let mut pids: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns_of(&p.to_string()).as_ref() == Some(&ns))
        .collect();
    pids.sort_unstable();
    pids
}

fn is_unified() -> bool {
    nix::sys::statfs::statfs(ROOT)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Whether the container's cgroup is frozen (paused).
pub fn is_frozen(path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if is_unified() {
        std::fs::read_to_string(Path::new(ROOT).join(rel).join("cgroup.freeze"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    } else {
        std::fs::read_to_string(
            Path::new(ROOT)
                .join("freezer")
                .join(rel)
                .join("freezer.state"),
        )
        .map(|s| s.trim() == "FROZEN")
        .unwrap_or(false)
    }
}

/// How many times the kernel's OOM killer acted in the container's cgroup (v1
/// memory.oom_control `oom_kill`, v2 memory.events `oom_kill`).
pub fn oom_kills(path: &Path) -> u64 {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let file = if is_unified() {
        Path::new(ROOT).join(rel).join("memory.events")
    } else {
        Path::new(ROOT)
            .join("memory")
            .join(rel)
            .join("memory.oom_control")
    };
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}
