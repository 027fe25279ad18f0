//! The ttrpc Task service: each request finds its container and process,
//! runs one operation and publishes the matching event.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use containerd_shim::api;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::topics::*;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};

use crate::container::{Container, CreateRequest};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::io::StdioSpec;
use crate::options::RuntimeOptions;
use crate::process::Process;
use crate::runtime::Runtime;

/// How long an exit waits for the process's output to reach the client's fifo.
const OUTPUT_BEFORE_EXIT: std::time::Duration = std::time::Duration::from_millis(250);

pub struct TaskService {
    pub namespace: String,
    pub events: Events,
    pub exit: Arc<ExitSignal>,
    containers: Mutex<HashMap<String, Arc<Container>>>,
}

impl TaskService {
    pub fn new(namespace: String, events: Events, exit: Arc<ExitSignal>) -> Self {
        TaskService {
            namespace,
            events,
            exit,
            containers: Mutex::new(HashMap::new()),
        }
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id} does not exist")))
    }

    /// The reaper's callback for a process: record the exit, tell containerd. The exit is
    /// told once the process's output is in the client's fifo (at most OUTPUT_BEFORE_EXIT
    /// later, in a thread of its own: the reaper goes on): ctr 1.6 closes its fifos as soon
    /// as it has the exit (task.Delete: io.Close before io.Wait), and output still on its
    /// way from the process's pipe was lost.
    fn on_exit(&self, cid: &str, p: &Arc<Process>) -> impl FnOnce(i32) + Send + 'static {
        let (cid, p, events) = (cid.to_string(), p.clone(), self.events.clone());
        move |status| {
            let Some(done) = p.lock().io.as_ref().map(|io| io.output_done()) else {
                return Self::exited(&cid, &p, &events, status);
            };
            let (c, pr, ev) = (cid.clone(), p.clone(), events.clone());
            let spawned = std::thread::Builder::new()
                .name("exit".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    done.wait(OUTPUT_BEFORE_EXIT);
                    Self::exited(&c, &pr, &ev, status)
                });
            if spawned.is_err() {
                Self::exited(&cid, &p, &events, status);
            }
        }
    }

    /// Records the exit of `p` and sends TaskExit (or holds it back around a start).
    fn exited(cid: &str, p: &Process, events: &Events, status: i32) {
        p.set_exited(status);
        let mut st = p.lock();
        let id = if p.exec_id.is_empty() {
            cid.to_string()
        } else {
            p.exec_id.clone()
        };
        let ev = TaskExit {
            container_id: cid.to_string(),
            id,
            pid: st.pid,
            exit_status: st.exit_status,
            exited_at: MessageField::from_option(st.exited_at.clone()),
            ..Default::default()
        };
        if st.holding {
            st.held_exit = Some(ev);
        } else {
            events.send(TASK_EXIT_EVENT_TOPIC, ev);
        }
    }

    fn do_create(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        if self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&req.id)
        {
            return Err(Error::AlreadyExists(format!(
                "container {} already exists",
                req.id
            )));
        }
        let options = RuntimeOptions::from_any(req.options.as_ref())?;
        let stdio = StdioSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let bundle = Path::new(&req.bundle);
        let init = Arc::new(Process::new("", stdio, Vec::new()));
        let mut on_exit: Box<dyn FnOnce(i32) + Send> = Box::new(self.on_exit(&req.id, &init));
        if crate::container::shares_pid_ns(bundle) {
            // As the Go shim: the init's exit takes the container's other
            // processes with it (the kernel only does so for a pid namespace
            // of its own). Not on the reaper thread: the kill runs the runtime.
            let rt = Runtime::for_bundle(&options, &self.namespace, bundle)?;
            let (id, inner) = (req.id.clone(), on_exit);
            on_exit = Box::new(move |status| {
                let spawned = std::thread::Builder::new()
                    .name("kill-all".into())
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        if let Err(e) = rt.kill(&id, libc::SIGKILL as u32, true) {
                            tracing::warn!("kill --all {id} after its init exited: {e}");
                        }
                        inner(status);
                    });
                if let Err(e) = spawned {
                    tracing::error!("kill-all thread: {e}");
                }
            });
        }
        let c = Container::create(
            CreateRequest {
                id: &req.id,
                namespace: &self.namespace,
                bundle,
                rootfs: &req.rootfs,
                init: init.clone(),
                options,
                checkpoint: (!req.checkpoint.is_empty())
                    .then(|| std::path::PathBuf::from(&req.checkpoint)),
            },
            on_exit,
        )?;
        let pid = c.init.lock().pid;
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(req.id.clone(), c.clone());
        if let Some(cg) = c.cgroup.get() {
            crate::oom::watch(&c.id, cg, &self.events);
        }
        self.events.send(
            TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin,
                    stdout: req.stdout,
                    stderr: req.stderr,
                    terminal: req.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint,
                pid,
                ..Default::default()
            },
        );
        c.init.release(&self.events);
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }
}

