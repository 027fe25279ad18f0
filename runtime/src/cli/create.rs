//! `create` and `run`.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::process::{parent, CreateOptions};

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Container id
    id: String,
    /// Bundle directory (default: the current directory)
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// File to write the init's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (process.terminal)
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Return once the container has started
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    keep: bool,
    /// Accepted for runc compatibility; capsa only reaps its own init
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
}

fn options(cli: &Cli, a: &CreateArgs, foreground: bool) -> anyhow::Result<CreateOptions> {
    if a.preserve_fds < 0 {
        anyhow::bail!("--preserve-fds must not be negative");
    }
    Ok(CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        root: cli.root()?,
        pid_file: a.pid_file.as_ref().map(absolute),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup(),
        cgroups_disabled: cli.cgroups_disabled(),
        rootless: cli.rootless(),
        caller_in_userns: crate::rootless::in_user_namespace(),
        foreground,
    })
}

fn absolute(p: &PathBuf) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.clone())
}

pub fn create(cli: &Cli, a: &CreateArgs) -> anyhow::Result<()> {
    parent::create(&options(cli, a, false)?)?;
    Ok(())
}

pub fn run(cli: &Cli, a: &RunArgs) -> anyhow::Result<i32> {
    let opts = options(cli, &a.create, !a.detach)?;
    Ok(crate::container::run(&opts, a.detach, a.keep)?)
}
