//! What the checkpoint/restore tests need: whether CRIU works on this kernel, and a way
//! to start containers whose stdio CRIU can dump.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::poll::{try_wait_until, HANG_GUARD};
use crate::runtime::Out;
use crate::Ctx;

/// Whether `criu check` passes here. Where it cannot (CRIU 3.17 on a newer kernel than
/// it knows), the tests print why and return, unless `CAPSA_REQUIRE_CRIU=1` (the VM tier
/// of hack/test.sh, whose kernel CRIU supports) makes that a failure.
pub fn usable() -> bool {
    let out = Command::new("criu")
        .args(["check", "-v2", "-o", "/dev/stderr"]) // why it fails, else it says nothing
        .output();
    let why = match out {
        Ok(o) if o.status.success() => return true,
        Ok(o) => {
            let text = String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned();
            // the first error is the cause ("vdso: Failed to fill self vdso symtable")
            let cause = text
                .lines()
                .find(|l| l.contains("Error"))
                .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("exit status 1, no output")
                .to_string();
            format!("`criu check` fails on this kernel: {cause}")
        }
        Err(e) => format!("no criu ({e})"),
    };
    if std::env::var("CAPSA_REQUIRE_CRIU").as_deref() == Ok("1") {
        panic!("CAPSA_REQUIRE_CRIU=1 but {why}");
    }
    crate::skip(&why);
    false
}

/// Runs the runtime with `args` and every stdio on /dev/null, errors logged to a file
/// (`--log`): a container started so inherits stdio CRIU can dump, which the harness'
/// temp files are not (unlinked files outside the container). The log becomes stderr.
pub fn quiet(ctx: &Ctx, args: &[&str]) -> Out {
    let log = ctx.path(&format!("rt-{}.log", ctx.id()));
    let mut cmd = Command::new(&ctx.rt.path);
    cmd.arg("--root")
        .arg(&ctx.root)
        .arg("--log")
        .arg(&log)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let desc = format!("{} {}", ctx.rt.path.display(), args.join(" "));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn `{desc}`: {e}"));
    let mut status = None;
    try_wait_until(HANG_GUARD, || {
        status = child.try_wait().expect("wait for the runtime");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`{desc}` hung (killed after {HANG_GUARD:?})");
    };
    Out {
        cmd: desc,
        status,
        stdout: String::new(),
        stderr: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// The numbers a counter script appended to `file`, one per line.
pub fn numbers(file: &Path) -> Vec<u64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The shell loop of a counter: appends 1, 2, 3... to `file` (in the container).
pub fn counter_script(file: &str) -> String {
    format!("i=0; while true; do i=$((i+1)); echo $i >> {file}; sleep 0.1; done")
}
