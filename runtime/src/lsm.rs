//! Linux security modules: `process.apparmorProfile` and `process.selinuxLabel`, applied
//! to the next exec through /proc/self/attr. A config that asks for a module the host does
//! not run is refused before anything is made; `linux.mountLabel` without SELinux is
//! ignored, as runc and crun do.

use std::path::Path;

use oci_spec::runtime::Process;

use crate::syscall::Syscall;
use crate::{Error, Result};

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// In the parent, before anything is created.
pub fn check(process: &Process) -> Result<()> {
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && !apparmor_enabled()
    {
        return Err(Error::Config(format!(
            "process.apparmorProfile {:?}: AppArmor is not enabled on this host",
            process.apparmor_profile().as_deref().unwrap_or_default()
        )));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
        && !selinux_enabled()
    {
        return Err(Error::Config(format!(
            "process.selinuxLabel {:?}: SELinux is not enabled on this host",
            process.selinux_label().as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

/// In the container, before the user switch: the labels take effect at execve.
pub fn apply(process: &Process, sys: &dyn Syscall) -> Result<()> {
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        sys.write_proc(Path::new(attr), format!("exec {profile}").as_bytes())
            .map_err(|errno| Error::ProcWrite {
                field: format!("process.apparmorProfile {profile:?}"),
                path: attr.into(),
                errno,
            })?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        sys.write_proc(Path::new("/proc/self/attr/exec"), label.as_bytes())
            .map_err(|errno| Error::ProcWrite {
                field: format!("process.selinuxLabel {label:?}"),
                path: "/proc/self/attr/exec".into(),
                errno,
            })?;
    }
    Ok(())
}
