//! The shim binary's three faces, as containerd runs it:
//! - `start`: spawn the long-lived shim serving ttrpc on a socket, print its
//!   address (plain, as containerd 1.6+ reads it) and exit;
//! - `delete`: clean up after a shim that died (force-delete, unmount);
//! - no action: serve the Task API until Shutdown.
//!
//! The task service is registered as both `containerd.task.v2.Task` (what
//! containerd 1.x calls) and `v3` (containerd 2.x); the messages are the same.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::shim_ttrpc::create_task;
use containerd_shim::protos::ttrpc::{MethodHandler, Server};
use containerd_shim::{api, ExitSignal, Flags, StartOpts};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::options::RuntimeOptions;
use crate::runtime::Runtime;
use crate::task::TaskService;

pub fn run() -> Result<()> {
    let args: Vec<_> = std::env::args_os().collect();
    let flags = containerd_shim::parse(&args[1..])?;
    if flags.version {
        println!(
            "containerd-shim-capsa-v2:\n  Version: {}\n  Runtime: io.containerd.capsa.v2",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(());
    }
    if flags.namespace.is_empty() {
        return Err(Error::InvalidArgument(
            "shim namespace cannot be empty".into(),
        ));
    }
    // SIGTERM/SIGINT are containerd's business: a shim outlives them; only
    // Shutdown ends it. (Handlers, unlike SIG_IGN, do not pass to children.)
    for sig in [libc::SIGTERM, libc::SIGINT] {
        signal_hook::flag::register(sig, Arc::new(Default::default()))
            .map_err(Error::io("install signal handler"))?;
    }
    nix::sys::prctl::set_child_subreaper(true).map_err(Error::nix("set subreaper"))?;
    crate::reaper::start().map_err(Error::io("start reaper"))?;
    match flags.action.as_str() {
        "start" => start(&flags),
        "delete" => delete(&flags),
        "" => serve(&flags),
        other => Err(Error::InvalidArgument(format!("unknown action {other:?}"))),
    }
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

fn start(flags: &Flags) -> Result<()> {
    let bundle = std::env::current_dir().map_err(Error::io("getcwd"))?;
    let grouping = grouping(&bundle, &flags.id);
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    let address = opts.socket_address(&grouping);
    // One shim per group: an existing, answering shim is reused.
    if Path::new(socket_path(&address)).exists()
        && std::os::unix::net::UnixStream::connect(socket_path(&address)).is_ok()
    {
        containerd_shim::util::write_address(&address)?;
        print!("{address}");
        return Ok(());
    }
    let (pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
    // The shim must not be the first victim of an OOM in its containers.
    if let Err(e) = containerd_shim::cgroup::adjust_oom_score(pid) {
        tracing::warn!("adjust shim oom score: {e}");
    }
    containerd_shim::util::write_address(&address)?;
    let mut out = std::io::stdout().lock();
    out.write_all(address.as_bytes())
        .and_then(|_| out.flush())
        .map_err(Error::io("write address"))
}

/// Pods share one shim: the sandbox id from the CRI annotations, else the id.
fn grouping(bundle: &Path, id: &str) -> String {
    let spec: Option<serde_json::Value> = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    spec.as_ref()
        .and_then(|s| s["annotations"]["io.kubernetes.cri.sandbox-id"].as_str())
        .unwrap_or(id)
        .to_string()
}

/// Cleans up after a shim that died: force-deletes the container and
/// unmounts its rootfs (the working directory is the bundle).
fn delete(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(Error::io("getcwd"))?
    } else {
        flags.bundle.clone().into()
    };
    let opts = RuntimeOptions::load(&bundle);
    if let Ok(binary) = opts.binary() {
        let rt = Runtime {
            binary,
            root: opts.root(&flags.namespace),
            log: bundle.join("log.json"),
            systemd_cgroup: opts.systemd_cgroup,
        };
        if let Err(e) = rt.delete(&flags.id, true) {
            tracing::warn!("runtime delete --force {}: {e}", flags.id);
        }
    }
    crate::mounts::unmount_all(&bundle.join("rootfs"))?;
    let resp = api::DeleteResponse {
        exited_at: MessageField::some(crate::util::now()),
        exit_status: 128 + libc::SIGKILL as u32,
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    resp.write_to_writer(&mut out)
        .map_err(|e| Error::Other(format!("write delete response: {e}")))?;
    out.flush().map_err(Error::io("write delete response"))
}

type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// The task methods under the v3 name containerd 2 uses and the v2 name of
/// containerd 1.x.
fn task_methods(task: Arc<TaskService>) -> Methods {
    let v3 = create_task(task);
    let mut all = Methods::new();
    for (name, handler) in v3 {
        let Some(method) = name.strip_prefix("/containerd.task.v3.Task/") else {
            continue;
        };
        all.insert(format!("/containerd.task.v2.Task/{method}"), handler);
    }
    all
}

fn serve(flags: &Flags) -> Result<()> {
    if flags.socket.is_empty() {
        return Err(Error::InvalidArgument("shim socket cannot be empty".into()));
    }
    containerd_shim::logger::init(flags.debug, "info", &flags.namespace, &flags.id)?;
    let ttrpc_address = std::env::var("TTRPC_ADDRESS")
        .map_err(|_| Error::InvalidArgument("TTRPC_ADDRESS is not set".into()))?;
    let exit = Arc::new(ExitSignal::default());
    let events = Events::start(&ttrpc_address, flags.namespace.clone())?;
    let task = Arc::new(TaskService::new(
        flags.namespace.clone(),
        events.clone(),
        exit.clone(),
    ));

    let path = socket_path(&flags.socket);
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("mkdir {}", dir.display())))?;
    }
    remove_socket(path);
    let listener = UnixListener::bind(path).map_err(Error::io(format!("bind {path}")))?;
    let mut methods = task_methods(task.clone());
    methods.extend(create_task(task));
    // One idle worker per connection. ttrpc counts only the workers waiting for a
    // request: when the waiting one takes a request the count drops below min and
    // another is spawned, so a Wait that blocks for the task's life never starves the
    // rest; when a worker finishes and finds one already waiting (above max) it ends.
    // `start` insists on min < default < max, which would keep 2-3 idle threads per
    // connection, so the listener is started directly.
    let mut server = Server::new()
        .set_thread_count_default(1)
        .set_thread_count_min(1)
        .set_thread_count_max(1)
        .add_listener(listener.into_raw_fd())
        .map_err(|e| Error::Other(format!("ttrpc listener: {e}")))?
        .register_service(methods);
    server
        .start_listen()
        .map_err(|e| Error::Other(format!("start ttrpc server: {e}")))?;
    // Tell `start` (reading our stdout) that the server is up: stdout now
    // points at stderr, so the pipe it reads reaches EOF.
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(Error::nix("dup2"))?;
    tracing::info!("shim serving on {path}");
    exit.wait();
    events.flush(std::time::Duration::from_secs(5));
    // Not server.shutdown(): it joins the connection threads, and a worker may
    // sit in a Wait that will never return. Exiting ends them all.
    remove_socket(path);
    std::mem::forget(server);
    Ok(())
}

fn remove_socket(path: &str) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}
