//! Pods and containers as a kubelet asks for them: host network, the pod's
//! IPC namespace, a cgroup parent and log directory per pod, each container's
//! namespace options mirroring the pod's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_cri::v1::*;

use super::client::{Cri, CriError};
use super::{env, eventually};

pub struct PodOpts {
    /// The pod's pid namespace mode (kubelet: Pod with shareProcessNamespace).
    pub pid: NamespaceMode,
    pub privileged: bool,
    /// The runtime handler; default the one under test.
    pub handler: Option<String>,
}

impl Default for PodOpts {
    fn default() -> Self {
        PodOpts {
            pid: NamespaceMode::Container,
            privileged: false,
            handler: None,
        }
    }
}

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Pod<'a> {
    pub cri: &'a Cri,
    pub id: String,
    pub name: String,
    pub config: PodSandboxConfig,
    pub log_dir: PathBuf,
    pub cgroup_parent: String,
    pid_mode: NamespaceMode,
    containers: RefCell<Vec<String>>,
    done: bool,
}

/// A container config under construction.
pub struct Ctr {
    pub config: ContainerConfig,
}

impl Ctr {
    /// A container `name` (attempt 0) of the test image running `sh -c script`.
    pub fn sh(name: &str, script: &str) -> Ctr {
        Ctr::args(name, &["sh", "-c", script])
    }

    pub fn args(name: &str, args: &[&str]) -> Ctr {
        Ctr {
            config: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: env().image.clone(),
                    ..Default::default()
                }),
                command: args.iter().map(|s| s.to_string()).collect(),
                log_path: format!("{name}/0.log"),
                linux: Some(LinuxContainerConfig {
                    resources: Some(LinuxContainerResources::default()),
                    security_context: Some(LinuxContainerSecurityContext::default()),
                }),
                ..Default::default()
            },
        }
    }

    pub fn attempt(mut self, n: u32) -> Ctr {
        let md = self.config.metadata.as_mut().expect("metadata");
        md.attempt = n;
        self.config.log_path = format!("{}/{n}.log", md.name);
        self
    }

    pub fn tty(mut self) -> Ctr {
        self.config.tty = true;
        self
    }

    pub fn stdin(mut self) -> Ctr {
        self.config.stdin = true;
        self
    }

    pub fn resources(mut self, f: impl FnOnce(&mut LinuxContainerResources)) -> Ctr {
        f(self.linux().resources.get_or_insert_with(Default::default));
        self
    }

    pub fn security(mut self, f: impl FnOnce(&mut LinuxContainerSecurityContext)) -> Ctr {
        f(self
            .linux()
            .security_context
            .get_or_insert_with(Default::default));
        self
    }

    fn linux(&mut self) -> &mut LinuxContainerConfig {
        self.config.linux.get_or_insert_with(Default::default)
    }
}

/// The `info` JSON of a verbose status (containerd puts the pid there).
pub fn info_pid(info: &HashMap<String, String>) -> i32 {
    let v: serde_json::Value =
        serde_json::from_str(info.get("info").map(String::as_str).unwrap_or("{}"))
            .expect("verbose info is JSON");
    v["pid"].as_i64().unwrap_or(0) as i32
}

