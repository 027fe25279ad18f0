//! The v1 limits capsa writes itself, where libcgroups 0.7 does not do what runc does
//! (what it does do, it is handed with these taken out, by `split`):
//!
//! - `cpu.period` and `cpu.quota`: a shorter period the kernel refuses (EINVAL) because
//!   old quota / new period would exceed a parent's limit is written again after the
//!   quota, when one comes with it;
//! - `blockIO.weight`, `leafWeight`, `weightDevice`: to the files the kernel has (CFQ's
//!   `blkio.weight*` or BFQ's `blkio.bfq.weight*`); a value the host has no file for is an
//!   error naming it, never dropped;
//! - `devices`: the minimal change from the cgroup's current rules (`v1_devices`);
//! - `unified` (cgroup v2 files) is an error on a v1 host, as in runc.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxDeviceCgroup, LinuxResources};

use super::v1_devices::{self, Devices};
use crate::{Error, Result};

/// What capsa writes itself, taken out of a `LinuxResources`.
#[derive(Debug, Default)]
pub struct Own {
    period: Option<u64>,
    quota: Option<i64>,
    blkio: Option<LinuxBlockIo>,
    devices: Option<Devices>,
}

/// Split `r` into what libcgroups applies and what capsa writes itself. `devices`: the
/// config's device rules (the defaults are added after them), or `None` to leave the
/// devices cgroup as it is.
pub fn split(
    r: &LinuxResources,
    devices: Option<&[LinuxDeviceCgroup]>,
) -> Result<(LinuxResources, Own)> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::Cgroup(
            "linux.resources.unified: invalid configuration: cannot use unified (cgroup v2 \
             files) on a cgroup v1 host"
                .into(),
        ));
    }
    let mut rest = r.clone();
    let mut own = Own::default();
    if let Some(cpu) = r.cpu() {
        own.period = cpu.period().filter(|&p| p != 0);
        own.quota = cpu.quota().filter(|&q| q != 0);
        let mut cpu = cpu.clone();
        cpu.set_period(None);
        cpu.set_quota(None);
        rest.set_cpu(Some(cpu));
    }
    if let Some(b) = r.block_io() {
        let mut weights = LinuxBlockIo::default();
        weights.set_weight(b.weight().filter(|&w| w != 0));
        weights.set_leaf_weight(b.leaf_weight().filter(|&w| w != 0));
        weights.set_weight_device(b.weight_device().clone());
        own.blkio = Some(weights);
        let mut b = b.clone();
        b.set_weight(None);
        b.set_leaf_weight(None);
        b.set_weight_device(None);
        rest.set_block_io(Some(b));
    }
    own.devices = devices
        .map(|d| v1_devices::container_rules(d, "linux.resources.devices"))
        .transpose()?;
    rest.set_devices(None);
    Ok((rest, own))
}

fn write(dir: &Path, file: &str, value: &str, field: &str) -> std::io::Result<()> {
    let path = dir.join(file);
    tracing::debug!("{field}: {value} > {}", path.display());
    std::fs::write(path, value)
}

fn werr(field: &str, dir: &Path, file: &str, e: std::io::Error) -> Error {
    Error::Cgroup(format!("{field}: write {}: {e}", dir.join(file).display()))
}

impl Own {
    /// Write them; `dir_of` gives the container's directory in a controller's hierarchy.
    pub fn apply(&self, dir_of: impl Fn(&str) -> Option<std::path::PathBuf>) -> Result<()> {
        if self.period.is_some() || self.quota.is_some() {
            let dir = dir_of("cpu").ok_or_else(|| missing("linux.resources.cpu", "cpu"))?;
            cfs(&dir, self.period, self.quota)?;
        }
        if let Some(b) = &self.blkio {
            let wanted = b.weight().is_some()
                || b.leaf_weight().is_some()
                || b.weight_device().as_ref().is_some_and(|d| !d.is_empty());
            if wanted {
                let dir =
                    dir_of("blkio").ok_or_else(|| missing("linux.resources.blockIO", "blkio"))?;
                blkio_weights(&dir, b)?;
            }
        }
        if let Some(target) = &self.devices {
            let dir =
                dir_of("devices").ok_or_else(|| missing("linux.resources.devices", "devices"))?;
            v1_devices::set(&dir, target)?;
        }
        Ok(())
    }
}

fn missing(field: &str, controller: &str) -> Error {
    Error::Cgroup(format!(
        "{field}: this host has no {controller} cgroup controller"
    ))
}

