//! The rootfs mounts containerd sends with Create (an overlay or bind of the
//! snapshot), mounted on `<bundle>/rootfs` and unmounted on delete.

use std::path::Path;

use containerd_shim::protos::types::mount::Mount;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Splits mount(8)-style options into flags, flags to clear, and fs data.
fn parse_options(options: &[String]) -> Result<(MsFlags, Vec<String>)> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "loop" => {
                return Err(Error::InvalidArgument(
                    "loop mounts are not supported by this shim".into(),
                ))
            }
            _ => {
                data.push(o.clone());
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    Ok((flags, data))
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let (flags, data) = parse_options(&m.options)?;
    let data = data.join(",");
    // The kernel takes at most one page of mount data.
    if data.len() >= 4096 {
        return Err(Error::InvalidArgument(format!(
            "{} mount options too long ({} bytes)",
            m.type_,
            data.len()
        )));
    }
    let fstype = (!m.type_.is_empty() && m.type_ != "bind").then_some(m.type_.as_str());
    let source = (!m.source.is_empty()).then_some(m.source.as_str());
    let dataopt = (!data.is_empty()).then_some(data.as_str());
    let ctx = || format!("mount {} {:?} on {}", m.type_, m.source, target.display());
    mount(source, target, fstype, flags, dataopt).map_err(Error::nix(ctx()))?;
    // A bind mount ignores MS_RDONLY until remounted.
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(Error::nix(ctx()))?;
    }
    Ok(())
}

/// Mounts `rootfs` on `target` in order; on failure undoes what it did.
pub fn mount_rootfs(rootfs: &[Mount], target: &Path) -> Result<()> {
    if rootfs.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(target).map_err(Error::io(format!("mkdir {}", target.display())))?;
    for m in rootfs {
        if let Err(e) = mount_one(m, target) {
            let _ = unmount_all(target);
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (EINVAL: nothing left mounted).
pub fn unmount_all(target: &Path) -> Result<()> {
    for _ in 0..64 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => {
                // Still in use by a dying process: detach it from the tree.
                umount2(target, MntFlags::MNT_DETACH)
                    .map_err(Error::nix(format!("unmount {}", target.display())))?;
            }
            Err(e) => return Err(Error::nix(format!("unmount {}", target.display()))(e)),
        }
    }
    Err(Error::Other(format!(
        "{} is still mounted",
        target.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = ["ro", "rbind", "index=off", "lowerdir=/a:/b", "rw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse_options(&o).unwrap();
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert!(!flags.contains(MsFlags::MS_RDONLY), "a later rw clears ro");
        assert_eq!(data, vec!["index=off", "lowerdir=/a:/b"]);
        assert!(parse_options(&["loop".to_string()]).is_err());
    }
}
