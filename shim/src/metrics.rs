//! Task stats in containerd's types: io.containerd.cgroups.v1.Metrics from
//! the v1 controllers, io.containerd.cgroups.v2.Metrics from a unified
//! cgroup. Read from the cgroup files directly, as the Go shim does.

use std::path::Path;

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};

use crate::cgroup::{read_kv, read_string, read_u64, Cgroup};
use crate::error::{Error, Result};

pub fn collect(cg: &Cgroup) -> Result<Any> {
    // Type URLs written out: no protobuf reflection (see events.rs).
    let (type_url, value) = match cg {
        Cgroup::V1(_) => (
            "io.containerd.cgroups.v1.Metrics",
            collect_v1(cg).write_to_bytes(),
        ),
        Cgroup::V2(dir) => (
            "io.containerd.cgroups.v2.Metrics",
            collect_v2(dir).write_to_bytes(),
        ),
    };
    Ok(Any {
        type_url: type_url.into(),
        value: value.map_err(|e| Error::Other(format!("encode metrics: {e}")))?,
        ..Default::default()
    })
}

/// USER_HZ ticks (cpuacct.stat) in nanoseconds.
const TICK_NS: u64 = 10_000_000;

fn collect_v1(cg: &Cgroup) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(d) = cg.dir("pids") {
        m.pids = MessageField::some(v1::PidsStat {
            current: read_u64(d, "pids.current", 0),
            limit: read_u64(d, "pids.max", 0),
            ..Default::default()
        });
    }
    let mut cpu = v1::CPUStat::new();
    if let Some(d) = cg.dir("cpuacct") {
        let stat = read_kv(d, "cpuacct.stat");
        cpu.usage = MessageField::some(v1::CPUUsage {
            total: read_u64(d, "cpuacct.usage", 0),
            user: stat.get("user").copied().unwrap_or(0) * TICK_NS,
            kernel: stat.get("system").copied().unwrap_or(0) * TICK_NS,
            per_cpu: read_string(d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect(),
            ..Default::default()
        });
    }
    if let Some(d) = cg.dir("cpu") {
        let s = read_kv(d, "cpu.stat");
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        cpu.throttling = MessageField::some(v1::Throttle {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_time"),
            ..Default::default()
        });
    }
    m.cpu = MessageField::some(cpu);
    if let Some(d) = cg.dir("memory") {
        m.memory = MessageField::some(memory_v1(d));
        let oom = read_kv(d, "memory.oom_control");
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: oom.get("oom_kill_disable").copied().unwrap_or(0),
            under_oom: oom.get("under_oom").copied().unwrap_or(0),
            oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
            ..Default::default()
        });
    }
    if let Some(d) = cg.dir("blkio") {
        m.blkio = MessageField::some(v1::BlkIOStat {
            io_service_bytes_recursive: blkio(d, "blkio.throttle.io_service_bytes"),
            io_serviced_recursive: blkio(d, "blkio.throttle.io_serviced"),
            ..Default::default()
        });
    }
    m
}

fn entry_v1(d: &Path, prefix: &str) -> MessageField<v1::MemoryEntry> {
    let f = |n: &str| format!("{prefix}{n}");
    MessageField::some(v1::MemoryEntry {
        usage: read_u64(d, &f("usage_in_bytes"), 0),
        max: read_u64(d, &f("max_usage_in_bytes"), 0),
        limit: read_u64(d, &f("limit_in_bytes"), 0),
        failcnt: read_u64(d, &f("failcnt"), 0),
        ..Default::default()
    })
}

