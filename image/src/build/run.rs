//! A RUN step: the command runs in the bundle of the image so far, through an OCI runtime's
//! command line (`RUNTIME --root DIR run --bundle B ID`, capsa by default), with the image's
//! env, workdir and user, the build args of the stage in its env, docker's default
//! capabilities for a build, no `noNewPrivileges` (set-id programs work as in docker), and
//! /etc/hosts, /etc/hostname, /etc/resolv.conf bound in from the build's own copies (so the
//! step's changes to them are not committed). `--network none` keeps the spec's new network
//! namespace; `host` shares the host's.
use super::Network;
use crate::bundle::Container;
use crate::error::{Error, IoContext, Result};
use crate::oci::ImageConfig;
use crate::runtime_spec;
use crate::store::atomic_write;
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The capabilities docker gives a build step (and every container by default).
pub const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const HOSTNAME: &str = "capsa-build";

pub struct RunStep<'a> {
    pub args: Vec<String>,
    /// NAME=value of the build args in scope (ENV wins over them)
    pub build_env: Vec<String>,
    pub network: Network,
    pub runtime: &'a Path,
    /// the cgroup the step's cgroup goes under (`PARENT/capsa-build-ID`)
    pub cgroup_parent: Option<&'a str>,
    /// where the build keeps its files (runtime root, hosts files, output log)
    pub tmp: &'a Path,
    /// output to a log file, shown only when the step fails
    pub quiet: bool,
}

/// The runtime config of a RUN step for `c` (mounted) and the image config `cfg`.
fn spec(c: &Container, cfg: &ImageConfig, s: &RunStep) -> Result<Value> {
    let mut spec = runtime_spec::generate(
        cfg,
        &c.rootfs(),
        &runtime_spec::Options {
            cmd: Some(s.args.clone()),
            tty: false,
        },
    )?;
    let p = &mut spec["process"];
    // the command alone: an image's ENTRYPOINT does not wrap RUN
    p["args"] = json!(s.args);
    let mut env: Vec<String> = serde_json::from_value(p["env"].take()).unwrap_or_default();
    for e in &s.build_env {
        let k = e.split('=').next().unwrap_or("");
        if !env.iter().any(|x| x.split('=').next() == Some(k)) {
            env.push(e.clone());
        }
    }
    p["env"] = json!(env);
    let root = p["user"]["uid"].as_u64() == Some(0);
    // a non-root user starts without effective capabilities, as in docker
    let none: [&str; 0] = [];
    p["capabilities"] = if root {
        json!({"bounding": CAPS, "effective": CAPS, "permitted": CAPS})
    } else {
        json!({"bounding": CAPS, "effective": none, "permitted": none})
    };
    p["noNewPrivileges"] = json!(false);
    spec["hostname"] = json!(HOSTNAME);
    if let Some(parent) = s.cgroup_parent {
        spec["linux"]["cgroupsPath"] = json!(format!(
            "/{}/capsa-build-{}",
            parent.trim_matches('/'),
            c.id
        ));
    }
    if s.network == Network::Host {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
    }
    let mounts = spec["mounts"]
        .as_array_mut()
        .expect("default spec has mounts");
    for (dest, src) in etc_files(s)? {
        mounts.push(json!({
            "destination": dest, "type": "bind", "source": src,
            "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]
        }));
    }
    Ok(spec)
}

/// The build's /etc/hosts, /etc/hostname and /etc/resolv.conf (made once per build).
fn etc_files(s: &RunStep) -> Result<Vec<(&'static str, PathBuf)>> {
    let dir = s.tmp.join(match s.network {
        Network::None => "etc-none",
        Network::Host => "etc-host",
    });
    if !dir.exists() {
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let hosts = match s.network {
            Network::Host => fs::read_to_string("/etc/hosts").unwrap_or_default(),
            Network::None => String::new(),
        };
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{hosts}127.0.1.1\t{HOSTNAME}\n"
        );
        let resolv = match s.network {
            Network::Host => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            Network::None => String::new(),
        };
        atomic_write(&dir.join("hosts"), hosts.as_bytes())?;
        atomic_write(&dir.join("hostname"), format!("{HOSTNAME}\n").as_bytes())?;
        atomic_write(&dir.join("resolv.conf"), resolv.as_bytes())?;
    }
    Ok(vec![
        ("/etc/hosts", dir.join("hosts")),
        ("/etc/hostname", dir.join("hostname")),
        ("/etc/resolv.conf", dir.join("resolv.conf")),
    ])
}

/// Waits for the runtime; on an interrupt (Ctrl-C), kills the container: its init, pid 1 of
/// its namespace, ignores the SIGINT the runtime passes on. The wait itself is on a thread,
/// so the exit is seen at once; the interrupt flag is looked at every 100 ms. The kill is
/// tried again at each look until the runtime takes it: a Ctrl-C that comes before the
/// runtime has made the container finds nothing to kill yet.
fn wait(mut child: Child, runtime: &Path, root: &Path, id: &str) -> Result<ExitStatus> {
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let r = child.wait();
        let _ = tx.send(());
        r
    });
    let mut killed = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(100)) {
        if !killed && crate::sys::interrupted() {
            killed = Command::new(runtime)
                .arg("--root")
                .arg(root)
                .args(["kill", id, "KILL"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        }
    }
    waiter
        .join()
        .expect("the waiter thread does not panic")
        .ctx(|| format!("wait for {}", runtime.display()))
}

/// Runs the step's command in `c`; its output goes to ours (or a log with `quiet`).
pub fn run(c: &Container, cfg: &ImageConfig, s: &RunStep) -> Result<()> {
    let spec = spec(c, cfg, s)?;
    let mut bytes = serde_json::to_vec_pretty(&spec).expect("serialize spec");
    bytes.push(b'\n');
    atomic_write(&c.bundle.join("config.json"), &bytes)?;
    let root = s.tmp.join("runtime");
    fs::create_dir_all(&root).ctx(|| format!("create {}", root.display()))?;
    let id = format!("capsa-build-{}", c.id);
    let log = s.tmp.join("run.log");
    let (out, err) = if s.quiet {
        let f = File::create(&log).ctx(|| format!("create {}", log.display()))?;
        let g = f.try_clone().ctx(|| "dup log")?;
        (Stdio::from(f), Stdio::from(g))
    } else {
        (Stdio::inherit(), Stdio::inherit())
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let child = Command::new(s.runtime)
        .arg("--root")
        .arg(&root)
        .arg("run")
        .arg("--bundle")
        .arg(&c.bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .ctx(|| format!("run {}", s.runtime.display()))?;
    let status = wait(child, s.runtime, &root, &id)?;
    // a runtime that failed half-way may have left the container: never leave it running
    let _ = Command::new(s.runtime)
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if status.success() {
        return Ok(());
    }
    if s.quiet {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&log) {
            let _ = f.read_to_string(&mut text);
        }
        eprint!("{text}");
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    Err(Error::Exit {
        what: format!("the command {:?}", s.args),
        status: code,
    })
}
