//! The parent/child sync protocol: one SEQPACKET socketpair, one message per packet,
//! each side expecting the other's messages in one fixed order (an unexpected message is
//! an error, never skipped).
//!
//! | # | from        | message                 | answer / meaning                                   |
//! |---|-------------|-------------------------|----------------------------------------------------|
//! | 0 | exec child  | `Ready`                 | set up (non-dumpable): the parent puts it in the cgroup |
//! | 1 | parent      | `Proceed`               | cgroup joined, ids mapped, oom_score_adj written   |
//! | 1a| first stage | `MapIds`                | user ns unshared: the parent maps it → `Proceed`   |
//! | 1b| first stage | `InitPid(pid)`          | the process is this child; the parent reaps the first stage → `Proceed`, read by that child |
//! | 2 | init        | `Mounted`               | the parent applies the limits, runs prestart/createRuntime → `HooksDone(state)` |
//! | 2a| init / exec | `SeccompListener` + fd  | (NOTIFY rules) the parent hands the fd to listenerPath |
//! | 3 | init / exec | `Created`               | the parent saves the state and the pid file → `Ack` |
//! | * | child       | `Error(chain)`          | the child failed; it exits                         |
//!
//! Two processes hold the child's end once the first stage has forked, so the protocol
//! orders them: the forked process sends nothing before it has read the `Proceed` that
//! answers `InitPid`, and the first stage reads nothing after it sent `InitPid`. So no
//! message of the process can overtake its pid, and a pid is never reported before it is
//! known.
//!
//! After `Ack` the child closes its end; the parent waits for that EOF before it exits,
//! so the init never dies with `capsa create`.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Ready,
    Proceed,
    MapIds,
    InitPid(i32),
    Mounted,
    HooksDone(Option<String>),
    SeccompListener,
    Created,
    Ack,
    Error(String),
}

impl Msg {
    fn name(&self) -> &'static str {
        match self {
            Msg::Ready => "Ready",
            Msg::Proceed => "Proceed",
            Msg::MapIds => "MapIds",
            Msg::InitPid(_) => "InitPid",
            Msg::Mounted => "Mounted",
            Msg::HooksDone(_) => "HooksDone",
            Msg::SeccompListener => "SeccompListener",
            Msg::Created => "Created",
            Msg::Ack => "Ack",
            Msg::Error(_) => "Error",
        }
    }
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
        self.send_with(msg, None)
    }

    /// Send a message with a descriptor attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg, fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
        self.send_with(msg, Some(fd))
    }

    fn send_with(&self, msg: &Msg, fd: Option<std::os::fd::BorrowedFd<'_>>) -> Result<()> {
        let mut data = serde_json::to_vec(msg).map_err(|e| Error::Other(e.to_string()))?;
        if data.len() > MAX_PACKET {
            let Msg::Error(s) = msg else {
                return Err(Error::Other("sync message too large".into()));
            };
            let mut cut = s.clone();
            cut.truncate(MAX_PACKET - 64);
            data = serde_json::to_vec(&Msg::Error(cut + " [...]")).unwrap_or_default();
        }
        let fds: Vec<_> = fd.into_iter().collect();
        capsa_linux::fdpass::send(self.fd.as_fd(), &data, &fds)
            .map_err(|e| Error::sys(format!("sync: send {}", msg.name()), e))?;
        Ok(())
    }

    /// Receive one message and the descriptor sent with it; `None` at EOF (the peer
    /// closed its end or died).
    pub fn recv(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_PACKET];
        let (n, fds) = capsa_linux::fdpass::recv(self.fd.as_fd(), &mut buf)
            .map_err(|e| Error::sys("sync: receive", e))?;
        if n == 0 {
            return Ok(None);
        }
        let msg =
            serde_json::from_slice(&buf[..n]).map_err(|e| Error::BadMessage(e.to_string()))?;
        Ok(Some((msg, fds.into_iter().next())))
    }

    /// The next message, which must be `want` (compared by kind); an `Error` from the
    /// peer becomes our error, EOF is `Error::PeerGone`.
    fn next(&self, want: &'static str) -> Result<(Msg, Option<OwnedFd>)> {
        match self.recv()? {
            Some((Msg::Error(e), _)) => Err(Error::Init(e)),
            Some((m, fd)) if m.name() == want => Ok((m, fd)),
            Some((m, _)) => Err(Error::Protocol {
                expected: want,
                got: m.name(),
            }),
            None => Err(Error::PeerGone { waiting_for: want }),
        }
    }

    /// Wait for `want`, a message without data.
    pub fn expect(&self, want: Msg) -> Result<()> {
        self.next(want.name()).map(drop)
    }

    /// sync 1b: the pid of the process the first stage forked; never ≤ 0.
    pub fn expect_init_pid(&self) -> Result<i32> {
        match self.next("InitPid")? {
            (Msg::InitPid(p), _) if p > 0 => Ok(p),
            (m, _) => Err(Error::BadMessage(format!("invalid {m:?}"))),
        }
    }

    /// sync 2 answer: the state for the container's own hooks, if it has any.
    pub fn expect_hooks_done(&self) -> Result<Option<String>> {
        match self.next("HooksDone")? {
            (Msg::HooksDone(state), _) => Ok(state),
            _ => unreachable!("next() checked the kind"),
        }
    }

    /// sync 2a: the seccomp listener descriptor.
    pub fn expect_fd(&self, want: Msg) -> Result<OwnedFd> {
        let name = want.name();
        self.next(name)?
            .1
            .ok_or_else(|| Error::BadMessage(format!("{name} came without its descriptor")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::InitPid(42)).unwrap();
        assert_eq!(b.expect_init_pid().unwrap(), 42);
        a.send(&Msg::Error("x".repeat(200_000))).unwrap();
        match b.recv().unwrap() {
            Some((Msg::Error(s), None)) => assert!(s.len() < MAX_PACKET && s.ends_with("[...]")),
            m => panic!("{m:?}"),
        }
        drop(a);
        assert!(matches!(
            b.expect(Msg::Created),
            Err(Error::PeerGone {
                waiting_for: "Created"
            })
        ));
    }

    #[test]
    fn out_of_order_is_an_error_naming_both() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Created).unwrap();
        let e = b.expect_init_pid().unwrap_err().to_string();
        assert!(e.contains("InitPid") && e.contains("Created"), "{e}");
    }

    #[test]
    fn a_pid_of_zero_is_refused() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::InitPid(0)).unwrap();
        assert!(b.expect_init_pid().is_err());
    }

    #[test]
    fn the_peer_error_is_ours() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Error("mounts[3]: boom".into())).unwrap();
        assert_eq!(
            b.expect(Msg::Mounted).unwrap_err().to_string(),
            "mounts[3]: boom"
        );
    }

    #[test]
    fn descriptors_travel_with_their_message() {
        let (a, b) = pair().unwrap();
        let f = tempfile::tempfile().unwrap();
        a.send_fd(&Msg::SeccompListener, f.as_fd()).unwrap();
        assert!(b.expect_fd(Msg::SeccompListener).is_ok());
        a.send(&Msg::SeccompListener).unwrap();
        assert!(b.expect_fd(Msg::SeccompListener).is_err());
    }
}
