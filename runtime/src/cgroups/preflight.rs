//! What `create` checks of a cgroup that already exists before it puts a container in it,
//! as runc does: a frozen cgroup (or one under a frozen parent) is refused, since the
//! init would freeze the moment it is placed and `create` would wait for it for ever; a
//! cgroup that still has processes is accepted with a warning.

use std::path::{Path, PathBuf};

use super::{is_unified, Cgroup, ROOT};
use crate::{Error, Result};

pub fn check(cgroup: &Cgroup, path: &Path) -> Result<()> {
    if frozen(path) {
        return Err(Error::Cgroup(format!(
            "container's cgroup unexpectedly frozen ({}): thaw it first",
            path.display()
        )));
    }
    let n = cgroup.pids().map(|p| p.len()).unwrap_or(0);
    if n > 0 {
        tracing::warn!("container's cgroup is not empty: {n} process(es) found");
    }
    Ok(())
}

/// Whether `path`, or its nearest existing ancestor (a new cgroup inherits the
/// freezing of its parent), is frozen or freezing.
fn frozen(path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let (base, file) = if is_unified() {
        (PathBuf::from(ROOT), "cgroup.events")
    } else {
        (Path::new(ROOT).join("freezer"), "freezer.state")
    };
    let mut dir = base.join(rel);
    while !dir.is_dir() {
        if !dir.pop() || !dir.starts_with(&base) {
            return false;
        }
    }
    let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
        return false;
    };
    parse_frozen(&text)
}

/// freezer.state (v1): anything but THAWED; cgroup.events (v2): `frozen 1`.
fn parse_frozen(text: &str) -> bool {
    match text.trim() {
        "THAWED" => false,
        "FROZEN" | "FREEZING" => true,
        events => events.lines().any(|l| l.trim() == "frozen 1"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_frozen;

    #[test]
    fn freezer_files() {
        assert!(parse_frozen("FROZEN\n"));
        assert!(parse_frozen("FREEZING\n"));
        assert!(!parse_frozen("THAWED\n"));
        assert!(parse_frozen("populated 1\nfrozen 1\n"));
        assert!(!parse_frozen("populated 0\nfrozen 0\n"));
    }
}
