//! `checkpoint` and `restore`, with runc's flags.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::checkpoint::{self, CgroupsMode, Options};
use crate::process::CreateOptions;

/// What both commands share.
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Where CRIU's images go (default: ./checkpoint)
    #[arg(long = "image-path")]
    image_path: Option<PathBuf>,
    /// Where CRIU's logs and work files go (default: the image path)
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs (a terminal shared with the outside)
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// cgroups mode: soft (default), full, strict or ignore
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
    /// Create a namespace but do not restore its properties (only "network")
    #[arg(long = "empty-ns")]
    empty_ns: Vec<String>,
    /// Deduplicate memory images automatically
    #[arg(long = "auto-dedup")]
    auto_dedup: bool,
    /// Restore memory pages lazily (userfaultfd)
    #[arg(long = "lazy-pages")]
    lazy_pages: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// Container id
    id: String,
    #[command(flatten)]
    criu: CriuArgs,
    /// A previous pre-dump's images, relative to --image-path
    #[arg(long = "parent-path")]
    parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long = "leave-running")]
    leave_running: bool,
    /// Dump memory only, leaving the container running (for a later dump with --parent-path)
    #[arg(long = "pre-dump")]
    pre_dump: bool,
    /// CRIU writes a zero byte to this descriptor once lazy pages can be served
    #[arg(long = "status-fd", default_value_t = -1, allow_hyphen_values = true)]
    status_fd: i32,
    /// ADDRESS:PORT of a CRIU page server to send the memory to
    #[arg(long = "page-server")]
    page_server: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Container id
    id: String,
    #[command(flatten)]
    criu: CriuArgs,
    /// Bundle directory (default: the current directory)
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Return once the container runs
    #[arg(short = 'd', long)]
    detach: bool,
    /// File to write the restored init's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (process.terminal)
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (CRIU restores the mounts; nothing is pivoted)
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for runc compatibility; capsa only waits for its own restored init
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
    /// LSM profile to restore with, as TYPE:NAME
    #[arg(long = "lsm-profile")]
    lsm_profile: Option<String>,
    /// LSM mount context to restore with
    #[arg(long = "lsm-mount-context")]
    lsm_mount_context: Option<String>,
}

fn options(cli: &Cli, a: &CriuArgs) -> anyhow::Result<Options> {
    let image_path = match &a.image_path {
        Some(p) => absolute(p),
        None => std::env::current_dir()?.join("checkpoint"),
    };
    Ok(Options {
        criu: cli.criu.clone(),
        image_path,
        work_path: a.work_path.as_ref().map(absolute),
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a
            .manage_cgroups_mode
            .as_deref()
            .map(CgroupsMode::parse)
            .transpose()?,
        empty_ns: checkpoint::empty_ns_mask(&a.empty_ns)?,
        auto_dedup: a.auto_dedup,
        lazy_pages: a.lazy_pages,
        ..Default::default()
    })
}

fn absolute(p: &PathBuf) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.clone())
}

pub fn checkpoint(cli: &Cli, a: &CheckpointArgs) -> anyhow::Result<()> {
    let mut opts = options(cli, &a.criu)?;
    opts.parent_path = a.parent_path.clone();
    opts.leave_running = a.leave_running;
    opts.pre_dump = a.pre_dump;
    opts.status_fd = (a.status_fd >= 0).then_some(a.status_fd);
    opts.page_server = a
        .page_server
        .as_deref()
        .map(checkpoint::parse_page_server)
        .transpose()?;
    checkpoint::checkpoint(&cli.root()?, &a.id, &opts)?;
    Ok(())
}

pub fn restore(cli: &Cli, a: &RestoreArgs) -> anyhow::Result<i32> {
    let mut opts = options(cli, &a.criu)?;
    opts.lsm_profile = a.lsm_profile.clone();
    opts.lsm_mount_context = a.lsm_mount_context.clone();
    let create = CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        root: cli.root()?,
        pid_file: a.pid_file.as_ref().map(absolute),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        systemd_cgroup: cli.systemd_cgroup(),
        cgroups_disabled: cli.cgroups_disabled(),
        rootless: cli.rootless(),
        caller_in_userns: crate::rootless::in_user_namespace(),
        foreground: !a.detach,
        ..Default::default()
    };
    Ok(checkpoint::restore(&create, &opts, a.detach)?)
}
