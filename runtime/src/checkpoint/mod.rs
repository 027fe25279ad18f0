//! `capsa checkpoint` and `capsa restore` through CRIU (`criu`: its RPC), as runc does
//! them: the same images (so a checkpoint moves between capsa and runc), the same
//! external mounts and namespaces, the same notifications.
//!
//! - `dump`: a running (or paused) container's processes to an image directory; unless
//!   `--leave-running` or `--pre-dump`, the container is then gone (runc's
//!   "checkpointed": `state` says it does not exist).
//! - `restore`: a new container (any id) from a bundle and an image directory; its
//!   processes are CRIU's, its cgroup and state are made as `create` makes them, and its
//!   status is `running`.

pub mod criu;
mod dump;
mod externals;
mod restore;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

pub use dump::checkpoint;
pub use restore::restore;

use crate::{Error, Result};
use rust_criu::rust_criu_protobuf::rpc::{Criu_cg_mode, Criu_opts};

/// What the command line asked of CRIU (runc's `CriuOpts`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The criu binary (runc's global `--criu`).
    pub criu: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    /// A pre-dump's images, relative to `image_path`.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub pre_dump: bool,
    pub manage_cgroups_mode: Option<CgroupsMode>,
    /// CLONE_NEW* flags of namespaces made empty on restore (the network's always).
    pub empty_ns: u32,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    /// CRIU writes a byte here once its lazy-pages server is ready.
    pub status_fd: Option<RawFd>,
    pub page_server: Option<(String, i32)>,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl CgroupsMode {
    pub fn parse(s: &str) -> Result<CgroupsMode> {
        match s {
            "soft" => Ok(CgroupsMode::Soft),
            "full" => Ok(CgroupsMode::Full),
            "strict" => Ok(CgroupsMode::Strict),
            "ignore" => Ok(CgroupsMode::Ignore),
            _ => Err(Error::Other(format!(
                "--manage-cgroups-mode {s:?}: must be soft, full, strict or ignore"
            ))),
        }
    }

    fn rpc(self) -> Criu_cg_mode {
        match self {
            CgroupsMode::Soft => Criu_cg_mode::SOFT,
            CgroupsMode::Full => Criu_cg_mode::FULL,
            CgroupsMode::Strict => Criu_cg_mode::STRICT,
            CgroupsMode::Ignore => Criu_cg_mode::IGNORE,
        }
    }
}

/// `--empty-ns`: the namespaces restored empty. capsa, as runc, does not manage network
/// devices, so the network namespace always is; it is also the only one CRIU accepts.
pub fn empty_ns_mask(names: &[String]) -> Result<u32> {
    let mut mask = libc::CLONE_NEWNET as u32;
    for n in names {
        match n.as_str() {
            "network" | "net" => mask |= libc::CLONE_NEWNET as u32,
            _ => {
                return Err(Error::Other(format!(
                    "--empty-ns {n:?}: not supported (only \"network\")"
                )))
            }
        }
    }
    Ok(mask)
}

/// `--page-server ADDRESS:PORT`.
pub fn parse_page_server(s: &str) -> Result<(String, i32)> {
    let bad = || Error::Other(format!("--page-server {s:?}: use ADDRESS:PORT"));
    let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.is_empty() {
        return Err(bad());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| Error::Other(format!("--page-server {s:?}: invalid port {port:?}")))?;
    if port == 0 {
        return Err(bad());
    }
    Ok((addr.to_string(), port.into()))
}

/// The image directory (made if missing), and `--parent-path` checked as runc does:
/// relative to the image directory, and a directory there.
fn prepare_images(opts: &Options) -> Result<()> {
    let images = &opts.image_path;
    std::fs::create_dir_all(images).map_err(|e| Error::io("create --image-path", images, e))?;
    let Some(parent) = &opts.parent_path else {
        return Ok(());
    };
    if parent.is_absolute() {
        return Err(Error::Other(format!(
            "--parent-path {}: must be relative to --image-path",
            parent.display()
        )));
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Other(format!(
            "invalid --parent-path {}: {} is not a directory",
            parent.display(),
            real.display()
        ))),
        Err(e) => Err(Error::Other(format!(
            "invalid --parent-path {}: {}: {e}",
            parent.display(),
            real.display()
        ))),
    }
}

