//! linux.resources as systemd unit properties, the mapping runc makes (cgroup v2: MemoryMax,
//! CPUWeight...; v1: MemoryLimit, CPUShares...; both: CPUQuotaPerSecUSec, TasksMax,
//! AllowedCPUs, DevicePolicy/DeviceAllow). What has no property is still written to the
//! cgroup files by the cgroupfs code that runs after.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::{Error, Result};

/// One property's value, in the D-Bus type systemd wants for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `t`
    U64(u64),
    /// `b`
    Bool(bool),
    /// `s`
    Str(String),
    /// `as` (Wants)
    Strs(Vec<String>),
    /// `au` (PIDs)
    U32s(Vec<u32>),
    /// `ay` (a CPU or memory-node bitmask)
    Bytes(Vec<u8>),
    /// `a(ss)` (DeviceAllow: path or group, permissions)
    Pairs(Vec<(String, String)>),
}

pub type Prop = (String, Value);

fn prop(name: &str, v: Value) -> Prop {
    (name.to_string(), v)
}

/// The kernel's default CFS period (100 ms).
const DEFAULT_PERIOD: u64 = 100_000;

/// The properties for `r`; `v2` for the unified hierarchy, `version` is systemd's (older
/// ones lack CPUQuotaPeriodUSec, AllowedCPUs).
pub fn from_resources(r: &LinuxResources, v2: bool, version: u32) -> Result<Vec<Prop>> {
    let mut p = devices(r.devices().as_deref().unwrap_or_default())?;
    if let Some(m) = r.memory() {
        let limit = m.limit().unwrap_or(0);
        if limit != 0 {
            let name = if v2 { "MemoryMax" } else { "MemoryLimit" };
            p.push(prop(name, Value::U64(limit as u64)));
        }
        if v2 {
            if let Some(res) = m.reservation().filter(|r| *r != 0) {
                p.push(prop("MemoryLow", Value::U64(res as u64)));
            }
            let swap = swap_v2(m.swap().unwrap_or(0), limit)?;
            if swap != 0 {
                p.push(prop("MemorySwapMax", Value::U64(swap as u64)));
            }
        }
    }
    if let Some(cpu) = r.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            if v2 {
                p.push(prop("CPUWeight", Value::U64(shares_to_weight(shares))));
            } else {
                p.push(prop("CPUShares", Value::U64(shares)));
            }
        }
        cpu_quota(
            &mut p,
            cpu.quota().unwrap_or(0),
            cpu.period().unwrap_or(0),
            version,
        );
        if version >= 244 {
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                p.push(prop("AllowedCPUs", Value::Bytes(range_to_bits(cpus)?)));
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                p.push(prop(
                    "AllowedMemoryNodes",
                    Value::Bytes(range_to_bits(mems)?),
                ));
            }
        }
    }
    if let Some(pids) = r.pids() {
        let limit = pids.limit();
        if limit > 0 || limit == -1 {
            p.push(prop("TasksMax", Value::U64(limit as u64)));
        }
    }
    if !v2 {
        if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
            p.push(prop("BlockIOWeight", Value::U64(w.into())));
        }
    }
    if v2 {
        if let Some(u) = r.unified() {
            p.extend(from_unified(u, version)?);
        }
    }
    Ok(p)
}

/// cgroup v2 swap is apart from memory: memory+swap minus memory (-1 stays "max").
fn swap_v2(swap: i64, memory: i64) -> Result<i64> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(Error::Config(
            "linux.resources.memory.swap: a swap limit needs a memory limit".into(),
        ));
    }
    if swap < memory {
        return Err(Error::Config(
            "linux.resources.memory.swap: memory+swap must be at least memory.limit".into(),
        ));
    }
    Ok(swap - memory)
}

/// cgroup v1 shares (2..262144) to v2 weight (1..10000): the quadratic fit crun and runc
/// 1.3.2 use (1024, the default, is 100), the one libcgroups writes to cpu.weight, so the
/// unit's CPUWeight and the file agree (with runc 1.1's linear one here, 1024 was 39 for
/// systemd and 100 in the file).
pub fn shares_to_weight(shares: u64) -> u64 {
    const MAX_WEIGHT: u64 = 10_000;
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => MAX_WEIGHT,
        _ => {
            let l = (shares as f64).log2();
            let w = 10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0).ceil() as u64;
            w.clamp(1, MAX_WEIGHT)
        }
    }
}

