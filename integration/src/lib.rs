//! Harness for the integration tests: they run the runtime binary for real, as root.
//!
//! The runtime under test comes from `CAPSA_RUNTIME` (default
//! `<workspace>/target/release/capsa`), so the same suite validates capsa and
//! runc. Each test makes a [`Ctx`]: a fresh `--root`, unique container ids, its
//! own cgroup parent and a temp dir for bundles; dropping it deletes the
//! containers and removes leftover processes, mounts and cgroups, also when the
//! test panicked.

pub mod bundle;
pub mod caps;
pub mod cgroup;
pub mod console;
pub mod criu;
pub mod ctx;
pub mod image;
pub mod leftovers;
pub mod mountinfo;
pub mod poll;
pub mod probe;
pub mod runtime;
pub mod seccomp_agent;
pub mod spec;
pub mod unprivileged;
pub mod user_podman;

pub use bundle::Bundle;
pub use ctx::Ctx;
pub use poll::wait_until;
pub use runtime::{Kind, Out, Runtime};

/// Prints why a test does not apply to the runtime under test. The Rust test
/// harness has no "skipped" state, so the reason goes to stderr and the test
/// returns early; use it only for features the runtime lacks, never for capsa.
pub fn skip(reason: &str) {
    report("SKIPPED", reason);
}

/// `KIND: what` on stderr (which the harness shows only for failed tests), and
/// appended to the file `CAPSA_TEST_REPORT` names, if set, so a whole run's
/// skips and tolerated deviations can be listed (hack/test.sh does).
pub fn report(kind: &str, what: &str) {
    eprintln!("{kind}: {what}");
    if let Some(path) = std::env::var_os("CAPSA_TEST_REPORT") {
        use std::io::Write;
        // One write of one line with O_APPEND: parallel tests do not interleave.
        let line = format!("{kind}: {what}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot append to CAPSA_TEST_REPORT {path:?}: {e}");
        }
    }
}
