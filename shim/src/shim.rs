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
use containerd_shim::protos::ttrpc::{self, MethodHandler, Request, Server, TtrpcContext};
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
/// containerd 1.x; Wait, which blocks for a process's life, on a thread of its own.
fn task_methods(task: Arc<TaskService>) -> Methods {
    let mut all = Methods::new();
    for version in ["v2", "v3"] {
        for (name, handler) in create_task(task.clone()) {
            let Some(method) = name.strip_prefix("/containerd.task.v3.Task/") else {
                continue;
            };
            let handler: Box<dyn MethodHandler + Send + Sync> = if method == "Wait" {
                Box::new(Detached(Arc::from(handler)))
            } else {
                handler
            };
            all.insert(format!("/containerd.task.{version}.Task/{method}"), handler);
        }
    }
    all
}

/// Runs a method on a thread of its own and frees the ttrpc worker at once; the reply
/// goes out on the connection when the method returns. For Wait, which blocks until its
/// process exits: held on a worker, every pending Wait would cost the connection a
/// worker for good (workers never end, see `serve`).
struct Detached(Arc<dyn MethodHandler + Send + Sync>);

impl MethodHandler for Detached {
    fn handler(&self, ctx: TtrpcContext, req: Request) -> ttrpc::Result<()> {
        let inner = self.0.clone();
        std::thread::Builder::new()
            .name("wait".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Err(e) = inner.handler(ctx, req) {
                    tracing::warn!("reply to a Wait: {e}");
                }
            })
            .map(drop)
            .map_err(|e| ttrpc::Error::Others(format!("spawn a Wait thread: {e}")))
    }
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
    let methods = task_methods(task);
    // ttrpc's worker pool, per connection: a worker that takes a request counts itself
    // out and, if no other is left waiting, has the connection's thread spawn one; a worker
    // done with a call counts itself back in, and ends if more than max are counted. That
    // count races (containerd/ttrpc-rust#230): a worker counted back in next to others that
    // are about to end ends too, and three finishing at once can all end, leaving a
    // connection with no worker and nothing to spawn one, so that no later call on it
    // (State, Kill, Delete) is answered: seen under the CRI stress test, about one run in
    // ten. So workers never end (no max): a connection keeps as many as it once had calls
    // at the same time, a few when idle, and Wait does not hold one (`Detached`). `start`
    // insists on min < default < max, so the listener is started directly.
    let mut server = Server::new()
        .set_thread_count_default(1)
        .set_thread_count_min(1)
        .set_thread_count_max(usize::MAX)
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
    // Not server.shutdown(): it joins the connection threads, which wait for every
    // pending Wait's reply. Exiting ends them all.
    remove_socket(path);
    std::mem::forget(server);
    Ok(())
}

fn remove_socket(path: &str) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Mutex};
    use std::time::Duration;

    use containerd_shim::protos::ttrpc::MessageHeader;

    /// Blocks until released, then replies on the connection, as a Wait does at its
    /// process's exit.
    struct Blocking(Mutex<mpsc::Receiver<()>>);

    impl MethodHandler for Blocking {
        fn handler(&self, ctx: TtrpcContext, _req: Request) -> ttrpc::Result<()> {
            let _ = self.0.lock().unwrap().recv();
            let _ = ctx.res_tx.send((ctx.mh, b"exited".to_vec()));
            Ok(())
        }
    }

    #[test]
    fn a_detached_method_frees_its_worker_and_still_replies() {
        let (release, blocked) = mpsc::channel();
        let (res_tx, replies) = mpsc::channel();
        let ctx = TtrpcContext {
            fd: -1,
            cancel_rx: crossbeam::channel::never(),
            mh: MessageHeader {
                stream_id: 7,
                ..Default::default()
            },
            res_tx,
            metadata: Default::default(),
            timeout_nano: 0,
            conn_ctx: Default::default(),
        };
        let method = Detached(Arc::new(Blocking(Mutex::new(blocked))));
        // The worker's call, on a thread here so that a worker kept by the method is a
        // failure and not a hung test.
        let (freed, worker_free) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = freed.send(method.handler(ctx, Request::default()).is_ok());
        });
        let ok = worker_free
            .recv_timeout(Duration::from_secs(10))
            .expect("the worker returns while the method still blocks");
        assert!(ok);
        assert!(
            replies.try_recv().is_err(),
            "no reply before the method ends"
        );
        release.send(()).unwrap();
        let (mh, body) = replies
            .recv_timeout(Duration::from_secs(10))
            .expect("the reply, once the method ends");
        assert_eq!((mh.stream_id, body.as_slice()), (7, b"exited".as_slice()));
    }
}
