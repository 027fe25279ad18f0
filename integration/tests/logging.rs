//! --log and --log-format (issue 3 section 4): json lines are exactly
//! `{"level","msg","time"}` objects, what containerd's shims read back.

use integration::Ctx;
use serde_json::Value;

const LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "fatal", "panic",
];

fn json_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("log file {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l:?}"));
            for k in ["level", "msg", "time"] {
                assert!(v[k].is_string(), "log line has string {k}: {l}");
            }
            let level = v["level"].as_str().unwrap();
            assert!(LEVELS.contains(&level), "lower-case known level: {l}");
            let time = v["time"].as_str().unwrap();
            assert!(
                time.len() >= 19 && time.as_bytes()[10] == b'T',
                "RFC 3339 time: {l}"
            );
            v
        })
        .collect()
}

#[test]
fn json_log_of_a_failed_create_names_the_error() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .with(|s| s["root"]["path"] = serde_json::json!("no-such-rootfs"));
    b.write();
    let id = ctx.id();
    let log = ctx.path("log.json");
    let out = ctx.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    let lines = json_lines(&log);
    // containerd's shim reports the msg of the last error line
    let last_error = lines
        .iter()
        .rev()
        .find(|l| l["level"] == "error")
        .unwrap_or_else(|| panic!("an error line: {lines:?}"));
    assert!(
        last_error["msg"]
            .as_str()
            .unwrap()
            .contains("no-such-rootfs"),
        "{last_error}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn json_log_with_debug_on_success() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    b.write();
    let id = ctx.id();
    let log = ctx.path("log.json");
    let l = log.to_str().unwrap();
    let dir = b.dir.to_str().unwrap();
    ctx.rt(&[
        "--log",
        l,
        "--log-format",
        "json",
        "--debug",
        "create",
        "--bundle",
        dir,
        &id,
    ])
    .ok();
    ctx.rt(&["--log", l, "--log-format", "json", "--debug", "start", &id])
        .ok();
    ctx.rt(&[
        "--log",
        l,
        "--log-format",
        "json",
        "--debug",
        "delete",
        "--force",
        &id,
    ])
    .ok();
    let lines = json_lines(&log);
    assert!(!lines.is_empty(), "--debug writes to the log");
    assert!(
        lines.iter().all(|l| l["level"] != "error"),
        "no error on success: {lines:?}"
    );
}

#[test]
fn text_log_of_an_error() {
    let ctx = Ctx::new();
    let id = ctx.id();
    let log = ctx.path("log.txt");
    let out = ctx.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "text",
        "state",
        &id,
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    let text = std::fs::read_to_string(&log).expect("text log written");
    assert!(text.contains("does not exist"), "{text}");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "text, not json: {text}"
    );
}

#[test]
fn log_file_is_appended() {
    let ctx = Ctx::new();
    let log = ctx.path("log.json");
    std::fs::write(&log, "").unwrap();
    for _ in 0..2 {
        let id = ctx.id();
        ctx.rt(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            &id,
        ])
        .fails();
    }
    let errors = json_lines(&log)
        .into_iter()
        .filter(|l| l["level"] == "error")
        .count();
    assert!(errors >= 2, "both errors kept");
}

/// `--debug` logs `exec` too: to stderr without `--log`, only to the log with it.
#[test]
fn debug_logs_for_exec() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let out = ctx.rt(&["--debug", "exec", &id, "true"]).ok();
    assert!(out.stderr.contains("level=debug"), "{out}");
    // The process' own steps are logged, not only the runtime's (runc: "setns_init").
    assert!(out.stderr.contains("about to exec"), "{out}");
    let log = ctx.path("exec.log");
    let out = ctx
        .rt(&[
            "--debug",
            "--log",
            log.to_str().unwrap(),
            "exec",
            &id,
            "true",
        ])
        .ok();
    assert!(!out.stderr.contains("level=debug"), "{out}");
    let text = std::fs::read_to_string(&log).expect("the log is written");
    assert!(text.contains("level=debug"), "{text}");
}
