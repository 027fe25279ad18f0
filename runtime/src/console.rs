//! `process.terminal`: the init makes a pty inside the container, sends the master to
//! `--console-socket` with SCM_RIGHTS (as runc, with the pty name as payload), and makes
//! the peer its controlling terminal and /dev/console. The peer is opened by descriptor
//! (TIOCGPTPEER), never by path (CVE-2025-52565).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

use crate::syscall::{pty_peer, set_controlling_tty, set_winsize, unlockpt};
use crate::{Error, Result};

/// In the parent, before the fork: connect to the caller's socket.
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).map_err(|e| Error::io("connect to --console-socket", path, e))
}

/// In the container's mount namespace (the init after pivot_root, or an exec'd process):
/// make the pty, send the master, return the peer; the init also binds it to /dev/console.
pub fn setup(socket: UnixStream, size: Option<(u16, u16)>, as_console: bool) -> Result<OwnedFd> {
    let fd = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    let master = crate::syscall::own(fd);
    unlockpt(master.as_fd()).map_err(|e| Error::sys("unlockpt", e))?;
    let peer =
        pty_peer(master.as_fd()).map_err(|e| Error::sys("open pty peer (TIOCGPTPEER)", e))?;
    if let Some((rows, cols)) = size {
        set_winsize(peer.as_fd(), rows, cols)
            .map_err(|e| Error::sys("set process.consoleSize", e))?;
    }
    let name = std::fs::read_link(format!("/proc/self/fd/{}", peer.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/dev/console".into());
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys("send pty master to --console-socket", e))?;
    drop(master);
    if as_console {
        bind_console(&peer)?;
    }
    Ok(peer)
}

/// /dev/console becomes the pty peer, bound through its descriptor.
fn bind_console(peer: &OwnedFd) -> Result<()> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        std::fs::File::create(console).map_err(|e| Error::io("create", console, e))?;
    }
    let src = format!("/proc/self/fd/{}", peer.as_raw_fd());
    let target = open(
        console,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open /dev/console", e))?;
    let target = crate::syscall::own(target);
    let tpath = format!("/proc/self/fd/{}", target.as_raw_fd());
    mount(
        Some(src.as_str()),
        tpath.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::sys("bind pty over /dev/console", e))
}

/// Make the peer our controlling terminal and stdio (after setsid).
pub fn attach(peer: OwnedFd) -> Result<()> {
    set_controlling_tty(peer.as_fd()).map_err(|e| Error::sys("set controlling terminal", e))?;
    for target in 0..3 {
        nix::unistd::dup2(peer.as_raw_fd(), target)
            .map_err(|e| Error::sys("dup pty to stdio", e))?;
    }
    Ok(())
}
