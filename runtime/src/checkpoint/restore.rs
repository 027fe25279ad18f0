//! `capsa restore`: a new container from a bundle and CRIU's images. What `create` makes
//! (state dir, cgroup with the config's limits, pid file) is made the same way, but the
//! processes are CRIU's: it runs inside the container's cgroup, restores the tree as our
//! child (`rst_sibling`), and tells us the new init's pid. Any error removes all of it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_req, Criu_req_type, Ext_mount_map, Inherit_fd, Join_namespace,
};

use super::criu::{Criu, Notify, Spawn, MIN_VERSION};
use super::{externals, open_dir, Options};
use crate::cgroups::delegation::{self, Decision};
use crate::cgroups::{self, Cgroup};
use crate::container::Container;
use crate::process::{wait, CreateOptions};
use crate::spec::Bundle;
use crate::state::{self, ContainerDir, Saved, Status};
use crate::syscall::{Linux, Syscall};
use crate::utils::write_atomic;
use crate::{hooks, Error, Result};

/// Restore container `create.id` from `opts.image_path`. Detached, returns once it runs;
/// else waits for its init and returns its exit status (the container is then deleted).
pub fn restore(create: &CreateOptions, opts: &Options, detach: bool) -> Result<i32> {
    let bundle = Bundle::load(&create.bundle)?;
    let spec = &bundle.spec;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    match (terminal, create.console_socket.is_some()) {
        (true, false) if detach => {
            return Err(Error::Config(
                "process.terminal is true: --console-socket is required".into(),
            ))
        }
        (false, true) => {
            return Err(Error::Config(
                "--console-socket was given but process.terminal is false".into(),
            ))
        }
        _ => {}
    }
    let mut criu = Criu::new(&opts.criu);
    criu.require(MIN_VERSION, "restore")?;
    let version = criu.version()?;
    if opts.lsm_profile.is_some() {
        criu.require(31600, "--lsm-profile")?;
    }
    if opts.lsm_mount_context.is_some() {
        criu.require(31600, "--lsm-mount-context")?;
    }
    let images = std::fs::File::open(&opts.image_path)
        .map_err(|e| Error::io("open --image-path", &opts.image_path, e))?;
    let pipes = externals::read_pipes(&opts.image_path)?;

    let mut guard = Guard {
        dir: Some(ContainerDir::create(&create.root, &create.id)?),
        cgroup: None,
        pid: None,
    };
    let cgroup_path = cgroups::path_for(spec, &create.id, create.systemd_cgroup)?;
    // As create: rootless without device rules, `--cgroup-manager disabled` without a
    // cgroup, a frozen cgroup refused.
    let resources = crate::process::parent::resources_for(spec, create.rootless);
    let decision = if create.cgroups_disabled {
        delegation::disabled(resources.as_ref())?
    } else {
        delegation::decide(&cgroup_path, create.rootless, resources.as_ref())?
    };
    let cgroup = match decision {
        Decision::Skip(_) => Cgroup::none(0),
        Decision::Manage => {
            guard.dir()?.record_cgroup(&cgroup_path)?;
            let cgroup = Cgroup::open(&cgroup_path, create.systemd_cgroup, &create.id)?;
            cgroups::preflight::check(&cgroup, &cgroup_path)?;
            cgroup
        }
    };
    let no_cgroup = cgroup.is_none();
    guard.cgroup = Some((cgroup, cgroup_path.clone()));
    let cgroup = &guard.cgroup.as_ref().expect("just set").0;
    let mut saved = Saved::new(create, &bundle, 0, cgroup_path, no_cgroup);

    // CRIU's root must be a mount point whose parent is not overmounted.
    let criu_root = CriuRoot::bind(&guard.dir()?.path, &bundle.rootfs)?;
    let _mount_points = externals::MountPoints::prepare(spec, &bundle.rootfs, &bundle.dir)?;
    let work = opts
        .work_path
        .as_deref()
        .map(|w| open_dir(w, "open --work-path"))
        .transpose()?;

    let mut o = opts.criu_opts(&images, work.as_ref(), "restore.log", spec);
    o.set_evasive_devices(true);
    o.set_rst_sibling(true);
    o.set_root(criu_root.path.display().to_string());
    if let Some(p) = &opts.lsm_profile {
        o.set_lsm_profile(p.clone());
    }
    if let Some(c) = &opts.lsm_mount_context {
        o.set_lsm_mount_context(c.clone());
    }
    let namespaces = externals::restore_namespaces(spec, version)?;
    for (ns, file) in &namespaces.join {
        let mut j = Join_namespace::new();
        j.set_ns(ns.clone());
        j.set_ns_file(file.clone());
        o.join_ns.push(j);
    }
    for (fd, key) in &namespaces.inherit {
        o.inherit_fd.push(inherit(fd.as_raw_fd(), key));
    }
    for (fd, key) in &pipes {
        o.inherit_fd.push(inherit(*fd, key));
    }
    let mut req = Criu_req::new();
    req.set_type(Criu_req_type::RESTORE);
    req.opts = Some(o).into();

    let keep: Vec<&OwnedFd> = namespaces.inherit.iter().map(|(fd, _)| fd).collect();
    let log: PathBuf = opts
        .work_path
        .as_deref()
        .unwrap_or(&opts.image_path)
        .join("restore.log");
    let spawn = Spawn {
        inherit_stdio: true,
        keep: &keep,
        log: Some(log),
    };
    let mut notify = RestoreNotify {
        saved: &mut saved,
        console_socket: create.console_socket.as_deref(),
        master: None,
        pid: None,
    };
    let resp = criu.request(
        req,
        &spawn,
        |criu_pid, req| {
            enter_cgroup(cgroup, criu_pid, resources.as_ref())?;
            let o = req.opts.mut_or_insert_default();
            for (key, val) in externals::restore_mounts(spec, &bundle.rootfs, &bundle.dir, criu_pid)
            {
                let mut m = Ext_mount_map::new();
                m.set_key(key);
                m.set_val(val);
                o.ext_mnt.push(m);
            }
            if !no_cgroup {
                o.cg_root = cgroup_roots(criu_pid, cgroups::is_unified_host());
            }
            Ok(())
        },
        &mut notify,
    );
    let master = notify.master.take();
    let notified = notify.pid;
    let resp = resp?;
    let pid = resp
        .restore
        .as_ref()
        .map(|r| r.pid())
        .filter(|p| *p > 0)
        .or(notified)
        .ok_or_else(|| Error::Other("criu restored no process".into()))?;
    guard.pid = Some(pid);
    drop((criu_root, images, work));

    saved.pid = pid;
    saved.pid_start = state::proc_stat(pid)
        .map(|(_, start)| start)
        .ok_or_else(|| Error::ProcessGone("the restored init died".into()))?;
    guard.dir()?.save(&saved)?;
    if let Some(p) = &create.pid_file {
        write_atomic(p, pid.to_string().as_bytes())?;
    }
    guard.disarm();
    if detach {
        return Ok(0);
    }
    let code = wait::wait_forwarding(pid, master)?;
    Container::reopen(&create.root, saved)?.delete(true)?;
    Ok(code)
}

