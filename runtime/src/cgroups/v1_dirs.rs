//! The container's directory in each cgroup v1 hierarchy, found with one read of
//! /proc/self/mountinfo. Placing a process and removing the cgroup need nothing more;
//! libcgroups' v1 manager, which reads the mount table and /proc/self/cgroup once for
//! each of its twelve controllers (~1 ms per open), is only opened for what needs its
//! controllers: limits, stats, freezing.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::sub::{self, SubCgroups};
use super::v1_devices;
use crate::{Error, Result};
use capsa_linux::mountinfo::MountEntry;
use oci_spec::runtime::LinuxDeviceCgroup;

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

/// The named hierarchy systemd keeps on a v1 host.
const SYSTEMD: &str = "name=systemd";

struct Hierarchy {
    mount: PathBuf,
    /// The container's directory in it.
    dir: PathBuf,
    controllers: Vec<String>,
}

pub struct V1Dirs {
    dirs: Vec<Hierarchy>,
}

/// A cgroup directory we may not write (not delegated to us, or mounted read-only).
fn not_ours(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    )
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cgroup(format!("{what} {}: {e}", path.display()))
}

impl V1Dirs {
    /// The directories of cgroup `path` (relative to each hierarchy's root) in the v1
    /// hierarchies of the mount table `mounts`.
    pub fn from_mounts(mounts: &[MountEntry], path: &Path) -> V1Dirs {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let mut dirs: Vec<Hierarchy> = Vec::new();
        for m in mounts {
            let controllers: Vec<String> = match m.fstype.as_str() {
                // Hybrid: the cgroup2 mount beside the v1 controllers. runc places the
                // container there too, so its processes have a cgroup of their own in every
                // hierarchy (`0::/<path>` in /proc/PID/cgroup), for exec as for the init.
                "cgroup2" if m.root == "/" => Vec::new(),
                // systemd's named hierarchy: runc joins it too, so every line of
                // /proc/PID/cgroup names the container's cgroup.
                "cgroup" => m
                    .super_options
                    .split(',')
                    .filter(|o| CONTROLLERS.contains(o) || *o == SYSTEMD)
                    .map(String::from)
                    .collect(),
                _ => continue,
            };
            let unified = m.fstype == "cgroup2";
            // A hierarchy mounted twice is one hierarchy.
            if (controllers.is_empty() && !unified)
                || dirs.iter().any(|h| h.controllers == controllers)
            {
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

    /// Create the directories and move `pid` into each (systemd's named hierarchy and, on
    /// a hybrid host, the cgroup2 mount too). Those two carry no limits: where they are
    /// not ours to write (rootless, with only the controllers' hierarchies delegated; a
    /// read-only mount), the process stays where it is in them, as runc leaves them.
    pub fn place(&self, pid: i32) -> Result<()> {
        for h in &self.dirs {
            let dir = &h.dir;
            let extra = h.controllers.iter().all(|c| c == SYSTEMD);
            let left = |what: &str, path: &Path, e: &std::io::Error| {
                tracing::debug!("{what} {}: {e}: left (no limits there)", path.display());
            };
            if let Err(e) = std::fs::create_dir_all(dir) {
                if extra && not_ours(&e) {
                    left("create", dir, &e);
                    continue;
                }
                return Err(err("create", dir, e));
            }
            if h.controllers.iter().any(|c| c == "cpuset") {
                fill_cpuset(&h.mount, dir)?;
            }
            let procs = dir.join("cgroup.procs");
            if let Err(e) = std::fs::write(&procs, pid.to_string()) {
                if extra && not_ours(&e) {
                    left("write", &procs, &e);
                    continue;
                }
                return Err(err("write", &procs, e));
            }
        }
        Ok(())
    }

    /// `linux.resources.devices`, then the rules every container gets (libcgroups' and
    /// runc's defaults, `v1_devices::DEFAULT_RULES`), set as the minimal change from what
    /// devices.list has: nothing is written for what already holds, so a create into an
    /// existing cgroup or an update never makes the redundant `a` write the kernel
    /// refuses once the cgroup has children.
    pub fn apply_device_rules(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let Some(dir) = self.dir_of("devices") else {
            return Err(Error::Cgroup(
                "linux.resources.devices: no devices hierarchy on this host".into(),
            ));
        };
        tracing::debug!(
            "{}: {} device rules and the defaults",
            dir.display(),
            rules.len()
        );
        let target = v1_devices::container_rules(rules, "linux.resources.devices")?;
        v1_devices::set(dir, &target)
    }

    /// `exec --cgroup`: move `pid` into existing sub-cgroups of the container's, the same
    /// one in every hierarchy (`All`) or one per named controller (the others get the
    /// container's own). Nothing is created: a missing sub-cgroup is an error, as in runc.
    pub fn place_sub(&self, pid: i32, sub: &SubCgroups) -> Result<()> {
        if let SubCgroups::PerController(list) = sub {
            for (ctrl, _) in list {
                let known = ctrl.is_empty() && self.dirs.iter().any(|h| h.controllers.is_empty())
                    || self.has(ctrl);
                if !known {
                    return Err(Error::Cgroup(format!(
                        "--cgroup: unknown controller {ctrl:?}"
                    )));
                }
            }
        }
        for h in &self.dirs {
            let dir = match sub.for_controllers(&h.controllers) {
                Some(rel) => h.dir.join(rel),
                None => h.dir.clone(),
            };
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(|e| sub::join_error(pid, &procs, &e))?;
        }
        Ok(())
    }

    /// Whether some v1 hierarchy has `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.dir_of(controller).is_some()
    }

    pub fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    /// Every process in the cgroup and its descendants (read from the devices hierarchy, or
    /// the first one, as runc does).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dir_of("devices").or_else(|| {
            self.dirs
                .iter()
                .find(|h| h.controllers.iter().any(|c| c != SYSTEMD))
                .map(|h| h.dir.as_path())
        }) else {
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

    /// rmdir of every directory, which succeeds at once where no task and no sub-cgroup
    /// is left (cgroupfs takes the control files with the directory). True when all are
    /// gone; what could not go is left for `remove`.
    pub fn remove_if_empty(&self) -> bool {
        let mut all = true;
        for Hierarchy { dir, .. } in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => all = false,
            }
        }
        all
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

#[cfg(test)]
mod tests {
    use super::*;