fn cpu_quota(p: &mut Vec<Prop>, quota: i64, period: u64, version: u32) {
    if period != 0 && version >= 242 {
        p.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        // u64::MAX is systemd's infinity.
        let mut per_sec = u64::MAX;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_PERIOD } else { period };
            per_sec = (quota as u64) * 1_000_000 / period;
            // systemd keeps whole percents: round up to 10 ms so the kernel's quota is
            // at least the one asked.
            if per_sec % 10_000 != 0 {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
            }
        }
        p.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
}

/// linux.resources.unified keys systemd has a property for; the others go to the
/// cgroup files only.
fn from_unified(u: &std::collections::HashMap<String, String>, version: u32) -> Result<Vec<Prop>> {
    let mut p = Vec::new();
    let mut keys: Vec<_> = u.keys().collect();
    keys.sort();
    for k in keys {
        let v = u[k].trim();
        let bad = |why: &str| Error::Config(format!("linux.resources.unified {k:?}={v:?}: {why}"));
        let num = |v: &str| -> Result<u64> {
            if v == "max" {
                return Ok(u64::MAX);
            }
            v.parse().map_err(|_| bad("not a number"))
        };
        match k.as_str() {
            "cpu.max" => {
                let mut it = v.split_whitespace();
                let quota = match it.next() {
                    Some("max") => 0,
                    Some(q) => q.parse().map_err(|_| bad("quota is not a number"))?,
                    None => return Err(bad("empty")),
                };
                let period = match it.next() {
                    Some(s) => s.parse().map_err(|_| bad("period is not a number"))?,
                    None => DEFAULT_PERIOD,
                };
                cpu_quota(&mut p, quota, period, version);
            }
            "cpu.weight" => p.push(prop("CPUWeight", Value::U64(num(v)?))),
            "cpuset.cpus" if version >= 244 => {
                p.push(prop("AllowedCPUs", Value::Bytes(range_to_bits(v)?)))
            }
            "cpuset.mems" if version >= 244 => {
                p.push(prop("AllowedMemoryNodes", Value::Bytes(range_to_bits(v)?)))
            }
            "memory.high" => p.push(prop("MemoryHigh", Value::U64(num(v)?))),
            "memory.low" => p.push(prop("MemoryLow", Value::U64(num(v)?))),
            "memory.min" => p.push(prop("MemoryMin", Value::U64(num(v)?))),
            "memory.max" => p.push(prop("MemoryMax", Value::U64(num(v)?))),
            "memory.swap.max" => p.push(prop("MemorySwapMax", Value::U64(num(v)?))),
            "pids.max" => p.push(prop("TasksMax", Value::U64(num(v)?))),
            _ => tracing::debug!("unified {k}: no systemd property, cgroup file only"),
        }
    }
    Ok(p)
}

/// "0-2,7" as systemd's bitmask: byte i holds CPUs 8i..8i+7, lowest bit first.
pub fn range_to_bits(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::Config(format!("cpuset {s:?}: not a list of ranges such as 0-3,7"));
    let mut bits: Vec<u8> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= 8192 {
            return Err(bad());
        }
        for i in a..=b {
            if bits.len() <= i / 8 {
                bits.resize(i / 8 + 1, 0);
            }
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    if bits.is_empty() {
        return Err(bad());
    }
    Ok(bits)
}

/// One device rule in effect: type, major, minor (None: any), access ("rwm" subset).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    typ: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: String,
}

fn merge(a: &str, b: &str, add: bool) -> String {
    "rwm"
        .chars()
        .filter(|c| {
            let (x, y) = (a.contains(*c), b.contains(*c));
            if add {
                x || y
            } else {
                x && !y
            }
        })
        .collect()
}

