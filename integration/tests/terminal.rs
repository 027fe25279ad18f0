//! process.terminal with --console-socket (runtime-tools: process terminal,
//! console socket): the pty master arrives by SCM_RIGHTS and carries the
//! container's terminal.

use std::io::Write;

use integration::console::{read_master, ConsoleSocket};
use integration::Ctx;

#[test]
fn console_socket_receives_the_pty_master() {
    let ctx = Ctx::new();
    let sock = ConsoleSocket::listen(&ctx.path("console.sock"));
    let b = ctx
        .bundle()
        .terminal(true)
        .sh("tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; stty size; read line; echo got:$line");
    let id = ctx.id();
    ctx.create_with(&id, &b, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let mut master = sock.master();
    // The fd is a pty master: the ioctl TIOCGPTN answers on it.
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer.
    let r = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            libc::TIOCGPTN,
            &mut n,
        )
    };
    assert_eq!(r, 0, "the received fd is a pty master");
    ctx.start(&id).ok();
    master.write_all(b"hello-through-pty\n").unwrap();
    let text = read_master(master, Some("got:hello-through-pty"));
    assert!(
        text.contains("/dev/pts/") || text.contains("/dev/console"),
        "tty name: {text:?}"
    );
    assert!(text.contains("all-ttys"), "stdio is the terminal: {text:?}");
    assert!(
        text.contains("got:hello-through-pty"),
        "input reaches the process: {text:?}"
    );
    ctx.wait_status(&id, "stopped");
}

#[test]
fn console_size_is_applied() {
    let ctx = Ctx::new();
    let sock = ConsoleSocket::listen(&ctx.path("console.sock"));
    let b = ctx
        .bundle()
        .terminal(true)
        .with(|s| s["process"]["consoleSize"] = serde_json::json!({ "height": 33, "width": 111 }))
        .sh("stty size");
    let id = ctx.id();
    ctx.create_with(&id, &b, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let master = sock.master();
    ctx.start(&id).ok();
    let text = read_master(master, Some("33 111"));
    assert!(text.contains("33 111"), "{text:?}");
}

#[test]
fn terminal_without_console_socket_fails_and_leaves_nothing() {
    let ctx = Ctx::new();
    let b = ctx.bundle().terminal(true).args(&["/bin/sh"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(
        out.all().contains("console"),
        "the error names the console socket: {out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn console_socket_without_terminal_fails_and_leaves_nothing() {
    let ctx = Ctx::new();
    let _sock = ConsoleSocket::listen(&ctx.path("console.sock"));
    let b = ctx.bundle().terminal(false).args(&["/bin/true"]);
    let id = ctx.id();
    let out = ctx
        .create_with(
            &id,
            &b,
            &[
                "--console-socket",
                ctx.path("console.sock").to_str().unwrap(),
            ],
        )
        .fails();
    assert!(
        out.all().contains("terminal") || out.all().contains("console"),
        "{out}"
    );
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn no_terminal_means_no_controlling_tty() {
    let ctx = Ctx::new();
    let out = ctx.sh("[ -t 0 ] || echo stdin-not-a-tty; [ -t 1 ] || echo stdout-not-a-tty");
    assert_eq!(out, "stdin-not-a-tty\nstdout-not-a-tty\n");
}

/// `run` in the foreground with process.terminal and no --console-socket: the runtime
/// makes the pty itself and copies our stdio to it (runc does the same). Our own stdio is
/// a pty here too, made by script(1).
#[test]
fn foreground_run_with_terminal_serves_it_itself() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .terminal(true)
        .sh("tty; read line; echo got:$line; exit 3");
    b.write();
    let id = ctx.id();
    let cmd = format!(
        "stty rows 40 cols 120; {} --root {} run --bundle {} {}",
        ctx.rt.path.display(),
        ctx.root.display(),
        b.dir.display(),
        id
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1)");
    use std::io::Write;
    // The line reaches the container's terminal through the runtime's copy loop.
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/"),
        "the process has a pty: {text:?}"
    );
    assert!(text.contains("got:hello"), "stdin reached it: {text:?}");
    assert_eq!(out.status.code(), Some(3), "exit status: {text:?}");
}

/// The pty belongs to the process' user, in the tty group, mode 620 (runc), for the
/// init and for `exec -t`; without that a non-root process cannot reopen its terminal.
#[test]
fn the_pty_belongs_to_the_process_user() {
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .terminal(true)
        .user(serde_json::json!({ "uid": 1000, "gid": 100 }))
        .sh("stat -c 'owner=%u:%g:%a' $(tty); sleep 1000");
    let id = ctx.id();
    let sock = ConsoleSocket::listen(&ctx.path("console.sock"));
    ctx.create_with(&id, &b, &["--console-socket", sock.path.to_str().unwrap()])
        .ok();
    let master = sock.master();
    ctx.start(&id).ok();
    let text = read_master(master, Some(":620"));
    assert!(text.contains("owner=1000:5:620"), "init: {text:?}");
    let sock = ConsoleSocket::listen(&ctx.path("exec.sock"));
    ctx.rt(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        sock.path.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "stat -c 'owner=%u:%g:%a' $(tty); sleep 1000",
    ])
    .ok();
    let exec = read_master(sock.master(), Some(":620"));
    assert!(exec.contains("owner=1000:5:620"), "exec -t: {exec:?}");
}

/// `exec -p` with a process.json that has no `user`: it runs as 0:0, as runc and crun
/// accept it.
#[test]
fn exec_process_json_without_user_runs_as_root() {
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let p = ctx.path("process.json");
    ctx.write(
        &p,
        r#"{"args": ["/bin/sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]}"#,
    );
    let out = ctx.rt(&["exec", "-p", p.to_str().unwrap(), &id]).ok();
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), ["0", "0"], "{out}");
}
