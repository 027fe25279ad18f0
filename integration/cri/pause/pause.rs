//! pause: the first process of a CRI test pod's sandbox, like Kubernetes'
//! pause container. It holds the pod's namespaces, reaps the orphans of a
//! shared pid namespace (it is their pid 1) and exits 0 on SIGINT/SIGTERM
//! (pid 1 ignores signals it has no handler for). hack/cri-env.sh builds it
//! with plain rustc, statically linked, for the pause image.
//!
//! No crates: the few libc calls are declared here.

use std::os::raw::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;

extern "C" {
    fn signal(sig: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
}

extern "C" fn on_term(_: c_int) {
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { _exit(0) }
}

extern "C" fn on_child(_: c_int) {
    // SAFETY: waitpid is async-signal-safe; a null status pointer is allowed.
    while unsafe { waitpid(-1, std::ptr::null_mut(), WNOHANG) } > 0 {}
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("-v") {
        println!("capsa-cri-pause");
        return;
    }
    // SAFETY: installs handlers that only call async-signal-safe functions;
    // glibc's signal() keeps them installed (BSD semantics).
    unsafe {
        signal(SIGINT, on_term);
        signal(SIGTERM, on_term);
        signal(SIGCHLD, on_child);
    }
    loop {
        // SAFETY: pause only sleeps until a signal arrives.
        unsafe { pause() };
    }
}
