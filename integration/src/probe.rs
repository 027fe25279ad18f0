//! Small C programs compiled for a test, static so they run in the busybox rootfs (as
//! runc's suite does with its seccomp test programs): they make raw syscalls and print
//! what the kernel answered.

use std::path::Path;
use std::process::Command;

/// Compile `source` with `cc -static` to `out`.
pub fn compile_static(source: &str, out: &Path) {
    let src = out.with_extension("c");
    std::fs::write(&src, source).expect("write the C source");
    let st = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .expect("run cc (the tests need a C compiler and static libc: gcc, libc6-dev)");
    assert!(st.success(), "cc -static {}: {st}", src.display());
}
