//! A thin adapter over libcgroups: where a container's cgroup lives, creating it with the
//! config's resources, placing the init in it, freezing, and removing it without leaks.
//! Works on cgroup v2 and on v1/hybrid hosts (libcgroups picks the manager). On v1,
//! placing and removing go through `v1_dirs` (one mount-table read) and libcgroups'
//! manager is opened only when limits, stats or the freezer need it, on another thread
//! while the init sets up its mounts when `create` needs it.
//! Rootless, a container may have no cgroup at all (`delegation`): its handle is then
//! `Cgroup::none`, whose processes are found through the init's pid namespace.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::{Error, Result};

pub mod delegation;
mod hybrid_hugetlb;
pub mod preflight;
pub mod sub;
pub mod systemd;
mod v1_devices;
mod v1_dirs;
pub mod v1_limits;
pub mod v2_devices;

use v1_dirs::V1Dirs;

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup path of a container: `linux.cgroupsPath`; without one, as runc: on cgroup v2
/// `<the parent of our own cgroup>/<id>` (rootless podman leaves it empty: in a delegated
/// subtree the container then lands next to the caller's cgroup, inside the delegation),
/// on v1 `/<id>`. With the systemd driver, its unit's place in the slice the path names.
pub fn path_for(spec: &Spec, id: &str, systemd: bool) -> Result<PathBuf> {
    let configured = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    if systemd {
        return systemd::path_for(configured.as_deref().and_then(Path::to_str), id);
    }
    if let Some(p) = configured {
        return Ok(p);
    }
    let own = is_unified()
        .then(|| std::fs::read_to_string("/proc/self/cgroup").ok())
        .flatten()
        .and_then(|t| own_v2_cgroup(&t));
    Ok(default_path(own.as_deref(), id))
}

/// Our cgroup v2 path from /proc/self/cgroup's `0::PATH` line.
fn own_v2_cgroup(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
}

fn default_path(own: Option<&Path>, id: &str) -> PathBuf {
    own.and_then(Path::parent)
        .unwrap_or(Path::new("/"))
        .join(id)
}

pub struct Cgroup {
    path: PathBuf,
    id: String,
    /// The container's directories on a v1/hybrid host.
    v1: Option<V1Dirs>,
    manager: OnceCell<AnyCgroupManager>,
    /// The container has no cgroup of its own (rootless, not delegated).
    none: bool,
    /// The init, for a container without a cgroup (set by `enter`).
    init: std::cell::Cell<i32>,
    /// The systemd driver's unit (`--systemd-cgroup`).
    unit: Option<systemd::Unit>,
}

fn no_cgroup(what: &str) -> Error {
    Error::Cgroup(format!(
        "{what}: the container has no cgroup (it runs rootless without a delegated cgroup, \
         or with --cgroup-manager disabled)"
    ))
}

/// libcgroups' manager being opened on another thread (`Cgroup::prefetch`).
pub struct Prefetch(JoinHandle<Result<AnyCgroupManager>>);

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cgroup(format!("{what} {}: {e}", path.display()))
}

fn open_manager(path: &Path, id: &str) -> Result<AnyCgroupManager> {
    create_cgroup_manager(CgroupConfig {
        cgroup_path: path.to_path_buf(),
        systemd_cgroup: false,
        container_name: id.into(),
    })
    .map_err(|e| err("open", path, e))
}

impl Cgroup {
    pub fn open(path: &Path, systemd: bool, id: &str) -> Result<Cgroup> {
        Cgroup::open_in(&capsa_linux::mountinfo::read(), path, systemd, id)
    }

    /// `open`, with the host's mount table already read.
    pub fn open_in(
        mounts: &[capsa_linux::mountinfo::MountEntry],
        path: &Path,
        systemd: bool,
        id: &str,
    ) -> Result<Cgroup> {
        if systemd && !systemd::booted() {
            return Err(Error::Cgroup(
                "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)"
                    .into(),
            ));
        }
        let cg = Cgroup {
            unit: systemd
                .then(|| systemd::Unit::from_path(path))
                .transpose()?,
            path: path.to_path_buf(),
            id: id.into(),
            v1: (!is_unified()).then(|| V1Dirs::from_mounts(mounts, path)),
            manager: OnceCell::new(),
            none: false,
            init: Default::default(),
        };
        if cg.v1.is_none() {
            // Cheap on v2, and it checks the path now.
            cg.manager()?;
        }
        Ok(cg)
    }

