//! Resolves an image's `User` ("name", "uid", "name:group", "uid:gid", ...) through the
//! rootfs' /etc/passwd and /etc/group, read from inside the rootfs (symlinks there cannot
//! point at the host's files: the files are opened with RESOLVE_IN_ROOT).
use crate::error::{Error, Result};
use capsa_linux::passwd;
use capsa_linux::resolve;
use std::path::Path;

#[derive(Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// home directory from /etc/passwd, if the user has an entry
    pub home: Option<String>,
}

fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    resolve::read_in_root(rootfs, Path::new(rel), 16 << 20).ok()
}

pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    resolve_with(spec, &passwd, &group)
}

pub fn resolve_with(spec: &str, passwd_db: &str, group_db: &str) -> Result<User> {
    let spec = spec.trim();
    if spec.is_empty() {
        let home = passwd::by_uid(passwd_db, 0).and_then(|e| e.home.map(String::from));
        return Ok(User {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home,
        });
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let num = u.parse::<u32>().ok();
    let entry = passwd::passwd_entries(passwd_db).find(|e| e.name == u || Some(e.uid) == num);
    let uid = match (num, &entry) {
        (Some(n), _) => n,
        (None, Some(e)) => e.uid,
        (None, None) => {
            return Err(Error::Invalid(format!(
                "user {u:?} not found in the image's /etc/passwd"
            )))
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => passwd::gid_of(group_db, g).ok_or_else(|| {
                Error::Invalid(format!("group {g:?} not found in the image's /etc/group"))
            })?,
        },
        None => entry.as_ref().and_then(|e| e.gid).unwrap_or(0),
    };
    // supplementary groups: only when the group was not given explicitly (conversion rules)
    let additional_gids = match (&entry, g) {
        (Some(e), None) => passwd::supplementary_gids(group_db, e.name)
            .into_iter()
            .filter(|n| *n != gid)
            .collect(),
        _ => Vec::new(),
    };
    let home = entry.and_then(|e| e.home.map(String::from));
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    const PW: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
    const GR: &str = "root:x:0:\nwww:x:33:\nadm:x:4:www,bob\nstaff:x:50:\n";
    #[test]
    fn forms() {
        assert_eq!(
            resolve_with("www", PW, GR).unwrap(),
            User {
                uid: 33,
                gid: 33,
                additional_gids: vec![4],
                home: Some("/var/www".into())
            }
        );
        assert_eq!(
            resolve_with("33", PW, GR).unwrap(),
            User {
                uid: 33,
                gid: 33,
                additional_gids: vec![4],
                home: Some("/var/www".into())
            }
        );
        assert_eq!(
            resolve_with("www:staff", PW, GR).unwrap(),
            User {
                uid: 33,
                gid: 50,
                additional_gids: vec![],
                home: Some("/var/www".into())
            }
        );
        assert_eq!(
            resolve_with("1000:1000", PW, GR).unwrap(),
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![],
                home: None
            }
        );
        assert_eq!(resolve_with("1000", PW, GR).unwrap().gid, 0);
        assert!(resolve_with("nobody", PW, GR).is_err());
        assert!(resolve_with("www:nogroup", PW, GR).is_err());
    }
}
