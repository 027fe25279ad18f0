//! Waiting for a state: re-check a condition; the limit is only a hang guard
//! (a failure with a message), never an assertion about speed.

use std::time::{Duration, Instant};

pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after 60 s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
