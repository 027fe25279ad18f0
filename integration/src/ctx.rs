//! One test's world: a fresh `--root`, unique ids, its own cgroup parent and
//! temp dir, and a Drop guard that leaves the host as it found it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::bundle::Bundle;
use crate::cgroup;
use crate::leftovers;
use crate::poll::wait_until;
use crate::runtime::{run_cmd, run_quiet, Out, Runtime};

static NEXT_CTX: AtomicUsize = AtomicUsize::new(0);

pub struct Ctx {
    pub rt: Runtime,
    /// The test's temp dir: bundles, root, sockets, hook outputs.
    pub dir: PathBuf,
    /// The runtime's `--root`.
    pub root: PathBuf,
    /// Unique to this test in this run; in every id, so leftovers can be found.
    pub tag: String,
    /// The cgroup parent of every container of this test, `/capsa-test-<pid>-<n>`.
    pub cg_parent: String,
    tmp: Option<tempfile::TempDir>,
    next: AtomicUsize,
    ids: Mutex<Vec<String>>,
    helpers: Mutex<Vec<Child>>,
}

impl Ctx {
    /// A fresh context; panics unless running as root.
    pub fn new() -> Ctx {
        // SAFETY: geteuid(2) has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "the integration tests must run as root");
        let rt = Runtime::from_env();
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(cgroup::remove_stale_parents);
        let pid = std::process::id();
        let n = NEXT_CTX.fetch_add(1, Ordering::SeqCst);
        let tag = format!("cit{pid}n{n}");
        let tmp = tempfile::Builder::new()
            .prefix(&format!("capsa-it-{tag}-"))
            .tempdir()
            .expect("create the test's temp dir");
        let dir = tmp.path().to_path_buf();
        let root = dir.join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        Ctx {
            rt,
            dir,
            root,
            tag,
            cg_parent: format!("/capsa-test-{pid}-{n}"),
            tmp: Some(tmp),
            next: AtomicUsize::new(0),
            ids: Mutex::new(Vec::new()),
            helpers: Mutex::new(Vec::new()),
        }
    }

