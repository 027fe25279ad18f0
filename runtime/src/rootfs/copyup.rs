//! `tmpcopyup`: a tmpfs mounted over a directory of the rootfs starts with a copy of what
//! it covers (podman's `--read-only` mounts /run, /tmp, /var/tmp so; `--tmpfs` too), as
//! runc and crun do. The covered directory is read through a descriptor opened before the
//! mount; nothing is followed: symlinks are copied as symlinks, files opened O_NOFOLLOW.
//! Modes and owners are kept; device nodes are made again (through `Syscall`).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{Gid, Uid};

use crate::syscall::{open_at, Syscall};

const NOFOLLOW: OFlag = OFlag::O_NOFOLLOW;

/// A directory opened for reading its entries (`from` may be an O_PATH descriptor).
pub fn open_dir(from: &impl AsFd) -> nix::Result<OwnedFd> {
    open_at(
        from.as_fd(),
        OsStr::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
}

/// Copy the entries of directory `src` into directory `dst`, recursively.
pub fn copy_dir(src: &OwnedFd, dst: &OwnedFd, sys: &dyn Syscall) -> nix::Result<()> {
    // The Dir owns the descriptor from here.
    let mut dir = nix::dir::Dir::from_fd(open_dir(src)?.into_raw_fd())?;
    let names: Vec<Vec<u8>> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for name in names {
        copy_entry(src, dst, OsStr::from_bytes(&name), sys)?;
    }
    Ok(())
}

fn copy_entry(src: &OwnedFd, dst: &OwnedFd, name: &OsStr, sys: &dyn Syscall) -> nix::Result<()> {
    let st = fstatat(Some(src.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(Some(dst.as_raw_fd()), name, mode)?;
            let dir = OFlag::O_RDONLY | OFlag::O_DIRECTORY | NOFOLLOW;
            let from = open_at(src.as_fd(), name, dir, Mode::empty())?;
            let to = open_at(dst.as_fd(), name, dir, Mode::empty())?;
            copy_dir(&from, &to, sys)?;
        }
        SFlag::S_IFREG => {
            let mut from = File::from(open_at(
                src.as_fd(),
                name,
                OFlag::O_RDONLY | NOFOLLOW,
                Mode::empty(),
            )?);
            let mut to = File::from(open_at(
                dst.as_fd(),
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | NOFOLLOW,
                mode,
            )?);
            std::io::copy(&mut from, &mut to)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(Some(src.as_raw_fd()), name)?;
            nix::unistd::symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name)?;
        }
        _ => sys.mknodat(dst.as_fd(), name, kind, mode, st.st_rdev)?,
    }
    let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
    sys.fchownat(dst.as_fd(), name, Some(uid), Some(gid))?;
    if kind != SFlag::S_IFLNK {
        // The umask took bits off, and chown clears setuid/setgid: the mode again.
        fchmodat(
            Some(dst.as_raw_fd()),
            name,
            mode,
            FchmodatFlags::NoFollowSymlink,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::Linux;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_dirs_files_and_symlinks_without_following() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("sub/file"), "data").unwrap();
        std::fs::set_permissions(src.join("sub/file"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let open = |p: &std::path::Path| crate::syscall::open_path(p, OFlag::O_PATH).unwrap();
        copy_dir(
            &open_dir(&open(&src)).unwrap(),
            &open_dir(&open(&dst)).unwrap(),
            &Linux,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.join("sub/file")).unwrap(),
            "data"
        );
        let mode = std::fs::metadata(dst.join("sub/file"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            std::path::Path::new("/etc/passwd")
        );
    }
}
