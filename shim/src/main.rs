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
    if let Err(e) = shim::run() {
        eprintln!("containerd-shim-capsa-v2: {e}");
        std::process::exit(1);
    }
}