    fn seq(&self) -> usize {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// A new unique container id, deleted by the guard.
    pub fn id(&self) -> String {
        let id = format!("{}-{}", self.tag, self.seq());
        self.ids.lock().expect("ids lock").push(id.clone());
        id
    }

    /// A new busybox bundle with its own cgroup `<cg_parent>/<tag>-b<k>`.
    pub fn bundle(&self) -> Bundle {
        let k = self.seq();
        let dir = self.dir.join(format!("bundle{k}"));
        Bundle::new(dir, &format!("{}/{}-b{k}", self.cg_parent, self.tag))
    }

    /// A path in the test's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new empty directory in the test's temp dir (e.g. for bind mounts).
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).expect("mkdir in test dir");
        p
    }

    /// The runtime with `--root` and `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.rt.path);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs the runtime with `--root` and `args`.
    pub fn rt(&self, args: &[&str]) -> Out {
        run_cmd(&mut self.cmd(args))
    }

    /// Writes the bundle's config and runs `create [extra...] --bundle B id`.
    pub fn create_with(&self, id: &str, b: &Bundle, extra: &[&str]) -> Out {
        b.write();
        let dir = b.dir.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", &dir];
        args.extend_from_slice(extra);
        args.push(id);
        self.rt(&args)
    }

    pub fn create(&self, id: &str, b: &Bundle) -> Out {
        self.create_with(id, b, &[])
    }

    pub fn start(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }

    pub fn kill(&self, id: &str, sig: &str) -> Out {
        self.rt(&["kill", id, sig])
    }

    pub fn delete(&self, id: &str) -> Out {
        self.rt(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Out {
        self.rt(&["delete", "--force", id])
    }

    /// The OCI state of `id` (asserting `state` succeeds).
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"))
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state.status is a string")
            .to_string()
    }

    /// The container's init pid from its state.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"]
            .as_i64()
            .expect("state.pid is a number") as i32
    }

    /// Polls `state` until the status is `want`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        wait_until(&format!("container {id} to be {want}"), || {
            self.status(id) == want
        });
    }

    /// create + start, asserting both succeed.
    #[track_caller]
    pub fn create_start(&self, id: &str, b: &Bundle) {
        self.create(id, b).ok();
        self.start(id).ok();
    }

    /// `run --bundle B <new id>` in the foreground: its exit status is the
    /// container process', its stdout the container's.
    pub fn run(&self, b: &Bundle) -> Out {
        let id = self.id();
        b.write();
        let dir = b.dir.to_string_lossy().into_owned();
        self.rt(&["run", "--bundle", &dir, &id])
    }

    /// Runs `script` with /bin/sh in a default bundle edited by `edit`.
    pub fn sh_in(&self, script: &str, edit: impl FnOnce(Bundle) -> Bundle) -> Out {
        let b = edit(self.bundle().sh(script));
        self.run(&b)
    }

    /// Runs `script` in a default bundle and returns its stdout, asserting it
    /// exited 0.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        self.sh_in(script, |b| b).ok().stdout
    }

    /// Spawns a helper process (e.g. a namespace holder) killed by the guard.
    pub fn spawn_helper(&self, cmd: &mut Command) -> u32 {
        let child = cmd.spawn().expect("spawn helper");
        let pid = child.id();
        self.helpers.lock().expect("helpers lock").push(child);
        pid
    }

    /// Asserts `out` is the "does not exist" error for `id`: exit 1, and for
    /// capsa the exact text (runc 1.1 words it `container does not exist`).
    #[track_caller]
    pub fn assert_not_exist(&self, out: Out, id: &str) {
        let out = out.fails();
        assert!(
            out.all().contains("does not exist"),
            "expected a does-not-exist error: {out}"
        );
        if self.rt.is_capsa() {
            let want = format!("container \"{id}\" does not exist");
            assert!(out.stderr.contains(&want), "expected `{want}`: {out}");
        }
    }

    /// Asserts a failed create left nothing: no state dir, no listed
    /// container, no cgroup, no mount under the test dir, no process.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str, b: &Bundle) {
        let state_dir = self.root.join(id);
        assert!(
            !state_dir.exists(),
            "state dir {} left behind",
            state_dir.display()
        );
        let list = self.rt(&["list", "-q"]);
        if list.success() {
            assert!(
                !list.stdout.lines().any(|l| l.trim() == id),
                "{id} still listed: {list}"
            );
        }
        let cg = cgroup::existing_dirs(&b.cgroups_path());
        assert!(cg.is_empty(), "cgroup left behind: {cg:?}");
        let mounts = leftovers::mounts_under(&self.dir);
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
        let cg_name = self.cg_parent.trim_start_matches('/');
        let procs = leftovers::processes(&self.tag, cg_name);
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
    }

    /// Whether the runtime supports `feature` (see [`Runtime::supports`]);
    /// prints why the test is skipped when it does not.
    pub fn requires(&self, feature: &str) -> bool {
        if self.rt.supports(feature) {
            return true;
        }
        crate::skip(&format!("{} lacks {feature}", self.rt.path.display()));
        false
    }

    /// Writes a file (creating parent dirs).
    pub fn write(&self, path: &Path, text: &str) {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).expect("mkdir parent");
        }
        std::fs::write(path, text).expect("write file");
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Everything here is best effort and must not panic (we may be
        // unwinding from a failed assertion).
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids.iter().rev() {
            let mut cmd = Command::new(&self.rt.path);
            cmd.arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", id]);
            run_quiet(&mut cmd);
        }
        for mut h in std::mem::take(&mut *self.helpers.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = h.kill();
            let _ = h.wait();
        }
        let cg_name = self.cg_parent.trim_start_matches('/').to_string();
        leftovers::kill_processes(&self.tag, &cg_name);
        cgroup::remove_tree(&self.cg_parent);
        leftovers::unmount_under(&self.dir);
        if std::env::var_os("CAPSA_TEST_KEEP").is_some() {
            if let Some(t) = self.tmp.take() {
                eprintln!("kept {}", t.keep().display());
            }
        }
    }
}