    use capsa_linux::mountinfo;

    /// A v1 layout in a temp dir: cpu,cpuacct and cpuset and memory hierarchies (cpuset
    /// mounted twice), systemd's named one, another named one that is not ours, and a
    /// cgroup2 one (hybrid).
    fn hierarchies(root: &Path) -> Vec<MountEntry> {
        let line = |id: u32, dir: &str, fstype: &str, opts: &str| {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            format!(
                "{id} 1 0:{id} / {} rw - {fstype} cgroup rw,{opts}\n",
                root.join(dir).display()
            )
        };
        let text = [
            line(30, "cpu,cpuacct", "cgroup", "cpu,cpuacct"),
            line(31, "cpuset", "cgroup", "cpuset"),
            line(32, "cpuset-again", "cgroup", "cpuset"),
            line(33, "memory", "cgroup", "memory"),
            line(34, "systemd", "cgroup", "name=systemd"),
            line(36, "other", "cgroup", "name=other"),
            line(35, "unified", "cgroup2", "nsdelegate"),
        ]
        .concat();
        std::fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        mountinfo::parse(&text)
    }

    #[test]
    fn places_in_every_managed_hierarchy_once() {
        let t = tempfile::tempdir().unwrap();
        let dirs = V1Dirs::from_mounts(&hierarchies(t.path()), Path::new("/parent/ctr"));
        assert!(dirs.has("cpuacct") && dirs.has("memory") && !dirs.has("pids"));
        // A cgroupfs directory has its control files from birth; a temp dir needs them.
        let cpuset = t.path().join("cpuset");
        for d in [cpuset.join("parent"), cpuset.join("parent/ctr")] {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cpuset.cpus"), "").unwrap();
            std::fs::write(d.join("cpuset.mems"), "").unwrap();
        }
        dirs.place(4242).unwrap();
        for h in ["cpu,cpuacct", "cpuset", "memory"] {
            let procs = t.path().join(h).join("parent/ctr/cgroup.procs");
            assert_eq!(std::fs::read_to_string(procs).unwrap(), "4242", "{h}");
        }
        // Hybrid: the cgroup2 mount too, as runc.
        let unified = t.path().join("unified/parent/ctr/cgroup.procs");
        assert_eq!(std::fs::read_to_string(unified).unwrap(), "4242");
        // systemd's named hierarchy too, as runc.
        let named = t.path().join("systemd/parent/ctr/cgroup.procs");
        assert_eq!(std::fs::read_to_string(named).unwrap(), "4242");
        for skipped in ["cpuset-again", "other"] {
            assert!(!t.path().join(skipped).join("parent").exists(), "{skipped}");
        }
        // cpuset: cpus and mems filled down from the parent at each empty level.
        let ctr = cpuset.join("parent/ctr");
        assert_eq!(
            std::fs::read_to_string(ctr.join("cpuset.cpus")).unwrap(),
            "0-1"
        );
        assert_eq!(
            std::fs::read_to_string(ctr.join("cpuset.mems")).unwrap(),
            "0"
        );
        let mut pids = dirs.pids();
        pids.dedup();
        assert_eq!(pids, vec![4242]);
    }

    #[test]
    fn device_rules_then_the_defaults_as_the_minimal_change() {
        let t = tempfile::tempdir().unwrap();
        let mut mounts = hierarchies(t.path());
        let line = format!(
            "40 1 0:40 / {} rw - cgroup cgroup rw,devices\n",
            t.path().join("devices").display()
        );
        mounts.extend(mountinfo::parse(&line));
        let dir = t.path().join("devices/ctr");
        std::fs::create_dir_all(&dir).unwrap();
        let fresh = |list: &str| {
            for (f, v) in [
                ("devices.list", list),
                ("devices.allow", ""),
                ("devices.deny", ""),
            ] {
                std::fs::write(dir.join(f), v).unwrap();
            }
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let dirs = V1Dirs::from_mounts(&mounts, Path::new("/ctr"));
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]"#,
        )
        .unwrap();
        // A new cgroup (allow everything): the reset, then every exception, each file
        // opened once.
        fresh("a *:* rwm\n");
        dirs.apply_device_rules(&rules).unwrap();
        assert_eq!(read("devices.deny"), "a *:* rwm");
        let allowed = [
            "b *:* m",
            "c *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 10:200 rwm",
            "c 10:229 rw",
            "c 136:* rwm",
        ];
        assert_eq!(read("devices.allow"), allowed.concat());
        // The same rules on a cgroup that has them: nothing written.
        fresh(&allowed.map(|l| format!("{l}\n")).concat());
        dirs.apply_device_rules(&rules).unwrap();
        assert_eq!(
            (read("devices.allow"), read("devices.deny")),
            (String::new(), String::new())
        );
    }
}
