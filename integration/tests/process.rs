//! The process: user, cwd, env, umask, oomScoreAdj (runtime-tools:
//! process_user, process_cwd?, process env/args, linux_process_oom_score_adj).

use integration::Ctx;
use serde_json::json;

fn field<'a>(status: &'a str, name: &str) -> Vec<&'a str> {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .map(|l| l.split_whitespace().skip(1).collect())
        .unwrap_or_default()
}

#[test]
fn user_uid_gid_additional_gids() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("cat /proc/self/status; echo; id -un", |b| {
            b.user(json!({ "uid": 1000, "gid": 1000, "additionalGids": [5, 10] }))
        })
        .ok();
    let st = &out.stdout;
    assert_eq!(field(st, "Uid"), ["1000"; 4], "{st}");
    assert_eq!(field(st, "Gid"), ["1000"; 4], "{st}");
    let mut groups = field(st, "Groups");
    groups.sort();
    assert_eq!(groups, ["10", "5"], "exactly the additional gids: {st}");
    assert_eq!(st.lines().last().unwrap().trim(), "tester");
}

#[test]
fn id_reports_the_user() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("id -u; id -g", |b| {
            b.user(json!({ "uid": 1000, "gid": 1000 }))
        })
        .ok();
    assert_eq!(out.stdout, "1000\n1000\n");
    let out = ctx.sh("id -u; id -g");
    assert_eq!(out, "0\n0\n");
}

#[test]
fn umask() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("umask; touch /tmp/f; stat -c %a /tmp/f", |b| {
            b.with(|s| s["process"]["user"]["umask"] = json!(0o077))
        })
        .ok();
    assert_eq!(out.stdout, "0077\n600\n");
}

#[test]
fn cwd() {
    let ctx = Ctx::new();
    let out = ctx.sh_in("pwd", |b| b.cwd("/home/tester")).ok();
    assert_eq!(out.out(), "/home/tester");
}

#[test]
fn env() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("env", |b| b.env("CAPSA_VAR=with spaces=and equals"))
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"CAPSA_VAR=with spaces=and equals"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("PATH=")), "{out}");
    assert!(lines.contains(&"HOME=/root"), "{out}");
}

#[test]
fn args_are_passed_verbatim() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("", |b| {
            b.args(&[
                "/bin/sh",
                "-c",
                "printf '[%s]' \"$@\"",
                "sh",
                "a b",
                "",
                "*",
            ])
        })
        .ok();
    assert_eq!(out.stdout, "[a b][][*]");
}

#[test]
fn oom_score_adj() {
    let ctx = Ctx::new();
    let out = ctx
        .sh_in("cat /proc/self/oom_score_adj", |b| {
            b.with(|s| s["process"]["oomScoreAdj"] = json!(432))
        })
        .ok();
    assert_eq!(out.out(), "432");
}

#[test]
fn stdio_is_passed_through() {
    let ctx = Ctx::new();
    let out = ctx.sh_in("echo to-out; echo to-err >&2; exit 3", |b| b);
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, "to-out\n");
    assert!(out.stderr.contains("to-err"), "{out}");
}
