//! Polling instead of fixed sleeps: a condition is re-checked until it holds.
//! The deadline is only a hang guard (a generous one), never an assertion
//! about how fast something happened.

use std::time::{Duration, Instant};

/// How long a poll waits before giving up; long enough for a loaded 2-core
/// machine or a software-emulated VM.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// Re-checks `cond` every few milliseconds until it returns true; panics
/// naming `what` if it never does within [`HANG_GUARD`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    if !try_wait_until(HANG_GUARD, &mut cond) {
        panic!("gave up waiting for: {what}");
    }
}

/// Like [`wait_until`] with an explicit guard; returns whether `cond` held.
pub fn try_wait_until(guard: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > guard {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
