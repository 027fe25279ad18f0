//! Loading and validating a bundle's config.json (OCI runtime spec 1.x, through oci-spec).
//!
//! Every error names the field of config.json that is wrong, so users and clients can fix it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{Error, Result};

/// A bundle on disk: its absolute directory, its parsed config, the absolute rootfs path.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("bundle", dir, e))?;
        let config = dir.join("config.json");
        let data = std::fs::read(&config).map_err(|e| Error::io("read", &config, e))?;
        let spec: Spec = serde_json::from_slice(&data)
            .map_err(|e| Error::Config(format!("{}: {e}", config.display())))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::Config("root: missing".into()))?;
        let rootfs = dir.join(root.path());
        validate(&spec, &rootfs)?;
        let rootfs = std::fs::canonicalize(&rootfs)
            .map_err(|e| Error::Config(format!("root.path {}: {e}", rootfs.display())))?;
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Checks that serde cannot express. Cheap: runs on every create.
pub fn validate(spec: &Spec, rootfs: &Path) -> Result<()> {
    let cfg = |m: String| Err(Error::Config(m));
    let version = spec.version();
    if !version.starts_with("1.") {
        return cfg(format!(
            "ociVersion {version:?} is not supported (want 1.x)"
        ));
    }
    match std::fs::metadata(rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return cfg(format!("root.path {} is not a directory", rootfs.display())),
        Err(e) => return cfg(format!("root.path {}: {e}", rootfs.display())),
    }
    let process = match spec.process() {
        Some(p) => p,
        None => return cfg("process: missing".into()),
    };
    match process.args() {
        Some(a) if !a.is_empty() => {}
        _ => return cfg("process.args: must not be empty".into()),
    }
    if !process.cwd().is_absolute() {
        return cfg(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        ));
    }
    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            if !m.destination().is_absolute() {
                return cfg(format!(
                    "mounts[{i}].destination {:?} must be an absolute path",
                    m.destination()
                ));
            }
        }
    }
    let linux = match spec.linux() {
        Some(l) => l,
        None => return Ok(()),
    };
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return cfg(format!(
                "linux.namespaces[{i}]: duplicate namespace {:?}",
                ns.typ()
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return cfg(format!("linux.namespaces[{i}].path {p:?} must be absolute"));
            }
            if let Err(e) = std::fs::metadata(p) {
                return cfg(format!("linux.namespaces[{i}].path {}: {e}", p.display()));
            }
        }
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !has(LinuxNamespaceType::User) {
        return cfg("linux.uidMappings/gidMappings need a user namespace".into());
    }
    if spec.hostname().is_some() && !has(LinuxNamespaceType::Uts) {
        return cfg("hostname: setting it needs a uts namespace".into());
    }
    if spec.domainname().is_some() && !has(LinuxNamespaceType::Uts) {
        return cfg("domainname: setting it needs a uts namespace".into());
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            if key.contains("..") || key.contains('/') && key.contains('.') {
                return cfg(format!("linux.sysctl {key:?}: invalid name"));
            }
            let ipc = key.starts_with("kernel.shm")
                || key.starts_with("kernel.msg")
                || key.starts_with("kernel.sem")
                || key.starts_with("fs.mqueue.");
            if ipc && !has(LinuxNamespaceType::Ipc) {
                return cfg(format!("linux.sysctl {key:?} needs an ipc namespace"));
            }
            if key.starts_with("net.") && !has(LinuxNamespaceType::Network) {
                return cfg(format!("linux.sysctl {key:?} needs a network namespace"));
            }
        }
    }
    Ok(())
}
