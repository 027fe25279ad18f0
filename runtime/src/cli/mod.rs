//! The runc-compatible command line. Global flags may come before or after the
//! subcommand; every flag is either wired or rejected, never silently ignored.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod pause;
mod ps;
mod spec;
mod start;
mod state;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "capsa",
    about = "capsa: a low-level OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state [default: /run/capsa, or $XDG_RUNTIME_DIR/capsa
    /// when not root]
    #[arg(long = "root", global = true, value_name = "ROOT")]
    root_flag: Option<PathBuf>,
    /// Log file (default: stderr)
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Debug logging
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (cgroupsPath "slice:prefix:name")
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// crun's cgroup manager flag: cgroupfs (the default), systemd (as --systemd-cgroup),
    /// or disabled: no cgroup at all (podman passes it for `--cgroups=disabled`)
    #[arg(
        long = "cgroup-manager",
        global = true,
        value_enum,
        value_name = "MANAGER"
    )]
    cgroup_manager: Option<CgroupManager>,
    /// Ignore cgroup permission errors: true, false or auto (not root, or root of a user
    /// namespace). Before the subcommand only, as runc (`spec --rootless` is spec's own flag)
    #[arg(long, value_enum, default_value = "auto")]
    rootless: crate::rootless::Mode,
    /// The criu binary of checkpoint and restore
    #[arg(long, global = true, default_value = "criu")]
    criu: PathBuf,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container (its init waits for `start`)
    Create(create::CreateArgs),
    /// Start a created container
    Start(start::StartArgs),
    /// Create and start a container; without -d, wait for it and return its exit status
    Run(create::RunArgs),
    /// Print the state of a container as JSON
    State(state::StateArgs),
    /// List containers
    #[command(alias = "ls")]
    List(state::ListArgs),
    /// Send a signal to a container's init (or, with --all, to all its processes)
    Kill(kill::KillArgs),
    /// Delete a container
    Delete(delete::DeleteArgs),
    /// Run a new process inside a container
    Exec(exec::ExecArgs),
    /// Suspend all processes of a container
    Pause(pause::PauseArgs),
    /// Resume a paused container
    Resume(pause::PauseArgs),
    /// Stats and OOM events of a container, as JSON lines
    Events(events::EventsArgs),
    /// List the processes of a container
    Ps(ps::PsArgs),
    /// Update a container's resource limits
    Update(update::UpdateArgs),
    /// Print the runtime's features as JSON
    Features,
    /// Write a default config.json
    Spec(spec::SpecArgs),
    /// Checkpoint a running container with CRIU
    Checkpoint(checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint
    Restore(checkpoint::RestoreArgs),
}

/// runc's shape: `<name> version X`, then `commit:` and `spec:` lines.
const VERSION_TEXT: &str = concat!(
    "capsa version ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("CAPSA_COMMIT"),
    "\nspec: ",
    "1.2.0",
    "\nseccomp: built in (no libseccomp)\n"
);

/// Entry point: returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            if let Some(name) = unknown_command(&e) {
                // runc's words for it (`runc foo -h`), then clap's hint.
                eprintln!("No help topic for '{name}'");
            }
            let _ = e.print();
            return code;
        }
    };
    if cli.version {
        print!("{VERSION_TEXT}");
        return 0;
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!(
            "capsa: open log {}: {e}",
            cli.log
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        return 1;
    }
    let Some(cmd) = cli.cmd.as_ref() else {
        eprintln!("capsa: no command given; see capsa --help");
        return 1;
    };
    match dispatch(&cli, cmd) {
        Ok(code) => code,
        Err(e) => {
            let (msg, code) = match cmd {
                Command::Exec(_) => (format!("exec failed: {e:#}"), exec::FAILED),
                _ => (format!("{e:#}"), 1),
            };
            if logging::logs_to_file(cli.log.as_deref()) {
                tracing::error!("{msg}");
            }
            eprintln!("capsa: {msg}");
            code
        }
    }
}

/// The command name of an "unrecognized subcommand" error.
fn unknown_command(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    match e.get(ContextKind::InvalidSubcommand)? {
        ContextValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `--cgroup-manager` (crun's global flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupManager {
    Cgroupfs,
    Systemd,
    Disabled,
}

impl Cli {
    /// Whether the systemd cgroup driver was asked for (`--systemd-cgroup` or
    /// `--cgroup-manager systemd`).
    pub fn systemd_cgroup(&self) -> bool {
        self.systemd_cgroup || self.cgroup_manager == Some(CgroupManager::Systemd)
    }

    /// `--cgroup-manager disabled`: the container gets no cgroup.
    pub fn cgroups_disabled(&self) -> bool {
        self.cgroup_manager == Some(CgroupManager::Disabled)
    }

    /// The state root: `--root`, else the default for who we are.
    pub fn root(&self) -> crate::Result<PathBuf> {
        match &self.root_flag {
            Some(r) => Ok(r.clone()),
            None => crate::rootless::default_root(),
        }
    }

    /// Whether cgroups may be skipped when they are not ours to manage.
    pub fn rootless(&self) -> bool {
        crate::rootless::is_rootless(self.rootless)
    }
}

fn dispatch(cli: &Cli, cmd: &Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Create(a) => create::create(cli, a).map(|_| 0),
        Command::Run(a) => create::run(cli, a),
        Command::Start(a) => start::run(cli, a).map(|_| 0),
        Command::State(a) => state::state(cli, a).map(|_| 0),
        Command::List(a) => state::list(cli, a).map(|_| 0),
        Command::Kill(a) => kill::run(cli, a).map(|_| 0),
        Command::Delete(a) => delete::run(cli, a).map(|_| 0),
        Command::Exec(a) => exec::run(cli, a),
        Command::Pause(a) => pause::pause(cli, a, true).map(|_| 0),
        Command::Resume(a) => pause::pause(cli, a, false).map(|_| 0),
        Command::Events(a) => events::run(cli, a).map(|_| 0),
        Command::Ps(a) => ps::run(cli, a).map(|_| 0),
        Command::Update(a) => update::run(cli, a).map(|_| 0),
        Command::Features => features::run().map(|_| 0),
        Command::Spec(a) => spec::run(a).map(|_| 0),
        Command::Checkpoint(a) => checkpoint::checkpoint(cli, a).map(|_| 0),
        Command::Restore(a) => checkpoint::restore(cli, a),
    }
}
