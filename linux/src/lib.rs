//! The Linux interfaces that more than one capsa crate needs, written once: the mount
//! table (`mountinfo`), user and group databases (`passwd`), race-free path resolution
//! under a root directory (`resolve`, openat2), and descriptor passing over unix sockets
//! (`fdpass`, SCM_RIGHTS).
//!
//! `unsafe` lives only where a raw descriptor returned by the kernel becomes an `OwnedFd`
//! (`owned_fd`), with its SAFETY note; everything else is safe code.

#![deny(unsafe_code)]

pub mod fdpass;
pub mod mountinfo;
pub mod passwd;
pub mod resolve;

use std::os::fd::{OwnedFd, RawFd};

/// Take ownership of a descriptor the kernel has just returned to us (open, openat2,
/// recvmsg with SCM_RIGHTS). Private: callers never see a raw descriptor.
#[allow(unsafe_code)]
fn owned_fd(fd: RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: every caller passes a descriptor that a syscall returned a moment ago and
    // that nothing else in this process knows of, so it has exactly one owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
