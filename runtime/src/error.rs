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
    #[error("hook {kind}[{index}] ({path}): {msg}")]
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

    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            err: source,
        }
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
