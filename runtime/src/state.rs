//! The state directory of each container (`<root>/<id>/`): what `create` saved, the lock
//! that serialises commands on one id, and the status derived from the live process.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::process::CreateOptions;
use crate::spec::Bundle;
use crate::utils::{validate_id, write_atomic};
use crate::{Error, Result};

const STATE_FILE: &str = "state.json";
/// The cgroup path, written before the cgroup is made (for cleaning up a killed create).
pub const CGROUP_FILE: &str = "cgroup.path";
/// The start barrier: present from create until start.
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What create records for the commands that follow.
#[derive(Serialize, Deserialize, Clone)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to tell it from a reused pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub cgroup_path: PathBuf,
    /// Rootless without a delegated cgroup: the container has none (see `cgroups`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cgroup: bool,
    /// The cgroup is a systemd unit (`--systemd-cgroup`): update and delete go through it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd: bool,
    pub config: Spec,
}

impl Saved {
    /// What a new container records; `pid` is the first process cloned, until the init
    /// is known. The start time is filled in when the init is.
    pub fn new(
        opts: &CreateOptions,
        bundle: &Bundle,
        pid: i32,
        cgroup_path: PathBuf,
        no_cgroup: bool,
    ) -> Saved {
        Saved {
            id: opts.id.clone(),
            pid,
            pid_start: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: crate::logging::rfc3339_now(),
            owner: crate::user::name_of(nix::unistd::geteuid().as_raw()),
            cgroup_path,
            no_cgroup,
            systemd: opts.systemd_cgroup,
            config: bundle.spec.clone(),
        }
    }
}

/// The OCI state plus runc's extra fields, as `state` and `list --format json` print it.
#[derive(Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
}

pub use capsa_defaults::OCI_VERSION;

/// Where the root lives: created on demand, private to root.
pub fn ensure_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io("create state root", root, e)),
    }
}

/// A container's state directory, locked for the lifetime of this value.
pub struct ContainerDir {
    pub path: PathBuf,
    lock: Flock<File>,
}

impl ContainerDir {
    /// Reserve `id` for a new container: the directory is created atomically (mkdir), so
    /// two creates of one id cannot both succeed.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        ensure_root(root)?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.into()))
            }
            Err(e) => return Err(Error::io("create state dir", &path, e)),
        }
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("lock {}", path.display()), e))?;
        Ok(ContainerDir { path, lock })
    }

    /// Open and lock an existing container's directory.
    pub fn open(root: &Path, id: &str, exclusive: bool) -> Result<ContainerDir> {
        validate_id(id).map_err(|_| Error::NotExist(id.into()))?;
        let path = root.join(id);
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotExist(id.into()),
            _ => Error::io("open", &path, e),
        })?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let lock = Flock::lock(file, arg)
            .map_err(|(_, e)| Error::sys(format!("lock {}", path.display()), e))?;
        // A create that failed removed the directory while we waited for the lock.
        if !path.join(STATE_FILE).exists() {
            return Err(Error::NotExist(id.into()));
        }
        Ok(ContainerDir { path, lock })
    }

    /// Whether another command holds the lock of `id`'s directory (shared or exclusive),
    /// without waiting for it. False when there is no such directory.
    pub fn is_locked(root: &Path, id: &str) -> bool {
        if validate_id(id).is_err() {
            return false;
        }
        let Ok(file) = File::open(root.join(id)) else {
            return false;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_) => false,
            Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
        }
    }

    /// Where `id`'s cgroup is, read without the lock: from state.json once create saved
    /// it, else from what create recorded before making the cgroup. Both files are
    /// written atomically, so what is read is whole.
    pub fn peek_cgroup(root: &Path, id: &str) -> Option<PathBuf> {
        validate_id(id).ok()?;
        let dir = root.join(id);
        if let Ok(data) = std::fs::read(dir.join(STATE_FILE)) {
            if let Ok(saved) = serde_json::from_slice::<Saved>(&data) {
                return Some(saved.cgroup_path);
            }
        }
        std::fs::read_to_string(dir.join(CGROUP_FILE))
            .ok()
            .map(PathBuf::from)
    }

    /// In a forked child: close this process' copy of the lock's descriptor and leave
    /// the lock to the parent. Not a drop: dropping the lock unlocks it, and the lock
    /// belongs to the open file description that both processes share.
    pub fn close_in_child(self) {
        let fd = self.lock.as_raw_fd();
        // Nothing owns the descriptor any more, so closing it by number is sound.
        std::mem::forget(self.lock);
        let _ = nix::unistd::close(fd);
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Where the container's cgroup will be, before state.json exists.
    pub fn record_cgroup(&self, path: &Path) -> Result<()> {
        write_atomic(
            &self.path.join(CGROUP_FILE),
            path.as_os_str().as_encoded_bytes(),
        )
    }

    pub fn save(&self, saved: &Saved) -> Result<()> {
        let data = serde_json::to_vec(saved).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    pub fn load(&self) -> Result<Saved> {
        let p = self.path.join(STATE_FILE);
        let data = std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
        serde_json::from_slice(&data).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    /// Remove the directory (the lock goes with it; waiters then see "does not exist").
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.path).map_err(|e| Error::io("remove", &self.path, e))
    }
}

pub fn hook_state_json(saved: &Saved, status: Status) -> String {
    serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": saved.id,
        "status": status.as_str(),
        "pid": saved.pid,
        "bundle": saved.bundle,
        "annotations": saved.config.annotations().clone().unwrap_or_default(),
    })
    .to_string()
}

/// Field 22 of /proc/PID/stat (start time in clock ticks) and the state letter (field 3).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let start = it.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub fn process_alive(pid: i32, start: u64) -> bool {
    match proc_stat(pid) {
        Some((state, s)) => s == start && state != 'Z' && state != 'X',
        None => false,
    }
}

/// All container ids under the root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", root, e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_parses() {
        let (state, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!(state.is_ascii_uppercase());
        assert!(start > 0);
    }

    #[test]
    fn dead_pid_is_not_alive() {
        assert!(!process_alive(i32::MAX, 1));
    }
}
