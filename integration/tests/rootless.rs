//! Rootless: the runtime run by an unprivileged user (issue 7).
//!
//! As root, the test makes sure the user `capsa-rootless` exists with subordinate ids
//! 400000-465535 (as hack/test-deps.sh does), gives it a busybox bundle in a directory it
//! owns, lets the runtime write the config (`spec --rootless`, run as that user) and runs
//! the runtime as that user through setpriv, with an XDG_RUNTIME_DIR of its own and no
//! `--root`. A guard deletes the user's containers and kills what is left, also on failure.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use integration::bundle::make_rootfs;
use integration::runtime::{run_cmd, run_quiet};
use integration::unprivileged::{chown_r, user, User, SUB_SIZE, SUB_START, USER};
use integration::{cgroup, leftovers, wait_until, Ctx, Kind, Out};
use serde_json::{json, Value};

/// One test's rootless world: a home for USER inside the test's temp dir (its
/// XDG_RUNTIME_DIR and bundles), and the ids to delete at the end.
struct Rootless<'a> {
    ctx: &'a Ctx,
    user: &'static User,
    home: PathBuf,
    xdg: PathBuf,
    ids: Mutex<Vec<String>>,
}

impl<'a> Rootless<'a> {
    fn new(ctx: &'a Ctx) -> Rootless<'a> {
        let user = user();
        // The user must reach its home through the test's (root-owned) temp dir.
        std::fs::set_permissions(&ctx.dir, std::fs::Permissions::from_mode(0o711))
            .expect("chmod test dir");
        let home = ctx.mkdir("home");
        let xdg = home.join("run");
        std::fs::create_dir(&xdg).expect("mkdir xdg");
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        chown_r(&home, user);
        Rootless {
            ctx,
            user,
            home,
            xdg,
            ids: Mutex::new(Vec::new()),
        }
    }

    /// The runtime as USER (setpriv, no supplementary groups), with a clean environment.
    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_in(None, args)
    }

    /// [`Self::cmd`], started in the cgroup whose cgroup.procs is `procs` (on cgroup v2 a
    /// user may move processes only within a subtree of its own, as under systemd).
    fn cmd_in(&self, procs: Option<&Path>, args: &[&str]) -> Command {
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
            .arg("--clear-groups")
            .arg("--")
            .arg(&self.ctx.rt.path)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.home)
            .env("USER", USER)
            .env("LOGNAME", USER)
            .env("XDG_RUNTIME_DIR", &self.xdg);
        c
    }

    fn rt(&self, args: &[&str]) -> Out {
        run_cmd(&mut self.cmd(args))
    }

    /// A new container id, deleted (as USER) by the guard.
    fn id(&self) -> String {
        let id = self.ctx.id();
        self.ids.lock().expect("ids").push(id.clone());
        id
    }

    /// Where the runtime keeps its state by default: `$XDG_RUNTIME_DIR/<runtime>`.
    fn default_root(&self) -> Option<PathBuf> {
        match self.ctx.rt.kind {
            Kind::Capsa => Some(self.xdg.join("capsa")),
            Kind::Runc => Some(self.xdg.join("runc")),
            Kind::Other(_) => None,
        }
    }

    /// A bundle of USER's: a busybox rootfs it owns and the config the runtime writes with
    /// `spec --rootless` (as USER), then `edit`ed: the process, a writable root, and the
    /// test's tag in the environment (so a leftover process can be found).
    fn bundle(&self, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.home.join(name);
        make_rootfs(&dir.join("rootfs"));
        chown_r(&dir, self.user);
        let d = dir.to_string_lossy().into_owned();
        self.rt(&["spec", "--rootless", "--bundle", &d]).ok();
        let path = dir.join("config.json");
        let mut spec: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read config.json"))
                .expect("config.json is JSON");
        spec["process"]["terminal"] = json!(false);
        spec["root"]["readonly"] = json!(false);
        spec["process"]["env"]
            .as_array_mut()
            .expect("env array")
            .push(json!(format!("CAPSA_TEST_TAG={}", self.ctx.tag)));
        edit(&mut spec);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&spec).expect("serialise"),
        )
        .expect("write config.json");
        chown_r(&path, self.user);
        dir
    }

    /// `script` (sh) as root of a user namespace the runtime did not make (`unshare
    /// --map-root-user`, the user as 0, as rootless podman calls a runtime), with no `$USER`
    /// (podman's conmon passes none); `$RT` is the runtime, without `--root`.
    fn in_userns(&self, script: &str) -> Out {
        run_cmd(
            Command::new("setpriv")
                .arg(format!("--reuid={}", self.user.uid))
                .arg(format!("--regid={}", self.user.gid))
                .args([
                    "--clear-groups",
                    "--",
                    "unshare",
                    "--user",
                    "--map-root-user",
                ])
                .args(["--", "sh", "-c", script])
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                .env("HOME", &self.home)
                .env("XDG_RUNTIME_DIR", &self.xdg)
                .env("RT", &self.ctx.rt.path),
        )
    }

    fn run(&self, bundle: &Path) -> Out {
        let id = self.id();
        let b = bundle.to_string_lossy().into_owned();
        self.rt(&["run", "--bundle", &b, &id])
    }

    #[track_caller]
    fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"))
    }

    #[track_caller]
    fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("status")
            .to_string()
    }
}