fn inherit(fd: i32, key: &str) -> Inherit_fd {
    let mut i = Inherit_fd::new();
    i.set_key(key.into());
    i.set_fd(fd);
    i
}

/// CRIU goes into the container's cgroup, with the config's limits: what it restores
/// is born there.
fn enter_cgroup(cg: &Cgroup, pid: i32, resources: Option<&LinuxResources>) -> Result<()> {
    cg.enter(pid, resources)?;
    cg.limit(resources, None)
}

/// Where CRIU restores the dumped cgroups: under CRIU's own (the new container's), in each
/// v1 hierarchy, and on v2 as CRIU's global root. Without it CRIU puts the processes back
/// in the cgroup they were dumped from: a container restored under a new id beside the one
/// left running (`--leave-running`, `--lazy-pages`) shared its cgroup, and the other's
/// delete killed it (runc 1.1.5 sets none on v2 and has the same misplacement).
fn cgroup_roots(criu: i32, unified: bool) -> Vec<Cgroup_root> {
    let text = std::fs::read_to_string(format!("/proc/{criu}/cgroup")).unwrap_or_default();
    roots_of(&text, unified)
}

fn roots_of(proc_cgroup: &str, unified: bool) -> Vec<Cgroup_root> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            let ctrl = it.next()?;
            let path = it.next()?;
            let mut r = Cgroup_root::new();
            match (ctrl.is_empty(), unified) {
                // v2: no controller names the global root
                (true, true) => {}
                // the unified line of a hybrid host: left to CRIU, as before
                (true, false) => return None,
                (false, _) => r.set_ctrl(ctrl.trim_start_matches("name=").into()),
            }
            r.set_path(path.into());
            Some(r)
        })
        .collect()
}

