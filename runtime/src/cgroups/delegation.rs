//! Rootless: whether the container's cgroup is ours to manage.
//!
//! Not root, a container gets a cgroup only where one was delegated to us (the directory
//! that would hold it is writable by us, in every hierarchy the manager touches). Where
//! none was, a container without limits runs in the caller's cgroup (said at debug
//! level); a container with limits is refused with an error that names the cgroup.

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};
use oci_spec::runtime::LinuxResources;

use crate::{Error, Result};
use capsa_linux::mountinfo;

/// What `create` does about the container's cgroup.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Manage,
    /// No cgroup: run in the caller's; the reason, for the debug log.
    Skip(String),
}

/// Decide for a container at `path` (relative to the hierarchies' roots).
pub fn decide(path: &Path, rootless: bool, resources: Option<&LinuxResources>) -> Result<Decision> {
    if !rootless {
        return Ok(Decision::Manage);
    }
    let limits = limits_set(resources);
    let why = match not_writable(path) {
        None => {
            return match v1_limits_refused(rootless, &limits) {
                Some(e) => Err(e),
                None => Ok(Decision::Manage),
            }
        }
        Some(why) => why,
    };
    if !limits.is_empty() {
        return Err(Error::Cgroup(format!(
            "linux.resources sets {} but running rootless (uid {}) the cgroup {} is not \
             delegated to us: {why}; delegate it (a cgroup directory owned by this user) \
             or remove the limits",
            limits.join(", "),
            nix::unistd::geteuid(),
            path.display()
        )));
    }
    tracing::debug!(
        "rootless: no cgroup for {}: {why}; the container stays in ours",
        path.display()
    );
    Ok(Decision::Skip(why))
}

/// `--cgroup-manager disabled`: no cgroup, so no limits either (refused, naming them,
/// rather than dropped without a word).
pub fn disabled(resources: Option<&LinuxResources>) -> Result<Decision> {
    let limits = limits_set(resources);
    if !limits.is_empty() {
        return Err(Error::Cgroup(format!(
            "linux.resources sets {} but --cgroup-manager disabled gives the container no \
             cgroup to hold them; remove the limits or enable the cgroup manager",
            limits.join(", ")
        )));
    }
    tracing::debug!("--cgroup-manager disabled: no cgroup, the container stays in ours");
    Ok(Decision::Skip("--cgroup-manager disabled".into()))
}

/// Rootless limits on cgroup v1: libcgroups writes the v1 device controller's defaults with
/// every set of limits, and only root may write devices.allow. Refused up front, clearly,
/// rather than failing on devices.allow after half the limits are written.
pub fn v1_limits_refused(rootless: bool, limits: &[&str]) -> Option<Error> {
    if !rootless
        || limits.is_empty()
        // `--rootless true` as the host's root: devices.allow is ours to write (runc
        // applies the limits then too).
        || crate::rootless::is_host_root()
        || hierarchies().first().map(PathBuf::as_path) == Some(Path::new(super::ROOT))
    {
        return None;
    }
    Some(Error::Cgroup(format!(
        "linux.resources sets {}: running rootless, limits need cgroup v2 with a delegated \
         cgroup; this host has cgroup v1 controllers, whose device controller only root may \
         write",
        limits.join(", ")
    )))
}

/// The resources that need a cgroup. Device rules do not count: rootless, the user
/// namespace already keeps the container from making devices, and the device cgroup can
/// not be written without privilege (runc ignores them too).
pub fn limits_set(r: Option<&LinuxResources>) -> Vec<&'static str> {
    let Some(r) = r else { return Vec::new() };
    let mut out = Vec::new();
    if r.memory().is_some() {
        out.push("memory");
    }
    if r.cpu().is_some() {
        out.push("cpu");
    }
    if r.pids().is_some() {
        out.push("pids");
    }
    if r.block_io().is_some() {
        out.push("blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("hugepageLimits");
    }
    if r.network().is_some() {
        out.push("network");
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("rdma");
    }
    if r.unified().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("unified");
    }
    out
}

/// Why we cannot manage `path`, or None when we can: in every hierarchy, the cgroup's
/// directory (or, before it exists, its nearest existing parent) must be writable and its
/// cgroup.procs too.
fn not_writable(path: &Path) -> Option<String> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    for mount in hierarchies() {
        let dir = mount.join(rel);
        let (existing, exists) = nearest_existing(&dir, &mount);
        let flags = AccessFlags::W_OK | AccessFlags::X_OK;
        if let Err(e) = access(&existing, flags) {
            return Some(format!("{} is not writable: {e}", existing.display()));
        }
        if exists {
            let procs = existing.join("cgroup.procs");
            if let Err(e) = access(&procs, AccessFlags::W_OK) {
                return Some(format!("{} is not writable: {e}", procs.display()));
            }
        }
    }
    None
}

fn nearest_existing(dir: &Path, stop: &Path) -> (PathBuf, bool) {
    if dir.is_dir() {
        return (dir.to_path_buf(), true);
    }
    let mut cur = dir.to_path_buf();
    while cur != stop && cur.pop() {
        if cur.is_dir() {
            return (cur, false);
        }
    }
    (stop.to_path_buf(), false)
}

/// The hierarchies the cgroup manager writes to: the cgroup2 root on a unified host, else
/// every v1 hierarchy with a controller it manages (not name=systemd, rdma, misc).
fn hierarchies() -> Vec<PathBuf> {
    let entries = mountinfo::read();
    if entries
        .iter()
        .any(|m| m.mount_point == super::ROOT && m.fstype == "cgroup2")
    {
        return vec![PathBuf::from(super::ROOT)];
    }
    entries
        .iter()
        .filter(|m| m.fstype == "cgroup" && m.mount_point.starts_with(super::ROOT))
        .filter(|m| {
            m.super_options
                .split(',')
                .any(|o| super::v1_dirs::CONTROLLERS.contains(&o))
        })
        .map(|m| PathBuf::from(&m.mount_point))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_need_a_cgroup() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":1000000}}"#,
        )
        .unwrap();
        assert_eq!(limits_set(Some(&r)), vec!["memory"]);
        let d: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(limits_set(Some(&d)).is_empty());
        assert!(limits_set(None).is_empty());
    }

    #[test]
    fn root_manages_always() {
        assert_eq!(
            decide(Path::new("/x"), false, None).unwrap(),
            Decision::Manage
        );
    }

    #[test]
    fn nearest_existing_parent() {
        let tmp = std::env::temp_dir();
        let (p, exists) = nearest_existing(&tmp.join("no-such-capsa-dir/a/b"), Path::new("/"));
        assert_eq!(p, tmp);
        assert!(!exists);
    }
}