impl Drop for Rootless<'_> {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids.iter().rev() {
            run_quiet(&mut self.cmd(&["delete", "--force", id]));
        }
        leftovers::kill_processes(&self.ctx.tag, &self.ctx.tag);
    }
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.gid())
}

/// The id map of a /proc/PID/{uid,gid}_map as (inside, outside, size) triples.
fn parse_map(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let v: Vec<u32> = l
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

#[test]
fn spec_rootless_maps_the_caller_and_needs_no_privilege() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let dir = rl.home.join("spec-only");
    std::fs::create_dir(&dir).expect("mkdir");
    chown_r(&dir, rl.user);
    rl.rt(&["spec", "--rootless", "--bundle", &dir.to_string_lossy()])
        .ok();
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("read"))
            .expect("JSON");
    let (u, g) = (rl.user.uid, rl.user.gid);
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{ "containerID": 0, "hostID": u, "size": 1 }])
    );
    assert_eq!(
        spec["linux"]["gidMappings"],
        json!([{ "containerID": 0, "hostID": g, "size": 1 }])
    );
    let nss: Vec<&str> = spec["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(nss.contains(&"user") && nss.contains(&"mount"), "{nss:?}");
    assert!(!nss.contains(&"network"), "no network namespace: {nss:?}");
    let mounts = spec["mounts"].as_array().expect("mounts");
    let sys = mounts
        .iter()
        .find(|m| m["destination"] == "/sys")
        .expect("a /sys mount");
    assert_eq!(sys["source"], "/sys");
    assert!(
        sys["options"]
            .as_array()
            .expect("opts")
            .contains(&json!("rbind")),
        "/sys is bound, not mounted: {sys}"
    );
    for m in mounts {
        assert!(
            m.get("options").is_none_or(|o| o.is_array()),
            "options not a list: {m}"
        );
        for o in m["options"].as_array().into_iter().flatten() {
            let o = o.as_str().unwrap_or_default();
            assert!(
                !o.starts_with("gid=") && !o.starts_with("uid="),
                "unmapped id option in {m}"
            );
        }
    }
    let res = &spec["linux"]["resources"];
    assert!(
        res.is_null() || res.as_object().is_some_and(|o| o.is_empty()),
        "no cgroup limits: {res}"
    );
}

#[test]
fn run_as_user_is_root_inside_and_owns_its_files() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let b = rl.bundle("b", |s| {
        s["process"]["args"] = json!([
            "/bin/sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; echo hi > /tmp/made-inside"
        ])
    });
    let out = rl.run(&b).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..2], ["0", "0"], "root inside: {out}");
    let maps = parse_map(&lines[2..].join("\n"));
    assert_eq!(
        maps,
        [(0, rl.user.uid, 1), (0, rl.user.gid, 1)],
        "uid_map and gid_map map 0 to the user: {out}"
    );
    let made = b.join("rootfs/tmp/made-inside");
    assert_eq!(
        owner(&made),
        (rl.user.uid, rl.user.gid),
        "owned by the user on the host"
    );
    if let Some(root) = rl.default_root() {
        assert!(
            root.is_dir(),
            "state under $XDG_RUNTIME_DIR: {} missing",
            root.display()
        );
        assert_eq!(owner(&root).0, rl.user.uid);
    }
}

