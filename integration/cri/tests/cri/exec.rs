//! ExecSync (what probes use) with exit codes and timeouts; streaming exec
//! and attach through the CRI streaming server, with and without a tty.

use k8s_cri::v1::*;

use crate::harness::stream::Session;
use crate::harness::{eventually, Cri, Ctr, Pod};

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn exec_sync_exit_codes_and_output() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "execsync");
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]));
    let (code, out, err) = pod.exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!((code, out.as_str(), err.as_str()), (7, "out\n", "err\n"));
    assert_eq!(pod.exec(&id, &["true"]).0, 0);
    assert_eq!(pod.exec(&id, &["false"]).0, 1);
    // A signal: 128 + SIGKILL, as a shell reports it.
    assert_eq!(pod.exec(&id, &["sh", "-c", "kill -9 $$"]).0, 137);
    // An exec joins the container: same pid namespace, sees its init.
    let ps = pod.sh(&id, "ps -o pid,args");
    assert!(ps.contains("sleep 100000"), "{ps}");
    // A missing binary is the runtime's error, not a hang.
    let r = cri.exec_sync(&id, &["/no/such/probe"], 10);
    match r {
        Ok(r) => assert_ne!(r.exit_code, 0),
        Err(e) => assert!(e.message().contains("/no/such/probe"), "{e}"),
    }
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn exec_sync_timeout_kills_the_probe() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "exectimeout");
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]));
    let e = cri
        .exec_sync(&id, &["sleep", "4747"], 1)
        .expect_err("an exec past its timeout");
    assert!(e.message().contains("timeout"), "{e}");
    // The probe's process was killed, the container lives on.
    eventually("the timed-out exec is gone", || {
        !pod.sh(&id, "ps -o args").contains("sleep 4747")
    });
    let s = pod.status(&id);
    assert_eq!(s.state, ContainerState::ContainerRunning as i32);
    // A probe that finishes within its timeout is fine.
    assert_eq!(
        cri.exec_sync(&id, &["sh", "-c", "exit 4"], 30)
            .unwrap()
            .exit_code,
        4
    );
    pod.finish();
}

fn exec_url(cri: &Cri, id: &str, cmd: &[&str], tty: bool) -> String {
    cri.ok(
        "Exec",
        cri.runtime().exec(ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin: true,
            stdout: true,
            stderr: !tty,
        }),
    )
    .url
}

fn attach_url(cri: &Cri, id: &str, tty: bool) -> String {
    cri.ok(
        "Attach",
        cri.runtime().attach(AttachRequest {
            container_id: id.into(),
            stdin: true,
            tty,
            stdout: true,
            stderr: !tty,
        }),
    )
    .url
}

/// Shell that prints `stty size` once the terminal is ROWS x COLS, or after 5 s.
/// The resize channel and stdin are separate streams with no order between
/// them (as kubectl's are): the input line may reach the shell before the size.
fn size_once_resized(rows: u16, cols: u16) -> String {
    format!(
        "n=0; until [ \"$(stty size 2>/dev/null)\" = '{rows} {cols}' ] || [ $n -ge 50 ]; \
         do sleep 0.1; n=$((n+1)); done; stty size"
    )
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn streaming_exec_with_and_without_tty() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "stream");
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]));

    let url = exec_url(
        &cri,
        &id,
        &["sh", "-c", "read l; echo got:$l; echo to-err >&2; exit 3"],
        false,
    );
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mut s = Session::open(&url);
    s.stdin("ping\n");
    let out = s.finish();
    assert_eq!(out.stdout, "got:ping\n", "{out:?}");
    assert_eq!(out.stderr, "to-err\n", "{out:?}");
    assert_eq!(out.exit_code(), Some(3), "{out:?}");

    // With a tty: the size sent on the resize channel is the terminal's.
    let url = exec_url(
        &cri,
        &id,
        &[
            "sh",
            "-c",
            &format!("read l; {}; tty; exit 0", size_once_resized(37, 101)),
        ],
        true,
    );
    let mut s = Session::open(&url);
    s.resize(101, 37);
    s.stdin("go\r");
    let out = s.finish();
    assert!(out.stdout.contains("37 101"), "{out:?}");
    assert!(out.stdout.contains("/dev/pts/"), "{out:?}");
    assert_eq!(out.exit_code(), Some(0), "{out:?}");
    pod.finish();
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn attach_with_and_without_tty() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "attach");
    // Each answer is read before the input that ends the container: output
    // written just before the exit may not reach an attached client
    // (containerd ends the attach with the container).
    let plain = pod.run(
        Ctr::sh(
            "plain",
            "while read l; do [ \"$l\" = exit ] && exit 5; echo got:$l; echo err:$l >&2; done",
        )
        .stdin(),
    );
    let mut s = Session::open(&attach_url(&cri, &plain, false));
    s.stdin("one\n");
    s.read_until("the first answer", |o| o.stdout.contains("got:one"));
    s.stdin("two\n");
    s.read_until("both answers", |o| {
        o.stdout.contains("got:two") && o.stderr.contains("err:two")
    });
    s.stdin("exit\n");
    let out = s.finish();
    assert_eq!(out.stdout, "got:one\ngot:two\n", "{out:?}");
    assert_eq!(out.stderr, "err:one\nerr:two\n", "{out:?}");
    let st = pod.wait_exited(&plain);
    assert_eq!(st.exit_code, 5);
    // What the attached user saw is also in the container's log.
    assert!(pod.log("plain", 0).contains("stdout F got:two"));

    let tty = pod.run(
        Ctr::sh(
            "tty",
            &format!("read l; {}; tty; read l; exit 0", size_once_resized(33, 90)),
        )
        .stdin()
        .tty(),
    );
    let mut s = Session::open(&attach_url(&cri, &tty, true));
    s.resize(90, 33);
    s.stdin("go\r");
    s.read_until("the terminal's size and name", |o| {
        o.stdout.contains("33 90") && o.stdout.contains("/dev/pts/")
    });
    s.stdin("done\r");
    s.finish();
    assert_eq!(pod.wait_exited(&tty).exit_code, 0);
    pod.finish();
}
