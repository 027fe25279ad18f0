//! What the client tests share: the make-images.sh images, the repository's hack/ scripts,
//! and a private podman and containerd that are stopped and cleaned up when dropped, also
//! when the test failed.
use std::path::{Path, PathBuf};
use std::process::Command;

/// make-images.sh's OUTDIR (hack/image-test.sh sets CAPSA_TEST_IMAGES).
pub fn images_dir() -> PathBuf {
    let d = std::env::var("CAPSA_TEST_IMAGES")
        .expect("CAPSA_TEST_IMAGES must name make-images.sh's OUTDIR (run hack/image-test.sh)");
    let d = PathBuf::from(d);
    assert!(
        d.join("images.json").is_file(),
        "{} has no images.json",
        d.display()
    );
    d
}

/// The repository's hack/ (containerd-env.sh, podman-env.sh).
pub fn hack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack")
}

/// Runs `cmd`, asserts success, returns stdout.
pub fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A private podman (config under DIR/podman) and containerd (DIR/containerd, running).
pub struct Clients {
    ctrd_dir: PathBuf,
    pub podman_env: Vec<(String, String)>,
    /// containerd's socket
    pub sock: String,
}

impl Clients {
    pub fn start(dir: &Path) -> Clients {
        let penv_out = sh(Command::new("bash")
            .arg(hack().join("podman-env.sh"))
            .env("PODMAN_DIR", dir.join("podman")));
        let podman_env = penv_out
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .flat_map(|l| l.split_whitespace())
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.trim_matches(|c| c == '"' || c == '\'').to_string(),
                )
            })
            .collect();
        // the guard first: a containerd that started half-way is stopped too
        let mut c = Clients {
            ctrd_dir: dir.join("containerd"),
            podman_env,
            sock: String::new(),
        };
        c.sock = sh(Command::new("bash")
            .arg(hack().join("containerd-env.sh"))
            .arg("start")
            .env("CTRD_DIR", &c.ctrd_dir))
        .trim()
        .to_string();
        c
    }

    /// `ctr` on the private containerd, namespace capsa-image-test.
    pub fn ctr(&self, args: &[&str]) -> String {
        sh(Command::new("ctr")
            .args(["-a", &self.sock, "-n", "capsa-image-test"])
            .args(args))
    }

    /// `podman` with the private configuration.
    pub fn podman(&self, args: &[&str]) -> String {
        sh(Command::new("podman")
            .envs(self.podman_env.clone())
            .args(args))
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(hack().join("containerd-env.sh"))
            .arg("stop")
            .env("CTRD_DIR", &self.ctrd_dir)
            .status();
        let _ = Command::new("podman")
            .args(["rmi", "-a", "-f"])
            .envs(self.podman_env.clone())
            .output();
        // containerd puts its containers under /<namespace>/ and leaves that parent behind;
        // podman leaves libpod_parent. Remove them where empty (rmdir refuses busy ones).
        // Where a controller has no hierarchy mounted (/sys/fs/cgroup/NAME a plain tmpfs
        // dir on this hybrid host), conmon makes plain dirs with a `tasks` file: remove those.
        for parent in ["capsa-image-test", "libpod_parent"] {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "for d in /sys/fs/cgroup/*/{parent} /sys/fs/cgroup/{parent}; do \
                     [ -d \"$d\" ] || continue; \
                     [ \"$(stat -f -c %T \"$d\")\" = tmpfs ] && find \"$d\" -name tasks -type f -delete; \
                     find \"$d\" -depth -type d -exec rmdir {{}} \\; ; done 2>/dev/null; true"
                ))
                .status();
        }
    }
}