#[test]
fn lifecycle_as_user_without_a_cgroup() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let b = rl.bundle("b", |s| {
        s["process"]["args"] = json!(["/bin/sleep", "1000"])
    });
    let id = rl.id();
    let bs = b.to_string_lossy().into_owned();
    rl.rt(&["create", "--bundle", &bs, &id]).ok();
    assert_eq!(rl.status(&id), "created");
    let root = rl.default_root();
    if let Some(root) = &root {
        assert!(
            root.join(&id).is_dir(),
            "state dir {}",
            root.join(&id).display()
        );
    }
    rl.rt(&["start", &id]).ok();
    assert_eq!(rl.status(&id), "running");
    let pid = rl.state(&id)["pid"].as_i64().expect("pid") as i32;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("init status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|f| f == rl.user.uid.to_string()),
        "the init runs as the user on the host: {uid_line}"
    );
    let ex = rl
        .rt(&[
            "exec",
            &id,
            "/bin/sh",
            "-c",
            "id -u; cat /proc/self/uid_map",
        ])
        .ok();
    let lines: Vec<&str> = ex.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "exec is root inside: {ex}");
    assert_eq!(
        parse_map(&lines[1..].join("\n")),
        [(0, rl.user.uid, 1)],
        "{ex}"
    );
    // Only the caller's id is mapped: an exec as another user fails and says why.
    // exec's own failure: 255, runc's convention (capsa's too).
    let ex = rl
        .rt(&["exec", "-u", "1000", &id, "/bin/true"])
        .exec_fails();
    if rl.ctx.rt.is_capsa() {
        assert!(
            ex.stderr.contains("process.user") && ex.stderr.contains("not mapped"),
            "{ex}"
        );
    }
    assert_eq!(
        rl.status(&id),
        "running",
        "a failed exec leaves the container"
    );
    // Without a cgroup, capsa finds the container's processes through its pid namespace.
    let ps = rl.rt(&["ps", "--format", "json", &id]);
    if ps.success()
        || !rl
            .ctx
            .rt
            .runc_deviation("rootless runc 1.1 has no ps without a cgroup")
    {
        let pids: Vec<i32> = serde_json::from_str(ps.ok().out()).expect("ps json");
        assert_eq!(pids, [pid], "ps lists the init");
    }
    // Not delegated: no cgroup was made for it (it stays in the caller's).
    let cg = cgroup::existing_dirs(&format!("/{id}"));
    assert!(cg.is_empty(), "rootless made a cgroup: {cg:?}");
    let list = rl.rt(&["list", "-q"]).ok();
    assert!(list.stdout.lines().any(|l| l.trim() == id), "{list}");
    rl.rt(&["kill", &id, "KILL"]).ok();
    wait_until("the container to stop", || rl.status(&id) == "stopped");
    rl.rt(&["delete", &id]).ok();
    let list = rl.rt(&["list", "-q"]).ok();
    assert!(!list.stdout.lines().any(|l| l.trim() == id), "{list}");
    if let Some(root) = &root {
        assert!(!root.join(&id).exists(), "state dir left behind");
    }
    assert!(
        leftovers::processes(&ctx.tag, &ctx.tag).is_empty(),
        "processes left behind"
    );
}

