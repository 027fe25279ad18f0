//! A container: its bundle, the runtime that runs it, its init process and
//! its execs. Each operation is one runtime command plus the shim's bookkeeping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use containerd_shim::protos::types::mount::Mount;
use containerd_shim::protos::types::task::Status;

use crate::console::ConsoleSocket;
use crate::error::{Error, Result};
use crate::io::{ProcessIo, StdioSpec};
use crate::options::RuntimeOptions;
use crate::process::Process;
use crate::reaper;
use crate::runtime::{read_pid, CheckpointOpts, CreateOpts, RestoreOpts, Runtime};

/// How long delete waits for a process's output to drain.
const DRAIN: Duration = Duration::from_secs(2);

pub struct Container {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Found once the init exists; stats and OOM events read it.
    pub cgroup: OnceLock<crate::cgroup::Cgroup>,
    rootfs_mounted: bool,
    /// A container created from a checkpoint: Start restores it (as the Go shim).
    restore: Mutex<Option<PendingRestore>>,
}

type OnExit = Box<dyn FnOnce(i32) + Send + 'static>;

/// What Start needs to restore a container created from checkpoint images.
struct PendingRestore {
    image_path: PathBuf,
    on_exit: OnExit,
}

/// Undoes a half-made create: unmounts the rootfs unless defused.
struct MountGuard<'a>(Option<&'a Path>);

impl Drop for MountGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = crate::mounts::unmount_all(p);
        }
    }
}

pub struct CreateRequest<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a [Mount],
    /// The init process, not yet started.
    pub init: Arc<Process>,
    pub options: RuntimeOptions,
    /// CRIU images to restore from (containerd's `checkpoint`): the init is not created
    /// here but restored at Start.
    pub checkpoint: Option<PathBuf>,
}

/// Starts a process through `run` (a runtime create or exec) with its IO
/// wired; returns its pid, watched by the reaper from before it existed.
/// `what` names the process in errors ("container ID", "exec E of container ID").
fn launch(
    proc_: &Arc<Process>,
    what: &str,
    id: &str,
    namespace: &str,
    pid_file: &Path,
    on_exit: impl FnOnce(i32) + Send + 'static,
    run: impl FnOnce(Option<&Path>, crate::runtime::ChildStdio) -> Result<()>,
) -> Result<u32> {
    let socket = if proc_.stdio.terminal {
        Some(ConsoleSocket::new()?)
    } else {
        None
    };
    let (mut io, child) = ProcessIo::new(&proc_.stdio, id, namespace)?;
    let _ = std::fs::remove_file(pid_file);
    let since = reaper::mark();
    let res = run(socket.as_ref().map(ConsoleSocket::path), child);
    if let Err(e) = res {
        io.close_stdin();
        return Err(e);
    }
    if let Some(s) = &socket {
        io.attach_console(s.receive()?)?;
    }
    let pid = match read_pid(pid_file, what) {
        Ok(pid) => pid,
        Err(e) => {
            io.close_stdin();
            return Err(e);
        }
    };
    {
        let mut st = proc_.lock();
        st.pid = pid as u32;
        st.io = Some(io);
    }
    reaper::watch(pid, since, on_exit);
    Ok(pid as u32)
}

/// Whether the container shares a pid namespace (none of its own, or one
/// joined by path): then its processes outlive its init unless killed.
pub fn shares_pid_ns(bundle: &Path) -> bool {
    let spec: Option<serde_json::Value> = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let Some(nss) = spec
        .as_ref()
        .and_then(|s| s["linux"]["namespaces"].as_array())
    else {
        return true;
    };
    !nss.iter()
        .any(|n| n["type"] == "pid" && n["path"].as_str().is_none_or(str::is_empty))
}

