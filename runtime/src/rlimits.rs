//! `process.rlimits`: names to resource numbers, applied in the init before exec.

use oci_spec::runtime::PosixRlimit;

use crate::syscall::Syscall;
use crate::{Error, Result};

pub fn resource(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as libc::c_int)
}

/// Check every name before the fork, so a typo fails `create` with the field named.
pub fn validate(limits: &[PosixRlimit]) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let name = l.typ().to_string();
        if resource(&name).is_none() {
            return Err(Error::Config(format!(
                "process.rlimits[{i}].type {name:?} is not a known rlimit"
            )));
        }
        if l.soft() > l.hard() {
            return Err(Error::Config(format!(
                "process.rlimits[{i}] ({name}): soft limit is above hard limit"
            )));
        }
    }
    Ok(())
}

pub fn apply(limits: &[PosixRlimit], sys: &dyn Syscall) -> Result<()> {
    for l in limits {
        let name = l.typ().to_string();
        let res = resource(&name).ok_or_else(|| Error::Config(format!("unknown rlimit {name}")))?;
        sys.set_rlimit(res, l.soft(), l.hard())
            .map_err(|e| Error::sys(format!("setrlimit {name} ({}/{})", l.soft(), l.hard()), e))?;
    }
    Ok(())
}