#[test]
fn ranges_beyond_the_callers_id_use_newuidmap() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let (u, g) = (rl.user.uid, rl.user.gid);
    let b = rl.bundle("b", |s| {
        s["linux"]["uidMappings"] = json!([
            { "containerID": 0, "hostID": u, "size": 1 },
            { "containerID": 1, "hostID": SUB_START, "size": SUB_SIZE }
        ]);
        s["linux"]["gidMappings"] = json!([
            { "containerID": 0, "hostID": g, "size": 1 },
            { "containerID": 1, "hostID": SUB_START, "size": SUB_SIZE }
        ]);
        s["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        s["process"]["args"] = json!([
            "/bin/sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; echo x > /tmp/by-1000"
        ]);
    });
    let out = rl.run(&b).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{out}");
    assert_eq!(
        parse_map(&lines[2..].join("\n")),
        [(0, u, 1), (1, SUB_START, SUB_SIZE)],
        "{out}"
    );
    // uid 1000 inside is subordinate id SUB_START + 999 outside.
    let host = SUB_START + 999;
    assert_eq!(owner(&b.join("rootfs/tmp/by-1000")), (host, host));
}

#[test]
fn limits_without_a_delegated_cgroup_fail_clearly() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let b = rl.bundle("b", |s| {
        s["linux"]["resources"] = json!({ "memory": { "limit": 64 * 1024 * 1024 } });
        s["process"]["args"] = json!(["/bin/true"]);
    });
    let id = rl.id();
    let bs = b.to_string_lossy().into_owned();
    let out = rl.rt(&["create", "--bundle", &bs, &id]).fails();
    if ctx.rt.is_capsa() {
        let e = &out.stderr;
        assert!(
            e.contains("memory") && e.contains("not delegated") && e.contains(&format!("/{id}")),
            "the error names the limit and the cgroup: {out}"
        );
    }
    if let Some(root) = rl.default_root() {
        assert!(!root.join(&id).exists(), "state dir left behind: {out}");
    }
    assert!(
        cgroup::existing_dirs(&format!("/{id}")).is_empty(),
        "cgroup left behind"
    );
    assert!(
        leftovers::processes(&ctx.tag, &ctx.tag).is_empty(),
        "processes left behind"
    );
}

#[test]
fn default_root_needs_a_usable_xdg_runtime_dir() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let out = run_cmd(rl.cmd(&["list"]).env_remove("XDG_RUNTIME_DIR"));
    if rl
        .ctx
        .rt
        .runc_deviation("without XDG_RUNTIME_DIR a non-root runc falls back to /run/runc")
    {
        return;
    }
    let out = out.fails();
    assert!(
        out.stderr.contains("XDG_RUNTIME_DIR") && out.stderr.contains("--root"),
        "{out}"
    );
    // Not ours: refused, naming the directory.
    let out = run_cmd(rl.cmd(&["list"]).env("XDG_RUNTIME_DIR", "/root")).fails();
    assert!(out.stderr.contains("XDG_RUNTIME_DIR=/root"), "{out}");
    // --root still wins over a bad XDG_RUNTIME_DIR.
    let explicit = rl.home.join("explicit-root");
    let out = run_cmd(
        rl.cmd(&["--root", &explicit.to_string_lossy(), "list", "-q"])
            .env("XDG_RUNTIME_DIR", "/root"),
    );
    out.ok();
}

