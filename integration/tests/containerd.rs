//! containerd's own runc shim driving the runtime: `ctr run --runc-binary
//! <runtime>` against a private containerd (../shared/tools/containerd-env.sh),
//! on a busybox image built locally. Needs containerd and ctr (installed by
//! hack/test-deps.sh); skipped when they are missing outside CI, and when
//! CAPSA_TEST_CONTAINERD=0.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::runtime::{run_cmd, workspace_dir, Out};
use integration::{image, Ctx};

fn tools_dir() -> PathBuf {
    std::env::var_os("CAPSA_SHARED_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("../shared/tools"))
}

/// A private containerd, stopped (tasks killed, containers deleted) on drop.
struct Containerd {
    dir: PathBuf,
    sock: String,
    script: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let script = tools_dir().join("containerd-env.sh");
        let out = run_cmd(
            Command::new("bash")
                .arg(&script)
                .arg("start")
                .env("CTRD_DIR", dir)
                .env("SKIP_APT", "1"),
        )
        .ok();
        let sock = out
            .stdout
            .trim()
            .lines()
            .last()
            .expect("socket path printed")
            .to_string();
        Containerd {
            dir: dir.to_path_buf(),
            sock,
            script,
        }
    }

    fn ctr(&self, ns: &str, args: &[&str]) -> Out {
        run_cmd(
            Command::new("ctr")
                .args(["-a", &self.sock, "-n", ns])
                .args(args),
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .env("CTRD_DIR", &self.dir)
            .env("SKIP_APT", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn available() -> bool {
    if std::env::var("CAPSA_TEST_CONTAINERD").as_deref() == Ok("0") {
        integration::skip("CAPSA_TEST_CONTAINERD=0");
        return false;
    }
    let have = |b: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let ok = have("containerd")
        && have("ctr")
        && have("containerd-shim-runc-v2")
        && tools_dir().join("containerd-env.sh").is_file();
    if !ok {
        // In CI hack/test-deps.sh installs them: a missing piece there is a failure.
        assert!(
            std::env::var("CI").is_err(),
            "containerd, ctr, containerd-shim-runc-v2 or containerd-env.sh missing in CI"
        );
        integration::skip("containerd/ctr not installed (bash hack/test-deps.sh)");
    }
    ok
}

#[test]
fn ctr_run_through_the_runc_shim() {
    if !available() {
        return;
    }
    let ctx = Ctx::new();
    // Socket paths must stay short: a directory of its own under /tmp.
    let ctrd_dir = ctx.mkdir("ctrd");
    let ctrd = Containerd::start(&ctrd_dir);
    let ns = format!("capsa-it-{}", ctx.tag);
    let reference = format!("localhost/capsa-it-busybox:{}", ctx.tag);
    let work = ctx.mkdir("image");
    let tar = image::busybox_docker_archive(&work, &reference);
    ctrd.ctr(&ns, &["images", "import", tar.to_str().unwrap()])
        .ok();
    let rt = ctx.rt.path.to_str().unwrap().to_string();

    for (script, code) in [
        ("echo hello-from-ctr; exit 7", 7),
        ("echo second-run; cat /proc/self/cgroup >/dev/null", 0),
    ] {
        let id = format!("{}-ctr{code}", ctx.tag);
        let cg = format!("{}/{id}", ctx.cg_parent);
        let out = ctrd.ctr(
            &ns,
            &[
                "run",
                "--rm",
                "--runc-binary",
                &rt,
                "--cgroup",
                &cg,
                &reference,
                &id,
                "sh",
                "-c",
                script,
            ],
        );
        assert_eq!(
            out.code(),
            Some(code),
            "ctr run returns the process' exit status: {out}"
        );
        let want = script
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("echo ")
            .to_string();
        assert!(out.stdout.contains(&want), "output reaches ctr: {out}");
    }
    // --rm deleted everything: no container or task is left
    let tasks = ctrd.ctr(&ns, &["tasks", "ls", "-q"]).ok();
    assert_eq!(tasks.out(), "", "{tasks}");
    let containers = ctrd.ctr(&ns, &["containers", "ls", "-q"]).ok();
    assert_eq!(containers.out(), "", "{containers}");
}

#[test]
fn ctr_detached_task_kill_and_delete() {
    if !available() {
        return;
    }
    let ctx = Ctx::new();
    let ctrd = Containerd::start(&ctx.mkdir("ctrd"));
    let ns = format!("capsa-it-{}", ctx.tag);
    let reference = format!("localhost/capsa-it-busybox:{}", ctx.tag);
    let tar = image::busybox_docker_archive(&ctx.mkdir("image"), &reference);
    ctrd.ctr(&ns, &["images", "import", tar.to_str().unwrap()])
        .ok();
    let rt = ctx.rt.path.to_str().unwrap().to_string();
    let id = format!("{}-ctrd", ctx.tag);
    let cg = format!("{}/{id}", ctx.cg_parent);
    ctrd.ctr(
        &ns,
        &[
            "run",
            "-d",
            "--runc-binary",
            &rt,
            "--cgroup",
            &cg,
            &reference,
            &id,
            "sleep",
            "1000",
        ],
    )
    .ok();
    integration::wait_until("the task to run", || {
        ctrd.ctr(&ns, &["tasks", "ls"]).stdout.contains("RUNNING")
    });
    ctrd.ctr(&ns, &["tasks", "kill", "-s", "SIGKILL", &id]).ok();
    integration::wait_until("the task to stop", || {
        ctrd.ctr(&ns, &["tasks", "ls"]).stdout.contains("STOPPED")
    });
    ctrd.ctr(&ns, &["tasks", "delete", &id]).ok();
    ctrd.ctr(&ns, &["containers", "delete", &id]).ok();
    assert!(
        integration::cgroup::existing_dirs(&cg).is_empty(),
        "the container's cgroup is gone"
    );
}
