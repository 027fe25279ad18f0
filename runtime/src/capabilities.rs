//! The five capability sets of `process.capabilities`.
//!
//! Order matters: the bounding set is cut while we still hold CAP_SETPCAP (before the
//! user switch); effective/permitted/inheritable/ambient are set after it. Inheritable
//! stays empty unless the config asks (CVE-2022-29162).

use caps::Capability;
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::syscall::{CapMask, Syscall};
use crate::{Error, Result};

fn convert(set: &Option<Capabilities>, field: &str) -> Result<CapMask> {
    let mut mask = 0;
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let cap = name.parse::<Capability>().map_err(|_| {
            Error::Config(format!(
                "process.capabilities.{field}: unknown capability {name}"
            ))
        })?;
        mask |= bit(cap);
    }
    Ok(mask)
}

fn bit(cap: Capability) -> CapMask {
    1 << cap.index()
}

fn names(mask: CapMask) -> impl Iterator<Item = Capability> {
    caps::all().into_iter().filter(move |c| mask & bit(*c) != 0)
}

fn cerr(what: &str, e: Errno) -> Error {
    Error::sys(format!("capabilities: {what}"), e)
}

/// The five sets as bit masks; the default (all empty) is what a config without
/// `process.capabilities` gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sets {
    bounding: CapMask,
    effective: CapMask,
    permitted: CapMask,
    inheritable: CapMask,
    ambient: CapMask,
}

impl Sets {
    /// The config's sets. A capability newer than the running kernel is left out with a
    /// warning, as runc does ("unknown or unavailable"); one the kernel has but the
    /// runtime does not hold is an error when applied (`apply`).
    pub fn from_spec(c: &LinuxCapabilities) -> Result<Sets> {
        let sets = Sets {
            bounding: convert(c.bounding(), "bounding")?,
            effective: convert(c.effective(), "effective")?,
            permitted: convert(c.permitted(), "permitted")?,
            inheritable: convert(c.inheritable(), "inheritable")?,
            ambient: convert(c.ambient(), "ambient")?,
        };
        let kernel = caps::runtime::thread_all_supported()
            .into_iter()
            .fold(0, |m, c| m | bit(c));
        Ok(sets.within(kernel))
    }

    fn within(self, kernel: CapMask) -> Sets {
        let all = self.bounding | self.effective | self.permitted | self.inheritable | self.ambient;
        for cap in names(all & !kernel) {
            tracing::warn!("capability {cap} is unknown to this kernel: ignored");
        }
        Sets {
            bounding: self.bounding & kernel,
            effective: self.effective & kernel,
            permitted: self.permitted & kernel,
            inheritable: self.inheritable & kernel,
            ambient: self.ambient & kernel,
        }
    }

    /// Before the user switch: drop what is not in the bounding set (one prctl for each
    /// capability dropped; EINVAL is a capability this kernel does not have).
    pub fn limit_bounding(&self, sys: &dyn Syscall) -> Result<()> {
        for cap in caps::all()
            .into_iter()
            .filter(|c| self.bounding & bit(*c) == 0)
        {
            match sys.drop_bounding(cap.index()) {
                Ok(()) | Err(Errno::EINVAL) => {}
                Err(e) => return Err(cerr(&format!("drop {cap} from the bounding set"), e)),
            }
        }
        Ok(())
    }

    /// After the user switch (with PR_SET_KEEPCAPS held across it): effective, permitted
    /// and inheritable in one capset(2), then the ambient set. A capability the runtime
    /// itself does not hold (outside its bounding set: a host that withholds it even from
    /// root) cannot be given: an error naming it, as runc and crun fail, never a container
    /// quietly started with less than its config says.
    pub fn apply(&self, sys: &dyn Syscall) -> Result<()> {
        let held = sys
            .permitted_caps()
            .map_err(|e| cerr("read the permitted set", e))?;
        for (field, set) in [
            ("effective", self.effective),
            ("permitted", self.permitted),
            ("inheritable", self.inheritable),
        ] {
            if let Some(missing) = names(set & !held).next() {
                return Err(Error::Config(format!(
                    "process.capabilities.{field}: {missing} is not held by the runtime on                      this host (outside its bounding set): it cannot be granted"
                )));
            }
        }
        sys.set_caps(self.effective, self.permitted, self.inheritable)
            .map_err(|e| cerr("set effective, permitted and inheritable", e))?;
        sys.clear_ambient_caps()
            .map_err(|e| cerr("clear the ambient set", e))?;
        // The kernel only lets a capability into the ambient set when it is permitted and
        // inheritable; like runc, others are skipped rather than failing the container.
        for cap in names(self.ambient & held) {
            if self.permitted & self.inheritable & bit(cap) != 0 {
                sys.raise_ambient_cap(cap.index())
                    .map_err(|e| cerr(&format!("raise ambient {cap}"), e))?;
            } else {
                tracing::debug!("ambient {cap} skipped: not in permitted and inheritable");
            }
        }
        Ok(())
    }
}

/// Every capability name this host's kernel knows (for `features`).
pub fn known_names() -> Vec<String> {
    let mut v: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::{Call, Recorder};

    fn sets(json: serde_json::Value) -> Sets {
        Sets::from_spec(&serde_json::from_value(json).unwrap()).unwrap()
    }

    #[test]
    fn bounding_drops_exactly_what_is_not_kept() {
        let sys = Recorder::default();
        sets(serde_json::json!({"bounding": ["CAP_CHOWN", "CAP_KILL"]}))
            .limit_bounding(&sys)
            .unwrap();
        let dropped: Vec<u8> = sys
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::DropBounding(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(dropped.len(), caps::all().len() - 2);
        assert!(!dropped.contains(&Capability::CAP_CHOWN.index()));
        assert!(!dropped.contains(&Capability::CAP_KILL.index()));
    }

    #[test]
    fn one_capset_then_ambient_only_where_permitted_and_inheritable() {
        let mut sys = Recorder::default();
        sys.permitted = bit(Capability::CAP_CHOWN) | bit(Capability::CAP_NET_RAW);
        sets(serde_json::json!({
            "effective": ["CAP_CHOWN"],
            "permitted": ["CAP_CHOWN", "CAP_NET_RAW"],
            "inheritable": ["CAP_NET_RAW"],
            "ambient": ["CAP_NET_RAW", "CAP_CHOWN"]
        }))
        .apply(&sys)
        .unwrap();
        let chown = bit(Capability::CAP_CHOWN);
        let raw = bit(Capability::CAP_NET_RAW);
        assert_eq!(
            sys.calls(),
            vec![
                Call::SetCaps {
                    effective: chown,
                    permitted: chown | raw,
                    inheritable: raw
                },
                Call::ClearAmbient,
                Call::RaiseAmbient(Capability::CAP_NET_RAW.index()),
            ]
        );
    }

    #[test]
    fn a_capability_the_runtime_lacks_is_an_error_naming_it() {
        let mut sys = Recorder::default();
        sys.permitted = bit(Capability::CAP_CHOWN);
        let e = sets(serde_json::json!({
            "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
            "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"]
        }))
        .apply(&sys)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("process.capabilities.effective") && e.contains("CAP_SYS_ADMIN"),
            "{e}"
        );
        assert!(sys.calls().is_empty(), "nothing set: {:?}", sys.calls());
    }
}
