//! What CRIU must be told about the container's outside, as runc tells it (so images are
//! interchangeable): mounts whose source is outside the container (binds, v1 cgroup
//! hierarchies, the null device of masked files, device nodes) as external mounts keyed
//! by their path in the container; namespaces joined by path as external namespaces; and
//! which of the init's stdio were pipes (`descriptors.json`), inherited again on restore.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use crate::rootfs::{fd_path, InRoot};
use crate::syscall::{Linux, Syscall};
use crate::{Error, Result};

pub const DESCRIPTORS: &str = "descriptors.json";

pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

fn is_cgroup(m: &Mount) -> bool {
    m.typ().as_deref() == Some("cgroup")
}

fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// The path of a namespace the container joins (`linux.namespaces[].path`).
pub fn namespace_path(spec: &Spec, t: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == t)?
        .path()
        .clone()
}

/// `dest` as the container sees it once symlinks in the rootfs are followed (runc's
/// SecureJoin): a bind onto /conf -> /real/conf is the mount at /real/conf.
pub fn in_root(rootfs: &Path, dest: &Path) -> PathBuf {
    let lexical = clean(dest);
    let Ok(root) = InRoot::open(rootfs) else {
        return lexical;
    };
    let Ok(fd) = root.resolve(&lexical) else {
        return lexical;
    };
    match std::fs::read_link(fd_path(&fd)) {
        Ok(real) => match real.strip_prefix(rootfs) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) if real == rootfs => PathBuf::from("/"),
            Err(_) => lexical,
        },
        Err(_) => lexical,
    }
}

/// An absolute path without `.`, `..` or repeated slashes (never above /).
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The v1 hierarchies a container without its own cgroup namespace sees as binds under
/// its cgroup mount: (name under /sys/fs/cgroup, host mount point, key in
/// /proc/PID/cgroup: the controllers, "" for cgroup2).
fn v1_hierarchies() -> Vec<(String, String, String)> {
    capsa_linux::mountinfo::read()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .filter_map(|m| {
            let name = m.mount_point.strip_prefix("/sys/fs/cgroup/")?.to_string();
            if name.contains('/') {
                return None;
            }
            let key = if m.fstype == "cgroup2" {
                String::new()
            } else {
                m.super_options
                    .split(',')
                    .filter(|o| *o != "rw" && *o != "ro")
                    .collect::<Vec<_>>()
                    .join(",")
            };
            Some((name, m.mount_point.clone(), key))
        })
        .collect()
}

/// cgroup v1 (or hybrid) without a cgroup namespace: the cgroup mount is binds to map.
fn cgroup_binds_external(spec: &Spec) -> bool {
    !crate::cgroups::is_unified_host() && !has_namespace(spec, LinuxNamespaceType::Cgroup)
}

fn devices(spec: &Spec) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["null", "zero", "full", "random", "urandom", "tty"]
        .iter()
        .map(|n| Path::new("/dev").join(n))
        .collect();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        if !v.contains(d.path()) {
            v.push(d.path().clone());
        }
    }
    v
}

/// The external mounts of a dump: each keyed, and valued, by its path in the container.
pub fn dump_mounts(spec: &Spec, rootfs: &Path, init: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let same = |p: PathBuf| {
        let s = p.display().to_string();
        (s.clone(), s)
    };
    for m in spec.mounts().iter().flatten() {
        if is_bind(m) {
            out.push(same(in_root(rootfs, m.destination())));
        } else if is_cgroup(m) && cgroup_binds_external(spec) {
            let dest = in_root(rootfs, m.destination());
            for (name, _, _) in v1_hierarchies() {
                out.push(same(dest.join(name)));
            }
        }
    }
    // Masked files are binds of /dev/null: one key for all, mapped back on restore.
    for p in spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        let inside = format!("/proc/{init}/root{}", clean(Path::new(p)).display());
        if std::fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
            out.push((p.clone(), "/dev/null".into()));
        }
    }
    out.extend(devices(spec).into_iter().map(same));
    out
}

