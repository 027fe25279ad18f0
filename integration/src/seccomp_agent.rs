//! A small seccomp agent for the tests (runtime spec, `linux.seccomp.listenerPath`): it
//! accepts the runtime's connections, keeps the container process state each one sends
//! with its listener fd (SCM_RIGHTS), and answers every notified syscall with one errno.

use std::io::{ErrorKind, IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::Value;

pub struct Agent {
    pub path: PathBuf,
    states: Arc<Mutex<Vec<Value>>>,
}

impl Agent {
    /// Listens on `path`; every notified syscall fails with `errno`.
    pub fn start(path: &Path, errno: i32) -> Agent {
        let listener =
            UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let states = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&states);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                match receive(conn) {
                    Ok((state, fd)) => {
                        keep.lock().unwrap_or_else(|e| e.into_inner()).push(state);
                        std::thread::spawn(move || answer(fd, errno));
                    }
                    Err(e) => eprintln!("seccomp agent: {e}"),
                }
            }
        });
        Agent {
            path: path.to_path_buf(),
            states,
        }
    }

    /// The states received so far, in order.
    pub fn states(&self) -> Vec<Value> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One connection: the state (JSON, possibly over several reads) and the listener fd.
fn receive(mut conn: UnixStream) -> Result<(Value, OwnedFd), String> {
    conn.set_read_timeout(Some(crate::poll::HANG_GUARD))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: fds received with SCM_RIGHTS are new, ours to own.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (msg.bytes, fds)
    };
    // The rest of a long state may follow; the runtime may keep the connection open
    // (runc does, for exec): read until the JSON is whole, not until EOF.
    let mut data = buf[..n].to_vec();
    let state: Value = loop {
        match serde_json::from_slice(&data) {
            Ok(v) => break v,
            Err(e) if !e.is_eof() => return Err(format!("state: {e}")),
            Err(_) => {}
        }
        let mut more = [0u8; 4096];
        match conn.read(&mut more) {
            Ok(0) => return Err("the state ends early".into()),
            Ok(m) => data.extend_from_slice(&more[..m]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read the state: {e}")),
        }
    };
    let fd = fds.into_iter().next().ok_or("no listener fd")?;
    Ok((state, fd))
}

/// Answer every notification on `fd` with `-errno` until the filter's users are gone.
fn answer(fd: OwnedFd, errno: i32) {
    loop {
        // SAFETY: an all-zero seccomp_notif is what SECCOMP_IOCTL_NOTIF_RECV wants.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into `req`, which outlives it.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: -errno,
            flags: 0,
        };
        // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`, which outlives it.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}
