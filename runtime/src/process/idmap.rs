//! Writing a new user namespace's uid/gid maps from the parent.
//!
//! Root writes /proc/PID/{uid,gid}_map itself. An unprivileged caller may write them
//! itself only when the map is its own id alone (and, for gids, after "deny" went to
//! /proc/PID/setgroups: the kernel's rule); any other map goes through the setuid
//! helpers newuidmap/newgidmap (package uidmap), which check /etc/subuid and /etc/subgid.

use std::path::Path;
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::syscall::Syscall;
use crate::{Error, Result};

fn format(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Kind::Uid => "linux.uidMappings",
            Kind::Gid => "linux.gidMappings",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }
    fn ranges_file(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }
}

/// How one map gets written.
#[derive(Debug, PartialEq, Eq)]
enum Writer {
    /// Straight into /proc/PID/*_map (root, or our own id alone).
    Direct,
    /// Our own id alone, unprivileged: "deny" to setgroups first (gid maps only).
    DirectDenySetgroups,
    /// newuidmap/newgidmap.
    Helper,
}

fn writer(kind: Kind, maps: &[LinuxIdMapping], privileged: bool, own: u32) -> Writer {
    if privileged {
        return Writer::Direct;
    }
    let own_only = maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1;
    match (own_only, kind) {
        (true, Kind::Uid) => Writer::Direct,
        (true, Kind::Gid) => Writer::DirectDenySetgroups,
        (false, _) => Writer::Helper,
    }
}

pub fn write(pid: i32, spec: &Spec, sys: &dyn Syscall) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    // Root of the initial user namespace may write any map; everyone else is limited.
    let privileged = nix::unistd::geteuid().is_root();
    for (kind, maps, own) in [
        (
            Kind::Uid,
            linux.uid_mappings(),
            nix::unistd::geteuid().as_raw(),
        ),
        (
            Kind::Gid,
            linux.gid_mappings(),
            nix::unistd::getegid().as_raw(),
        ),
    ] {
        let Some(maps) = maps.as_deref().filter(|m| !m.is_empty()) else {
            continue;
        };
        match writer(kind, maps, privileged, own) {
            Writer::Direct => write_map(pid, kind, maps, sys)?,
            Writer::DirectDenySetgroups => {
                let path = format!("/proc/{pid}/setgroups");
                sys.write_proc(Path::new(&path), b"deny")
                    .map_err(|errno| Error::ProcWrite {
                        field: format!("{} (deny setgroups)", kind.field()),
                        path,
                        errno,
                    })?;
                write_map(pid, kind, maps, sys)?
            }
            Writer::Helper => run_helper(pid, kind, maps, own)?,
        }
    }
    Ok(())
}

fn write_map(pid: i32, kind: Kind, maps: &[LinuxIdMapping], sys: &dyn Syscall) -> Result<()> {
    let path = format!("/proc/{pid}/{}", kind.file());
    sys.write_proc(Path::new(&path), format(maps).as_bytes())
        .map_err(|errno| Error::ProcWrite {
            field: kind.field().into(),
            path,
            errno,
        })
}

/// `newuidmap PID ID HOSTID SIZE...`: the helper checks the ranges against /etc/sub[ug]id.
fn run_helper(pid: i32, kind: Kind, maps: &[LinuxIdMapping], own: u32) -> Result<()> {
    let mut cmd = Command::new(kind.helper());
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    tracing::debug!("{}: {cmd:?}", kind.field());
    let why = |what: String| {
        Error::Other(format!(
            "{}: mapping more than your own id ({own}) needs {} (package uidmap) and ranges \
             in {}: {what}",
            kind.field(),
            kind.helper(),
            kind.ranges_file()
        ))
    };
    let out = cmd
        .output()
        .map_err(|e| why(format!("run {}: {e}", kind.helper())))?;
    if !out.status.success() {
        return Err(why(format!(
            "{} {}: {}",
            kind.helper(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(json: &str) -> Vec<LinuxIdMapping> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn map_lines() {
        let m = maps(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        );
        assert_eq!(format(&m), "0 1000 1\n1 100000 65536\n");
    }

    #[test]
    fn who_writes_the_map() {
        let own = maps(r#"[{"containerID":0,"hostID":1000,"size":1}]"#);
        let other = maps(r#"[{"containerID":0,"hostID":1001,"size":1}]"#);
        let wide = maps(r#"[{"containerID":0,"hostID":1000,"size":2}]"#);
        let ranges = maps(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        );
        assert_eq!(writer(Kind::Uid, &ranges, true, 0), Writer::Direct);
        assert_eq!(writer(Kind::Uid, &own, false, 1000), Writer::Direct);
        assert_eq!(
            writer(Kind::Gid, &own, false, 1000),
            Writer::DirectDenySetgroups
        );
        assert_eq!(writer(Kind::Uid, &other, false, 1000), Writer::Helper);
        assert_eq!(writer(Kind::Uid, &wide, false, 1000), Writer::Helper);
        assert_eq!(writer(Kind::Gid, &ranges, false, 1000), Writer::Helper);
    }
}