    /// Whether the cgroup's directory exists (v2; on v1, systemd's own hierarchy).
    fn exists(&self) -> bool {
        let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
        let root = if self.v1.is_none() {
            PathBuf::from(ROOT)
        } else {
            Path::new(ROOT).join("systemd")
        };
        root.join(rel).is_dir()
    }

    /// The handle of a container without a cgroup, whose init is `init` (0: not yet).
    pub fn none(init: i32) -> Cgroup {
        Cgroup {
            path: PathBuf::new(),
            id: String::new(),
            v1: None,
            manager: OnceCell::new(),
            none: true,
            init: std::cell::Cell::new(init),
            unit: None,
        }
    }

    pub fn is_none(&self) -> bool {
        self.none
    }

    fn manager(&self) -> Result<&AnyCgroupManager> {
        if self.none {
            return Err(no_cgroup("cgroup"));
        }
        if let Some(m) = self.manager.get() {
            return Ok(m);
        }
        let m = open_manager(&self.path, &self.id)?;
        Ok(self.manager.get_or_init(|| m))
    }

    /// Start opening libcgroups' manager on another thread, when `resources` will need
    /// it. Only after the init is cloned: a clone while another thread may hold a lock
    /// would copy the lock held.
    pub fn prefetch(&self, resources: Option<&LinuxResources>) -> Option<Prefetch> {
        let needed = resources.is_some_and(|r| !self.v1_devices_only(r));
        if !needed || self.none || self.manager.get().is_some() {
            return None;
        }
        let (path, id) = (self.path.clone(), self.id.clone());
        Some(Prefetch(std::thread::spawn(move || {
            open_manager(&path, &id)
        })))
    }

    fn finish(&self, prefetch: Option<Prefetch>) -> Result<()> {
        if let Some(Prefetch(h)) = prefetch {
            let m = h
                .join()
                .map_err(|_| Error::Cgroup("opening the cgroup manager panicked".into()))??;
            let _ = self.manager.set(m);
        }
        Ok(())
    }

    /// Place `pid` in the cgroup, created on demand. On a hybrid host whose hugetlb lives
    /// on the cgroup2 mount, that placement comes with the config's hugepage limits.
    pub fn enter(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<()> {
        if self.none {
            self.init.set(pid);
            return Ok(());
        }
        if let Some(unit) = &self.unit {
            // A new container's scope; an exec joins the existing one by its files. Its
            // resources come with `limit`, as runc sets them: a device policy now would
            // deny the init the mknod of /dev's nodes.
            if !self.exists() {
                unit.start(&self.id, pid, self.v1.is_none())?;
            }
        }
        match &self.v1 {
            Some(v1) => v1.place(pid)?,
            None => {
                // libcgroups makes each missing component after checking that it is
                // missing: two containers created at once under one new parent (a pod's)
                // race there and one fails with EEXIST. create_dir_all does not; what it
                // cannot make (rootless) is left to libcgroups, which knows what to allow.
                // The parents only: libcgroups enables the controllers on the way down
                // only when it makes the leaf (a leaf that exists is joined as it is, and
                // one made here had no controller files: every v2 limit failed).
                let own = self.path.strip_prefix("/").unwrap_or(&self.path);
                if let Some(parent) = Path::new(ROOT).join(own).parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                self.manager()?
                    .add_task(Pid::from_raw(pid))
                    .map_err(|e| err("add init to", &self.path, e))?
            }
        }
        if let Some(hugepages) = self.hybrid_hugepages(resources) {
            hybrid_hugetlb::apply(&self.path, pid, &hugepages)?;
        }
        Ok(())
    }

    /// `exec --cgroup`: place `pid` in an existing sub-cgroup of the container's.
    pub fn enter_sub(&self, pid: i32, sub: &sub::SubCgroups) -> Result<()> {
        if self.none {
            return Err(no_cgroup("--cgroup"));
        }
        if let Some(v1) = &self.v1 {
            return v1.place_sub(pid, sub);
        }
        let rel = match sub.for_controllers(&[]) {
            Some(rel) => rel,
            None => {
                return Err(Error::Cgroup(
                    "--cgroup: cgroup v2 has no per-controller paths: give PATH alone".into(),
                ))
            }
        };
        let own = self.path.strip_prefix("/").unwrap_or(&self.path);
        let procs = Path::new(ROOT).join(own).join(rel).join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|e| sub::join_error(pid, &procs, &e))
    }

    fn hybrid_hugepages(
        &self,
        resources: Option<&LinuxResources>,
    ) -> Option<Vec<oci_spec::runtime::LinuxHugepageLimit>> {
        let hugepages = resources?.hugepage_limits().clone().unwrap_or_default();
        // v1 hierarchies come from the mount-table read `open` did; no second read here.
        let hybrid = !hugepages.is_empty()
            && self.v1.as_ref().is_some_and(|v1| !v1.has("hugetlb"))
            && hybrid_hugetlb::on_unified_mount();
        hybrid.then_some(hugepages)
    }

