//! `process.user`: groups, gid, uid (in that order), umask; HOME from /etc/passwd.

use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::User;

use crate::syscall::Syscall;
use crate::{Error, Result};

/// EINVAL from set*id: the id has no mapping in the user namespace (e.g. rootless).
fn unmapped(e: Errno) -> &'static str {
    if e == Errno::EINVAL {
        ": not mapped in the container's user namespace"
    } else {
        ""
    }
}

pub fn switch(user: &User, sys: &dyn Syscall) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match sys.setgroups(&gids) {
        // A user namespace with setgroups denied: fine as long as none are asked for.
        Err(Errno::EPERM) if gids.is_empty() => {}
        Err(e) => {
            return Err(Error::sys(
                format!(
                    "setgroups {:?} (process.user.additionalGids)",
                    user.additional_gids()
                ),
                e,
            ))
        }
        Ok(()) => {}
    }
    sys.setresgid(Gid::from_raw(user.gid())).map_err(|e| {
        Error::sys(
            format!("setgid {} (process.user.gid){}", user.gid(), unmapped(e)),
            e,
        )
    })?;
    sys.setresuid(Uid::from_raw(user.uid())).map_err(|e| {
        Error::sys(
            format!("setuid {} (process.user.uid){}", user.uid(), unmapped(e)),
            e,
        )
    })?;
    if let Some(mask) = user.umask() {
        sys.umask(Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// The home directory of `uid` in the container's /etc/passwd, "/" when not listed.
pub fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    capsa_linux::passwd::by_uid(&passwd, uid)
        .and_then(|e| e.home)
        .unwrap_or("/")
        .to_string()
}

/// The host's name for `uid` (the state's "owner"), the number when it has none.
pub fn name_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    capsa_linux::passwd::by_uid(&passwd, uid)
        .map(|e| e.name.to_string())
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::{Call, Recorder};

    #[test]
    fn groups_then_gid_then_uid_then_umask() {
        let sys = Recorder::default();
        let user: User = serde_json::from_value(serde_json::json!(
            {"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 18}
        ))
        .unwrap();
        switch(&user, &sys).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::Setgroups(vec![5, 6]),
                Call::Setresgid(100),
                Call::Setresuid(1000),
                Call::Umask(0o22)
            ]
        );
    }

    #[test]
    fn unmapped_ids_say_so() {
        let sys = Recorder::default();
        sys.fail_when(|c| matches!(c, Call::Setresuid(_)).then_some(Errno::EINVAL));
        let user: User = serde_json::from_value(serde_json::json!({"uid": 7, "gid": 7})).unwrap();
        let e = switch(&user, &sys).unwrap_err().to_string();
        assert!(
            e.contains("process.user.uid") && e.contains("not mapped"),
            "{e}"
        );
    }
}
