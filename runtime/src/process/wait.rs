//! Waiting in the foreground (`run`, `exec` without -d) for the container's process:
//! forwarding signals to it and, when capsa made the terminal itself (no
//! --console-socket), copying between our stdio and the pty master, in raw mode, with
//! SIGWINCH resizing the container's terminal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::syscall::{get_winsize, set_winsize};
use crate::{Error, Result};

/// Receive the pty master that the container sent over our end of its console socket.
pub fn receive_pty_master(sock: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let (_, fds) = capsa_linux::fdpass::recv(sock.as_fd(), &mut buf)
        .map_err(|e| Error::sys("receive the pty master", e))?;
    fds.into_iter()
        .next()
        .ok_or_else(|| Error::Other("the container sent no pty master".into()))
}

/// Puts our terminal in raw mode while the container owns it; restores it on drop.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = orig.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, orig);
        }
    }
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some((rows, cols)) = get_winsize(from) {
        let _ = set_winsize(to, rows, cols);
    }
}

/// Read what is there and write all of it; false at EOF or on error.
fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// Wait for `pid` (our child, or a grandchild reparented to us as subreaper), forwarding
/// the usual signals to it and serving its terminal when `master` is given; returns its
/// exit status (128+N when killed by signal N).
pub fn wait_forwarding(pid: i32, master: Option<OwnedFd>) -> Result<i32> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Error::sys("block signals", e))?;
    let sfd = SignalFd::new(&set).map_err(|e| Error::sys("signalfd", e))?;
    let _raw = master.as_ref().map(|_| RawMode::enter());
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    if let Some(m) = &master {
        copy_winsize(stdin.as_fd(), m.as_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut status = None;
    loop {
        // Reap first: the process may have exited before the mask was set.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => status = Some(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    status = Some(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        // After the exit, drain what the terminal still holds, then return.
        if let Some(code) = status {
            if let Some(m) = master.as_ref().filter(|_| master_open) {
                let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
                while poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0
                    && pump(m.as_fd(), stdout.as_fd())
                {}
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let (mut i_in, mut i_m) = (usize::MAX, usize::MAX);
        if let Some(m) = master.as_ref() {
            if stdin_open {
                i_in = fds.len();
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            if master_open {
                i_m = fds.len();
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        let ready = |i: usize| {
            fds.get(i).and_then(|f| f.revents()).is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let (sig_ready, in_ready, m_ready) = (ready(0), ready(i_in), ready(i_m));
        drop(fds);
        if let Some(m) = master.as_ref() {
            if in_ready && !pump(stdin.as_fd(), m.as_fd()) {
                stdin_open = false;
            }
            if m_ready && !pump(m.as_fd(), stdout.as_fd()) {
                master_open = false;
            }
        }
        if sig_ready {
            if let Some(info) = sfd
                .read_signal()
                .map_err(|e| Error::sys("read signalfd", e))?
            {
                match info.ssi_signo as i32 {
                    libc::SIGCHLD => {}
                    libc::SIGWINCH => {
                        if let Some(m) = &master {
                            copy_winsize(stdin.as_fd(), m.as_fd());
                        } else {
                            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGWINCH);
                        }
                    }
                    sig => {
                        if let Ok(s) = Signal::try_from(sig) {
                            let _ = nix::sys::signal::kill(Pid::from_raw(pid), s);
                        }
                    }
                }
            }
        }
    }
}
