//! The five capability sets of `process.capabilities`.
//!
//! Order matters: the bounding set is cut while we still hold CAP_SETPCAP (before the
//! user switch); effective/permitted/inheritable/ambient are set after it. Inheritable
//! stays empty unless the config asks (CVE-2022-29162).

use std::collections::HashSet;

use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::{Error, Result};

fn convert(set: &Option<Capabilities>, field: &str) -> Result<HashSet<Capability>> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        match name.parse::<Capability>() {
            Ok(cap) => {
                out.insert(cap);
            }
            Err(_) => {
                return Err(Error::Config(format!(
                    "process.capabilities.{field}: unknown capability {name}"
                )))
            }
        }
    }
    Ok(out)
}

fn cerr(what: &str, e: caps::errors::CapsError) -> Error {
    Error::Other(format!("capabilities: {what}: {e}"))
}

pub struct Sets {
    bounding: HashSet<Capability>,
    effective: HashSet<Capability>,
    permitted: HashSet<Capability>,
    inheritable: HashSet<Capability>,
    ambient: HashSet<Capability>,
}

impl Sets {
    pub fn from_spec(c: &LinuxCapabilities) -> Result<Sets> {
        Ok(Sets {
            bounding: convert(c.bounding(), "bounding")?,
            effective: convert(c.effective(), "effective")?,
            permitted: convert(c.permitted(), "permitted")?,
            inheritable: convert(c.inheritable(), "inheritable")?,
            ambient: convert(c.ambient(), "ambient")?,
        })
    }

    /// No capabilities at all: what a config without `process.capabilities` gets.
    pub fn empty() -> Sets {
        Sets {
            bounding: HashSet::new(),
            effective: HashSet::new(),
            permitted: HashSet::new(),
            inheritable: HashSet::new(),
            ambient: HashSet::new(),
        }
    }

    /// Before the user switch: drop what is not in the bounding set.
    pub fn limit_bounding(&self) -> Result<()> {
        let current = caps::read(None, CapSet::Bounding).map_err(|e| cerr("read bounding", e))?;
        for cap in current.difference(&self.bounding) {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(|e| cerr("drop from bounding set", e))?;
        }
        Ok(())
    }

    /// After the user switch (with PR_SET_KEEPCAPS held across it). A capability the
    /// runtime itself does not hold (a host that withholds it even from root) cannot be
    /// given: it is skipped with a warning rather than failing the container.
    pub fn apply(&self) -> Result<()> {
        let held = caps::read(None, CapSet::Permitted).map_err(|e| cerr("read permitted", e))?;
        for missing in self
            .permitted
            .union(&self.effective)
            .filter(|c| !held.contains(c))
        {
            tracing::warn!(
                "capability {missing} is not held by the runtime on this host; not granted"
            );
        }
        let keep = |s: &HashSet<Capability>| -> HashSet<Capability> {
            s.intersection(&held).copied().collect()
        };
        // effective ⊆ permitted must hold after each call: shrink effective first.
        let eff = keep(&self.effective);
        caps::set(
            None,
            CapSet::Effective,
            &eff.intersection(&keep(&self.permitted)).copied().collect(),
        )
        .map_err(|e| cerr("set effective", e))?;
        caps::set(None, CapSet::Permitted, &keep(&self.permitted))
            .map_err(|e| cerr("set permitted", e))?;
        caps::set(None, CapSet::Effective, &eff).map_err(|e| cerr("set effective", e))?;
        caps::set(None, CapSet::Inheritable, &keep(&self.inheritable))
            .map_err(|e| cerr("set inheritable", e))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| cerr("clear ambient", e))?;
        // The kernel only lets a capability into the ambient set when it is permitted and
        // inheritable; like runc, others are skipped rather than failing the container.
        for cap in keep(&self.ambient) {
            if self.permitted.contains(&cap) && self.inheritable.contains(&cap) {
                caps::raise(None, CapSet::Ambient, cap)
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
