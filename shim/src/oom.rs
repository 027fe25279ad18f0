//! TaskOOM events. cgroup v1: an eventfd registered on memory.oom_control
//! through cgroup.event_control. cgroup v2: inotify on memory.events, an event
//! each time its oom_kill count grows. One small thread per container; it
//! ends when the cgroup is removed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics::TASK_OOM_EVENT_TOPIC;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::cgroup::{read_kv, Cgroup};
use crate::error::{Error, Result};
use crate::events::Events;

pub fn watch(id: &str, cg: &Cgroup, events: &Events) {
    let res = match cg {
        Cgroup::V1(_) => match cg.dir("memory") {
            Some(d) => watch_v1(id, d.to_path_buf(), events.clone()),
            None => Ok(()),
        },
        Cgroup::V2(d) => watch_v2(id, d.clone(), events.clone()),
    };
    if let Err(e) = res {
        tracing::warn!("no OOM events for {id}: {e}");
    }
}

fn spawn(f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(64 * 1024)
        .spawn(f)
        .map(drop)
        .map_err(Error::io("spawn oom thread"))
}

fn oom_event(id: &str) -> TaskOOM {
    TaskOOM {
        container_id: id.to_string(),
        ..Default::default()
    }
}

fn watch_v1(id: &str, dir: PathBuf, events: Events) -> Result<()> {
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(Error::nix("eventfd"))?;
    let oom = File::open(dir.join("memory.oom_control")).map_err(Error::io(format!(
        "open {}/memory.oom_control",
        dir.display()
    )))?;
    let mut ctl = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.event_control"))
        .map_err(Error::io("open cgroup.event_control"))?;
    // One write: the kernel parses each write(2) on its own.
    ctl.write_all(format!("{} {}", efd.as_raw_fd(), oom.as_raw_fd()).as_bytes())
        .map_err(Error::io("register oom eventfd"))?;
    let (id, efd) = (id.to_string(), OwnedFd::from(efd));
    spawn(move || {
        let mut f = File::from(efd);
        let mut buf = [0u8; 8];
        // The eventfd also fires when the cgroup is removed: that ends us.
        while f.read_exact(&mut buf).is_ok() && dir.join("memory.oom_control").exists() {
            events.send(TASK_OOM_EVENT_TOPIC, oom_event(&id));
        }
        drop(oom);
    })
}

fn watch_v2(id: &str, dir: PathBuf, events: Events) -> Result<()> {
    let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(Error::nix("inotify"))?;
    let file = dir.join("memory.events");
    ino.add_watch(&file, AddWatchFlags::IN_MODIFY)
        .map_err(Error::nix(format!("watch {}", file.display())))?;
    let id = id.to_string();
    spawn(move || {
        let count = |d: &Path| read_kv(d, "memory.events").get("oom_kill").copied();
        let mut seen = count(&dir).unwrap_or(0);
        while let Ok(evs) = ino.read_events() {
            if evs
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
            {
                break; // the cgroup is gone
            }
            let Some(now) = count(&dir) else { break };
            if now > seen {
                seen = now;
                events.send(TASK_OOM_EVENT_TOPIC, oom_event(&id));
            }
        }
    })
}
