//! Creating a container's init: `parent::create` (in `capsa create`) and `child::init` (the
//! forked process that becomes the container), read side by side: their `// sync N`
//! comments match, and `channel` documents the messages.

pub mod child;
pub mod exec;
pub mod idmap;
pub mod parent;
pub mod wait;

use std::path::PathBuf;

/// Everything `create` (and `run`) was asked on the command line.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub systemd_cgroup: bool,
    /// Not root (or `--rootless true`): cgroups only where delegated.
    pub rootless: bool,
    /// `run` in the foreground: the init stays our child (and grandchildren come to us).
    pub foreground: bool,
}
