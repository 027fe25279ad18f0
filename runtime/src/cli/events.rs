//! `events ID [--stats] [--interval D]`: runc's event stream. `--stats` prints one stats
//! event; otherwise a stats event every interval and an `oom` event whenever the kernel's
//! OOM killer acts in the container, until the container stops.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde_json::{json, Value};

use super::Cli;
use crate::cgroups::oom_kills;
use crate::container::Container;
use crate::state::Status;

#[derive(Args, Debug)]
pub struct EventsArgs {
    id: String,
    /// Print one stats event and exit
    #[arg(long)]
    stats: bool,
    /// Time between stats events (Go duration: 5s, 100ms, 1m)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
}

/// Go's time.ParseDuration for the units clients use.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (want e.g. 5s, 100ms, 1m)");
    let split = s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let n: f64 = s[..split].parse().map_err(|_| bad())?;
    let secs = match &s[split..] {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn mem(d: &MemoryData) -> Value {
    json!({ "usage": d.usage, "max": d.max_usage, "failcnt": d.fail_count, "limit": d.limit })
}

fn blkio(v: &[BlkioDeviceStat]) -> Value {
    v.iter()
        .map(|e| json!({ "major": e.major, "minor": e.minor, "op": e.op_type.clone().unwrap_or_default(), "value": e.value }))
        .collect()
}

/// libcgroups' stats in the shape of runc's `types.Stats` (what `runc events` prints).
fn runc_shape(s: &Stats) -> Value {
    let hugetlb: serde_json::Map<String, Value> = s
        .hugetlb
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({ "usage": v.usage, "max": v.max_usage, "failcnt": v.fail_count }),
            )
        })
        .collect();
    json!({
        "cpu": {
            "usage": {
                "total": s.cpu.usage.usage_total,
                "percpu": s.cpu.usage.per_core_usage_total,
                "kernel": s.cpu.usage.usage_kernel,
                "user": s.cpu.usage.usage_user,
            },
            "throttling": {
                "periods": s.cpu.throttling.periods,
                "throttledPeriods": s.cpu.throttling.throttled_periods,
                "throttledTime": s.cpu.throttling.throttled_time,
            },
        },
        "memory": {
            "cache": s.memory.cache,
            "usage": mem(&s.memory.memory),
            "swap": mem(&s.memory.memswap),
            "kernel": mem(&s.memory.kernel),
            "kernelTCP": mem(&s.memory.kernel_tcp),
            "raw": s.memory.stats,
        },
        "pids": { "current": s.pids.current, "limit": s.pids.limit },
        "blkio": {
            "ioServiceBytesRecursive": blkio(&s.blkio.service_bytes),
            "ioServicedRecursive": blkio(&s.blkio.serviced),
            "ioQueuedRecursive": blkio(&s.blkio.queued),
            "ioServiceTimeRecursive": blkio(&s.blkio.service_time),
            "ioWaitTimeRecursive": blkio(&s.blkio.wait_time),
            "ioMergedRecursive": blkio(&s.blkio.merged),
            "ioTimeRecursive": blkio(&s.blkio.time),
            "sectorsRecursive": blkio(&s.blkio.sectors),
        },
        "hugetlb": hugetlb,
    })
}

/// One event, its keys in runc's order (`type`, `id`, `data`): scripts match the start of
/// the line (`{"type":"oom","id":"ID"}`), not only the parsed JSON.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

fn emit(out: &mut impl Write, typ: &str, id: &str, data: Option<Value>) -> std::io::Result<()> {
    let line = serde_json::to_string(&Event { typ, id, data })?;
    writeln!(out, "{line}")?;
    out.flush()
}

pub fn run(cli: &Cli, a: &EventsArgs) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, false)?;
    let path = c.saved.cgroup_path.clone();
    let cg = c.cgroup()?;
    if cg.is_none() {
        anyhow::bail!(
            "events {}: the container has no cgroup (rootless without a delegated cgroup)",
            a.id
        );
    }
    let mut out = std::io::stdout().lock();
    if a.stats {
        emit(&mut out, "stats", &a.id, Some(runc_shape(&cg.stats()?)))?;
        return Ok(());
    }
    let mut ooms = oom_kills(&path);
    let mut next_stats = Instant::now();
    // OOM is checked often; stats only every interval.
    let tick = a.interval.min(Duration::from_millis(200));
    while c.status() != Status::Stopped {
        let now = oom_kills(&path);
        if now > ooms {
            emit(&mut out, "oom", &a.id, None)?;
            ooms = now;
        }
        if Instant::now() >= next_stats {
            if let Ok(s) = cg.stats() {
                emit(&mut out, "stats", &a.id, Some(runc_shape(&s)))?;
            }
            next_stats = Instant::now() + a.interval;
        }
        std::thread::sleep(tick);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{emit, parse_duration};

    #[test]
    fn event_keys_in_runc_order() {
        let mut out = Vec::new();
        emit(&mut out, "oom", "c1", None).unwrap();
        emit(
            &mut out,
            "stats",
            "c1",
            Some(serde_json::json!({"pids": {}})),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"oom\",\"id\":\"c1\"}\n{\"type\":\"stats\",\"id\":\"c1\",\"data\":{\"pids\":{}}}\n"
        );
    }
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
