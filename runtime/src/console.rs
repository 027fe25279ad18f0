//! `process.terminal`: the init makes a pty inside the container, sends the master to
//! `--console-socket` with SCM_RIGHTS (as runc, with the pty name as payload), and makes
//! the peer its controlling terminal and /dev/console. The peer is opened by descriptor
//! (TIOCGPTPEER), never by path (CVE-2025-52565).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use crate::rootfs::fd_path;
use crate::syscall::{open_path, pty_peer, set_controlling_tty, set_winsize, unlockpt, Syscall};
use crate::{Error, Result};

/// In the parent, before the fork: connect to the caller's socket.
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).map_err(|e| Error::io("connect to --console-socket", path, e))
}

/// In the container's mount namespace (the init after pivot_root, or an exec'd process):
/// make the pty, send the master, return the peer; the init also binds it to /dev/console.
pub fn setup(
    socket: &UnixStream,
    size: Option<(u16, u16)>,
    as_console: bool,
    sys: &dyn Syscall,
) -> Result<OwnedFd> {
    let master = open_path(Path::new("/dev/ptmx"), OFlag::O_RDWR | OFlag::O_NOCTTY)
        .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    unlockpt(master.as_fd()).map_err(|e| Error::sys("unlockpt", e))?;
    let peer =
        pty_peer(master.as_fd()).map_err(|e| Error::sys("open pty peer (TIOCGPTPEER)", e))?;
    if let Some((rows, cols)) = size {
        set_winsize(peer.as_fd(), rows, cols)
            .map_err(|e| Error::sys("set process.consoleSize", e))?;
    }
    let name = std::fs::read_link(fd_path(&peer))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/dev/console".into());
    capsa_linux::fdpass::send(socket.as_fd(), name.as_bytes(), &[master.as_fd()])
        .map_err(|e| Error::sys("send pty master to --console-socket", e))?;
    drop(master);
    if as_console {
        bind_console(&peer, sys)?;
    }
    Ok(peer)
}

/// /dev/console becomes the pty peer, bound through its descriptor.
fn bind_console(peer: &OwnedFd, sys: &dyn Syscall) -> Result<()> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        std::fs::File::create(console).map_err(|e| Error::io("create", console, e))?;
    }
    let target = open_path(console, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .map_err(|e| Error::sys("open /dev/console", e))?;
    sys.mount(
        Some(&fd_path(peer)),
        &fd_path(&target),
        None,
        MsFlags::MS_BIND,
        None,
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
