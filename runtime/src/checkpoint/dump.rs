//! `capsa checkpoint`: dump a running container's processes with CRIU, then (unless they
//! are left running) remove the container as `delete` does.

use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use rust_criu::rust_criu_protobuf::rpc::{
    Criu_features, Criu_page_server_info, Criu_req, Criu_req_type, Ext_mount_map,
};

use super::criu::{Criu, Notify, Spawn, MIN_VERSION};
use super::{externals, open_dir, prepare_images, Options};
use crate::container::Container;
use crate::state::Status;
use crate::{cgroups, Error, Result};

/// Checkpoint container `id` into `opts.image_path`.
pub fn checkpoint(root: &Path, id: &str, opts: &Options) -> Result<()> {
    let c = Container::load(root, id, true)?;
    let status = c.status();
    let pid = match (status, c.live_pid()) {
        (Status::Running | Status::Paused, Some(pid)) => pid,
        _ => {
            return Err(Error::BadStatus {
                id: id.into(),
                status: status.to_string(),
                what: "only a running or paused container can be checkpointed".into(),
            })
        }
    };
    let mut criu = Criu::new(&opts.criu);
    criu.require(MIN_VERSION, "checkpoint")?;
    let version = criu.version()?;
    prepare_images(opts)?;

    let images = open_dir(&opts.image_path, "open --image-path")?;
    let work = opts
        .work_path
        .as_deref()
        .map(|w| open_dir(w, "open --work-path"))
        .transpose()?;
    let saved = &c.saved;
    let mut o = opts.criu_opts(&images, work.as_ref(), "dump.log", &saved.config);
    o.set_root(saved.rootfs.display().to_string());
    o.set_pid(pid);
    o.set_leave_running(opts.leave_running);
    o.external = externals::dump_namespaces(&saved.config, version)?;
    // CRIU freezes through the cgroup (v2's freezer from CRIU 3.14), else with ptrace.
    if !saved.no_cgroup && (!cgroups::is_unified_host() || version >= 31400) {
        o.set_freeze_cgroup(
            cgroups::freezer_dir(&saved.cgroup_path)
                .display()
                .to_string(),
        );
    }
    if let Some((addr, port)) = &opts.page_server {
        let mut ps = Criu_page_server_info::new();
        ps.set_address(addr.clone());
        ps.set_port(*port);
        o.ps = Some(ps).into();
    }
    if let Some(parent) = &opts.parent_path {
        o.set_parent_img(parent.display().to_string());
        o.set_track_mem(true);
    }
    let kind = if opts.pre_dump {
        let mut f = Criu_features::new();
        f.set_mem_track(true);
        criu.require_features(f, &o, "--pre-dump")?;
        Criu_req_type::PRE_DUMP
    } else {
        Criu_req_type::DUMP
    };
    let mut status_fd = None;
    if opts.lazy_pages {
        let mut f = Criu_features::new();
        f.set_lazy_pages(true);
        criu.require_features(f, &o, "--lazy-pages")?;
        if let Some(fd) = opts.status_fd {
            status_fd = Some(check_status_fd(fd)?);
            if version < 31500 {
                o.set_status_fd(fd);
            }
        }
    }
    if !opts.pre_dump {
        for (key, val) in externals::dump_mounts(&saved.config, &saved.rootfs, pid) {
            let mut m = Ext_mount_map::new();
            m.set_key(key);
            m.set_val(val);
            o.ext_mnt.push(m);
        }
        externals::write_descriptors(&opts.image_path, pid)?;
    }
    let mut req = Criu_req::new();
    req.set_type(kind);
    req.opts = Some(o).into();
    let log: PathBuf = opts
        .work_path
        .as_deref()
        .unwrap_or(&opts.image_path)
        .join("dump.log");
    let spawn = Spawn {
        log: Some(log),
        ..Default::default()
    };
    tracing::debug!("checkpoint {id}: criu {kind:?} of pid {pid}");
    // No lock held across the dump (as runc): a --lazy-pages dump lasts until a restore
    // has fetched every page, maybe never, and meanwhile `state`, `kill` and `delete
    // --force` of the container must answer (runc's lazy-pages test deletes it when the
    // page server is late; a delete ends the dump with an error).
    let Container { dir, saved } = c;
    drop(dir);
    criu.request(req, &spawn, |_, _| Ok(()), &mut DumpNotify { status_fd })?;
    drop((images, work));
    if !opts.leave_running && !opts.pre_dump {
        // CRIU killed the processes: the container goes, as with `delete` (unless a
        // delete came first).
        match Container::reopen(root, saved) {
            Ok(c) => c.delete(true)?,
            Err(Error::NotExist(_)) => tracing::debug!("checkpoint {id}: deleted meanwhile"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `--status-fd` must be open for writing (CRIU writes one byte when lazy pages can be
/// served).
fn check_status_fd(fd: RawFd) -> Result<OwnedFd> {
    let bad = |why: String| Error::Other(format!("invalid --status-fd {fd}: {why}"));
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| bad(e.to_string()))?;
    let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
    if mode == OFlag::O_RDONLY {
        return Err(bad("not writable".into()));
    }
    // Reopened as ours, the caller's number closed (as runc): the reader must see EOF
    // once the byte is written.
    let owned = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .map_err(|e| bad(e.to_string()))?;
    let _ = nix::unistd::close(fd);
    Ok(owned.into())
}

struct DumpNotify {
    status_fd: Option<OwnedFd>,
}

impl Notify for DumpNotify {
    fn notify(&mut self, script: &str, _pid: i32, _fd: Option<OwnedFd>) -> Result<()> {
        if script == "status-ready" {
            if let Some(fd) = self.status_fd.take() {
                if let Err(e) = nix::unistd::write(&fd, &[0]) {
                    tracing::warn!("--status-fd: write: {e}");
                }
            }
        }
        Ok(())
    }
}
