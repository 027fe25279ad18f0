//! The parent/child sync protocol: one SEQPACKET socketpair, one message per packet.
//!
//! | # | from   | message                 | meaning / answer                                  |
//! |---|--------|-------------------------|---------------------------------------------------|
//! | 0 | child  | `Ready`                 | (exec) state lock closed: put me in the cgroup    |
//! | 1 | parent | `Proceed`               | cgroup joined, ids mapped, oom_score_adj written  |
//! | 1a| child  | `MapIds`                | (two-stage) user ns unshared: map it → `Proceed`  |
//! | 1b| child  | `InitPid(pid)`          | (two-stage) the init is this grandchild           |
//! | 2 | child  | `RunCreateRuntimeHooks` | mounts done: run prestart/createRuntime → `HooksDone(state)` |
//! | 2a| child  | `SeccompListener` + fd  | (NOTIFY rules) the parent hands the fd to listenerPath |
//! | 3 | child  | `Created`               | init waits for start → `Ack` (state saved)        |
//! | * | child  | `Error(chain)`          | init failed; it exits                             |
//!
//! After `Ack` the child clears its parent-death signal and closes its end; the parent
//! waits for that EOF before it exits, so the init never dies with `capsa create`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum Msg {
    Ready,
    Proceed,
    MapIds,
    InitPid(i32),
    RunCreateRuntimeHooks,
    HooksDone(String),
    SeccompListener,
    Created,
    Ack,
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

/// Largest packet: an error chain longer than this is cut, never a deadlock (runc#2530).
const MAX_PACKET: usize = 60 * 1024;

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let mut data = serde_json::to_vec(msg).map_err(|e| Error::Other(e.to_string()))?;
        if data.len() > MAX_PACKET {
            let Msg::Error(s) = msg else {
                return Err(Error::Other("sync message too large".into()));
            };
            let mut cut = s.clone();
            cut.truncate(MAX_PACKET - 64);
            data = serde_json::to_vec(&Msg::Error(cut + " [...]")).unwrap_or_default();
        }
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            &data,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(|e| Error::sys("sync send", e))?;
        Ok(())
    }

    /// Send a message with a descriptor attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
        let data = serde_json::to_vec(msg).map_err(|e| Error::Other(e.to_string()))?;
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&data)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| Error::sys("sync send fd", e))?;
        Ok(())
    }

    /// Receive one message; `None` at EOF (the peer closed or died).
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// Receive one message and the descriptor sent with it, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sync recv", e)),
                Ok(r) => {
                    let fd = r.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmRights(fds) => {
                                fds.first().map(|f| crate::syscall::own(*f))
                            }
                            _ => None,
                        })
                    });
                    break (r.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(|m| Some((m, fd)))
            .map_err(|e| Error::Other(format!("sync: bad message: {e}")))
    }

    /// Receive and check it is `want`; an `Error` from the peer becomes our error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error(e)) => Err(Error::Init(e)),
            Some(m) => Err(Error::Other(format!("sync: expected {want:?}, got {m:?}"))),
            None => Err(Error::Other(format!(
                "sync: peer closed while waiting for {want:?}"
            ))),
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::InitPid(42)).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Msg::InitPid(42)));
        a.send(&Msg::Error("x".repeat(200_000))).unwrap();
        match b.recv().unwrap() {
            Some(Msg::Error(s)) => assert!(s.len() < MAX_PACKET && s.ends_with("[...]")),
            m => panic!("{m:?}"),
        }
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
