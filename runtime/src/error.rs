//! The library's error type: every variant says what failed and on which object.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?}: {1}")]
    InvalidId(String, &'static str),
    #[error("container \"{id}\" is {status}, {what}")]
    BadStatus {
        id: String,
        status: String,
        what: String,
    },
    /// A config.json problem; the message names the field.
    #[error("config.json: {0}")]
    Config(String),
    // The cause is part of the message, not a `source`: the message crosses from the
    // init to the parent as text, and must not be printed twice by anyhow's chain.
    #[error("{what}: {errno}")]
    Sys { what: String, errno: nix::Error },
    #[error("{what} {path}: {err}", path = .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// CRIU is missing, too old, lacks a feature, or failed (checkpoint, restore).
    #[error("{0}")]
    Criu(crate::checkpoint::criu::CriuError),
    /// A mount the config asks for (or a device node, a masked or read-only path) failed;
    /// `field` names it in config.json: `mounts[3]`, `linux.maskedPaths`, `linux.devices`.
    #[error("{field} ({dest}): {what}: {errno}", dest = .dest.display())]
    Mount {
        field: String,
        dest: PathBuf,
        what: String,
        errno: nix::Error,
    },
    /// A write to procfs the config asks for (a sysctl, an LSM label, an id map).
    #[error("{field}: {path}: {}", crate::syscall::proc_write_failure(*.errno))]
    ProcWrite {
        field: String,
        path: String,
        errno: nix::Error,
    },
    #[error("linux.seccomp: {0}")]
    Seccomp(crate::seccomp::SeccompError),
    /// The command of `process.args` cannot be run.
    #[error("exec: {arg0:?}: {reason}")]
    Command { arg0: String, reason: String },
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: String },
    /// A process of the container went away while capsa waited for it.
    #[error("{0}")]
    ProcessGone(String),
    /// runc's words ("error running hook"), which clients and scripts look for.
    #[error("error running hook {kind}[{index}] ({path}): {msg}")]
    Hook {
        kind: String,
        index: usize,
        path: String,
        msg: String,
    },
    /// An error reported by the container's init, with its whole chain.
    #[error("{0}")]
    Init(String),
    /// execve of the container's process failed (after `create` returned: the process
    /// reports it on its stderr and exits 127).
    #[error("exec {path:?}: {errno}")]
    Exec { path: String, errno: nix::Error },
    /// The other side of the sync channel sent a message out of the protocol's order.
    #[error("sync: expected {expected}, got {got}")]
    Protocol {
        expected: &'static str,
        got: &'static str,
    },
    /// A sync message that cannot be read, or lacks what it must carry.
    #[error("sync: {0}")]
    BadMessage(String),
    /// The other side of the sync channel went away (it died, or closed its end).
    #[error("sync: the other side went away while waiting for {waiting_for}")]
    PeerGone { waiting_for: &'static str },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            errno: source,
        }
    }

    /// A mount-family failure of `field` at `dest`.
    pub fn mount(
        field: impl Into<String>,
        dest: &std::path::Path,
        what: impl Into<String>,
        errno: nix::Error,
    ) -> Self {
        Error::Mount {
            field: field.into(),
            dest: dest.to_path_buf(),
            what: what.into(),
            errno,
        }
    }

    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            err: source,
        }
    }
}

/// The errno of a failed call, from nix or from std (EIO when an io error has none).
pub trait AsErrno {
    fn errno(&self) -> nix::Error;
}

impl AsErrno for nix::Error {
    fn errno(&self) -> nix::Error {
        *self
    }
}

impl AsErrno for std::io::Error {
    fn errno(&self) -> nix::Error {
        nix::Error::from_raw(self.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Attach a description to a nix result: `mount(...).ctx(|| format!("mount {dest}"))?`.
pub trait SysContext<T> {
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
