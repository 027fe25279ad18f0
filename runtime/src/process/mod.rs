//! Making container processes: `parent::create` (in `capsa create`) and `child::init` (the
//! cloned process that becomes the container), read side by side: their `// sync N`
//! comments match, `channel` documents the messages and `sync::drive` is the parent's
//! side of them. `exec` makes a process in an existing container the same way; `prepare`
//! (before the fork), `stage` (the first stage's fork) and `setup` (the steps before
//! execve) are what the two share.

mod child;
pub mod exec;
mod idmap;
pub mod parent;
mod prepare;
mod setup;
mod stage;
mod sync;
pub mod wait;

pub use prepare::check_config;

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
    /// `--cgroup-manager disabled`: no cgroup at all, the container stays in ours.
    pub cgroups_disabled: bool,
    /// Not root (or `--rootless true`): cgroups only where delegated.
    pub rootless: bool,
    /// We run in a user namespace we did not make (rootless podman, a nested runtime):
    /// mknod is refused even without a new user namespace, devices are bound from the host.
    pub caller_in_userns: bool,
    /// `run` in the foreground: the init stays our child (and grandchildren come to us).
    pub foreground: bool,
}