/// The external mounts of a restore: the same keys, valued by their source on this
/// host. `criu` is the restoring process, already in the container's cgroup (the v1
/// hierarchies are bound from its cgroup there).
pub fn restore_mounts(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    criu: i32,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if is_bind(m) {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_relative() {
                bundle.join(src)
            } else {
                src
            };
            out.push((
                in_root(rootfs, m.destination()).display().to_string(),
                src.display().to_string(),
            ));
        } else if is_cgroup(m) && cgroup_binds_external(spec) {
            let dest = in_root(rootfs, m.destination());
            let own = crate::cgroups::memberships(&criu.to_string());
            for (name, mount, key) in v1_hierarchies() {
                let rel = own.get(&key).map(String::as_str).unwrap_or("/");
                let src = Path::new(&mount).join(rel.trim_start_matches('/'));
                out.push((
                    dest.join(name).display().to_string(),
                    src.display().to_string(),
                ));
            }
        }
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty());
    if masked {
        out.push(("/dev/null".into(), "/dev/null".into()));
    }
    for d in devices(spec) {
        let s = d.display().to_string();
        out.push((s.clone(), s));
    }
    out
}

/// CRIU's `--external` for namespaces the container joined by path (network from 3.11,
/// pid from 3.15): `net[<inode>]:extRootNetNS`, so the dump does not include them.
pub fn dump_namespaces(spec: &Spec, version: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (t, name, min) in external_kinds() {
        if version < min {
            continue;
        }
        let Some(path) = namespace_path(spec, t) else {
            continue;
        };
        let st = nix::sys::stat::stat(&path)
            .map_err(|e| Error::sys(format!("stat namespace {}", path.display()), e))?;
        out.push(format!("{name}[{}]:{}", st.st_ino, ns_key(name)));
    }
    Ok(out)
}

