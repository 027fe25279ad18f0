//! `process.user`: groups, gid, uid (in that order), umask; HOME from /etc/passwd.

use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use crate::error::SysContext;
use crate::{Error, Result};

/// EINVAL from set*id: the id has no mapping in the user namespace (e.g. rootless).
fn unmapped(e: nix::errno::Errno) -> &'static str {
    if e == nix::errno::Errno::EINVAL {
        ": not mapped in the container's user namespace"
    } else {
        ""
    }
}

pub fn switch(user: &User) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match setgroups(&gids) {
        // A user namespace with setgroups denied: fine as long as none are asked for.
        Err(nix::errno::Errno::EPERM) if gids.is_empty() => {}
        r => r.ctx(|| {
            format!(
                "setgroups {:?} (process.user.additionalGids)",
                user.additional_gids()
            )
        })?,
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(|e| {
        Error::sys(
            format!("setgid {} (process.user.gid){}", user.gid(), unmapped(e)),
            e,
        )
    })?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(|e| {
        Error::sys(
            format!("setuid {} (process.user.uid){}", user.uid(), unmapped(e)),
            e,
        )
    })?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// The home directory of `uid` in the container's /etc/passwd, "/" when not listed.
pub fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .unwrap_or_else(|| "/".into())
}

/// The host's name for `uid` (the state's "owner"), the number when it has none.
pub fn name_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}