/// One of the cgroupfs driver's default rules ("c 136:* rwm") as a config rule.
fn default_rule(text: &str) -> LinuxDeviceCgroup {
    let mut it = text.split_whitespace();
    let (typ, nums, access) = (it.next(), it.next(), it.next());
    let typ = if typ == Some("b") {
        LinuxDeviceType::B
    } else {
        LinuxDeviceType::C
    };
    let (major, minor) = nums.and_then(|n| n.split_once(':')).unwrap_or(("*", "*"));
    let mut b = oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .access(access.unwrap_or("rwm"));
    if let Ok(m) = major.parse::<i64>() {
        b = b.major(m);
    }
    if let Ok(m) = minor.parse::<i64>() {
        b = b.minor(m);
    }
    b.build().expect("a default device rule")
}

/// The config's device rules, then the defaults every container gets (/dev/null, zero,
/// full, tty, random, urandom, pts, ptmx, tun; mknod of any: the cgroupfs
/// driver's), replayed in order as the kernel's v1 devices controller would (runc's
/// emulator): `a *:* rwm` sets the default, other rules add or remove exceptions.
/// systemd takes a deny-by-default list only.
fn devices(config: &[LinuxDeviceCgroup]) -> Result<Vec<Prop>> {
    if config.is_empty() {
        return Ok(Vec::new());
    }
    let defaults: Vec<LinuxDeviceCgroup> = crate::cgroups::v1_devices::DEFAULT_RULES
        .iter()
        .map(|r| default_rule(r))
        .collect();
    let mut default_allow = true;
    let mut list: Vec<Rule> = Vec::new();
    for (i, d) in config.iter().chain(&defaults).enumerate() {
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => continue,
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || access.chars().any(|c| !"rwm".contains(c)) {
            return Err(Error::Config(format!(
                "linux.resources.devices[{i}].access {access:?}: use r, w and m"
            )));
        }
        if typ == 'a' {
            if d.major().is_some() || d.minor().is_some() || access.len() < 3 {
                tracing::warn!("linux.resources.devices[{i}]: a partial \"a\" rule has no systemd form; ignored for systemd (the cgroup files still get it)");
                continue;
            }
            default_allow = d.allow();
            list.clear();
            continue;
        }
        let r = Rule {
            typ,
            major: d.major(),
            minor: d.minor(),
            access: access.clone(),
        };
        let pos = list
            .iter()
            .position(|x| x.typ == r.typ && x.major == r.major && x.minor == r.minor);
        if d.allow() != default_allow {
            match pos {
                Some(p) => list[p].access = merge(&list[p].access, &access, true),
                None => list.push(r),
            }
        } else if let Some(p) = pos {
            list[p].access = merge(&list[p].access, &access, false);
            if list[p].access.is_empty() {
                list.remove(p);
            }
        }
    }
    let mut props = vec![
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", Value::Pairs(Vec::new())),
    ];
    if default_allow {
        if list.is_empty() {
            return Ok(vec![
                prop("DevicePolicy", Value::Str("auto".into())),
                prop("DeviceAllow", Value::Pairs(Vec::new())),
            ]);
        }
        tracing::warn!("systemd takes no deny list of devices: deny-all through systemd, the rules themselves in the cgroup files");
        return Ok(props);
    }
    let mut allow = Vec::new();
    for r in list {
        let path = match (r.major, r.minor) {
            (None, None) => format!("{}-*", group_prefix(r.typ)),
            (None, Some(_)) => {
                tracing::warn!(
                    "systemd has no '*:minor' device rule: {r:?} left to the cgroup files"
                );
                continue;
            }
            (Some(major), None) => match device_group(r.typ, major) {
                Some(g) => g,
                None => {
                    tracing::warn!(
                        "no /proc/devices group for {}{major}: {r:?} left to the cgroup files",
                        r.typ
                    );
                    continue;
                }
            },
            (Some(major), Some(minor)) => {
                let kind = if r.typ == 'b' { "block" } else { "char" };
                let p = format!("/dev/{kind}/{major}:{minor}");
                // systemd warns about paths that do not exist; /sys/dev/... also says
                // the device is known when udev made no /dev/char link.
                if !std::path::Path::new(&p).exists()
                    && !std::path::Path::new(&format!("/sys{p}")).exists()
                {
                    tracing::debug!("device {p} is not on this host: not given to systemd");
                    continue;
                }
                p
            }
        };
        allow.push((path, r.access));
    }
    props[1] = prop("DeviceAllow", Value::Pairs(allow));
    Ok(props)
}

