//! `pause ID` and `resume ID`: the freezer (v1) or cgroup.freeze (v2).

use clap::Args;

use super::Cli;
use crate::container::Container;

#[derive(Args, Debug)]
pub struct PauseArgs {
    id: String,
}

pub fn pause(cli: &Cli, a: &PauseArgs, freeze: bool) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, true)?;
    if freeze {
        c.pause()?;
    } else {
        c.resume()?;
    }
    Ok(())
}
