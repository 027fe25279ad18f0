//! Loading and validating a bundle's config.json (OCI runtime spec 1.x, through oci-spec).
//!
//! Every error names the field of config.json that is wrong, so users and clients can fix it.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{Error, Result};

mod json_path;

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
        let spec = parse(&data, &config)?;
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

/// Parses config.json's bytes (`config` only names the file in the error). Public as the
/// config fuzz target's entry point, with [`validate`]. A type error names the field by its path (`process.user.uid`), not only by line and column.
pub fn parse(data: &[u8], config: &Path) -> Result<Spec> {
    serde_json::from_slice(data).map_err(|e| {
        let field = match json_path::at(data, e.line(), e.column()) {
            p if p.is_empty() => p,
            p => format!("{p}: "),
        };
        Error::Config(format!("{}: {field}{e}", config.display()))
    })
}

/// Checks that serde cannot express. Cheap: runs on every create.
pub fn validate(spec: &Spec, rootfs: &Path) -> Result<()> {
    let cfg = |m: String| Err(Error::Config(m));
    let version = spec.version();
    if version.is_empty() {
        return cfg("ociVersion: missing".into());
    }
    if !version.starts_with("1.") {
        return cfg(format!(
            "ociVersion {version:?} is not supported (want 1.x)"
        ));
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.path().as_os_str().is_empty())
    {
        // an empty path would make the bundle dir itself the root filesystem
        return cfg("root.path: missing".into());
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
    if let Some(size) = process.console_size() {
        // the kernel's winsize is 16 bits wide: a larger value would be silently truncated
        for (name, v) in [("height", size.height()), ("width", size.width())] {
            if v > u64::from(u16::MAX) {
                return cfg(format!(
                    "process.consoleSize.{name} {v} is larger than {}",
                    u16::MAX
                ));
            }
        }
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
            if m.destination()
                .components()
                .any(|c| c == Component::ParentDir)
            {
                return cfg(format!(
                    "mounts[{i}].destination {:?} must not contain '..'",
                    m.destination()
                ));
            }
        }
    }
    validate_hooks(spec)?;
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
            check_sysctl(key, &has)?;
        }
    }
    Ok(())
}

/// Each hook's path absolute and its timeout, if any, above zero (config.md, POSIX hooks).
fn validate_hooks(spec: &Spec) -> Result<()> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    let kinds = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (kind, hooks) in kinds {
        for (i, hook) in hooks.as_deref().unwrap_or_default().iter().enumerate() {
            if !hook.path().is_absolute() {
                return Err(Error::Config(format!(
                    "hooks.{kind}[{i}].path {:?} must be an absolute path",
                    hook.path()
                )));
            }
            if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
                return Err(Error::Config(format!(
                    "hooks.{kind}[{i}].timeout {t} must be greater than zero"
                )));
            }
        }
    }
    Ok(())
}

/// Only sysctls that live in one of the container's own namespaces may be set: anything
/// else would change the host (runc's rules).
fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    let refuse = |why: &str| Err(Error::Config(format!("linux.sysctl {key:?}: {why}")));
    if key.is_empty() || key.contains("..") || key.contains('/') {
        return refuse("invalid name");
    }
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (ns, name) = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        (LinuxNamespaceType::Ipc, "ipc")
    } else if key.starts_with("net.") {
        (LinuxNamespaceType::Network, "network")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        (LinuxNamespaceType::Uts, "uts")
    } else {
        return refuse("not namespaced: setting it would change the host");
    };
    if !has(ns) {
        return refuse(&format!("needs a {name} namespace"));
    }
    Ok(())
}
