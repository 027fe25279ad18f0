//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope systemd makes in the slice `linux.cgroupsPath` names ("slice:prefix:name", as
//! runc), started with the init in it and the resources as unit properties; `update` sets
//! them on the unit, `delete` stops it. The cgroup files are still written afterwards
//! (what systemd has no property for), and pids, stats and the freezer are read from them.

mod bus;
mod properties;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use bus::Bus;
use properties::Value;

use crate::{Error, Result};

/// The default `prefix` of a unit whose config names none.
const PREFIX: &str = "capsa";

/// Whether systemd runs as this host's init (sd_booted(3)).
pub fn booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// The cgroup of a container under the systemd driver: `cgroups_path` is
/// "slice:prefix:name" (an empty slice is system.slice; no path at all is
/// system.slice:capsa:<id>); the unit is "prefix-name.scope", or "name" when that is a
/// slice; the path is the unit's place under the expanded slice.
pub fn path_for(cgroups_path: Option<&str>, id: &str) -> Result<PathBuf> {
    let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => ("", PREFIX, id),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(Error::Config(format!(
                    "linux.cgroupsPath {p:?}: the systemd driver needs \"slice:prefix:name\""
                )));
            };
            (slice, prefix, name)
        }
    };
    let bad_name = |what: &str| {
        Error::Config(format!(
            "linux.cgroupsPath: {what} {name:?} is not a valid unit name"
        ))
    };
    if name.is_empty() || name.contains('/') {
        return Err(bad_name("name"));
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    Ok(expand_slice(slice)?.join(unit))
}

/// "a-b.slice" is /a.slice/a-b.slice (systemd's nesting by dashes); "-.slice" is /.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = || {
        Error::Config(format!(
            "linux.cgroupsPath: {slice:?} is not a valid slice name"
        ))
    };
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if base.is_empty() || slice.contains('/') {
        return Err(bad());
    }
    let mut path = PathBuf::from("/");
    if base == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        path.push(format!("{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// A container's unit, known from its cgroup path (`path_for`'s result).
pub struct Unit {
    pub name: String,
    /// The slice it goes into ("system.slice").
    slice: String,
    bus: OnceCell<Bus>,
}

impl Unit {
    pub fn from_path(path: &Path) -> Result<Unit> {
        let file = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
        let name = file(path)
            .ok_or_else(|| Error::Cgroup(format!("{}: no systemd unit", path.display())))?;
        let slice = path
            .parent()
            .and_then(file)
            .unwrap_or_else(|| "-.slice".to_string());
        Ok(Unit {
            name,
            slice,
            bus: OnceCell::new(),
        })
    }

    fn bus(&self) -> Result<&Bus> {
        if let Some(b) = self.bus.get() {
            return Ok(b);
        }
        if !booted() {
            return Err(Error::Cgroup(
                "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)"
                    .into(),
            ));
        }
        let b = Bus::connect()?;
        Ok(self.bus.get_or_init(|| b))
    }

    fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }

    /// Start the unit with `pid` in it (runc's properties: delegated, accounting on); the
    /// resources follow with `set`.
    pub fn start(&self, id: &str, pid: i32, v2: bool) -> Result<()> {
        let bus = self.bus()?;
        let s = |v: &str| Value::Str(v.to_string());
        let mut props = vec![(
            "Description".to_string(),
            s(&format!("capsa container {id}")),
        )];
        if self.is_slice() {
            props.push(("Wants".into(), Value::Strs(vec![self.slice.clone()])));
        } else {
            props.push(("Slice".into(), s(&self.slice)));
            props.push(("Delegate".into(), Value::Bool(true)));
            props.push(("PIDs".into(), Value::U32s(vec![pid as u32])));
        }
        // Accounting always on: the same controllers as the cgroupfs driver gives.
        let io = if v2 {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        };
        for a in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
            props.push((a.into(), Value::Bool(true)));
        }
        props.push(("DefaultDependencies".into(), Value::Bool(false)));
        tracing::debug!("systemd: start {} with {props:?}", self.name);
        bus.start_transient(&self.name, &props)?;
        Ok(())
    }

    /// The resources as properties of the running unit (create's limits, `update`).
    pub fn set(&self, resources: &LinuxResources, v2: bool) -> Result<()> {
        let bus = self.bus()?;
        let props = properties::from_resources(resources, v2, bus.version()?)?;
        bus.set_properties(&self.name, &props)
    }

    /// `delete`: stop the unit (it kills what is left in it, and removes its cgroup).
    pub fn stop(&self) -> Result<()> {
        self.bus()?.stop(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_runc_makes_them() {
        assert_eq!(
            path_for(Some("system.slice:docker:1234"), "x").unwrap(),
            Path::new("/system.slice/docker-1234.scope")
        );
        assert_eq!(
            path_for(Some("test-a-b.slice:p:n"), "x").unwrap(),
            Path::new("/test.slice/test-a.slice/test-a-b.slice/p-n.scope")
        );
        assert_eq!(
            path_for(None, "ct").unwrap(),
            Path::new("/system.slice/capsa-ct.scope")
        );
        assert_eq!(
            path_for(Some(":p:n"), "x").unwrap(),
            Path::new("/system.slice/p-n.scope")
        );
        assert_eq!(
            path_for(Some("machine.slice::pod.slice"), "x").unwrap(),
            Path::new("/machine.slice/pod.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), Path::new("/"));
    }

    #[test]
    fn bad_paths_name_the_field() {
        for bad in [
            "/a/b",
            "a:b",
            "a.slice:b:c:d",
            "nota:p:n",
            "a--b.slice:p:n",
            "x.slice:p:a/b",
        ] {
            let e = path_for(Some(bad), "x").unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
        }
    }

    #[test]
    fn unit_and_slice_from_the_path() {
        let u = Unit::from_path(Path::new("/test.slice/test-a.slice/p-n.scope")).unwrap();
        assert_eq!(u.name, "p-n.scope");
        assert_eq!(u.slice, "test-a.slice");
    }
}
