//! Running without root: where the state lives, and whether we count as rootless.
//!
//! As runc: the default `--root` of a non-root caller is `$XDG_RUNTIME_DIR/capsa` (for
//! root, `/run/capsa`), and root inside a user namespace (rootless podman) uses it too
//! when `$USER` is not root. Rootless mode decides how cgroups are handled (see
//! `cgroups::access`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The state root of a root caller.
pub const ROOT_DEFAULT: &str = "/run/capsa";

/// `--rootless true|false|auto` (runc's global flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    True,
    False,
    #[default]
    Auto,
}

/// Whether we run rootless: not root, or root of a user namespace that is not the host's.
pub fn is_rootless(mode: Mode) -> bool {
    match mode {
        Mode::True => true,
        Mode::False => false,
        Mode::Auto => !nix::unistd::geteuid().is_root() || in_user_namespace(),
    }
}

/// Root of the initial user namespace: every cgroup file is ours to write.
pub fn is_host_root() -> bool {
    nix::unistd::geteuid().is_root() && !in_user_namespace()
}

/// Whether this process is in a user namespace other than the initial one: the initial
/// one maps the whole id range onto itself.
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_initial_map(&map),
        Err(_) => false,
    }
}

fn is_initial_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    lines.len() == 1 && lines[0] == ["0", "0", "4294967295"]
}

/// The default `--root`: `/run/capsa` for root, `$XDG_RUNTIME_DIR/capsa` otherwise, and
/// for root of a user namespace with XDG_RUNTIME_DIR set (rootless podman calls us so,
/// without `--root` and without `$USER`) unless `$USER` says root (runc's rule).
pub fn default_root() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        let user = std::env::var_os("USER");
        if xdg.is_none() || !root_honours_xdg(in_user_namespace(), user.as_deref()) {
            return Ok(PathBuf::from(ROOT_DEFAULT));
        }
    }
    let Some(xdg) = xdg else {
        return Err(Error::Other(format!(
            "running as uid {euid} without --root: XDG_RUNTIME_DIR is not set (set it to a \
             directory of your own, e.g. /run/user/{euid}, or pass --root DIR)"
        )));
    };
    let xdg = PathBuf::from(xdg);
    check_runtime_dir(&xdg, euid.as_raw())?;
    Ok(xdg.join("capsa"))
}

/// Whether uid 0 takes `$XDG_RUNTIME_DIR` (as runc's shouldHonorXDGRuntimeDir): only in a
/// user namespace (the host's root keeps /run/capsa even with XDG_RUNTIME_DIR=/run/user/0),
/// and then unless `$USER` is root (`sudo` inside a rootless session); unset counts as
/// not root, as podman's conmon passes no `$USER`.
fn root_honours_xdg(in_userns: bool, user: Option<&std::ffi::OsStr>) -> bool {
    in_userns && user.is_none_or(|u| u != "root")
}

/// `$XDG_RUNTIME_DIR` must be an absolute directory of ours that we can write to.
fn check_runtime_dir(dir: &Path, euid: u32) -> Result<()> {
    let unusable = |why: String| {
        Error::Other(format!(
            "XDG_RUNTIME_DIR={} is unusable for the default --root: {why} (fix it or pass \
             --root DIR)",
            dir.display()
        ))
    };
    if !dir.is_absolute() {
        return Err(unusable("not an absolute path".into()));
    }
    let meta = std::fs::metadata(dir).map_err(|e| unusable(e.to_string()))?;
    if !meta.is_dir() {
        return Err(unusable("not a directory".into()));
    }
    if meta.uid() != euid && euid != 0 {
        return Err(unusable(format!(
            "owned by uid {}, not by us (uid {euid})",
            meta.uid()
        )));
    }
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|e| unusable(format!("not writable: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_map_is_recognised() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("0 1000 1\n"));
        assert!(!is_initial_map("0 0 4294967295\n1 1 1\n"));
    }

    #[test]
    fn root_takes_xdg_only_in_a_user_namespace_and_not_as_user_root() {
        use std::ffi::OsStr;
        assert!(!root_honours_xdg(false, None));
        assert!(!root_honours_xdg(false, Some(OsStr::new("alice"))));
        assert!(root_honours_xdg(true, None));
        assert!(root_honours_xdg(true, Some(OsStr::new("alice"))));
        assert!(!root_honours_xdg(true, Some(OsStr::new("root"))));
    }

    #[test]
    fn runtime_dir_checks() {
        let euid = nix::unistd::geteuid().as_raw();
        let tmp = std::env::temp_dir();
        assert!(check_runtime_dir(Path::new("relative"), euid).is_err());
        let missing = tmp.join("capsa-no-such-dir-for-rootless-test");
        let e = check_runtime_dir(&missing, euid).unwrap_err().to_string();
        assert!(e.contains("XDG_RUNTIME_DIR="), "{e}");
        let d = tempfile_dir();
        assert!(check_runtime_dir(&d, euid).is_ok());
        let _ = std::fs::remove_dir(&d);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("capsa-rootless-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
