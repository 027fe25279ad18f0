//! The console socket: the runtime sends the pty master of a terminal
//! container over it with SCM_RIGHTS (`--console-socket`).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};

const SOCKET_DIR: &str = "/run/capsa-shim";

pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        std::fs::create_dir_all(SOCKET_DIR).map_err(Error::io(format!("mkdir {SOCKET_DIR}")))?;
        let path = Path::new(SOCKET_DIR).join(format!(
            "pty-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(Error::io(format!("bind {}", path.display())))?;
        Ok(Self { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sent. Called once the runtime command has
    /// returned, so the connection is already queued: never blocks.
    pub fn receive(&self) -> Result<OwnedFd> {
        self.listener
            .set_nonblocking(true)
            .map_err(Error::io("console socket"))?;
        let (conn, _) = self.listener.accept().map_err(|e| {
            Error::Runtime(format!(
                "runtime did not connect to the console socket: {e}"
            ))
        })?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(Error::nix("receive console fd"))?;
        for c in msg.cmsgs().map_err(Error::nix("console message"))? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us with
                    // SCM_RIGHTS; nothing else owns it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::Runtime("no pty master on the console socket".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sets the window size of the pty behind `master`.
pub fn resize(master: &impl AsRawFd, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the fd is
    // a pty master we own.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(Error::io("resize pty")(std::io::Error::last_os_error()));
    }
    Ok(())
}
