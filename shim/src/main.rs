//! containerd-shim-capsa-v2: the containerd shim v2 (runtime type
//! `io.containerd.capsa.v2`). It drives an OCI runtime through the runc
//! command line: capsa by default, or any runc-compatible binary named by the
//! runtime option BinaryName.

#![deny(unsafe_code)]

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
mod sys;
mod task;
mod util;

fn main() {
    sys::one_malloc_arena();
    if let Err(e) = shim::run() {
        // Once serving, stderr is containerd's log pipe or /dev/null: log too.
        tracing::error!("{e}");
        eprintln!("containerd-shim-capsa-v2: {e}");
        std::process::exit(1);
    }
}
