//! Resolves an image's `User` ("name", "uid", "name:group", "uid:gid", ...) through the
//! rootfs' /etc/passwd and /etc/group, read from inside the rootfs (symlinks there cannot
//! point at the host's files: the files are opened with RESOLVE_IN_ROOT).
use crate::error::{Error, Result};
use crate::sys;
use std::io::Read;
use std::os::fd::AsRawFd;
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
    let root = sys::open_dir(rootfs).ok()?;
    let fd = sys::open_in_root(root.as_raw_fd(), std::ffi::OsStr::new(rel), libc::O_RDONLY).ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// passwd lines: name:x:uid:gid:... ; group lines: name:x:gid:member,member
fn parse(db: &str) -> Vec<Vec<&str>> {
    db.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect()
}

pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    resolve_with(spec, &passwd, &group)
}

pub fn resolve_with(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let spec = spec.trim();
    if spec.is_empty() {
        let home = parse(passwd)
            .iter()
            .find(|f| f[2] == "0")
            .and_then(|f| f.get(5))
            .map(|h| h.to_string());
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
    let pw = parse(passwd);
    let gr = parse(group);
    let entry = pw
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.and_then(|f| f[2].parse().ok()).ok_or_else(|| {
            Error::Invalid(format!("user {u:?} not found in the image's /etc/passwd"))
        })?,
    };
    let name = entry.map(|f| f[0]);
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::Invalid(format!("group {g:?} not found in the image's /etc/group"))
                })?,
        },
        None => entry
            .and_then(|f| f.get(3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    };
    // supplementary groups: only when the group was not given explicitly (conversion rules)
    let mut additional_gids = Vec::new();
    if g.is_none() {
        if let Some(name) = name {
            for f in &gr {
                let members = f.get(3).copied().unwrap_or("");
                if members.split(',').any(|m| m.trim() == name) {
                    if let Ok(n) = f[2].parse::<u32>() {
                        if n != gid && !additional_gids.contains(&n) {
                            additional_gids.push(n);
                        }
                    }
                }
            }
        }
    }
    let home = entry.and_then(|f| f.get(5)).map(|h| h.to_string());
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