/// A cgroup parent of the test's own, handed to USER (chown) in every hierarchy the
/// runtime writes: the container's cgroup is made under it, pause/resume work, and delete
/// removes it. On cgroup v2 limits apply too; on v1 capsa refuses them clearly (only root
/// may write the device controller).
#[test]
fn delegated_cgroup_is_used() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let v2 = cgroup::is_unified();
    let rel = ctx.cg_parent.trim_start_matches('/');
    for h in cgroup::hierarchies() {
        let wanted = if v2 {
            h.v2
        } else {
            !h.v2 && h.controllers.iter().any(|c| !c.starts_with("name="))
        };
        if !wanted {
            continue;
        }
        let d = h.mount.join(rel);
        std::fs::create_dir_all(&d).expect("mkdir cgroup parent");
        if v2 {
            // Controllers for the children; the launcher is a leaf of its own.
            let _ = std::fs::write(d.join("cgroup.subtree_control"), "+pids +memory");
            std::fs::create_dir_all(d.join("launcher")).expect("mkdir launcher cgroup");
        }
        chown_r(&d, rl.user);
    }
    let launcher = v2.then(|| {
        Path::new("/sys/fs/cgroup")
            .join(rel)
            .join("launcher/cgroup.procs")
    });
    let rt = |args: &[&str]| run_cmd(&mut rl.cmd_in(launcher.as_deref(), args));
    let id = rl.id();
    let path = format!("{}/{id}", ctx.cg_parent);
    let p2 = path.clone();
    let b = rl.bundle("b", move |s| {
        s["process"]["args"] = json!(["/bin/sleep", "1000"]);
        s["linux"]["cgroupsPath"] = json!(p2);
        if v2 {
            s["linux"]["resources"] = json!({ "pids": { "limit": 42 } });
        }
    });
    let bs = b.to_string_lossy().into_owned();
    rt(&["create", "--bundle", &bs, &id]).ok();
    rt(&["start", &id]).ok();
    let pid = rl.state(&id)["pid"].as_i64().expect("pid") as i32;
    let dir = cgroup::controller_dir("pids", &path);
    assert!(
        cgroup::procs(&dir).contains(&pid),
        "init {pid} in {}",
        dir.display()
    );
    if v2 {
        assert_eq!(cgroup::read(&dir, "pids.max"), "42");
    }
    rt(&["pause", &id]).ok();
    assert_eq!(rl.status(&id), "paused");
    rt(&["resume", &id]).ok();
    assert_eq!(rl.status(&id), "running");
    rt(&["kill", &id, "KILL"]).ok();
    wait_until("the container to stop", || rl.status(&id) == "stopped");
    rt(&["delete", &id]).ok();
    let left = cgroup::existing_dirs(&path);
    assert!(left.is_empty(), "delete left the cgroup: {left:?}");

    if !v2 && ctx.rt.is_capsa() {
        let id = rl.id();
        let p3 = format!("{}/{id}", ctx.cg_parent);
        let b = rl.bundle("b-limits", move |s| {
            s["linux"]["cgroupsPath"] = json!(p3);
            s["linux"]["resources"] = json!({ "pids": { "limit": 42 } });
        });
        let bs = b.to_string_lossy().into_owned();
        let out = rt(&["create", "--bundle", &bs, &id]).fails();
        assert!(out.stderr.contains("cgroup v2"), "{out}");
        assert!(cgroup::existing_dirs(&format!("{}/{id}", ctx.cg_parent)).is_empty());
    }
}

/// A `spec --rootless` bundle without the container's own user namespace: it runs in the
/// caller's (the situation of a runtime under rootless podman).
fn no_userns(s: &mut Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "user");
    let linux = s["linux"].as_object_mut().expect("linux");
    linux.remove("uidMappings");
    linux.remove("gidMappings");
}

#[test]
fn root_of_a_user_namespace_it_did_not_make() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let b = rl.bundle("b", |s| {
        no_userns(s);
        s["process"]["args"] = json!([
            "/bin/sh",
            "-c",
            "id -u; head -1 /proc/self/uid_map; stat -c %t:%T /dev/null /dev/zero /dev/tty; \
             echo x > /dev/null; head -c 3 /dev/urandom | wc -c"
        ])
    });
    let b2 = rl.bundle("b2", |s| {
        no_userns(s);
        s["process"]["args"] = json!(["/bin/sleep", "1000"])
    });
    let (id, id2) = (rl.id(), rl.id());
    let root = rl.default_root();
    let check_root = match &root {
        Some(r) => format!("test -d {}/{id2} && echo state-in-xdg", r.display()),
        None => "echo state-in-xdg".into(),
    };
    let out = rl
        .in_userns(&format!(
            "set -e; $RT run --bundle {b} {id}; \
             $RT run -d --bundle {b2} {id2} </dev/null >/dev/null 2>&1; {check_root}; \
             $RT exec {id2} id -u; $RT delete -f {id2}",
            b = b.display(),
            b2 = b2.display()
        ))
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    let map: Vec<u32> = lines[1]
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(map, [0, rl.user.uid, 1], "the caller's namespace: {out}");
    assert_eq!(
        &lines[2..5],
        ["1:3", "1:5", "5:0"],
        "host nodes bound: {out}"
    );
    assert_eq!(&lines[5..], ["3", "state-in-xdg", "0"], "{out}");
    if let Some(r) = root {
        assert!(!r.join(&id2).exists(), "deleted");
    }
}

