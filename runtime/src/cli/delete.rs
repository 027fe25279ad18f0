//! `delete ID [--force]`.

use clap::Args;

use super::Cli;
use crate::state::Container;
use crate::Error;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    id: String,
    /// Kill the container first if it is running or paused
    #[arg(short = 'f', long)]
    force: bool,
}

pub fn run(cli: &Cli, a: &DeleteArgs) -> anyhow::Result<()> {
    match Container::load(&cli.root()?, &a.id, true) {
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
