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
    match Container::load(&cli.root, &a.id, true) {
        Ok(c) => Ok(crate::lifecycle::delete(c, a.force)?),
        Err(Error::NotExist(_)) if a.force => {
            // A create killed before it saved its state leaves only a directory.
            if crate::utils::validate_id(&a.id).is_ok() {
                let _ = std::fs::remove_dir_all(cli.root.join(&a.id));
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
