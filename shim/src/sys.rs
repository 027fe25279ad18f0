//! The shim's raw calls, the only `unsafe` of the crate, each with its SAFETY note.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;

/// One malloc arena: the shim's threads mostly sleep, and glibc's per-thread arenas
/// would each keep pages resident. Call before any thread exists.
pub fn one_malloc_arena() {
    // SAFETY: mallopt only tunes the allocator; called from main before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the heap's free pages back to the kernel. Creating and starting a task parses
/// JSON and protobuf and runs the runtime; what that allocated is freed by the time the
/// shim goes idle, and without this the freed pages stay resident for the task's life.
pub fn release_free_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// TIOCSWINSZ on the pty master `fd`.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the caller's fd is open.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The child of `cmd` gets `fds` as its descriptors 3, 4 and 5 (a logging binary's
/// stdout, stderr and ready pipe, as containerd passes them).
pub fn pass_fds_as_3_4_5(cmd: &mut std::process::Command, fds: [RawFd; 3]) {
    // SAFETY: the closure runs between fork and exec and only calls dup2 and close,
    // which are async-signal-safe; the fds are open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // Move the fds to 3,4,5 via high numbers so none is clobbered.
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, 100 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..3 {
                if libc::dup2(100 + i, 3 + i) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(100 + i);
            }
            Ok(())
        });
    }
}
