//! Lifecycle and state (runtime-tools: state, create/start/kill/delete flow,
//! pidfile, list).

use integration::{wait_until, Ctx};

#[test]
fn create_start_kill_delete() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();

    ctx.create(&id, &b).ok();
    let st = ctx.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    assert!(
        st["pid"].as_i64().unwrap_or(0) > 0,
        "created container has an init pid: {st}"
    );
    assert_eq!(st["bundle"].as_str(), Some(b.dir.to_str().unwrap()), "{st}");
    assert!(st["ociVersion"].is_string(), "{st}");

    ctx.start(&id).ok();
    assert_eq!(ctx.status(&id), "running");

    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");

    ctx.delete(&id).ok();
    ctx.assert_not_exist(ctx.rt(&["state", &id]), &id);
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn process_exit_makes_it_stopped() {
    let ctx = Ctx::new();
    let b = ctx.bundle().sh("exit 0");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn run_returns_the_exit_status() {
    let ctx = Ctx::new();
    let out = ctx.run(&ctx.bundle().sh("echo hello from busybox; exit 42"));
    assert_eq!(out.code(), Some(42), "{out}");
    assert_eq!(out.out(), "hello from busybox");

    let out = ctx.run(&ctx.bundle().args(&["/bin/true"]));
    assert_eq!(out.code(), Some(0), "{out}");
}

#[test]
fn run_removes_the_container_afterwards() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/true"]);
    let id = ctx.id();
    b.write();
    ctx.rt(&["run", "--bundle", b.dir.to_str().unwrap(), &id])
        .ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn run_detached_leaves_it_running() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    b.write();
    ctx.rt(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id])
        .ok();
    assert_eq!(ctx.status(&id), "running");
    ctx.delete_force(&id).ok();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn init_is_pid_1_of_its_namespace() {
    let ctx = Ctx::new();
    assert_eq!(ctx.sh("echo $$").trim(), "1");
}

#[test]
fn pid_file_written_before_create_returns() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let pid_file = ctx.path("init.pid");
    ctx.create_with(&id, &b, &["--pid-file", pid_file.to_str().unwrap()])
        .ok();
    let text = std::fs::read_to_string(&pid_file).expect("pid file exists once create returned");
    assert!(
        !text.ends_with('\n'),
        "pid file has no trailing newline: {text:?}"
    );
    let pid: i32 = text.parse().expect("pid file holds a decimal pid");
    assert_eq!(pid, ctx.pid(&id));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "init {pid} is alive"
    );
}

#[test]
fn created_init_waits_for_start() {
    let ctx = Ctx::new();
    let out_dir = ctx.mkdir("out");
    let b = ctx
        .bundle()
        .bind(&out_dir, "/out")
        .sh("echo started > /out/mark");
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    // created: the user process has not run (state says so, and no mark)
    assert_eq!(ctx.status(&id), "created");
    assert!(!out_dir.join("mark").exists(), "process ran before start");
    ctx.start(&id).ok();
    wait_until("the process to run after start", || {
        out_dir.join("mark").exists()
    });
    ctx.wait_status(&id, "stopped");
}

#[test]
fn state_carries_annotations() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .args(&["/bin/sleep", "1000"])
        .with(|s| s["annotations"] = serde_json::json!({ "org.capsa.test": "yes" }));
    let id = ctx.id();
    ctx.create(&id, &b).ok();
    let st = ctx.state(&id);
    assert_eq!(st["annotations"]["org.capsa.test"], "yes", "{st}");
}

#[test]
fn list_shows_containers() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let (a, c) = (ctx.id(), ctx.id());
    ctx.create(&a, &b).ok();
    let b2 = ctx.bundle().args(&["/bin/sleep", "1000"]);
    ctx.create_start(&c, &b2);

    let q = ctx.rt(&["list", "-q"]).ok();
    let mut ids: Vec<&str> = q.stdout.lines().map(str::trim).collect();
    ids.sort();
    let mut want = vec![a.as_str(), c.as_str()];
    want.sort();
    assert_eq!(ids, want, "{q}");

    let json = ctx.rt(&["list", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("list json");
    let arr = v.as_array().expect("list --format json is an array");
    let find = |id: &str| {
        arr.iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {v}"))
    };
    assert_eq!(find(&a)["status"], "created");
    assert_eq!(find(&c)["status"], "running");

    let table = ctx.rt(&["list"]).ok();
    assert!(
        table.stdout.lines().next().unwrap_or("").contains("ID"),
        "table header: {table}"
    );
    assert!(
        table.stdout.contains(&a) && table.stdout.contains("running"),
        "{table}"
    );
}
