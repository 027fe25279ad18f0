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

use std::io::Read;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

/// A small file (procfs, cgroupfs, /etc) read whole: one open and as few reads as the
/// kernel needs, where std's read_to_string stats the file first and, for procfs files
/// (whose size is 0), grows its buffer from 32 bytes.
pub fn read_small(path: impl AsRef<Path>) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Take ownership of a descriptor the kernel has just returned to us (open, openat2,
/// recvmsg with SCM_RIGHTS). Private: callers never see a raw descriptor.
#[allow(unsafe_code)]
fn owned_fd(fd: RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: every caller passes a descriptor that a syscall returned a moment ago and
    // that nothing else in this process knows of, so it has exactly one owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_file_larger_than_the_first_buffer() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        let text = "x".repeat(40_000) + "end";
        std::fs::write(&p, &text).unwrap();
        assert_eq!(super::read_small(&p).unwrap(), text);
        assert!(super::read_small("/proc/self/mountinfo")
            .unwrap()
            .contains(" - "));
    }
}
