//! Reaping: the shim is a subreaper, so it reaps the runtime commands it runs,
//! the container processes re-parented to it and any orphan below them. One
//! thread waits for SIGCHLD and collects every exit with `waitpid(-1)`; callers
//! either block for a pid they started (`wait`) or register a callback for a
//! container process (`watch`). Exits are stamped with a sequence number so a
//! stale exit of a reused pid is never taken for a newer process's.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

type Callback = Box<dyn FnOnce(i32) + Send>;

/// Unclaimed exits kept at most (orphans nobody asks about).
const MAX_UNCLAIMED: usize = 256;

#[derive(Default)]
struct Inner {
    seq: u64,
    exits: HashMap<i32, (i32, u64)>,
    watchers: HashMap<i32, (u64, Callback)>,
}

#[derive(Default)]
struct Reaper {
    inner: Mutex<Inner>,
    cv: Condvar,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

fn reaper() -> &'static Reaper {
    REAPER.get_or_init(Reaper::default)
}

fn lock() -> std::sync::MutexGuard<'static, Inner> {
    // A poisoned lock only means a callback panicked; the map is still sound.
    reaper().inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the reaping thread. Call once, before any child is started.
pub fn start() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGCHLD])?;
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for _ in signals.forever() {
                reap_all();
            }
        })?;
    // Children that exited before the handler was installed.
    reap_all();
    Ok(())
}

fn reap_all() {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("waitpid: {e}");
                return;
            }
        };
        record(pid, status);
    }
}

fn record(pid: i32, status: i32) {
    let r = reaper();
    let mut inner = lock();
    inner.seq += 1;
    let seq = inner.seq;
    // A watcher is registered with a mark taken before its process started,
    // so any exit recorded now is newer than it.
    if let Some((_, cb)) = inner.watchers.remove(&pid) {
        drop(inner);
        cb(status);
        return;
    }
    inner.exits.insert(pid, (status, seq));
    if inner.exits.len() > MAX_UNCLAIMED {
        if let Some(oldest) = inner
            .exits
            .iter()
            .min_by_key(|(_, (_, s))| *s)
            .map(|(p, _)| *p)
        {
            inner.exits.remove(&oldest);
        }
    }
    drop(inner);
    r.cv.notify_all();
}

/// A point in the exit sequence: take it before starting a process, then pass
/// it to `wait`/`watch` for that process's pid.
pub fn mark() -> u64 {
    lock().seq
}

fn take(inner: &mut Inner, pid: i32, since: u64) -> Option<i32> {
    match inner.exits.remove(&pid) {
        Some((status, seq)) if seq > since => Some(status),
        _ => None,
    }
}

/// Blocks until `pid` (started after `since`) has exited; returns its status
/// (the exit code, or 128 + signal).
pub fn wait(pid: i32, since: u64) -> i32 {
    let r = reaper();
    let mut inner = lock();
    loop {
        if let Some(status) = take(&mut inner, pid, since) {
            return status;
        }
        inner = r.cv.wait(inner).unwrap_or_else(|e| e.into_inner());
    }
}

/// Calls `cb` with the exit status of `pid` (started after `since`) when it
/// exits, at once if it already has. `cb` runs on the reaper thread: keep it
/// short and never run a command from it.
pub fn watch(pid: i32, since: u64, cb: impl FnOnce(i32) + Send + 'static) {
    let mut inner = lock();
    if let Some(status) = take(&mut inner, pid, since) {
        drop(inner);
        cb(status);
        return;
    }
    inner.watchers.insert(pid, (since, Box::new(cb)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::mpsc::channel;

    fn spawn(script: &str) -> (i32, u64) {
        let since = mark();
        // The reaper, not std's Child, collects it.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("sh").args(["-c", script]).spawn().unwrap();
        (child.id() as i32, since)
    }

    #[test]
    fn exits_are_collected_for_their_waiters() {
        start().unwrap();
        let (pid, since) = spawn("exit 7");
        assert_eq!(wait(pid, since), 7);
        let (pid, since) = spawn("kill -9 $$");
        assert_eq!(wait(pid, since), 128 + 9);
        // A watcher registered after the exit still hears of it.
        let (pid, since) = spawn("exit 3");
        while !lock().exits.contains_key(&pid) {
            std::thread::yield_now();
        }
        let (tx, rx) = channel();
        watch(pid, since, move |s| tx.send(s).unwrap());
        assert_eq!(rx.recv().unwrap(), 3);
        // An exit older than the mark is not taken for a newer process's.
        lock().exits.insert(99_999_999, (5, 0));
        let (tx, rx) = channel();
        watch(99_999_999, mark(), move |s| tx.send(s).unwrap());
        assert!(rx.try_recv().is_err());
        lock().watchers.remove(&99_999_999);
    }
}
