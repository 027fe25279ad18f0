//! docker driving the runtime (`dockerd --add-runtime`): a private dockerd per test (its
//! own data and exec roots, socket and cgroup parent; no bridge, no iptables; vfs storage)
//! on a private containerd (hack/containerd-env.sh), whose runc shim calls the runtime as
//! it calls runc, on a busybox image built locally. Skipped outside CI when dockerd is
//! missing, and when CAPSA_TEST_DOCKER=0.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use integration::runtime::{run_cmd, workspace_dir, Out};
use integration::{image, wait_until, Ctx};

const IMAGE: &str = "capsa-test-busybox:latest";

struct Docker {
    ctrd: PathBuf,
    sock: PathBuf,
    dockerd: std::process::Child,
}

impl Docker {
    /// None (test skipped) when dockerd is not installed and we are not in CI.
    fn new(ctx: &Ctx) -> Option<Docker> {
        if std::env::var("CAPSA_TEST_DOCKER").as_deref() == Ok("0") {
            integration::skip("CAPSA_TEST_DOCKER=0");
            return None;
        }
        let have = ["dockerd", "docker", "containerd"]
            .iter()
            .all(|b| Command::new(b).arg("--version").output().is_ok());
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "dockerd, docker or containerd missing (hack/test-deps.sh installs them)"
            );
            integration::skip("dockerd not installed");
            return None;
        }
        let dir = ctx.mkdir("dk");
        let ctrd = ctx.mkdir("ctrd");
        let out = run_cmd(
            Command::new("bash")
                .arg(workspace_dir().join("hack/containerd-env.sh"))
                .arg("start")
                .env("CTRD_DIR", &ctrd),
        )
        .ok();
        let ctrd_sock = out.stdout.trim().to_string();
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd log");
        let rt = format!("capsa-test={}", ctx.rt.path.display());
        // Its identity key, else written to /etc/docker (a config-file setting only).
        let config = dir.join("daemon.json");
        let key = serde_json::json!({ "deprecated-key-path": dir.join("key.json") });
        std::fs::write(&config, key.to_string()).expect("write daemon.json");
        let child = Command::new("dockerd")
            .arg("--containerd")
            .arg(&ctrd_sock)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--config-file")
            .arg(&config)
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args([
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
            ])
            .args([
                "--storage-driver=vfs",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .arg("--cgroup-parent")
            .arg(&ctx.cg_parent)
            .arg("--add-runtime")
            .arg(&rt)
            .args(["--default-runtime", "capsa-test", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let mut d = Docker {
            ctrd,
            sock,
            dockerd: child,
        };
        let mut gone = None;
        wait_until("the private dockerd answers", || {
            gone = d.dockerd.try_wait().ok().flatten();
            gone.is_some() || d.cli(&["info"]).code() == Some(0)
        });
        if let Some(status) = gone {
            let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
            panic!("dockerd exited ({status}): {log}");
        }
        let work = ctx.mkdir("image");
        let archive = image::busybox_docker_archive(&work, IMAGE);
        d.cli(&["load", "-q", "-i", &archive.to_string_lossy()])
            .ok();
        Some(d)
    }

    fn cli(&self, args: &[&str]) -> Out {
        run_cmd(
            Command::new("docker")
                .arg("--host")
                .arg(format!("unix://{}", self.sock.display()))
                .args(args),
        )
    }

    /// `docker run --rm --network none EXTRA... IMAGE sh -c SCRIPT`.
    fn run(&self, extra: &[&str], script: &str) -> Out {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(extra);
        args.extend([IMAGE, "sh", "-c", script]);
        self.cli(&args)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg("docker --host unix://$S rm -f $(docker --host unix://$S ps -aq) >/dev/null 2>&1")
            .env("S", &self.sock)
            .status();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.dockerd.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.dockerd.wait();
        let _ = Command::new("bash")
            .arg(workspace_dir().join("hack/containerd-env.sh"))
            .arg("stop")
            .env("CTRD_DIR", &self.ctrd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `docker run --tmpfs DIR` (a tmpfs with docker's noexec,nosuid,nodev) and `--read-only`:
/// the tmpfs is there and writable, the root is not.
#[test]
fn run_tmpfs_and_read_only() {
    let ctx = Ctx::new();
    let Some(d) = Docker::new(&ctx) else { return };
    let out = d
        .run(
            &["--read-only", "--tmpfs", "/scratch"],
            "touch /nope 2>/dev/null || echo root-ro; echo hi > /scratch/x && cat /scratch/x; \
             grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4",
        )
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["root-ro", "hi"], "{out}");
    let mount = lines.get(2).copied().unwrap_or_default();
    assert!(mount.starts_with("tmpfs "), "{out}");
    for opt in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(mount.split([' ', ',']).any(|o| o == opt), "{opt}: {out}");
    }
    // The exit status comes back through the shim.
    let out = d.run(&[], "exit 7");
    assert_eq!(out.code(), Some(7), "{out}");
}
