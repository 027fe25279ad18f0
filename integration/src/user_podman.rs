//! Rootless podman: podman run by the unprivileged test user (`unprivileged::USER`), so
//! the runtime under test runs as uid 0 of a user namespace podman made (issue 18).
//!
//! Each test gets a home in its temp dir (podman's storage lands in
//! `~/.local/share/containers`), an `XDG_RUNTIME_DIR` of its own at a short path outside
//! it (podman refuses a run root of 50 characters or more), the private configuration of
//! hack/podman-env.sh (no network by default, cgroupfs, events in a file, vfs storage)
//! and the busybox test image. Podman runs through setpriv with a clean environment.
//! Dropping it removes every container and podman's storage (`podman system reset`),
//! kills what is left (podman's pause process, conmon: they carry the test's tag), and
//! removes the run dir.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runtime::{run_cmd, run_quiet, workspace_dir, Out};
use crate::unprivileged::{chown_r, user, User, USER};
use crate::{image, leftovers, Ctx};

pub const IMAGE: &str = "localhost/capsa-test-busybox:latest";

pub struct UserPodman<'a> {
    ctx: &'a Ctx,
    pub user: &'static User,
    /// The user's HOME (in the test's temp dir).
    pub home: PathBuf,
    /// The user's XDG_RUNTIME_DIR: `/tmp/cr-<tag>`.
    pub xdg: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    /// The cgroup.procs every command of the user starts in: set by
    /// [`Self::delegate_cgroup_v2`] (None: the caller's cgroup).
    procs: Option<PathBuf>,
}

impl<'a> UserPodman<'a> {
    /// None (test skipped) when podman is not installed outside CI, or CAPSA_TEST_PODMAN=0.
    pub fn new(ctx: &'a Ctx) -> Option<UserPodman<'a>> {
        if std::env::var("CAPSA_TEST_PODMAN").as_deref() == Ok("0") {
            crate::skip("CAPSA_TEST_PODMAN=0");
            return None;
        }
        if Command::new("podman").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "podman is missing (hack/test-deps.sh installs it)"
            );
            crate::skip("podman not installed");
            return None;
        }
        let user = user();
        // The user reaches its home through the test's (root-owned) temp dir.
        std::fs::set_permissions(&ctx.dir, std::fs::Permissions::from_mode(0o711))
            .expect("chmod test dir");
        let home = ctx.mkdir("home");
        let xdg = PathBuf::from(format!("/tmp/cr-{}", ctx.tag));
        let _ = std::fs::remove_dir_all(&xdg);
        std::fs::create_dir(&xdg).expect("mkdir XDG_RUNTIME_DIR");
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let archive = image::busybox_docker_archive(&ctx.mkdir("home/image"), IMAGE);
        chown_r(&home, user);
        chown_r(&xdg, user);
        let dir = home.join("podman");
        let p = UserPodman {
            ctx,
            user,
            conf: dir.join("containers.conf"),
            storage_conf: dir.join("storage.conf"),
            home,
            xdg,
            procs: None,
        };
        let env_sh = workspace_dir().join("hack/podman-env.sh");
        run_cmd(
            p.as_user("bash")
                .arg(env_sh)
                .env("PODMAN_DIR", &dir)
                .env("PODMAN_DRIVER", "vfs")
                .env(
                    "PODMAN_CONTAINER_ENV",
                    format!("CAPSA_TEST_TAG={}", ctx.tag),
                ),
        )
        .ok();
        p.sh(&format!("podman load -q -i {}", archive.display()))
            .ok();
        Some(p)
    }

    /// `program` as the user: setpriv, a clean environment, the private configuration
    /// (in the delegated cgroup once there is one).
    pub fn as_user(&self, program: &str) -> Command {
        self.as_user_in(self.procs.as_deref(), program)
    }

    /// [`Self::as_user`], started in the cgroup whose cgroup.procs is `procs` (on cgroup v2
    /// a user may move processes only within a subtree delegated to it).
    pub fn as_user_in(&self, procs: Option<&Path>, program: &str) -> Command {
        let mut c = match procs {
            None => Command::new("setpriv"),
            Some(p) => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0\" && exec setpriv \"$@\""])
                    .arg(p);
                c
            }
        };
        c.arg(format!("--reuid={}", self.user.uid))
            .arg(format!("--regid={}", self.user.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.home)
            .env("USER", USER)
            .env("LOGNAME", USER)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .current_dir(&self.home);
        c
    }

    /// `script` in bash as the user; `$P` is podman with the runtime under test, `$IMAGE`
    /// the test image (in the delegated cgroup once there is one).
    pub fn sh(&self, script: &str) -> Out {
        self.sh_in(self.procs.as_deref(), script)
    }

    /// [`Self::sh`] in the cgroup whose cgroup.procs is `procs`.
    pub fn sh_in(&self, procs: Option<&Path>, script: &str) -> Out {
        run_cmd(self.as_user_in(procs, "bash").arg("-c").arg(format!(
            "set -e; P=\"podman --runtime {}\"; IMAGE={IMAGE}; {script}",
            self.ctx.rt.path.display()
        )))
    }

    /// Delegates the test's cgroup parent on cgroup v2 to the user as systemd delegates a
    /// user's subtree: the directory and its cgroup.procs, subtree_control and threads are
    /// the user's, cpu, memory and pids enabled for its children, and a child `init` for
    /// the user's processes (no process may sit in a cgroup whose controllers its children
    /// use). Every later command of the user starts in `init`. Returns the delegated
    /// directory; the Ctx guard removes the tree.
    pub fn delegate_cgroup_v2(&mut self) -> PathBuf {
        let base = Path::new("/sys/fs/cgroup").join(self.ctx.cg_parent.trim_start_matches('/'));
        let init = base.join("init");
        std::fs::create_dir_all(&init).expect("mkdir the delegated cgroup");
        let own = |f: &Path| {
            std::os::unix::fs::chown(f, Some(self.user.uid), Some(self.user.gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", f.display()))
        };
        for d in [&base, &init] {
            own(d);
            for f in ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
                own(&d.join(f));
            }
        }
        std::fs::write(base.join("cgroup.subtree_control"), "+cpu +memory +pids")
            .expect("enable controllers for the delegated cgroup's children");
        self.procs = Some(init.join("cgroup.procs"));
        base
    }

    /// Whether the runtime under test is capsa.
    pub fn is_capsa(&self) -> bool {
        self.ctx.rt.is_capsa()
    }

    /// Where the runtime keeps its state when podman calls it without `--root`.
    pub fn runtime_root(&self) -> PathBuf {
        let name = self
            .ctx
            .rt
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.xdg.join(name)
    }

    /// A directory in the user's home, owned by the user.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let d = self.home.join(name);
        std::fs::create_dir_all(&d).expect("mkdir in home");
        chown_r(&d, self.user);
        d
    }
}

impl Drop for UserPodman<'_> {
    fn drop(&mut self) {
        run_quiet(self.as_user("bash").arg("-c").arg(
            "podman rm -af -t 0 >/dev/null 2>&1; podman system reset --force >/dev/null 2>&1",
        ));
        // podman's pause process and any conmon have the tag in XDG_RUNTIME_DIR.
        leftovers::kill_processes(&self.ctx.tag, &self.ctx.tag);
        let _ = std::fs::remove_dir_all(&self.xdg);
    }
}