fn memory_v1(d: &Path) -> v1::MemoryStat {
    let s = read_kv(d, "memory.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    v1::MemoryStat {
        cache: g("cache"),
        rss: g("rss"),
        rss_huge: g("rss_huge"),
        mapped_file: g("mapped_file"),
        dirty: g("dirty"),
        writeback: g("writeback"),
        pg_pg_in: g("pgpgin"),
        pg_pg_out: g("pgpgout"),
        pg_fault: g("pgfault"),
        pg_maj_fault: g("pgmajfault"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        hierarchical_memory_limit: g("hierarchical_memory_limit"),
        hierarchical_swap_limit: g("hierarchical_memsw_limit"),
        total_cache: g("total_cache"),
        total_rss: g("total_rss"),
        total_rss_huge: g("total_rss_huge"),
        total_mapped_file: g("total_mapped_file"),
        total_dirty: g("total_dirty"),
        total_writeback: g("total_writeback"),
        total_pg_pg_in: g("total_pgpgin"),
        total_pg_pg_out: g("total_pgpgout"),
        total_pg_fault: g("total_pgfault"),
        total_pg_maj_fault: g("total_pgmajfault"),
        total_inactive_anon: g("total_inactive_anon"),
        total_active_anon: g("total_active_anon"),
        total_inactive_file: g("total_inactive_file"),
        total_active_file: g("total_active_file"),
        total_unevictable: g("total_unevictable"),
        usage: entry_v1(d, "memory."),
        swap: entry_v1(d, "memory.memsw."),
        kernel: entry_v1(d, "memory.kmem."),
        kernel_tcp: entry_v1(d, "memory.kmem.tcp."),
        ..Default::default()
    }
}

/// `MAJ:MIN Op value` lines of a blkio file.
fn blkio(d: &Path, file: &str) -> Vec<v1::BlkIOEntry> {
    read_string(d, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (maj, min) = dev.split_once(':')?;
            Some(v1::BlkIOEntry {
                op: op.to_string(),
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                value: value.parse().ok()?,
                ..Default::default()
            })
        })
        .collect()
}

fn collect_v2(d: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = MessageField::some(v2::PidsStat {
        current: read_u64(d, "pids.current", 0),
        limit: read_u64(d, "pids.max", 0),
        ..Default::default()
    });
    let c = read_kv(d, "cpu.stat");
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: g("usage_usec"),
        user_usec: g("user_usec"),
        system_usec: g("system_usec"),
        nr_periods: g("nr_periods"),
        nr_throttled: g("nr_throttled"),
        throttled_usec: g("throttled_usec"),
        ..Default::default()
    });
    let s = read_kv(d, "memory.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    m.memory = MessageField::some(v2::MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel_stack: g("kernel_stack"),
        slab: g("slab"),
        sock: g("sock"),
        shmem: g("shmem"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        workingset_refault: g("workingset_refault_anon") + g("workingset_refault_file"),
        workingset_activate: g("workingset_activate_anon") + g("workingset_activate_file"),
        workingset_nodereclaim: g("workingset_nodereclaim"),
        pgrefill: g("pgrefill"),
        pgscan: g("pgscan"),
        pgsteal: g("pgsteal"),
        pgactivate: g("pgactivate"),
        pgdeactivate: g("pgdeactivate"),
        pglazyfree: g("pglazyfree"),
        pglazyfreed: g("pglazyfreed"),
        thp_fault_alloc: g("thp_fault_alloc"),
        thp_collapse_alloc: g("thp_collapse_alloc"),
        usage: read_u64(d, "memory.current", 0),
        usage_limit: read_u64(d, "memory.max", u64::MAX),
        swap_usage: read_u64(d, "memory.swap.current", 0),
        swap_limit: read_u64(d, "memory.swap.max", u64::MAX),
        max_usage: read_u64(d, "memory.peak", 0),
        ..Default::default()
    });
    let e = read_kv(d, "memory.events");
    let g = |k: &str| e.get(k).copied().unwrap_or(0);
    m.memory_events = MessageField::some(v2::MemoryEvents {
        low: g("low"),
        high: g("high"),
        max: g("max"),
        oom: g("oom"),
        oom_kill: g("oom_kill"),
        oom_group_kill: g("oom_group_kill"),
        ..Default::default()
    });
    m.io = MessageField::some(v2::IOStat {
        usage: read_string(d, "io.stat")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (maj, min) = f.next()?.split_once(':')?;
                let mut e = v2::IOEntry {
                    major: maj.parse().ok()?,
                    minor: min.parse().ok()?,
                    ..Default::default()
                };
                for kv in f {
                    let (k, v) = kv.split_once('=')?;
                    let v = v.parse().unwrap_or(0);
                    match k {
                        "rbytes" => e.rbytes = v,
                        "wbytes" => e.wbytes = v,
                        "rios" => e.rios = v,
                        "wios" => e.wios = v,
                        _ => {}
                    }
                }
                Some(e)
            })
            .collect(),
        ..Default::default()
    });
    m
}
