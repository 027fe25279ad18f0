//! OCI hooks: each runs with the container state JSON on stdin, its own args and env, and
//! an optional timeout. A hook that fails or times out fails the operation (except
//! poststart/poststop, whose failures are logged, as the spec says).

use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::{Error, Result};

/// Whether `create` has hooks to run or to pass the state to: prestart, createRuntime,
/// createContainer or startContainer.
pub fn any_for_create(h: &Hooks) -> bool {
    [
        h.prestart(),
        h.create_runtime(),
        h.create_container(),
        h.start_container(),
    ]
    .iter()
    .any(|x| x.as_ref().is_some_and(|v| !v.is_empty()))
}

pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    for (i, h) in hooks
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        run_one(kind, i, h, state_json)?;
    }
    Ok(())
}

/// poststart and poststop: a failing hook only logs a warning, and the next ones still
/// run (runtime spec, lifecycle steps 8 and 12).
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for (i, h) in hooks
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Err(e) = run_one(kind, i, h, state_json) {
            tracing::warn!("{e}");
        }
    }
}

fn run_one(kind: &str, index: usize, hook: &Hook, state_json: &str) -> Result<()> {
    let path = hook.path().display().to_string();
    let fail = |msg: String| Error::Hook {
        kind: kind.into(),
        index,
        path: path.clone(),
        msg,
    };
    // Output goes to an anonymous file: a hook that writes a lot can never block us.
    let out =
        nix::sys::memfd::memfd_create(c"capsa-hook", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| fail(format!("memfd: {e}")))?;
    let mut out = std::fs::File::from(out);
    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(
            hook.env()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter_map(|kv| kv.split_once('=')),
        )
        .stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(out.try_clone().map_err(|e| fail(e.to_string()))?);
    crate::syscall::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| fail(format!("start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: EPIPE is not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    if let Some(t) = hook.timeout() {
        let secs = t.max(0) as u64;
        if !exits_within(child.id(), Duration::from_secs(secs)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("timed out after {secs}s")));
        }
    }
    let status = child.wait().map_err(|e| fail(format!("wait: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let _ = out.rewind();
    let _ = out.read_to_string(&mut text);
    let tail: String = text
        .chars()
        .rev()
        .take(4096)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(fail(format!("{}: {}", exit_text(status), tail.trim())))
}

/// How the hook ended, in Go's words as runc prints them ("exit status 1", "signal: bad
/// system call").
fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(sig) = status.signal() else {
        return status
            .code()
            .map_or_else(|| status.to_string(), |c| format!("exit status {c}"));
    };
    let name = match sig {
        libc::SIGSYS => "bad system call",
        libc::SIGKILL => "killed",
        libc::SIGTERM => "terminated",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGABRT => "aborted",
        libc::SIGINT => "interrupt",
        libc::SIGHUP => "hangup",
        libc::SIGPIPE => "broken pipe",
        libc::SIGBUS => "bus error",
        _ => return format!("signal: {sig}"),
    };
    format!("signal: {name}")
}

/// Whether child `pid` exits within `limit`: poll(2) on its pidfd, no busy waiting.
fn exits_within(pid: u32, limit: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let Ok(pidfd) = crate::syscall::pidfd_open(pid) else {
        return true; // already reaped or gone: the wait that follows will tell
    };
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}
