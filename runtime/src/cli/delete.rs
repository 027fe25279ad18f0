//! `delete ID [--force]`.

use clap::Args;

use super::Cli;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::state::{Container, ContainerDir};
use crate::Error;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    id: String,
    /// Kill the container first if it is running or paused
    #[arg(short = 'f', long)]
    force: bool,
}

pub fn run(cli: &Cli, a: &DeleteArgs) -> anyhow::Result<()> {
    let root = cli.root()?;
    if a.force {
        kill_lock_holders(&root, &a.id);
    }
    match Container::load(&root, &a.id, true) {
        Ok(c) => Ok(crate::lifecycle::delete(c, a.force)?),
        Err(Error::NotExist(_)) if a.force => {
            // A create killed before it saved its state leaves only a directory, and maybe
            // a cgroup with a half-made init in it.
            if crate::utils::validate_id(&a.id).is_ok() {
                let dir = cli.root()?.join(&a.id);
                if let Ok(p) = std::fs::read_to_string(dir.join(crate::state::CGROUP_FILE)) {
                    let path = std::path::PathBuf::from(p);
                    crate::cgroups::Cgroup::open(&path, false, &a.id)?.destroy(&path)?;
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `delete --force` must not wait forever for the lock. Its holder may be stuck on the
/// container itself: an `exec --ignore-paused` whose half-made process is frozen in the
/// paused cgroup (and which, forked with the lock's descriptor, holds the lock too), or a
/// create whose init cannot proceed. Thawing and killing everything in the container's
/// cgroup lets such a holder fail and let go (a create in progress then fails and cleans
/// up: with --force the container goes, whatever its stage). Best effort: the locked
/// path below does the real work.
fn kill_lock_holders(root: &std::path::Path, id: &str) {
    if !ContainerDir::is_locked(root, id) {
        return;
    }
    let Some(path) = ContainerDir::peek_cgroup(root, id) else {
        return;
    };
    tracing::debug!("{id} is locked: killing what is in {}", path.display());
    if let Ok(cg) = crate::cgroups::Cgroup::open(&path, false, id) {
        if crate::cgroups::is_frozen(&path) {
            let _ = cg.freeze(false);
        }
        for pid in cg.pids().unwrap_or_default() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