/// runc's order: the period, and if the kernel refuses it (EINVAL: the current quota over
/// the new period would exceed a parent's limit) while a quota comes too, the quota first
/// and the period again.
fn cfs(dir: &Path, period: Option<u64>, quota: Option<i64>) -> Result<()> {
    let mut retry = None;
    if let Some(p) = period {
        let v = p.to_string();
        match write(dir, "cpu.cfs_period_us", &v, "linux.resources.cpu.period") {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && quota.is_some() => retry = Some(v),
            Err(e) => {
                return Err(werr(
                    "linux.resources.cpu.period",
                    dir,
                    "cpu.cfs_period_us",
                    e,
                ))
            }
        }
    }
    if let Some(q) = quota {
        write(
            dir,
            "cpu.cfs_quota_us",
            &q.to_string(),
            "linux.resources.cpu.quota",
        )
        .map_err(|e| werr("linux.resources.cpu.quota", dir, "cpu.cfs_quota_us", e))?;
    }
    if let Some(v) = retry {
        write(dir, "cpu.cfs_period_us", &v, "linux.resources.cpu.period")
            .map_err(|e| werr("linux.resources.cpu.period", dir, "cpu.cfs_period_us", e))?;
    }
    Ok(())
}

/// CFQ's files where the kernel has them, else BFQ's; neither is an error naming the
/// field (the host cannot apply it).
fn blkio_weights(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let cfq = dir.join("blkio.weight").exists();
    let bfq = dir.join("blkio.bfq.weight").exists();
    let (weight, weight_device) = match (cfq, bfq) {
        (true, _) => ("blkio.weight", "blkio.weight_device"),
        (false, true) => ("blkio.bfq.weight", "blkio.bfq.weight_device"),
        (false, false) => {
            return Err(Error::Cgroup(
                "linux.resources.blockIO: this host's blkio controller has no weight files \
                 (no CFQ or BFQ I/O scheduler): it cannot apply weight, leafWeight or \
                 weightDevice"
                    .into(),
            ))
        }
    };
    let put = |field: &str, file: &str, v: String| {
        if !dir.join(file).exists() {
            return Err(Error::Cgroup(format!(
                "{field}: this host's blkio controller has no {file}"
            )));
        }
        write(dir, file, &v, field).map_err(|e| werr(field, dir, file, e))
    };
    if let Some(w) = b.weight() {
        put("linux.resources.blockIO.weight", weight, w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        put(
            "linux.resources.blockIO.leafWeight",
            "blkio.leaf_weight",
            w.to_string(),
        )?;
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(w) = d.weight().filter(|&w| w != 0) {
            let field = format!("linux.resources.blockIO.weightDevice[{i}].weight");
            put(&field, weight_device, format!("{dev} {w}"))?;
        }
        if let Some(w) = d.leaf_weight().filter(|&w| w != 0) {
            let field = format!("linux.resources.blockIO.weightDevice[{i}].leafWeight");
            put(&field, "blkio.leaf_weight_device", format!("{dev} {w}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn split_takes_what_capsa_writes() {
        let r = resources(serde_json::json!({
            "cpu": {"shares": 100, "period": 100000, "quota": 50000},
            "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]},
            "devices": [{"allow": false, "access": "rwm"}],
            "pids": {"limit": 5}
        }));
        let (rest, own) = split(&r, Some(r.devices().as_deref().unwrap())).unwrap();
        let cpu = rest.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.period(), cpu.quota()),
            (Some(100), None, None)
        );
        let b = rest.block_io().as_ref().unwrap();
        assert_eq!(b.weight(), None);
        assert!(b.throttle_read_bps_device().is_some());
        assert!(rest.devices().is_none());
        assert_eq!(rest.pids().as_ref().unwrap().limit(), 5);
        assert_eq!((own.period, own.quota), (Some(100000), Some(50000)));
        assert!(own.devices.is_some());
    }

    #[test]
    fn unified_on_v1_names_the_field() {
        let r = resources(serde_json::json!({"unified": {"memory.min": "1"}}));
        let e = split(&r, None).unwrap_err().to_string();
        assert!(e.contains("linux.resources.unified") && e.contains("invalid configuration"));
    }

    #[test]
    fn blkio_weight_without_files_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let b: LinuxBlockIo =
            serde_json::from_value(serde_json::json!({"leafWeight": 10})).unwrap();
        let e = blkio_weights(t.path(), &b).unwrap_err().to_string();
        assert!(e.contains("linux.resources.blockIO"), "{e}");
    }

    #[test]
    fn blkio_weights_go_to_bfq_files() {
        let t = tempfile::tempdir().unwrap();
        for f in ["blkio.bfq.weight", "blkio.bfq.weight_device"] {
            std::fs::write(t.path().join(f), "").unwrap();
        }
        let b: LinuxBlockIo = serde_json::from_value(serde_json::json!({
            "weight": 333, "weightDevice": [{"major": 7, "minor": 0, "weight": 444}]
        }))
        .unwrap();
        blkio_weights(t.path(), &b).unwrap();
        let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap();
        assert_eq!(read("blkio.bfq.weight"), "333");
        assert_eq!(read("blkio.bfq.weight_device"), "7:0 444");
        // BFQ has no leaf weights.
        let leaf: LinuxBlockIo =
            serde_json::from_value(serde_json::json!({"leafWeight": 5})).unwrap();
        let e = blkio_weights(t.path(), &leaf).unwrap_err().to_string();
        assert!(
            e.contains("leafWeight") && e.contains("blkio.leaf_weight"),
            "{e}"
        );
    }
}
