//! The receiving end of `--console-socket`: a unix socket on which the
//! runtime sends the pty master of a terminal container with SCM_RIGHTS.

use std::io::{ErrorKind, IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::poll::{try_wait_until, HANG_GUARD};

pub struct ConsoleSocket {
    pub path: PathBuf,
    receiver: JoinHandle<Result<OwnedFd, String>>,
}

impl ConsoleSocket {
    /// Listens on `path` and receives one fd in the background.
    pub fn listen(path: &Path) -> ConsoleSocket {
        let listener =
            UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let receiver = std::thread::spawn(move || receive(listener));
        ConsoleSocket {
            path: path.to_path_buf(),
            receiver,
        }
    }

    /// The pty master the runtime sent; panics if none came.
    pub fn master(self) -> std::fs::File {
        let fd = self
            .receiver
            .join()
            .expect("console receiver thread")
            .unwrap_or_else(|e| panic!("console socket: {e}"));
        std::fs::File::from(fd)
    }
}

fn receive(listener: UnixListener) -> Result<OwnedFd, String> {
    let mut conn = None;
    let accepted = try_wait_until(HANG_GUARD, || match listener.accept() {
        Ok((s, _)) => {
            conn = Some(s);
            true
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    });
    let conn = match (accepted, conn) {
        (true, Some(c)) => c,
        _ => return Err("the runtime never connected".into()),
    };
    conn.set_nonblocking(false).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(HANG_GUARD))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &extra in &fds[1..] {
                    // SAFETY: fds received with SCM_RIGHTS are new, ours to close.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: as above; ownership moves into the OwnedFd.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err("a message without SCM_RIGHTS".into())
}

/// Reads a pty master until the slave side is gone (EIO) or EOF, or until
/// `until` appears in what was read. Panics if neither happens within the
/// hang guard.
pub fn read_master(mut master: std::fs::File, until: Option<&str>) -> String {
    let until = until.map(str::to_string);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    if let Some(u) = &until {
                        if String::from_utf8_lossy(&all).contains(u.as_str()) {
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // EIO: every slave fd is closed
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
    });
    rx.recv_timeout(HANG_GUARD)
        .expect("reading the pty master hung")
}
