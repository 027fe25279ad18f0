//! Which namespaces a container gets, and how: created by the clone itself (one process,
//! the fast path), or, when an existing user/pid/time namespace is joined or a time
//! namespace is made, by a first stage that joins/unshares and forks the init (two stages).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType as Ns, Spec};

use crate::error::SysContext;
use crate::syscall::Syscall;
use crate::{Error, Result};

#[derive(Debug)]
pub struct Plan {
    /// Namespaces the clone creates (fast path).
    pub clone_flags: CloneFlags,
    /// Namespaces the first stage unshares (two-stage path).
    pub unshare_flags: CloneFlags,
    /// Existing namespaces to join, user first.
    pub joins: Vec<(Ns, PathBuf)>,
    pub new_user: bool,
    /// The cgroup namespace is unshared only once the init sits in its cgroup.
    pub new_cgroup: bool,
    pub two_stage: bool,
    /// The init must be a second process (pid/time namespaces apply to children only).
    pub fork_init: bool,
}

fn flag(t: Ns) -> libc::c_int {
    // oci-spec gives each namespace type its CLONE_NEW* value as discriminant.
    t as libc::c_int
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut plan = Plan {
            clone_flags: CloneFlags::empty(),
            unshare_flags: CloneFlags::empty(),
            joins: Vec::new(),
            new_user: false,
            new_cgroup: false,
            two_stage: false,
            fork_init: false,
        };
        let mut new = 0;
        for ns in &namespaces {
            match ns.path() {
                Some(p) => plan.joins.push((ns.typ(), p.clone())),
                None if ns.typ() == Ns::Cgroup => plan.new_cgroup = true,
                None => new |= flag(ns.typ()),
            }
        }
        if !namespaces.iter().any(|n| n.typ() == Ns::Mount) {
            return Err(Error::Config(
                "linux.namespaces: a mount namespace is required".into(),
            ));
        }
        plan.joins.sort_by_key(|(t, _)| *t != Ns::User);
        plan.new_user = new & flag(Ns::User) != 0;
        let joins_special = plan
            .joins
            .iter()
            .any(|(t, _)| matches!(t, Ns::User | Ns::Pid | Ns::Time));
        plan.two_stage =
            joins_special || new & flag(Ns::Time) != 0 || (plan.new_user && !plan.joins.is_empty());
        let new_flags = CloneFlags::from_bits_retain(new);
        if plan.two_stage {
            plan.unshare_flags = new_flags;
            plan.fork_init = new & (flag(Ns::Pid) | flag(Ns::Time)) != 0
                || plan
                    .joins
                    .iter()
                    .any(|(t, _)| matches!(t, Ns::Pid | Ns::Time));
        } else {
            plan.clone_flags = new_flags;
        }
        Ok(plan)
    }

    /// Join the namespaces given by path (in the order of `joins`).
    pub fn join_all(&self, sys: &dyn Syscall) -> Result<()> {
        for (t, path) in &self.joins {
            let f = std::fs::File::open(path).map_err(|e| Error::io("open namespace", path, e))?;
            sys.setns(f.as_fd(), CloneFlags::from_bits_retain(flag(*t)))
                .ctx(|| format!("join {t} namespace {}", path.display()))?;
        }
        Ok(())
    }

    /// Two-stage path: create the namespaces the clone did not.
    pub fn unshare_new(&self, sys: &dyn Syscall) -> Result<()> {
        if !self.unshare_flags.is_empty() {
            sys.unshare(self.unshare_flags)
                .ctx(|| "unshare namespaces".into())?;
        }
        Ok(())
    }

    /// Whether the container gets a network namespace of its own (not joined by path).
    pub fn new_net(&self) -> bool {
        (self.clone_flags | self.unshare_flags).contains(CloneFlags::CLONE_NEWNET)
    }

    /// Whether the process ends up in a user namespace other than ours.
    pub fn in_userns(&self) -> bool {
        self.new_user || self.joins.iter().any(|(t, _)| *t == Ns::User)
    }
}

pub fn unshare_cgroup(sys: &dyn Syscall) -> Result<()> {
    sys.unshare(CloneFlags::CLONE_NEWCGROUP)
        .ctx(|| "unshare cgroup namespace".into())
}

/// Write linux.timeOffsets for a new time namespace (before its first process exists).
pub fn write_time_offsets(spec: &Spec, sys: &dyn Syscall) -> Result<()> {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()) else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, o) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    sys.write_proc(Path::new("/proc/self/timens_offsets"), text.as_bytes())
        .ctx(|| "write linux.timeOffsets to /proc/self/timens_offsets".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "linux": {"namespaces": ns}
        }))
        .unwrap()
    }

    #[test]
    fn fast_path_for_plain_namespaces() {
        let p = Plan::from_spec(&spec(serde_json::json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"},
            {"type": "cgroup"}
        ])))
        .unwrap();
        assert!(!p.two_stage);
        assert_eq!(
            p.clone_flags,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS
        );
        assert!(p.new_cgroup);
        assert_eq!(p.joins.len(), 1);
    }

    #[test]
    fn pid_join_needs_two_stages_and_user_goes_first() {
        let p = Plan::from_spec(&spec(serde_json::json!([
            {"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"},
            {"type": "user", "path": "/proc/1/ns/user"}
        ])))
        .unwrap();
        assert!(p.two_stage && p.fork_init);
        assert_eq!(p.joins[0].0, Ns::User);
        assert_eq!(p.unshare_flags, CloneFlags::CLONE_NEWNS);
    }

    #[test]
    fn mount_namespace_required() {
        assert!(Plan::from_spec(&spec(serde_json::json!([{"type": "pid"}]))).is_err());
    }
}
