//! `pause ID` and `resume ID`: the freezer (v1) or cgroup.freeze (v2).

use clap::Args;

use super::Cli;
use crate::cgroups::Cgroup;
use crate::state::{Container, Status};

#[derive(Args, Debug)]
pub struct PauseArgs {
    id: String,
}

pub fn pause(cli: &Cli, a: &PauseArgs, freeze: bool) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, true)?;
    let status = c.status();
    let ok = if freeze {
        matches!(status, Status::Running | Status::Created)
    } else {
        status == Status::Paused
    };
    if !ok {
        let what = if freeze {
            "cannot pause it"
        } else {
            "not paused"
        };
        anyhow::bail!("container \"{}\" is {status}, {what}", a.id);
    }
    let cg = Cgroup::of(&c.saved, cli.systemd_cgroup)?;
    cg.freeze(freeze)?;
    Ok(())
}
