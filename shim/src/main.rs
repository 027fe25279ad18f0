//! containerd-shim-capsa-v2: the containerd shim v2 (runtime type
//! `io.containerd.capsa.v2`). It drives an OCI runtime through the runc
//! command line: capsa by default, or any runc-compatible binary named by the
//! runtime option BinaryName.

mod cgroup;
mod console;
mod container;
mod error;
mod events;
mod io;
mod metrics;
mod mounts;
mod oom;
mod options;
mod process;
mod reaper;
mod runtime;
mod shim;
mod task;
mod util;

fn main() {
    // One malloc arena: the shim's threads mostly sleep, and glibc's
    // per-thread arenas would each keep pages resident.
    // SAFETY: mallopt only tunes the allocator; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    if let Err(e) = shim::run() {
        // Once serving, stderr is containerd's log pipe or /dev/null: log too.
        tracing::error!("{e}");
        eprintln!("containerd-shim-capsa-v2: {e}");
        std::process::exit(1);
    }
}