struct RestoreNotify<'a> {
    saved: &'a mut Saved,
    console_socket: Option<&'a Path>,
    master: Option<OwnedFd>,
    pid: Option<i32>,
}

impl Notify for RestoreNotify<'_> {
    fn notify(&mut self, script: &str, pid: i32, fd: Option<OwnedFd>) -> Result<()> {
        match script {
            // The namespaces exist, nothing runs yet: the create-time hooks, as runc.
            "setup-namespaces" => {
                let Some(h) = self.saved.config.hooks().clone() else {
                    return Ok(());
                };
                self.saved.pid = pid;
                let state = state::hook_state_json(self.saved, Status::Created);
                hooks::run_all("prestart", h.prestart().as_ref(), &state)?;
                hooks::run_all("createRuntime", h.create_runtime().as_ref(), &state)?;
            }
            "post-restore" => self.pid = Some(pid),
            "orphan-pts-master" => {
                let master = fd.ok_or_else(|| Error::Other("criu sent no pty master".into()))?;
                match self.console_socket {
                    Some(path) => {
                        let sock = crate::console::connect(path)?;
                        capsa_linux::fdpass::send(
                            sock.as_fd(),
                            b"orphan-pts-master",
                            &[master.as_fd()],
                        )
                        .map_err(|e| {
                            Error::sys(format!("send the pty master to {}", path.display()), e)
                        })?;
                    }
                    None => self.master = Some(master),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The rootfs bound at `<state dir>/criu-root` for CRIU, unmounted and removed on drop.
struct CriuRoot {
    path: PathBuf,
}

impl CriuRoot {
    fn bind(state_dir: &Path, rootfs: &Path) -> Result<CriuRoot> {
        let path = state_dir.join("criu-root");
        std::fs::create_dir(&path).map_err(|e| Error::io("create", &path, e))?;
        let root = CriuRoot { path };
        Linux
            .mount(
                Some(rootfs),
                &root.path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|e| {
                Error::sys(
                    format!("bind {} at {}", rootfs.display(), root.path.display()),
                    e,
                )
            })?;
        Ok(root)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = Linux.umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Undo a half-restored container: its processes, cgroup and state dir.
struct Guard {
    dir: Option<ContainerDir>,
    cgroup: Option<(Cgroup, PathBuf)>,
    pid: Option<i32>,
}

impl Guard {
    fn dir(&self) -> Result<&ContainerDir> {
        self.dir
            .as_ref()
            .ok_or_else(|| Error::Other("state dir lost".into()))
    }

    /// Success: keep everything; the state dir's lock is released.
    fn disarm(mut self) {
        self.pid = None;
        self.dir = None;
        self.cgroup = None;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some((cg, path)) = self.cgroup.take() {
            if let Err(e) = cg.destroy(&path) {
                tracing::warn!("restore cleanup: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            // The criu-root bind went first (CriuRoot's drop). Were it still there,
            // removing the state dir would descend into the rootfs: keep it then.
            let root = dir.path.join("criu-root");
            let _ = Linux.umount2(&root, MntFlags::MNT_DETACH);
            match std::fs::remove_dir(&root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("restore cleanup: {}: {e}; state dir kept", root.display());
                }
                _ => {
                    let _ = dir.remove();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_roots_name_the_new_cgroup_on_v2_and_each_v1_hierarchy() {
        let v2 = roots_of("0::/dst\n", true);
        assert_eq!(v2.len(), 1);
        assert!(!v2[0].has_ctrl(), "v2: CRIU's global root");
        assert_eq!(v2[0].path(), "/dst");
        let v1 = roots_of("5:memory:/dst\n1:name=systemd:/dst\n0::/\n", false);
        let got: Vec<(&str, &str)> = v1.iter().map(|r| (r.ctrl(), r.path())).collect();
        assert_eq!(got, [("memory", "/dst"), ("systemd", "/dst")]);
    }
}