fn group_prefix(typ: char) -> &'static str {
    if typ == 'b' {
        "block"
    } else {
        "char"
    }
}

/// The /proc/devices name of a major ("char-pts"), which DeviceAllow takes for `n:*`.
fn device_group(typ: char, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let want = if typ == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    let mut section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.ends_with("devices:") {
            section = line == want;
            continue;
        }
        if !section {
            continue;
        }
        let mut it = line.split_whitespace();
        if it.next()?.parse::<i64>().ok()? == major {
            return Some(format!("{}-{}", group_prefix(typ), it.next()?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    fn find<'a>(p: &'a [Prop], name: &str) -> Option<&'a Value> {
        p.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn v2_limits_map_as_runc() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(96 << 20)
                    .reservation(32 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000)
                    .period(100_000u64)
                    .cpus("0-1,3")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
            .build()
            .unwrap();
        let p = from_resources(&r, true, 252).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "MemoryLow"), Some(&Value::U64(32 << 20)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::U64(32 << 20)));
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::U64(100)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(42)));
        assert_eq!(find(&p, "AllowedCPUs"), Some(&Value::Bytes(vec![0b1011])));
        // v1 names, and an old systemd without the newer properties
        let p = from_resources(&r, false, 239).unwrap();
        assert_eq!(find(&p, "MemoryLimit"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "CPUShares"), Some(&Value::U64(1024)));
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), None);
        assert_eq!(find(&p, "AllowedCPUs"), None);
    }

    #[test]
    fn quotas_round_up_to_whole_percents() {
        let mut p = Vec::new();
        cpu_quota(&mut p, 12_345, 100_000, 252);
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(130_000)));
        let mut p = Vec::new();
        cpu_quota(&mut p, -1, 0, 252);
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
    }

    #[test]
    fn weights_from_shares() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(3), 2);
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(262143), 10000);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(u64::MAX), 10000);
    }

    #[test]
    fn cpu_ranges_to_bits() {
        assert_eq!(range_to_bits("0").unwrap(), vec![1]);
        assert_eq!(range_to_bits("8-9").unwrap(), vec![0, 3]);
        assert!(range_to_bits("3-1").is_err());
        assert!(range_to_bits("x").is_err());
    }

    #[test]
    fn swap_needs_memory() {
        assert_eq!(swap_v2(0, -1).unwrap(), -1);
        assert_eq!(swap_v2(-1, 100).unwrap(), -1);
        assert!(swap_v2(100, 0).is_err());
        assert!(swap_v2(50, 100).is_err());
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access("rwm");
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn device_rules_become_an_allow_list() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None),
            rule(true, LinuxDeviceType::C, Some(1), Some(3)),
            rule(true, LinuxDeviceType::C, None, None),
            rule(false, LinuxDeviceType::C, None, None),
        ];
        let p = devices(&rules).unwrap();
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        let Some(Value::Pairs(allow)) = find(&p, "DeviceAllow") else {
            panic!("no DeviceAllow: {p:?}")
        };
        // the config's 1:3, then the defaults (/dev/null again, /dev/zero, any mknod...)
        assert_eq!(allow[0], ("/dev/char/1:3".into(), "rwm".into()));
        for want in [
            ("/dev/char/1:5", "rwm"),
            ("/dev/char/5:2", "rwm"),
            ("char-*", "m"),
            ("block-*", "m"),
        ] {
            assert!(
                allow.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {allow:?}"
            );
        }
        assert!(allow.iter().any(|(p, _)| p == "char-pts"), "{allow:?}");
        // allow-all: systemd's auto policy with no list
        let p = devices(&[rule(true, LinuxDeviceType::A, None, None)]).unwrap();
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::Str("auto".into())));
    }
}
