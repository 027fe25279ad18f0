//! events: `--stats` in runc's JSON shape with real numbers, and an `oom` event when a
//! process goes over the memory limit.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use integration::Ctx;

#[test]
fn stats_event_has_real_numbers() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("memory", serde_json::json!({ "limit": 64u64 << 20 }))
        .resources("pids", serde_json::json!({ "limit": 50 }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let pid = ctx.state(&id)["pid"].as_i64().expect("pid") as i32;
    ctx.rt.runc_wait_for_exec(pid);
    let out = ctx.rt(&["events", "--stats", &id]).ok();
    // runc's key order: scripts match the start of the line.
    let start = format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":");
    assert!(out.stdout.starts_with(&start), "{out}");
    let ev: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 64u64 << 20, "{d}");
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
    assert_eq!(d["pids"]["current"], 1, "{d}");
    assert_eq!(d["pids"]["limit"], 50, "{d}");
}

#[test]
fn oom_event_when_over_the_memory_limit() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources(
            "memory",
            serde_json::json!({ "limit": 16u64 << 20, "swap": 16u64 << 20 }),
        )
        .sh("until [ -e /tmp/go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1000");
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let mut events = ctx
        .cmd(&["events", "--interval", "100ms", &id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("events");
    // events takes its baseline of OOM kills before its first stats line; only then is the
    // process told to go over the limit, so the kill cannot fall before the baseline.
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first event").unwrap();
    assert!(first.contains("\"stats\""), "{first}");
    ctx.rt(&["exec", &id, "/bin/touch", "/tmp/go"]).ok();
    let mut seen_oom = false;
    for line in lines.take(200) {
        let line = line.unwrap();
        let ev: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if ev["type"] == "oom" {
            // Exactly runc's line, which scripts grep for.
            assert_eq!(line, format!("{{\"type\":\"oom\",\"id\":\"{id}\"}}"));
            seen_oom = true;
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        seen_oom
            || ctx
                .rt
                .runc_deviation("runc 1.1 `events` reports no oom on this host's v1 memory cgroup"),
        "an oom event"
    );
}