    /// Apply the config's resources (but the hybrid hugepage limits `enter` applied).
    pub fn limit(
        &self,
        resources: Option<&LinuxResources>,
        prefetch: Option<Prefetch>,
    ) -> Result<()> {
        self.finish(prefetch)?;
        // systemd's properties first (its device program too), the files and our device
        // filter after them, as runc.
        if let Some((unit, r)) = self.unit.as_ref().zip(resources.filter(|_| !self.none)) {
            unit.set(r, self.v1.is_none())?;
        }
        self.v2_devices(resources.and_then(|r| r.devices().as_deref()).or(Some(&[])))?;
        let Some(resources) = resources.filter(|_| !self.none) else {
            // v1 without linux.resources: still the default rules, deny by default (the
            // cgroup inherits its parent's allow-all otherwise), as runc.
            return match self.v1.as_ref().filter(|_| !self.none) {
                Some(v1) => v1_default_devices(v1),
                None => Ok(()),
            };
        };
        if let Some(v1) = self.v1.as_ref().filter(|_| self.v1_devices_only(resources)) {
            return v1.apply_device_rules(resources.devices().as_deref().unwrap_or_default());
        }
        let mut resources = resources.clone();
        if self.hybrid_hugepages(Some(&resources)).is_some() {
            resources.set_hugepage_limits(None);
        }
        let disable_oom_killer = resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false);
        self.apply(&resources, disable_oom_killer, "apply linux.resources to")
    }

    /// On v1, resources with nothing but device rules (the default config's) are
    /// written here, without libcgroups' manager, whose opening reads the mount table
    /// and /proc/self/cgroup once per controller.
    fn v1_devices_only(&self, r: &LinuxResources) -> bool {
        self.v1.is_some()
            && r.memory().is_none()
            && r.cpu().is_none()
            && r.pids().is_none()
            && r.block_io().is_none()
            && r.hugepage_limits().as_ref().is_none_or(Vec::is_empty)
            && r.network().is_none()
            && r.rdma().is_none()
            && r.unified().as_ref().is_none_or(|u| u.is_empty())
    }

    /// `capsa update`: apply new resources to the existing cgroup (`resources.devices`:
    /// the container's own rules, set again as the minimal change).
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if self.none {
            return Err(no_cgroup("update"));
        }
        if let Some(rules) = resources.devices().as_deref().filter(|_| self.v1.is_none()) {
            // checked before anything is changed
            v2_devices::from_config(rules)?;
        }
        // systemd's properties first, the files after them, as runc.
        if let Some(unit) = &self.unit {
            unit.set(resources, self.v1.is_none())?;
        }
        // Nothing but the device rules (`update` with no value given, or with ones the
        // host left unchanged): written in-house, as at create.
        if let Some(v1) = self.v1.as_ref().filter(|_| self.v1_devices_only(resources)) {
            return match resources.devices() {
                Some(rules) => v1.apply_device_rules(rules),
                None => Ok(()),
            };
        }
        self.apply(resources, false, "update resources of")?;
        // New device rules replace the old ones; none given: the old ones stay.
        self.v2_devices(resources.devices().as_deref())
    }

    /// On cgroup v2, where libcgroups (without its eBPF feature) would ignore them: the
    /// device rules `rules` (None: leave them) and the defaults, as an eBPF program.
    fn v2_devices(&self, rules: Option<&[oci_spec::runtime::LinuxDeviceCgroup]>) -> Result<()> {
        if self.none && self.v1.is_none() && is_unified() {
            tracing::debug!(
                "no cgroup of its own (rootless, not delegated): linux.resources.devices not \
                 enforced, as runc"
            );
        }
        let Some(rules) = rules.filter(|_| !self.none && self.v1.is_none()) else {
            return Ok(());
        };
        let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
        v2_devices::apply(&Path::new(ROOT).join(rel), rules)
    }

    /// libcgroups' manager with what it applies as runc does; on v1, what it does not
    /// (`v1_limits`) written after it.
    fn apply(
        &self,
        resources: &LinuxResources,
        disable_oom_killer: bool,
        what: &str,
    ) -> Result<()> {
        let (rest, own) = match &self.v1 {
            Some(_) => {
                let (rest, own) = v1_limits::split(resources, resources.devices().as_deref())?;
                (rest, Some(own))
            }
            None => (resources.clone(), None),
        };
        let opt = ControllerOpt {
            resources: &rest,
            disable_oom_killer,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager()?
            .apply(&opt)
            .map_err(|e| err(what, &self.path, e))?;
        match (own, &self.v1) {
            (Some(own), Some(v1)) => own.apply(|c| v1.dir_of(c).map(Path::to_path_buf)),
            _ => Ok(()),
        }
    }

    pub fn stats(&self) -> Result<libcgroups::stats::Stats> {
        if self.none {
            return Err(no_cgroup("stats"));
        }
        self.manager()?
            .stats()
            .map_err(|e| Error::Cgroup(format!("stats: {e}")))
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        if self.none {
            return Ok(pidns_members(self.init.get()));
        }
        if let Some(v1) = &self.v1 {
            return Ok(v1.pids());
        }
        Ok(self
            .manager()?
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
        if self.none {
            return Err(no_cgroup("pause/resume"));
        }
        self.manager()?
            .freeze(state)
            .map_err(|e| Error::Cgroup(format!("freeze: {e}")))
    }

    /// Kill whatever is left (thawing first: a frozen task cannot die) and remove the cgroup,
    /// retrying while dying tasks keep it busy.
    pub fn destroy(&self, path: &Path) -> Result<()> {
        if self.none {
            for pid in self.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            }
            return Ok(());
        }
        // The common case, a container whose processes are gone: the v1 directories go
        // at the first rmdir, with nothing to read, thaw or kill.
        // (A systemd unit is stopped first, below.)
        if self.unit.is_none() && self.v1.as_ref().is_some_and(V1Dirs::remove_if_empty) {
            hybrid_hugetlb::remove(path);
            return Ok(());
        }
        if is_frozen(path) {
            match &self.v1 {
                Some(v1) => v1.thaw(),
                None => {
                    let _ = self.freeze(false);
                }
            }
        }
        if let Some(unit) = &self.unit {
            // Stopping the scope kills what is left in it and removes its cgroup; on v1
            // the hierarchies systemd does not manage are ours to clean below.
            // A frozen scope is thawed above: its processes must run to die.
            unit.stop()?;
            if self.v1.is_none() && !self.exists() {
                return Ok(());
            }
        }
        let mut last = None;
        for _ in 0..10 {
            if let Ok(pids) = self.pids() {
                for pid in pids {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                }
            }
            let removed = match &self.v1 {
                Some(v1) => v1.remove(),
                None => self.manager()?.remove().map_err(|e| err("remove", path, e)),
            };
            match removed {
                Ok(()) => {
                    if self.v1.is_some() {
                        hybrid_hugetlb::remove(path);
                    }
                    return Ok(());
                }
                Err(e) => last = Some(e.to_string()),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(Error::Cgroup(last.unwrap_or_default()))
    }
}

/// The default v1 device rules of a config without `linux.resources`, but for a rootless
/// runtime (not root, or root of a user namespace), which may not write devices.deny even
/// in a delegated cgroup: skipped and logged, as runc.
fn v1_default_devices(v1: &V1Dirs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() || crate::rootless::in_user_namespace() {
        tracing::debug!("rootless: no device rules on cgroup v1, as runc");
        return Ok(());
    }
    v1.apply_device_rules(&[])
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

/// The cgroup of process `pid` ("self" for this one) per hierarchy, from its
/// /proc/<pid>/cgroup, keyed by controller list ("" for cgroup2).
pub fn memberships(pid: &str) -> std::collections::HashMap<String, String> {
    capsa_linux::read_small(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

pub(crate) fn is_unified() -> bool {
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

/// Whether /sys/fs/cgroup is the unified (v2) hierarchy.
pub fn is_unified_host() -> bool {
    is_unified()
}

/// The directory whose freezer holds the container's processes (CRIU freezes them
/// through it): the v2 cgroup itself, or its directory in the v1 freezer hierarchy.
pub fn freezer_dir(path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if is_unified() {
        Path::new(ROOT).join(rel)
    } else {
        Path::new(ROOT).join("freezer").join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_next_to_our_v2_cgroup() {
        let own = own_v2_cgroup("0::/user.slice/deleg/init\n");
        assert_eq!(
            default_path(own.as_deref(), "c1"),
            Path::new("/user.slice/deleg/c1")
        );
        assert_eq!(own_v2_cgroup("1:name=systemd:/x\n"), None);
        assert_eq!(default_path(None, "c1"), Path::new("/c1"));
        let root = own_v2_cgroup("0::/\n");
        assert_eq!(default_path(root.as_deref(), "c1"), Path::new("/c1"));
    }
}