#[test]
fn rootless_false_in_a_user_namespace_fails_on_the_cgroup_and_leaves_nothing() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let b = rl.bundle("b", |s| {
        no_userns(s);
        s["process"]["args"] = json!(["/bin/true"])
    });
    let id = rl.id();
    // auto (the default) runs it without a cgroup; false manages cgroups as the host's
    // root would, and may not.
    rl.in_userns(&format!("$RT run --bundle {} {id}", b.display()))
        .ok();
    let out = rl
        .in_userns(&format!(
            "$RT --rootless false run --bundle {} {id}",
            b.display()
        ))
        .fails();
    assert!(
        out.stderr.to_lowercase().contains("cgroup"),
        "the error names the cgroup: {out}"
    );
    if let Some(r) = rl.default_root() {
        assert!(!r.join(&id).exists(), "no state left: {out}");
    }
}

#[test]
fn rootless_true_as_the_hosts_root_still_applies_limits() {
    let ctx = Ctx::new();
    let limit: u64 = 96 * 1024 * 1024;
    let inside = if cgroup::is_unified() {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let b = ctx
        .bundle()
        .resources("memory", json!({ "limit": limit }))
        .sh(&format!("cat {inside}"));
    b.write();
    let id = ctx.id();
    let dir = b.dir.to_string_lossy().into_owned();
    let out = ctx
        .rt(&["--rootless", "true", "run", "--bundle", &dir, &id])
        .ok();
    assert_eq!(out.out(), limit.to_string(), "{out}");
}

/// Where mknod is refused, a device the host does not have (or, for capsa, a host node
/// that is not the config's device) fails `create` naming it, with no container left:
/// no state, no process, never a /dev with some of the config's devices missing.
#[test]
fn a_device_that_cannot_be_bound_fails_create_and_leaves_nothing() {
    let ctx = Ctx::new();
    let rl = Rootless::new(&ctx);
    let absent = format!("/dev/capsa-absent-{}", ctx.tag);
    let dev = absent.clone();
    let b = rl.bundle("b", move |s| {
        no_userns(s);
        s["process"]["args"] = json!(["/bin/sleep", "1000"]);
        s["linux"]["devices"] = json!([{ "path": dev, "type": "c", "major": 1, "minor": 3 }]);
    });
    // /dev/null declared as 1:7 (the host's /dev/full).
    let b2 = rl.bundle("b2", |s| {
        no_userns(s);
        s["process"]["args"] = json!(["/bin/sleep", "1000"]);
        s["linux"]["devices"] =
            json!([{ "path": "/dev/null", "type": "c", "major": 1, "minor": 7 }]);
    });
    let (id, id2) = (rl.id(), rl.id());
    let out = rl
        .in_userns(&format!("$RT create --bundle {} {id}", b.display()))
        .fails();
    assert!(out.stderr.contains(&absent), "names the device: {out}");
    if ctx.rt.is_capsa() {
        assert!(out.stderr.contains("linux.devices"), "{out}");
    }
    let mismatch = rl.in_userns(&format!("$RT create --bundle {} {id2}", b2.display()));
    if mismatch.success()
        && ctx.rt.runc_deviation(
            "in a user namespace runc binds the host's node whatever device the config names",
        )
    {
        rl.in_userns(&format!("$RT delete -f {id2}")).ok();
    } else {
        let out = mismatch.fails();
        if ctx.rt.is_capsa() {
            assert!(out.stderr.contains("linux.devices (/dev/null)"), "{out}");
            assert!(
                out.stderr.contains("c 1:3"),
                "names the host's device: {out}"
            );
        }
    }
    if let Some(r) = rl.default_root() {
        for i in [&id, &id2] {
            assert!(!r.join(i).exists(), "state left for {i}");
        }
    }
    let out = rl.in_userns("$RT list -q").ok();
    assert_eq!(out.stdout.trim(), "", "{out}");
    let left = leftovers::processes(&ctx.tag, &ctx.tag);
    assert!(left.is_empty(), "processes left: {left:?}");
}