/// Open a directory for CRIU (it reads it through /proc/<our pid>/fd/N), creating it.
impl Options {
    /// The CRIU request options a dump and a restore set alike: the image and work
    /// dirs, the log (`log_file` in the work dir), the container's CRIU config file,
    /// and the command line's flags that mean the same to both.
    fn criu_opts(
        &self,
        images: &std::fs::File,
        work: Option<&std::fs::File>,
        log_file: &str,
        spec: &oci_spec::runtime::Spec,
    ) -> Criu_opts {
        use std::os::fd::AsRawFd;
        let mut o = Criu_opts::new();
        o.set_images_dir_fd(images.as_raw_fd());
        if let Some(w) = work {
            o.set_work_dir_fd(w.as_raw_fd());
        }
        o.set_log_level(4);
        o.set_log_file(log_file.into());
        o.set_manage_cgroups(true);
        o.set_notify_scripts(true);
        o.set_shell_job(self.shell_job);
        o.set_tcp_established(self.tcp_established);
        o.set_ext_unix_sk(self.ext_unix_sk);
        o.set_file_locks(self.file_locks);
        o.set_empty_ns(self.empty_ns);
        o.set_orphan_pts_master(true);
        o.set_auto_dedup(self.auto_dedup);
        o.set_lazy_pages(self.lazy_pages);
        if let Some(m) = self.manage_cgroups_mode {
            o.set_manage_cgroups_mode(m.rpc());
        }
        if let Some(f) = config_file(spec) {
            o.set_config_file(f);
        }
        o
    }
}

fn open_dir(p: &Path, what: &'static str) -> Result<std::fs::File> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(what, p, e)),
    }
    std::fs::File::open(p).map_err(|e| Error::io(what, p, e))
}

/// CRIU's own configuration file for this container: the `org.criu.config` annotation
/// (empty: none), else capsa's (settings there override the RPC's, as with runc's).
fn config_file(spec: &oci_spec::runtime::Spec) -> Option<String> {
    match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.criu.config"))
    {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some("/etc/criu/capsa.conf".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_server_is_address_and_port() {
        assert_eq!(
            parse_page_server("0.0.0.0:27277").unwrap(),
            ("0.0.0.0".to_string(), 27277)
        );
        assert_eq!(parse_page_server("[::1]:80").unwrap().0, "::1");
        for bad in ["27277", ":1", "host:", "host:x", "host:0", "host:70000"] {
            assert!(parse_page_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_ns_always_has_the_network() {
        assert_eq!(empty_ns_mask(&[]).unwrap(), libc::CLONE_NEWNET as u32);
        assert_eq!(
            empty_ns_mask(&["network".into()]).unwrap(),
            libc::CLONE_NEWNET as u32
        );
        let e = empty_ns_mask(&["pid".into()]).unwrap_err().to_string();
        assert!(e.contains("\"pid\""), "{e}");
    }

    #[test]
    fn cgroups_modes() {
        assert_eq!(CgroupsMode::parse("soft").unwrap(), CgroupsMode::Soft);
        assert_eq!(CgroupsMode::parse("strict").unwrap(), CgroupsMode::Strict);
        assert!(CgroupsMode::parse("hard").is_err());
    }

    #[test]
    fn parent_path_must_be_relative_and_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let mut opts = Options {
            image_path: images.clone(),
            parent_path: Some(dir.path().join("parent")),
            ..Default::default()
        };
        let e = prepare_images(&opts).unwrap_err().to_string();
        assert!(e.contains("--parent-path"), "{e}");
        opts.parent_path = Some("../parent".into());
        let e = prepare_images(&opts).unwrap_err().to_string();
        assert!(e.contains("invalid --parent-path"), "{e}");
        std::fs::create_dir(dir.path().join("parent")).unwrap();
        prepare_images(&opts).unwrap();
        assert!(images.is_dir());
    }

    #[test]
    fn criu_config_from_the_annotation() {
        let mut spec = oci_spec::runtime::Spec::default();
        assert_eq!(config_file(&spec).as_deref(), Some("/etc/criu/capsa.conf"));
        let mut a = std::collections::HashMap::new();
        a.insert("org.criu.config".to_string(), String::new());
        spec.set_annotations(Some(a.clone()));
        assert_eq!(config_file(&spec), None);
        a.insert("org.criu.config".to_string(), "/x.conf".into());
        spec.set_annotations(Some(a));
        assert_eq!(config_file(&spec).as_deref(), Some("/x.conf"));
    }
}
