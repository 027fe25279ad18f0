//! `update ID [--resources FILE|-] [flags]`: change a container's cgroup limits.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
};

use super::Cli;
use crate::container::Container;
use crate::state::Status;

#[derive(Args, Debug)]
pub struct UpdateArgs {
    id: String,
    /// linux.resources as JSON, from a file or "-" for stdin
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU time per period (-1: no limit)
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1: no limit)
    #[arg(long, allow_negative_numbers = true)]
    memory: Option<String>,
    /// Memory soft limit (-1: none)
    #[arg(long = "memory-reservation", allow_negative_numbers = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited)
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    memory_swap: Option<String>,
    /// Maximum number of tasks (-1 or 0: no limit)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
}

/// "512m", "1G", "1024", "-1" → bytes.
fn bytes(flag: &str, v: &str) -> anyhow::Result<i64> {
    let v = v.trim();
    if v == "-1" {
        return Ok(-1);
    }
    let (num, mul) = match v.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = v[i..].to_ascii_lowercase();
            let mul: i64 = match unit.trim_end_matches('b').trim_end_matches('i') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => anyhow::bail!("--{flag} {v:?}: unknown unit"),
            };
            (&v[..i], mul)
        }
        None => (v, 1),
    };
    let n: i64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--{flag} {v:?}: not a size"))?;
    Ok(n * mul)
}

fn from_flags(a: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let mut mem = LinuxMemoryBuilder::default();
    let mut any_mem = false;
    if let Some(m) = &a.memory {
        mem = mem.limit(bytes("memory", m)?);
        any_mem = true;
    }
    if let Some(m) = &a.memory_reservation {
        mem = mem.reservation(bytes("memory-reservation", m)?);
        any_mem = true;
    }
    if let Some(m) = &a.memory_swap {
        mem = mem.swap(bytes("memory-swap", m)?);
        any_mem = true;
    }
    if any_mem {
        r.set_memory(Some(mem.build()?));
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    macro_rules! cpu_set {
        ($field:ident, $setter:ident) => {
            if let Some(v) = a.$field.clone() {
                cpu = cpu.$setter(v);
                any_cpu = true;
            }
        };
    }
    cpu_set!(cpu_period, period);
    cpu_set!(cpu_quota, quota);
    cpu_set!(cpu_share, shares);
    cpu_set!(cpu_rt_period, realtime_period);
    cpu_set!(cpu_rt_runtime, realtime_runtime);
    cpu_set!(cpuset_cpus, cpus);
    cpu_set!(cpuset_mems, mems);
    if any_cpu {
        r.set_cpu(Some(cpu.build()?));
    }
    if let Some(p) = a.pids_limit {
        r.set_pids(Some(LinuxPidsBuilder::default().limit(p).build()?));
    }
    if let Some(w) = a.blkio_weight {
        r.set_block_io(Some(LinuxBlockIoBuilder::default().weight(w).build()?));
    }
    Ok(r)
}

pub fn run(cli: &Cli, a: &UpdateArgs) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, true)?;
    if c.status() == Status::Stopped {
        anyhow::bail!("container \"{}\" is stopped: nothing to update", a.id);
    }
    let resources: LinuxResources = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut data)?;
            } else {
                data = std::fs::read(p)
                    .map_err(|e| anyhow::anyhow!("--resources {}: {e}", p.display()))?;
            }
            serde_json::from_slice(&data).map_err(|e| anyhow::anyhow!("--resources: {e}"))?
        }
        None => from_flags(a)?,
    };
    let limits = crate::cgroups::delegation::limits_set(Some(&resources));
    if let Some(e) = crate::cgroups::delegation::v1_limits_refused(cli.rootless(), &limits) {
        return Err(e.into());
    }
    let mut resources = resources;
    // runc sets the container's device rules again on every update (only what differs is
    // written); they are not something `update` changes.
    if !cli.rootless() {
        resources.set_devices(
            c.saved
                .config
                .linux()
                .as_ref()
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.devices().clone()),
        );
    }
    let cg = c.cgroup()?;
    cg.update(&resources)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes() {
        assert_eq!(bytes("m", "1024").unwrap(), 1024);
        assert_eq!(bytes("m", "512m").unwrap(), 512 << 20);
        assert_eq!(bytes("m", "1G").unwrap(), 1 << 30);
        assert_eq!(bytes("m", "2KiB").unwrap(), 2048);
        assert_eq!(bytes("m", "-1").unwrap(), -1);
        assert!(bytes("m", "12x").is_err());
    }
}
