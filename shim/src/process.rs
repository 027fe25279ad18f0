//! One process of a container (its init or an exec) and its lifecycle:
//! created → running ⇄ paused → stopped.

use std::sync::{Condvar, Mutex, MutexGuard};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::types::task::Status;

use crate::events::Events;
use crate::io::{ProcessIo, StdioSpec};
use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::topics::TASK_EXIT_EVENT_TOPIC;

#[derive(Default)]
pub struct ProcState {
    pub pid: u32,
    pub status: Status,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
    pub io: Option<ProcessIo>,
    /// While set, an exit is held back: containerd must see TaskCreate /
    /// TaskStart / TaskExecStarted before the TaskExit of the same process.
    pub holding: bool,
    pub held_exit: Option<TaskExit>,
}

pub struct Process {
    /// Empty for the init process.
    pub exec_id: String,
    pub stdio: StdioSpec,
    /// The exec's OCI process JSON, run by Start.
    pub exec_spec: Vec<u8>,
    state: Mutex<ProcState>,
    exited: Condvar,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioSpec, exec_spec: Vec<u8>) -> Self {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            exec_spec,
            state: Mutex::new(ProcState {
                status: Status::CREATED,
                holding: true,
                ..Default::default()
            }),
            exited: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_exited(&self, status: i32) {
        let mut s = self.lock();
        s.status = Status::STOPPED;
        s.exit_status = status as u32;
        s.exited_at = Some(crate::util::now());
        drop(s);
        self.exited.notify_all();
    }

    /// Holds exit events back until `release` (around a start).
    pub fn hold(&self) {
        self.lock().holding = true;
    }

    /// Lets exit events through, sending one that was held back.
    pub fn release(&self, events: &Events) {
        let mut s = self.lock();
        s.holding = false;
        if let Some(ev) = s.held_exit.take() {
            events.send(TASK_EXIT_EVENT_TOPIC, ev);
        }
    }

    /// Blocks until the process has exited.
    pub fn wait(&self) -> (u32, Timestamp) {
        let mut s = self.lock();
        while s.status != Status::STOPPED {
            s = self.exited.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        (s.exit_status, s.exited_at.clone().unwrap_or_default())
    }
}