impl<'a> Pod<'a> {
    /// RunPodSandbox of a new pod `name` (made unique).
    pub fn new(cri: &'a Cri, name: &str) -> Pod<'a> {
        Self::with(cri, name, PodOpts::default())
    }

    pub fn with(cri: &'a Cri, name: &str, opts: PodOpts) -> Pod<'a> {
        let e = env();
        let name = unique(name);
        let log_dir = e.work.join("pods").join(&name);
        let cgroup_parent = format!("{}/{name}", e.cgroup_parent);
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: format!("uid-{name}"),
                namespace: "capsa-cri-test".into(),
                attempt: 0,
            }),
            log_directory: log_dir.display().to_string(),
            labels: HashMap::from([("test".into(), "capsa-cri".into())]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: opts.pid as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    privileged: opts.privileged,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let handler = opts.handler.unwrap_or_else(|| e.handler.clone());
        let resp = cri.ok(
            "RunPodSandbox",
            cri.runtime().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler,
            }),
        );
        Pod {
            cri,
            id: resp.pod_sandbox_id,
            name,
            config,
            log_dir,
            cgroup_parent,
            pid_mode: opts.pid,
            containers: RefCell::new(Vec::new()),
            done: false,
        }
    }

    /// CreateContainer; the container's namespace options mirror the pod's.
    pub fn try_create(&self, mut c: Ctr) -> Result<String, CriError> {
        let sc = c
            .linux()
            .security_context
            .get_or_insert_with(Default::default);
        if sc.namespace_options.is_none() {
            sc.namespace_options = Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                pid: self.pid_mode as i32,
                ipc: NamespaceMode::Pod as i32,
                ..Default::default()
            });
        }
        let r = self.cri.call(
            "CreateContainer",
            self.cri.runtime().create_container(CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(c.config),
                sandbox_config: Some(self.config.clone()),
            }),
        )?;
        self.containers.borrow_mut().push(r.container_id.clone());
        Ok(r.container_id)
    }

    pub fn create(&self, c: Ctr) -> String {
        self.try_create(c)
            .unwrap_or_else(|e| panic!("CreateContainer failed: {e}"))
    }

    pub fn start(&self, id: &str) {
        self.cri.ok(
            "StartContainer",
            self.cri.runtime().start_container(StartContainerRequest {
                container_id: id.into(),
            }),
        );
    }

    /// Create and start; returns once the container is running (or has run).
    pub fn run(&self, c: Ctr) -> String {
        let id = self.create(c);
        self.start(&id);
        id
    }

    pub fn status(&self, id: &str) -> ContainerStatus {
        self.cri
            .container_status(id)
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
            .status
            .expect("container status")
    }

    /// The container's host pid (from the verbose status).
    pub fn pid(&self, id: &str) -> i32 {
        let r = self
            .cri
            .container_status(id)
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"));
        let pid = info_pid(&r.info);
        assert!(pid > 0, "container {id} has pid {pid}: {:?}", r.info);
        pid
    }

    pub fn sandbox_pid(&self) -> i32 {
        let r = self
            .cri
            .sandbox_status(&self.id)
            .unwrap_or_else(|e| panic!("PodSandboxStatus {}: {e}", self.id));
        let pid = info_pid(&r.info);
        assert!(pid > 0, "sandbox {} has pid {pid}", self.id);
        pid
    }

    pub fn wait_exited(&self, id: &str) -> ContainerStatus {
        let mut last = None;
        eventually(&format!("container {id} exited"), || {
            let s = self.status(id);
            let done = s.state == ContainerState::ContainerExited as i32;
            last = Some(s);
            done
        });
        last.expect("status")
    }

    /// ExecSync that must return (within 60 s): (exit code, stdout, stderr).
    pub fn exec(&self, id: &str, cmd: &[&str]) -> (i32, String, String) {
        let r = self
            .cri
            .exec_sync(id, cmd, 60)
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}"));
        (
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    }

    /// `sh -c script` through ExecSync; its stdout, and it must exit 0.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let (code, out, err) = self.exec(id, &["sh", "-c", script]);
        assert_eq!(code, 0, "exec `{script}` in {id}: {out}{err}");
        out
    }

    pub fn log(&self, c: &str, attempt: u32) -> String {
        std::fs::read_to_string(self.log_dir.join(c).join(format!("{attempt}.log")))
            .unwrap_or_default()
    }

    pub fn container_ids(&self) -> Vec<String> {
        self.containers.borrow().clone()
    }

    /// Stop and remove; a pod already removed (NotFound) is fine.
    fn remove(&self) -> Result<(), CriError> {
        let rt = || self.cri.runtime();
        fn gone<T>(r: Result<T, CriError>) -> Result<(), CriError> {
            match r {
                Err(CriError::Status(s)) if s.code() == tonic::Code::NotFound => Ok(()),
                r => r.map(drop),
            }
        }
        gone(self.cri.call(
            "StopPodSandbox",
            rt().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: self.id.clone(),
            }),
        ))?;
        gone(self.cri.call(
            "RemovePodSandbox",
            rt().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: self.id.clone(),
            }),
        ))
    }

    /// StopPodSandbox + RemovePodSandbox, as a kubelet does, then nothing of
    /// the pod may be left.
    pub fn finish(mut self) {
        self.done = true;
        self.remove()
            .unwrap_or_else(|e| panic!("removing pod {}: {e}", self.name));
        self.assert_nothing_left();
    }

    pub fn assert_nothing_left(&self) {
        let containers = self.container_ids();
        let mut left = Vec::new();
        // Shims and runtimes finish in the background (a shim flushes its
        // events first; the emulated VM is slow): wait up to 60 s, then report.
        let settled = (0..600).any(|_| {
            left = super::leaks::leftovers(&self.id, &containers, &self.cgroup_parent);
            left.is_empty() || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(
            settled,
            "pod {} left behind:\n  {}",
            self.name,
            left.join("\n  ")
        );
        super::cgroup::remove(&self.cgroup_parent);
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.remove() {
                eprintln!("cleanup of pod {}: {e}", self.name);
            }
        }
        super::cgroup::remove(&self.cgroup_parent);
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}
