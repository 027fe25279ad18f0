//! Descriptors sent over a unix socket (SCM_RIGHTS, unix(7)): the pty master to a
//! console socket, a seccomp listener to its agent or to `capsa create`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::owned_fd;

/// Most descriptors one `recv` accepts; more are closed by the kernel's truncation.
pub const MAX_FDS: usize = 4;

/// Send `data` with `fds` attached, in one message (MSG_NOSIGNAL: a closed peer is an
/// EPIPE error, never a SIGPIPE).
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    loop {
        let flags = MsgFlags::MSG_NOSIGNAL;
        match sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(data)], cmsgs, flags, None) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Receive one message into `buf`: its length (0 at end of stream) and the descriptors
/// that came with it, close-on-exec.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(owned_fd));
                    }
                }
                return Ok((msg.bytes, fds));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_crosses_with_its_data() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        assert_eq!(send(a.as_fd(), b"hello", &[file.as_fd()]).unwrap(), 5);
        let mut buf = [0u8; 16];
        let (n, fds) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        let flags = nix::fcntl::fcntl(fds[0].as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        send(a.as_fd(), b"plain", &[]).unwrap();
        assert!(recv(b.as_fd(), &mut buf).unwrap().1.is_empty());
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap().0, 0);
    }
}
