//! `exec ID [--process F | ARGS...]` with runc's flags.

use std::path::PathBuf;

use clap::Args;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::Cli;
use crate::cgroups::sub::SubCgroups;
use crate::container::Container;
use crate::process::exec::{exec, ExecOptions};
use crate::state::Status;
use crate::Error;

#[derive(Args, Debug)]
pub struct ExecArgs {
    id: String,
    /// The command and its arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// A process.json (the OCI `process` object) to run
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Allocate a pseudo-terminal (sent to --console-socket)
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short = 'd', long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Extra environment, KEY=VALUE (repeatable)
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// uid[:gid]
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Additional gids (repeatable)
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability (bounding, effective, permitted) (repeatable)
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Exec into a paused container
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// Run the process in an existing sub-cgroup of the container: [CONTROLLER[,...]:]PATH
    /// (repeatable, one per controller on cgroup v1)
    #[arg(long)]
    cgroup: Vec<String>,
}

/// exec's own failures exit 255, as runc's do, so a caller can tell them from the
/// process' exit status.
pub const FAILED: i32 = 255;

pub fn run(cli: &Cli, a: &ExecArgs) -> anyhow::Result<i32> {
    let c = Container::load(&cli.root()?, &a.id, false)?;
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused if a.ignore_paused => {}
        Status::Paused => anyhow::bail!(
            "container \"{}\": cannot exec in a paused container (use --ignore-paused to override)",
            a.id
        ),
        s => anyhow::bail!("container \"{}\" is {s}: cannot exec in it", a.id),
    }
    let sub_cgroups = SubCgroups::parse(&a.cgroup)?;
    if a.preserve_fds < 0 {
        anyhow::bail!("--preserve-fds must not be negative");
    }
    let process = build_process(&c, a)?;
    let opts = ExecOptions {
        process,
        pid_file: a
            .pid_file
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        foreground: !a.detach,
        sub_cgroups,
    };
    let (pid, console) = exec(c, &opts)?;
    if a.detach {
        return Ok(0);
    }
    let master = console
        .as_ref()
        .map(crate::process::wait::receive_pty_master)
        .transpose()?;
    Ok(crate::process::wait::wait_forwarding(pid, master)?)
}

/// The process to run: --process, or the container's own process with the command line's
/// changes (runc's behaviour).
fn build_process(c: &Container, a: &ExecArgs) -> anyhow::Result<Process> {
    let mut p = match &a.process {
        Some(f) => {
            let data = std::fs::read(f).map_err(|e| Error::io("read --process", f, e))?;
            let bad = |e: serde_json::Error| anyhow::anyhow!("--process {}: {e}", f.display());
            let mut v: serde_json::Value = serde_json::from_slice(&data).map_err(bad)?;
            // Without `user` the process runs as 0:0, as runc and crun take it.
            if let Some(obj) = v.as_object_mut() {
                obj.entry("user")
                    .or_insert_with(|| serde_json::json!({ "uid": 0, "gid": 0 }));
            }
            serde_json::from_value::<Process>(v).map_err(bad)?
        }
        None => {
            if a.command.is_empty() {
                anyhow::bail!("exec: give a command or --process");
            }
            let mut p = c.saved.config.process().clone().unwrap_or_default();
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(false));
            p
        }
    };
    if a.tty {
        p.set_terminal(Some(true));
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let mut user = p.user().clone();
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow::anyhow!("--user {u:?}: want uid[:gid]"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow::anyhow!("--user {u:?}: want uid[:gid]"))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        // CVE-2022-29162: --cap never reaches the inheritable set.
        let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
        for name in &a.cap {
            let full = if name.starts_with("CAP_") {
                name.clone()
            } else {
                format!("CAP_{name}")
            };
            let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
                .map_err(|_| anyhow::anyhow!("--cap {name}: unknown capability"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    Ok(p)
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None);
    c.set_effective(None);
    c.set_permitted(None);
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}
