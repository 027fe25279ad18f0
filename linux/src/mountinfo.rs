//! /proc/self/mountinfo (proc(5)): one `MountEntry` per line.
//!
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
//! is mount id, parent id, major:minor, root, mount point, mount options, optional fields
//! (up to " - "), then filesystem type, source and super options.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    /// The directory of the filesystem that forms this mount's root (bind mounts).
    pub root: String,
    pub mount_point: String,
    /// Per-mount options: "rw,nosuid,relatime".
    pub options: String,
    /// Optional fields, space separated: "shared:1 master:2".
    pub optional: String,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options; for cgroup v1 they name the controllers ("rw,cpu,cpuacct").
    pub super_options: String,
}

impl MountEntry {
    /// Whether the mount is in a shared peer group (propagates to its peers).
    pub fn is_shared(&self) -> bool {
        self.optional.split(' ').any(|o| o.starts_with("shared:"))
    }
}

/// Every entry of a mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// The mount table of the calling process (empty if /proc is not there).
pub fn read() -> Vec<MountEntry> {
    parse(&crate::read_small("/proc/self/mountinfo").unwrap_or_default())
}

/// Whether `path` is the mount point of some mount (exact match, after unescaping).
pub fn is_mount_point(path: &Path) -> bool {
    let want = path.to_string_lossy();
    read().iter().any(|m| m.mount_point == want)
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let mut r = right.split(' ');
    Some(MountEntry {
        mount_id: l.first()?.parse().ok()?,
        parent_id: l.get(1)?.parse().ok()?,
        root: unescape(l.get(3)?),
        mount_point: unescape(l.get(4)?),
        options: l.get(5)?.to_string(),
        optional: l.get(6..).map(|o| o.join(" ")).unwrap_or_default(),
        fstype: r.next()?.to_string(),
        source: unescape(r.next().unwrap_or("")),
        super_options: r.next().unwrap_or("").to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field() {
        let t = "36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                 garbage\n";
        let m = parse(t);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].mount_id, m[0].parent_id), (36, 35));
        assert_eq!(m[0].root, "/mnt1");
        assert_eq!(m[0].mount_point, "/mnt x");
        assert_eq!(m[0].options, "rw,noatime");
        assert_eq!(m[0].optional, "master:1 shared:2");
        assert!(m[0].is_shared());
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].source, "/dev/root");
        assert_eq!(m[0].super_options, "rw,errors=continue");
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[1].optional, "");
        assert!(!m[1].is_shared());
    }

    #[test]
    fn unescapes_only_octal_triplets() {
        assert_eq!(unescape("a\\040b\\011c\\134"), "a b\tc\\");
        assert_eq!(unescape("tail\\04"), "tail\\04");
        assert_eq!(unescape("\\999"), "\\999");
    }

    #[test]
    fn reads_our_own_root() {
        assert!(read().iter().any(|m| m.mount_point == "/"));
        assert!(is_mount_point(Path::new("/")));
    }
}