impl Container {
    pub fn create(
        req: CreateRequest,
        on_exit: impl FnOnce(i32) + Send + 'static,
    ) -> Result<Arc<Container>> {
        let runtime = Runtime::for_bundle(&req.options, req.namespace, req.bundle)?;
        req.options.save(req.bundle)?;
        let rootfs = req.bundle.join("rootfs");
        crate::mounts::mount_rootfs(req.rootfs, &rootfs)?;
        let mut guard = MountGuard((!req.rootfs.is_empty()).then_some(rootfs.as_path()));
        let container = |runtime, init| Container {
            cgroup: OnceLock::new(),
            id: req.id.to_string(),
            namespace: req.namespace.to_string(),
            bundle: req.bundle.to_path_buf(),
            runtime,
            init,
            execs: Mutex::new(HashMap::new()),
            rootfs_mounted: !req.rootfs.is_empty(),
            restore: Mutex::new(None),
        };
        if let Some(images) = &req.checkpoint {
            if !images.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint {}: no such directory",
                    images.display()
                )));
            }
            guard.0 = None;
            let c = container(runtime, req.init.clone());
            *c.restore.lock().unwrap_or_else(|e| e.into_inner()) = Some(PendingRestore {
                image_path: images.clone(),
                on_exit: Box::new(on_exit),
            });
            return Ok(Arc::new(c));
        }

        let init = req.init.clone();
        let pid_file = req.bundle.join("init.pid");
        let opts = CreateOpts {
            bundle: req.bundle,
            pid_file: &pid_file,
            console_socket: None,
            no_pivot: req.options.no_pivot_root,
            no_new_keyring: req.options.no_new_keyring,
        };
        let res = launch(
            &init,
            &format!("container {}", req.id),
            req.id,
            req.namespace,
            &pid_file,
            on_exit,
            |sock, io| {
                let opts = CreateOpts {
                    console_socket: sock,
                    ..opts
                };
                runtime.create(req.id, &opts, io)
            },
        );
        if let Err(e) = res {
            // Leave no half-created container behind.
            let _ = runtime.delete(req.id, true);
            return Err(match e {
                Error::Runtime(m) | Error::NotFound(m) => {
                    Error::Runtime(format!("OCI runtime create failed: {m}"))
                }
                e => e,
            });
        }
        guard.0 = None;
        let c = container(runtime, init);
        c.find_cgroup();
        Ok(Arc::new(c))
    }

    fn find_cgroup(&self) {
        let pid = self.init.lock().pid;
        match crate::cgroup::of_pid(pid) {
            Ok(cg) => {
                let _ = self.cgroup.set(cg);
            }
            Err(e) => tracing::warn!("cgroup of {}: {e}", self.id),
        }
    }

    /// Whether Start will restore this container from a checkpoint.
    pub fn is_restore(&self) -> bool {
        self.restore
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Start of a container created from a checkpoint: `restore --detach` with the
    /// init's IO; the restored init is then watched as a created one is.
    fn restore_init(&self, pending: PendingRestore) -> Result<u32> {
        let pid_file = self.bundle.join("init.pid");
        let opts = RestoreOpts {
            bundle: &self.bundle,
            pid_file: &pid_file,
            console_socket: None,
            image_path: &pending.image_path,
            work_path: None,
            no_pivot: RuntimeOptions::load(&self.bundle).no_pivot_root,
        };
        let res = launch(
            &self.init,
            &format!("container {}", self.id),
            &self.id,
            &self.namespace,
            &pid_file,
            pending.on_exit,
            |sock, io| {
                let opts = RestoreOpts {
                    console_socket: sock,
                    ..opts
                };
                self.runtime.restore(&self.id, &opts, io)
            },
        );
        let pid = match res {
            Ok(pid) => pid,
            Err(e) => {
                let _ = self.runtime.delete(&self.id, true);
                // It will never run: release its waiters.
                self.init.set_exited(255);
                return Err(match e {
                    Error::Runtime(m) | Error::NotFound(m) => {
                        Error::Runtime(format!("OCI runtime restore failed: {m}"))
                    }
                    e => e,
                });
            }
        };
        self.find_cgroup();
        let mut st = self.init.lock();
        if st.status == Status::CREATED {
            st.status = Status::RUNNING;
        }
        Ok(pid)
    }

    /// containerd's Checkpoint: the images go to `opts.image_path`; CRIU's work files to
    /// `opts.work_path`, else a dir of the bundle removed after (its dump.log kept as
    /// `<bundle>/criu-dump.log` when the dump fails, as the Go shim does).
    pub fn checkpoint(&self, mut opts: CheckpointOpts) -> Result<()> {
        if self.init.lock().status == Status::STOPPED {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                self.id
            )));
        }
        let own_work = opts.work_path.as_os_str().is_empty();
        if own_work {
            opts.work_path = self.bundle.join("criu-work");
        }
        let res = self.runtime.checkpoint(&self.id, &opts);
        if let Err(e) = &res {
            let log = self.bundle.join("criu-dump.log");
            let _ = std::fs::copy(opts.work_path.join("dump.log"), &log);
            tracing::warn!(
                "checkpoint {}: {e} (CRIU's log: {})",
                self.id,
                log.display()
            );
        }
        if own_work {
            let _ = std::fs::remove_dir_all(&opts.work_path);
        }
        res.map_err(|e| match e {
            Error::Runtime(m) => Error::Runtime(format!(
                "OCI runtime checkpoint failed: {m} (CRIU's log: {})",
                self.bundle.join("criu-dump.log").display()
            )),
            e => e,
        })
    }

    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("process {exec_id} does not exist")))
    }

    pub fn start_init(&self) -> Result<u32> {
        let st = self.init.lock();
        if st.status != Status::CREATED {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not in the created state",
                self.id
            )));
        }
        let pid = st.pid;
        drop(st);
        let pending = self
            .restore
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(p) = pending {
            return self.restore_init(p);
        }
        self.runtime
            .start(&self.id)
            .map_err(|e| Error::Runtime(format!("OCI runtime start failed: {e}")))?;
        let mut st = self.init.lock();
        if st.status == Status::CREATED {
            st.status = Status::RUNNING;
        }
        Ok(pid)
    }

    pub fn add_exec(&self, exec_id: &str, stdio: StdioSpec, spec: Vec<u8>) -> Result<()> {
        let mut execs = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        if execs.contains_key(exec_id) {
            return Err(Error::AlreadyExists(format!("id {exec_id} already exists")));
        }
        if self.init.lock().status == Status::STOPPED {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                self.id
            )));
        }
        execs.insert(
            exec_id.to_string(),
            Arc::new(Process::new(exec_id, stdio, spec)),
        );
        Ok(())
    }

    pub fn start_exec(
        &self,
        exec: &Arc<Process>,
        on_exit: impl FnOnce(i32) + Send + 'static,
    ) -> Result<u32> {
        if exec.lock().status != Status::CREATED {
            return Err(Error::FailedPrecondition(format!(
                "exec {} was already started",
                exec.exec_id
            )));
        }
        let spec_file = self.bundle.join(format!(".exec-{}.json", exec.exec_id));
        let pid_file = self.bundle.join(format!(".exec-{}.pid", exec.exec_id));
        crate::util::write_atomic(&spec_file, &exec.exec_spec)?;
        let res = launch(
            exec,
            &format!("exec {} of container {}", exec.exec_id, self.id),
            &self.id,
            &self.namespace,
            &pid_file,
            on_exit,
            |sock, io| self.runtime.exec(&self.id, &spec_file, &pid_file, sock, io),
        );
        let _ = std::fs::remove_file(&spec_file);
        let _ = std::fs::remove_file(&pid_file);
        if res.is_err() {
            // It will never run: release its waiters (as the Go shim does).
            exec.set_exited(255);
        }
        let pid = res.map_err(|e| match e {
            Error::Runtime(m) => Error::Runtime(format!("OCI runtime exec failed: {m}")),
            e => e,
        })?;
        let mut st = exec.lock();
        if st.status == Status::CREATED {
            st.status = Status::RUNNING;
        }
        Ok(pid)
    }

    pub fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let p = self.process(exec_id)?;
        let st = p.lock();
        let finished = || Error::NotFound("process already finished".into());
        if exec_id.is_empty() {
            if st.status == Status::STOPPED && !all {
                return Err(finished());
            }
            drop(st);
            return self
                .runtime
                .kill(&self.id, signal, all)
                .map_err(|e| match e {
                    Error::NotFound(_) => finished(),
                    Error::Runtime(m) if m.contains("not running") => finished(),
                    e => e,
                });
        }
        if st.status != Status::RUNNING || st.pid == 0 {
            return Err(finished());
        }
        let sig = nix::sys::signal::Signal::try_from(signal as i32)
            .map_err(|_| Error::InvalidArgument(format!("invalid signal {signal}")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid as i32), sig)
            .map_err(|_| finished())
    }

    /// Deletes an exec, or the container itself when `exec_id` is empty.
    pub fn delete(&self, exec_id: &str) -> Result<Arc<Process>> {
        let p = self.process(exec_id)?;
        let status = p.lock().status;
        if matches!(status, Status::RUNNING | Status::PAUSED) {
            return Err(Error::FailedPrecondition(format!(
                "cannot delete a running process {}",
                if exec_id.is_empty() {
                    &self.id
                } else {
                    exec_id
                }
            )));
        }
        if !exec_id.is_empty() {
            self.execs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(exec_id);
            if status == Status::CREATED {
                p.set_exited(255); // never started: release its waiters
            }
            if let Some(io) = &p.lock().io {
                io.wait_output(DRAIN);
            }
            return Ok(p);
        }
        let never_restored = self
            .restore
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some();
        if never_restored {
            p.set_exited(255); // no process ever ran: release its waiters
        }
        // A created (never started) container is deleted like runc's shim
        // does: its waiting init is killed; --force says so to any runtime.
        match self.runtime.delete(&self.id, status == Status::CREATED) {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(Error::Runtime(format!("OCI runtime delete failed: {e}"))),
        }
        if let Some(io) = &p.lock().io {
            io.wait_output(DRAIN);
        }
        if self.rootfs_mounted {
            crate::mounts::unmount_all(&self.bundle.join("rootfs"))?;
        }
        Ok(p)
    }

    pub fn pause(&self) -> Result<()> {
        self.runtime.pause(&self.id)?;
        self.init.lock().status = Status::PAUSED;
        Ok(())
    }

    pub fn resume(&self) -> Result<()> {
        self.runtime.resume(&self.id)?;
        let mut st = self.init.lock();
        if st.status == Status::PAUSED {
            st.status = Status::RUNNING;
        }
        Ok(())
    }
}
