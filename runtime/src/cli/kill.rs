//! `kill ID [SIGNAL] [--all]`.

use clap::Args;

use super::Cli;
use crate::container::{parse_signal, Container};

#[derive(Args, Debug)]
pub struct KillArgs {
    id: String,
    /// Signal name or number (default SIGTERM)
    #[arg(default_value = "SIGTERM")]
    signal: String,
    /// Send the signal to every process of the container
    #[arg(short = 'a', long)]
    all: bool,
}

pub fn run(cli: &Cli, a: &KillArgs) -> anyhow::Result<()> {
    let sig = parse_signal(&a.signal)?;
    let c = Container::load(&cli.root()?, &a.id, false)?;
    c.kill(sig, a.all)?;
    Ok(())
}
