//! Parsing /proc/<pid>/mountinfo text as printed inside a container.

#[derive(Debug, Clone)]
pub struct Mount {
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (ro, nosuid, ...).
    pub options: Vec<String>,
    /// Optional fields: shared:N, master:N, propagate_from:N, unbindable.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Superblock options (size=, mode=, ...).
    pub super_options: Vec<String>,
}

impl Mount {
    pub fn has_opt(&self, o: &str) -> bool {
        self.options.iter().any(|x| x == o) || self.super_options.iter().any(|x| x == o)
    }
    pub fn shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
    pub fn slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
            Some(Mount {
                root: l[3].to_string(),
                mount_point: l[4].replace("\\040", " "),
                options: split(l[5]),
                optional: l[6..].iter().map(|s| s.to_string()).collect(),
                fstype: r[0].to_string(),
                source: r[1].to_string(),
                super_options: split(r[2]),
            })
        })
        .collect()
}

/// The last (topmost) mount at `point`.
pub fn find(text: &str, point: &str) -> Option<Mount> {
    parse(text)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == point)
}
