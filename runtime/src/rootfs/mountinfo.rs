//! /proc/self/mountinfo, just the fields the runtime needs.

#[derive(Debug, Clone)]
pub struct MountEntry {
    pub mount_point: String,
    /// Optional fields, e.g. "shared:1 master:2".
    pub optional: String,
    pub fstype: String,
    pub super_options: String,
}

pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    Some(MountEntry {
        mount_point: unescape(l.get(4)?),
        optional: l.get(6..).map(|o| o.join(" ")).unwrap_or_default(),
        fstype: r.first()?.to_string(),
        super_options: r.get(2).unwrap_or(&"").to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn read() -> Vec<MountEntry> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let t = "36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = parse(t);
        assert_eq!(m[0].mount_point, "/mnt x");
        assert_eq!(m[0].optional, "master:1 shared:2");
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[1].optional, "");
    }
}
