//! `start ID`.

use clap::Args;

use super::Cli;
use crate::container::Container;

#[derive(Args, Debug)]
pub struct StartArgs {
    id: String,
}

pub fn run(cli: &Cli, a: &StartArgs) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, true)?;
    c.start()?;
    Ok(())
}
