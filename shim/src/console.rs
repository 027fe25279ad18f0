//! The console socket: the runtime sends the pty master of a terminal
//! container over it with SCM_RIGHTS (`--console-socket`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

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
        let (_, fds) = capsa_linux::fdpass::recv(conn.as_fd(), &mut buf).map_err(|e| {
            Error::Runtime(format!(
                "receive the pty master from the console socket: {e}"
            ))
        })?;
        fds.into_iter()
            .next()
            .ok_or_else(|| Error::Runtime("no pty master on the console socket".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sets the window size of the pty behind `master`.
pub fn resize(master: &impl AsRawFd, width: u32, height: u32) -> Result<()> {
    crate::sys::set_winsize(master.as_raw_fd(), height as u16, width as u16)
        .map_err(Error::io("resize pty"))
}