fn external_kinds() -> [(LinuxNamespaceType, &'static str, u32); 2] {
    [
        (LinuxNamespaceType::Network, "net", 31100),
        (LinuxNamespaceType::Pid, "pid", 31500),
    ]
}

/// runc's key for an external namespace: "extRootNetNS", "extRootPidNS".
fn ns_key(name: &str) -> String {
    let mut c = name.chars();
    let cap: String = c
        .next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default();
    format!("extRoot{cap}NS")
}

/// How a restore enters the namespaces the config joins by path.
#[derive(Default)]
pub struct RestoreNamespaces {
    /// CRIU's `join_ns`: (kind, path).
    pub join: Vec<(String, String)>,
    /// External namespaces: the open namespace and its key (CRIU's `inherit_fd`).
    pub inherit: Vec<(OwnedFd, String)>,
}

pub fn restore_namespaces(spec: &Spec, version: u32) -> Result<RestoreNamespaces> {
    let mut r = RestoreNamespaces::default();
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in nss {
        let Some(path) = ns.path().clone() else {
            continue;
        };
        if let Some((_, name, min)) = external_kinds().into_iter().find(|k| k.0 == ns.typ()) {
            if version < min {
                continue;
            }
            let f = std::fs::File::open(&path).map_err(|e| {
                Error::Other(format!(
                    "linux.namespaces: the {name} namespace {} must exist to restore into it: {e}",
                    path.display()
                ))
            })?;
            r.inherit.push((f.into(), ns_key(name)));
            continue;
        }
        let name =
            match ns.typ() {
                LinuxNamespaceType::Cgroup => return Err(Error::Other(
                    "linux.namespaces: CRIU cannot restore into a cgroup namespace joined by path"
                        .into(),
                )),
                LinuxNamespaceType::Mount => "mnt",
                LinuxNamespaceType::Uts => "uts",
                LinuxNamespaceType::Ipc => "ipc",
                LinuxNamespaceType::User => "user",
                LinuxNamespaceType::Time => "time",
                _ => continue,
            };
        r.join.push((name.into(), path.display().to_string()));
    }
    Ok(r)
}

/// Record what the init's stdio are (`pipe:[N]`, `/dev/null`, ...), as runc does.
pub fn write_descriptors(images: &Path, pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|i| {
            std::fs::read_link(format!("/proc/{pid}/fd/{i}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    let data = serde_json::to_vec(&fds).map_err(|e| Error::Other(e.to_string()))?;
    let p = images.join(DESCRIPTORS);
    std::fs::write(&p, data).map_err(|e| Error::io("write", &p, e))
}

/// The dumped init's stdio that were pipes: (its fd number, CRIU's key "pipe:[N]"). On
/// restore our own stdio at those numbers take their place.
pub fn read_pipes(images: &Path) -> Result<Vec<(i32, String)>> {
    let p = images.join(DESCRIPTORS);
    let data = std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
    let fds: Vec<String> =
        serde_json::from_slice(&data).map_err(|e| Error::Other(format!("{}: {e}", p.display())))?;
    Ok(fds
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s.contains("pipe:"))
        .map(|(i, s)| (i as i32, s))
        .collect())
}

/// The mount points a restore needs in the rootfs, made as `create` makes them (CRIU
/// mounts, it does not create mount points), except under a tmpfs of the config, whose
/// content comes from the images. Bind mounts are mounted meanwhile, so that mount points
/// inside them can be made (runc#2748); dropping this unmounts them.
pub struct MountPoints {
    binds: Vec<PathBuf>,
    rootfs: PathBuf,
}

impl MountPoints {
    pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<MountPoints> {
        let root = InRoot::open(rootfs).map_err(|e| Error::io("open rootfs", rootfs, e))?;
        let mut made = MountPoints {
            binds: Vec::new(),
            rootfs: rootfs.to_path_buf(),
        };
        let mounts = spec.mounts().clone().unwrap_or_default();
        let tmpfs: Vec<PathBuf> = mounts
            .iter()
            .filter(|m| m.typ().as_deref() == Some("tmpfs"))
            .map(|m| clean(m.destination()))
            .collect();
        for m in &mounts {
            let dest = clean(m.destination());
            if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) || is_cgroup(m) {
                continue;
            }
            let err = |what: &str, e: std::io::Error| {
                Error::Other(format!(
                    "restore: mount point {}: {what}: {e}",
                    dest.display()
                ))
            };
            if !is_bind(m) {
                root.mkdir_all(&dest, 0o755).map_err(|e| err("mkdir", e))?;
                continue;
            }
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_relative() {
                bundle.join(src)
            } else {
                src
            };
            let is_dir = std::fs::metadata(&src)
                .map_err(|e| err(&format!("bind source {}", src.display()), e))?
                .is_dir();
            let target = if is_dir {
                root.mkdir_all(&dest, 0o755).map_err(|e| err("mkdir", e))?
            } else {
                root.create_file(&dest, 0o644)
                    .map_err(|e| err("create", e))?
            };
            Linux
                .mount(
                    Some(&src),
                    &fd_path(&target),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(|e| {
                    Error::sys(
                        format!("restore: bind {} for its mount points", dest.display()),
                        e,
                    )
                })?;
            made.binds.push(dest);
        }
        Ok(made)
    }
}

impl Drop for MountPoints {
    fn drop(&mut self) {
        let Ok(root) = InRoot::open(&self.rootfs) else {
            return;
        };
        for dest in self.binds.iter().rev() {
            if let Ok(fd) = root.resolve(dest) {
                if let Err(e) = Linux.umount2(&fd_path(&fd.as_fd()), MntFlags::MNT_DETACH) {
                    tracing::warn!("restore: unmount {}: {e}", dest.display());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_symlinks_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(rootfs.join("real/conf")).unwrap();
        std::os::unix::fs::symlink("/real/conf", rootfs.join("conf")).unwrap();
        assert_eq!(
            in_root(&rootfs, Path::new("/conf")),
            Path::new("/real/conf")
        );
        assert_eq!(in_root(&rootfs, Path::new("/a/../b/")), Path::new("/b"));
        assert_eq!(in_root(&rootfs, Path::new("/")), Path::new("/"));
    }

    #[test]
    fn namespace_keys_as_runc() {
        assert_eq!(ns_key("net"), "extRootNetNS");
        assert_eq!(ns_key("pid"), "extRootPidNS");
    }

    #[test]
    fn only_pipes_are_inherited() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DESCRIPTORS),
            r#"["/dev/null","pipe:[123]","pipe:[456]"]"#,
        )
        .unwrap();
        assert_eq!(
            read_pipes(dir.path()).unwrap(),
            vec![(1, "pipe:[123]".to_string()), (2, "pipe:[456]".to_string())]
        );
    }

    #[test]
    fn cleaned_paths_stay_under_root() {
        assert_eq!(clean(Path::new("../../etc//x/./y")), Path::new("/etc/x/y"));
    }
}
