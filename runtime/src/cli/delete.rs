//! `delete ID [--force]`.

use clap::Args;

use super::Cli;
use crate::container::{force_delete, Container};

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
        return Ok(force_delete(&root, &a.id)?);
    }
    Container::load(&root, &a.id, true)?.delete(false)?;
    Ok(())
}