fn state_response(c: &Container, p: &Process) -> api::StateResponse {
    let st = p.lock();
    api::StateResponse {
        id: if p.exec_id.is_empty() {
            c.id.clone()
        } else {
            p.exec_id.clone()
        },
        bundle: c.bundle.display().to_string(),
        pid: st.pid,
        status: st.status.into(),
        stdin: p.stdio.stdin.clone(),
        stdout: p.stdio.stdout.clone(),
        stderr: p.stdio.stderr.clone(),
        terminal: p.stdio.terminal,
        exit_status: st.exit_status,
        exited_at: MessageField::from_option(st.exited_at.clone()),
        exec_id: p.exec_id.clone(),
        ..Default::default()
    }
}

impl containerd_shim::Task for TaskService {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        tracing::info!("create {} in {}", req.id, req.bundle);
        Ok(self.do_create(req)?)
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let c = self.container(&req.id)?;
        let pid = if req.exec_id.is_empty() {
            c.init.hold();
            let restored = c.is_restore();
            let pid = c
                .start_init()
                .inspect_err(|_| c.init.release(&self.events))?;
            if let Some(cg) = c.cgroup.get().filter(|_| restored) {
                crate::oom::watch(&c.id, cg, &self.events);
            }
            self.events.send(
                TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: c.id.clone(),
                    pid,
                    ..Default::default()
                },
            );
            c.init.release(&self.events);
            pid
        } else {
            let p = c.process(&req.exec_id)?;
            let pid = c
                .start_exec(&p, self.on_exit(&c.id, &p))
                .inspect_err(|_| p.release(&self.events))?;
            self.events.send(
                TASK_EXEC_STARTED_EVENT_TOPIC,
                TaskExecStarted {
                    container_id: c.id.clone(),
                    exec_id: req.exec_id.clone(),
                    pid,
                    ..Default::default()
                },
            );
            p.release(&self.events);
            pid
        };
        crate::sys::release_free_heap();
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        Ok(state_response(&c, &p))
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (exit_status, exited_at) = p.wait();
        Ok(api::WaitResponse {
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        c.kill(&req.exec_id, req.signal, req.all)?;
        Ok(api::Empty::default())
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        let p = c.delete(&req.exec_id)?;
        let st = p.lock();
        let resp = api::DeleteResponse {
            pid: st.pid,
            exit_status: st.exit_status,
            exited_at: MessageField::from_option(st.exited_at.clone()),
            ..Default::default()
        };
        drop(st);
        if req.exec_id.is_empty() {
            self.containers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&req.id);
            self.events.send(
                TASK_DELETE_EVENT_TOPIC,
                TaskDelete {
                    container_id: c.id.clone(),
                    pid: resp.pid,
                    exit_status: resp.exit_status,
                    exited_at: resp.exited_at.clone(),
                    ..Default::default()
                },
            );
        }
        Ok(resp)
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if spec.is_empty() {
            return Err(Error::InvalidArgument("exec without a process spec".into()).into());
        }
        let stdio = StdioSpec {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        c.add_exec(&req.exec_id, stdio, spec)?;
        self.events.send(
            TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id,
                ..Default::default()
            },
        );
        Ok(api::Empty::default())
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let st = p.lock();
        match &st.io {
            Some(io) => io.resize(req.width, req.height)?,
            None => return Err(Error::FailedPrecondition("process has no io yet".into()).into()),
        }
        Ok(api::Empty::default())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if req.stdin {
            if let Some(io) = &p.lock().io {
                io.close_stdin();
            }
        }
        Ok(api::Empty::default())
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let pids = c.runtime.ps(&c.id)?;
        let execs: HashMap<u32, String> = c
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| (p.lock().pid, p.exec_id.clone()))
            .collect();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let info = execs.get(&pid).and_then(|exec_id| {
                    let d = ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    };
                    Some(Any {
                        type_url: "containerd.runc.v1.ProcessDetails".into(),
                        value: d.write_to_bytes().ok()?,
                        ..Default::default()
                    })
                });
                ProcessInfo {
                    pid,
                    info: MessageField::from_option(info),
                    ..Default::default()
                }
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        c.pause()?;
        self.events.send(
            TASK_PAUSED_EVENT_TOPIC,
            TaskPaused {
                container_id: c.id.clone(),
                ..Default::default()
            },
        );
        Ok(api::Empty::default())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        c.resume()?;
        self.events.send(
            TASK_RESUMED_EVENT_TOPIC,
            TaskResumed {
                container_id: c.id.clone(),
                ..Default::default()
            },
        );
        Ok(api::Empty::default())
    }

    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let mut opts = crate::options::checkpoint_options(req.options.as_ref())?;
        if opts.image_path.as_os_str().is_empty() {
            opts.image_path = std::path::PathBuf::from(&req.path);
        }
        tracing::info!("checkpoint {} to {}", req.id, opts.image_path.display());
        c.checkpoint(opts)?;
        Ok(api::Empty::default())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let Some(res) = req.resources.as_ref() else {
            return Err(Error::InvalidArgument("update without resources".into()).into());
        };
        c.runtime.update(&c.id, &res.value)?;
        Ok(api::Empty::default())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let cg = c.cgroup.get().ok_or_else(|| {
            Error::FailedPrecondition(format!("cgroup of container {} is unknown", c.id))
        })?;
        let stats = crate::metrics::collect(cg)?;
        Ok(api::StatsResponse {
            stats: MessageField::some(stats),
            ..Default::default()
        })
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self
            .container(&req.id)
            .map(|c| c.init.lock().pid)
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            self.exit.signal();
        }
        Ok(api::Empty::default())
    }
}
